"""The More views tab: one panel per view registered for the app (:mod:`livr_viz.service.registry`), built from its
declaration alone: a Run button (endpoint ``view_<name>``), one input per parameter, one component per output.

Parameters named ``image``, ``prompt`` and ``stage`` read the input column (the app's current image, question and
mask), so a view of "this input" needs no second upload; every other parameter gets its own input."""

from __future__ import annotations

import gradio as gr

from livr_viz import service as S
from livr_viz.ui.common import Page, user_errors
from livr_viz.ui.queues import LONG_EVENTS, QUICK_EVENTS

OUTPUT_COMPONENTS = {
    "markdown": lambda label: gr.Markdown(),
    "text": lambda label: gr.Textbox(label=label, lines=4, interactive=False),
    "table": lambda label: gr.Dataframe(label=label),
    "figure": lambda label: gr.Plot(label=label),
    "image": lambda label: gr.Image(label=label, interactive=False, format="png"),
    "json": lambda label: gr.JSON(label=label),
}


def param_input(param, page: Page):
    """The component a parameter reads: the input column's for image / prompt / stage, else one of its own."""
    shared = {"image": page.image, "prompt": page.prompt, "stage": page.stage}
    if param.kind == "image" or param.name in shared:
        return shared["image" if param.kind == "image" else param.name]
    label = param.help or param.name.replace("_", " ")
    if param.choices is not None:
        return gr.Dropdown(list(param.choices), value=param.default, label=label)
    if param.kind == "bool":
        return gr.Checkbox(bool(param.default), label=label)
    if param.kind in ("int", "float"):
        return gr.Number(param.default, label=label, precision=0 if param.kind == "int" else None)
    return gr.Textbox(value=param.default or "", label=label)


def coerce(param, value):
    """A component's value as the parameter's kind (a Number gives floats; an empty box is the default)."""
    if value is None or value == "":
        return param.default
    return {"int": int, "float": float, "bool": bool}.get(param.kind, lambda v: v)(value)


def view_handler(view):
    @user_errors
    def handler(model, *values):
        result = S.run_view(view.name, model, {p.name: coerce(p, v) for p, v in zip(view.params, values)})
        return ["\n".join(result[o.name]) if o.kind == "text" else result[o.name] for o in view.outputs]

    return handler


def build_view(view, page: Page) -> None:
    inputs = [param_input(p, page) for p in view.params]
    run = gr.Button(f"run {view.name}", elem_id=f"view-{view.name}")
    outputs = [OUTPUT_COMPONENTS[o.kind](o.label or o.name) for o in view.outputs]
    run.click(
        view_handler(view),
        [page.model, *inputs],
        outputs,
        api_name=f"view_{view.name}",
        **(LONG_EVENTS if view.long_job else QUICK_EVENTS),
    )


def build(page: Page, views: list) -> None:
    for view in views:
        with gr.Accordion(f"{view.name}: {view.summary}", open=True):
            build_view(view, page)

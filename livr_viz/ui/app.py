"""livr-viz: the Gradio app. Upload an image, see where each latent looks, compare variants, probe concepts.

It composes the engine (``livr_viz.service`` and friends) and holds no model logic of its own.
Run ``python app.py`` or ``livr-viz app``. :func:`build_app` lays out the page (examples, the input column, the
answer) and calls one builder per tab (:mod:`livr_viz.ui.tabs`); every event has an ``api_name`` and its queue
settings from :mod:`livr_viz.ui.queues`: quick views side by side, long jobs in their own queue.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import gradio as gr

from livr_viz import service as S
from livr_viz.ui.common import STALE, Page, user_errors
from livr_viz.ui.queues import QUICK_EVENTS
from livr_viz.ui.tabs import attention, attribution, compare, diagnostics, how, probes, tokens
from livr_viz.ui.tabs import views as more_views


# ----------------------------------------------------------------------------------------------- events
# the page's own events (the tabs' are in their modules): each calls one service action
@user_errors
def on_export(model, image, prompt, stage, layers, heads, aggregation, normalisation, opacity, views):
    return S.export_view(model, image, prompt, stage, layers, heads, aggregation, normalisation, opacity, views)


@user_errors
def on_preview(image):
    return S.display_image(S.load_upload(image), 256) if image else None


@user_errors
def on_new_sample(task, model):
    return S.new_sample(task, S.scratch_dir() / "samples", answer_format=S.answer_format_of(model))


def on_pick_example(model, evt: gr.SelectData):
    return S.example_pick(model, evt.index)


def on_template(task, model):
    return S.task_templates(S.answer_format_of(model)).get(task, "")


# ----------------------------------------------------------------------------------------------- page
INTRO = (
    "**LIVR** puts K learned *latent tokens* between the question and the answer and trains in two stages: first "
    "the answer may see the image *only through the latents* (a bottleneck), then with ordinary attention. "
    "**latents-only** has the same latents without the bottleneck stage; **SFT** is plain fine-tuning, no "
    "latents. The tiles show where each latent looks; *Compare* puts the three side by side."
)
APP_CSS = """
#intro p { margin: 0; font-size: 0.95em; }
#title h2 { margin: 0; }
#examples .grid-wrap { min-height: 0 !important; height: auto !important; max-height: none !important;
                       overflow: visible !important; padding-top: 30px; }
#examples .grid-container { grid-template-columns: repeat(auto-fit, minmax(84px, 1fr)) !important;
                            grid-template-rows: none !important; grid-auto-rows: auto !important; }
#examples .thumbnail-item { aspect-ratio: 4 / 5; }
#examples .thumbnail-item > img { height: calc(100% - 2.6em); object-fit: contain; }
#examples .caption-label { left: 0; right: 0; bottom: 0; max-width: 100%; height: 2.6em; white-space: normal;
                           text-align: center; line-height: 1.2; font-size: 11px; border: 0; border-radius: 0;
                           padding: 1px 2px; opacity: 1 !important; background: var(--background-fill-primary); }
#latent-gallery .grid-wrap, #dataset-gallery .grid-wrap { min-height: 0 !important; height: auto !important;
                                                          max-height: none !important; overflow: visible !important; }
#latent-gallery .grid-container, #dataset-gallery .grid-container { grid-template-rows: none !important;
                                                                    grid-auto-rows: auto !important; }
#latent-gallery .thumbnail-item, #dataset-gallery .thumbnail-item { aspect-ratio: auto; height: auto; display: flex;
                                                                    flex-direction: column; }
#latent-gallery .thumbnail-item > img, #dataset-gallery .thumbnail-item > img { height: auto; width: 100%; }
#latent-gallery .caption-label, #dataset-gallery .caption-label { position: static; max-width: 100%; border: 0;
    white-space: normal; text-align: left; font-size: 12px; line-height: 1.25; opacity: 1 !important; }
.legend { font-size: 0.85em; line-height: 1.45; }
.legend .sw { display: inline-block; width: 0.9em; height: 0.9em; vertical-align: -0.1em; margin: 0 0.2em; }
#view-note p { margin: 0; }
#view-note.stale { color: #b45309; }
body:has(#view-note.stale) #latent-gallery img { opacity: 0.35; filter: grayscale(0.8); }
"""


def example_items(model: str) -> list[tuple[str, str]]:
    """The example gallery: each example's file and a readable name, marked ✓ / ✗ where ``model`` answers its ground
    truth right / wrong (:func:`livr_viz.service.example_verdicts`, computed once per model); ★ before an example
    picked for teaching (its caption beside the answer says by what rule), which comes before each task's first
    test sample (not picked)."""
    examples = S.gallery_examples()
    try:
        verdicts = S.example_verdicts(model)
    except S.LIVRError:  # a model that cannot answer the suite's questions: names without marks
        verdicts = [None] * len(examples)
    picked = {r["path"] for r in S.teaching_records()}
    items = []
    for path, verdict in zip(examples, verdicts):
        sample = S.synthetic_sample_for(path)
        name = (
            ("★ " if path in picked else "") + sample.task.replace("_", " ")
            if sample is not None
            else "photo: " + Path(path).stem.removeprefix("photo-").replace("-", " ")
        )
        items.append((path, ("" if verdict is None else "✔ " if verdict else "✘ ") + name))
    return items


def examples_label(model: str) -> str:
    picked = "; ★: picked for teaching, the others are each task's first test sample" if S.teaching_records() else ""
    return (
        f"examples: click one to load and answer it (✔ / ✘: {S.display_name(model)} answers it right / wrong{picked}; "
        "or upload your own image below)"
    )


def on_examples(model):
    return gr.Gallery(value=example_items(model), label=examples_label(model))


def first_view(model: str, image: str, prompt: str) -> dict:
    """The page's opening state: the first example answered (cached by the service, so every visitor gets it at
    once); {} where this model cannot answer it (the page then opens with the usual hint)."""
    try:
        return S.attention_view(model, image, prompt, "full", "all", "mean", "mean", "per_latent", 0.55)
    except S.LIVRError:
        return {}


# ----------------------------------------------------------------------------------------------- layout
def input_column(default_model: str, first_image: str, first_prompt: str, templates: dict):
    """The left column: model, prompt, stage, Run, the image, a fresh sample of a task, prompt templates."""
    model = gr.Dropdown(
        S.model_choices(default_model),
        value=default_model,
        allow_custom_value=True,
        label="model (demo name, local path or hub id)",
    )
    prompt = gr.Textbox(label="prompt", lines=4, value=first_prompt, elem_id="prompt")
    with gr.Row(equal_height=True):
        stage = gr.Radio(list(S.STAGES), value="full", label="stage (mask at inference)", scale=2)
        run = gr.Button("Run", variant="primary", elem_id="run", scale=1)
    image = gr.File(
        label="image: upload your own",
        file_types=["image"],
        type="filepath",
        elem_id="image-input",
        value=first_image,
        height=120,
    )
    with gr.Row():
        task = gr.Dropdown(S.example_tasks(), value=S.LEAD_TASK, label="task")
        new = gr.Button("new sample", elem_id="new-sample")
    template = gr.Dropdown(
        list(templates), label="prompt template", value=None, info="pick a task to put its question in the prompt"
    )
    new.click(on_new_sample, [task, model], [image, prompt], api_name="new_sample")
    template.change(on_template, [template, model], [prompt], api_name=False)
    return model, prompt, stage, run, image, task


def answer_row(first: dict):
    """Beside the tabs: the input as the model sees it (click a patch) and the answer with its probabilities."""
    with gr.Row():
        preview = gr.Image(
            first.get("image"),
            label="input · click a patch",
            format="png",
            interactive=False,
            height=230,
            elem_id="preview",
            scale=1,
            min_width=200,
        )
        with gr.Column(scale=2):
            answer = gr.Markdown(
                first.get("markdown", "Upload an image or press *new sample*, then **Run**."),
                elem_id="answer",
            )
            probs = gr.Label(first.get("choice_probs") or None, label="choice probabilities", num_top_classes=8)
    return preview, answer, probs


def build_tabs(page: Page) -> tuple:
    """One builder per tab; returns the Latent attention and Token map tabs (the page's Run and clearing use them)."""
    with gr.Tabs():
        with gr.Tab("Latent attention", id="tab-attention"):
            attention_tab = attention.build(page)
        with gr.Tab("Compare", id="tab-compare"):
            compare.build(page, attention_tab)
        with gr.Tab("Token map", id="tab-tokens"):
            tokens_tab = tokens.build(page)
        with gr.Tab("Probes", id="tab-probes"):
            probes.build(page)
        with gr.Tab("Attribution", id="tab-attribution"):
            attribution.build_attribution(page)
        with gr.Tab("Ablation", id="tab-ablation"):
            attribution.build_ablation(page)
        with gr.Tab("Diagnostics", id="tab-diagnostics"):
            diagnostics.build(page)
        with gr.Tab("How it works", id="tab-how"):
            how.build(page)
        registered = S.registered_views(app=True)
        if registered:  # views registered in the service for the app (livr_viz.service.registry)
            with gr.Tab("More views", id="tab-views"):
                more_views.build(page, registered)
    return attention_tab, tokens_tab


def build_app(default_model: str = "demo-livr") -> gr.Blocks:
    templates = S.task_templates(S.answer_format_of(default_model))
    lm = S.POOL.get(default_model)  # selector ranges come from the model's config, never hard-coded
    first_image, first_prompt = S.opening_example(default_model)  # the page opens on it, answered: the example
    first = first_view(default_model, first_image, first_prompt)  # picked for teaching this model, else the first
    examples = S.gallery_examples()
    with gr.Blocks(title="livr-viz") as demo:
        gr.Markdown("## livr-viz — where do the latent tokens look?", elem_id="title")
        gr.Markdown(INTRO, elem_id="intro")
        example_gallery = gr.Gallery(
            example_items(default_model),
            label=examples_label(default_model),
            columns=len(examples),
            height="auto",
            allow_preview=False,
            object_fit="contain",
            elem_id="examples",
        )
        with gr.Row():
            with gr.Column(scale=1):
                model, prompt, stage, run, image, task = input_column(
                    default_model, first_image, first_prompt, templates
                )
            with gr.Column(scale=2):
                preview, answer, probs = answer_row(first)
                page = Page(
                    default_model=default_model,
                    n_layers=lm.base_model.config.get_text_config().num_hidden_layers,
                    n_latents=max(1, lm.config.n_latents),
                    examples=examples,
                    first=first,
                    model=model,
                    image=image,
                    prompt=prompt,
                    stage=stage,
                    task=task,
                    preview=preview,
                    answer=answer,
                    probs=probs,
                    views=gr.State({}),
                    results=[answer, probs],
                )
                attention_tab, tokens_tab = build_tabs(page)
                with gr.Row():
                    export_btn = gr.Button("export figures + report.json + settings", elem_id="export")
                    export_file = gr.File(label="export")
        wire_page(page, attention_tab, tokens_tab, run, example_gallery, export_btn, export_file)
    return demo


def wire_page(page: Page, attention_tab, tokens_tab, run, example_gallery, export_btn, export_file) -> None:
    """The events that span the tabs: a new input clears every result (no stale answer beside new inputs), Run and an
    example click answer it, Export writes the attention view and every tab this session ran."""
    results = [*page.results, export_file, page.views]
    enlarged, scope = attention_tab.enlarged, tokens_tab.scope

    def clear_results(scope_value):  # the dataset token map does not depend on the input: it stays
        return [
            STALE
            if c in (page.answer, attention_tab.patch_md)
            else {}
            if c is page.views
            else gr.Image(value=None, visible=False)
            if c is enlarged
            else gr.update()
            if c is tokens_tab.plot and scope_value == "dataset"
            else None
            for c in results
        ]

    model, image = page.model, page.image
    for control in (image, page.prompt):
        control.change(clear_results, [scope], results, api_name=False, queue=False)
    image.change(on_preview, [image], [page.preview], api_name=False)  # the input shown is always the input given
    model.change(lambda: clear_results("this image"), None, results, api_name=False, queue=False)
    view_inputs, view_outputs = attention_tab.view_inputs, attention_tab.view_outputs
    attention_tab.redrawn(  # a Run clears before it starts: an error then leaves no old answer behind
        run.click(clear_results, [scope], results, api_name=False, queue=False).then(
            attention.on_analyze, view_inputs, view_outputs, api_name="analyze", **QUICK_EVENTS
        )
    )
    attention_tab.redrawn(
        example_gallery.select(on_pick_example, [model], [image, page.prompt], api_name=False).then(
            attention.on_analyze, view_inputs, view_outputs, api_name=False, **QUICK_EVENTS
        )
    )  # a click loads and answers it
    model.change(user_errors(on_examples), [model], [example_gallery], api_name=False)  # ✓ / ✗ for this model
    export_btn.click(on_export, view_inputs + [page.views], [export_file], api_name="export", **QUICK_EVENTS)


def main(argv=None) -> None:
    from livr_viz.ui.options import parse_app_args

    serve(parse_app_args(argv))


def serve(args) -> None:
    """Load the model, build the app and serve it (``args`` from :func:`livr_viz.ui.options.parse_app_args`)."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    S.restrict_models([args.model], getattr(args, "model_root", None) or [])  # typed paths: only under the roots
    try:
        S.POOL.get(args.model)  # load once, before serving
    except S.LIVRError as exc:
        raise SystemExit(f"error: {exc}") from None
    if os.environ.get("LIVR_VIZ_WARM_UMAP", "1") != "0":  # numba compiles UMAP once: do it off the request path
        threading.Thread(target=S.warm_up, daemon=True).start()
    demo = build_app(args.model)
    demo.queue(default_concurrency_limit=args.concurrency, max_size=64)
    demo.launch(
        server_name=args.host,
        server_port=args.port,
        max_file_size=f"{args.max_upload_mb}mb",
        show_error=True,
        allowed_paths=[str(S.EXAMPLES_DIR), str(S.scratch_dir())],
        css=APP_CSS,
    )


if __name__ == "__main__":  # python -m livr_viz.ui.app: the same as python -m livr_viz.ui
    from livr_viz.ui.__main__ import main

    main()

"""The Probes tab: a concept's probes (bundled, cached or trained now) and the best probe's reading of the input."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from livr_viz import service as S
from livr_viz.ui.common import Page, user_errors
from livr_viz.ui.queues import LONG_EVENTS


@user_errors
def on_probes(model, concept, image, prompt, stage, retrain, views, progress=gr.Progress()):
    v = S.probe_view(model, concept, image, prompt, stage, retrain, progress=progress)
    views = S.record_view(
        views,
        "probes",
        dict(model=model, concept=concept, prompt=prompt, stage=stage),
        {"per_layer_accuracy": v["figure"]},
        {"summary": v["markdown"], "per_layer": v["table"], "reading": v["reading"]},
    )
    return v["markdown"], v["figure"], v["table"], v["reading"], views


def build(page: Page) -> SimpleNamespace:
    with gr.Row():
        concept = gr.Dropdown(
            S.builtin_specs(), label="concept", value=S.default_concept(page.default_model, page.examples[0])
        )
        retrain = gr.Checkbox(
            False,
            label="train again (otherwise load the bundled or cached probes; training shows its estimated time first)",
        )
    probe_btn = gr.Button("load / train probes", elem_id="probes")
    probe_cancel = gr.Button("cancel")
    probe_md = gr.Markdown(elem_id="probe-summary")
    probe_plot = gr.Plot(label="per-layer accuracy")
    probe_table = gr.Dataframe(label="per layer")
    probe_reading = gr.Label(label="the best probe's reading of this image")

    for control in (page.model, page.image):  # the probe concept follows the loaded sample's task (else the model's)
        control.change(user_errors(S.default_concept), [page.model, page.image], [concept], api_name=False)
    probe_event = probe_btn.click(
        on_probes,
        [page.model, concept, page.image, page.prompt, page.stage, retrain, page.views],
        [probe_md, probe_plot, probe_table, probe_reading, page.views],
        api_name="probes",
        **LONG_EVENTS,
    )
    probe_cancel.click(None, None, None, cancels=[probe_event], api_name=False)
    page.results += [probe_md, probe_plot, probe_table, probe_reading]
    return SimpleNamespace(concept=concept)

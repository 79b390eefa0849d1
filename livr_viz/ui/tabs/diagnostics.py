"""The Diagnostics tab: is the model really using its latents? (the paper's table, attention flow, effects,
deletion curves, redundancy), and the Mediation section."""

from __future__ import annotations

import gradio as gr

from livr_viz import service as S
from livr_viz.ui.common import Page, user_errors
from livr_viz.ui.mediation import mediation_section
from livr_viz.ui.queues import LONG_EVENTS

DIAGNOSTICS_INTRO = (
    "Is the model really using its latents? The paper's table (standard, bottleneck "
    "mask at test time, latents blinded, latents removed) with 95 % intervals, "
    "where attention flows per layer, each latent's causal effect against its "
    "attention, how faithful each explanation is under deletion, and how redundant "
    "the latents' maps are. `livr-viz diagnose` runs the same at any size."
)


@user_errors
def on_diagnose(models, tasks, n, views, progress=gr.Progress()):
    v = S.diagnostics_view(models, tasks, n, progress=progress)
    views = S.record_view(
        views,
        "diagnostics",
        dict(models=models, tasks=tasks, n=n),
        {
            "flow": v["flow"],
            "effects": v["effects"],
            "deletion": v["deletion"],
            **({"redundancy": v["redundancy"]} if v["redundancy"] is not None else {}),
        },
        {"table": v["table"], "report": v["report"]},
    )
    return v["markdown"], v["table"], v["flow"], v["effects"], v["deletion"], v["redundancy"], views


def build(page: Page) -> None:
    default_model = page.default_model
    gr.Markdown(DIAGNOSTICS_INTRO)
    with gr.Row():
        diag_models = gr.CheckboxGroup(
            S.model_choices(default_model),
            label="models",
            value=list(S.compare_set(default_model)) if default_model in S.DEMO_MODELS else [default_model],
        )
        diag_tasks = gr.Dropdown(["all", *S.task_names()], value="all", label="tasks")
        diag_n = gr.Slider(*S.DIAGNOSTIC_SAMPLES, value=5, step=1, label="questions per task")
    diag_btn = gr.Button("diagnose", elem_id="diagnose")
    diag_md = gr.Markdown()
    diag_table = gr.Dataframe(label="per model")
    diag_flow = gr.Plot(label="attention flow per layer")
    diag_effects = gr.Plot(label="per-latent effect vs attention")
    diag_deletion = gr.Plot(label="deletion / insertion AUC per explanation")
    diag_redundancy = gr.Plot(label="redundancy of the latents' maps")
    mediation_section(default_model, LONG_EVENTS, user_errors)
    diag_btn.click(
        on_diagnose,
        [diag_models, diag_tasks, diag_n, page.views],
        [diag_md, diag_table, diag_flow, diag_effects, diag_deletion, diag_redundancy, page.views],
        api_name="diagnose",
        **LONG_EVENTS,
    )

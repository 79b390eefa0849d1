"""The app's mediation pieces (issue 43), built by :func:`livr_viz.ui.app.build_app` with one call each:

* :func:`mediation_section` — in the Diagnostics tab: choose models, task and N; three panels (input → latents,
  latents → answer, collapse), each a figure with its numbers and its own export (PNG + CSV) event;
* :func:`swap_section` — in the Latent attention tab: one click runs this question with another sample's latents
  and shows the answer before and after.

Like the rest of ``livr_viz.ui`` it reaches the engine only through :mod:`livr_viz.service`.
"""

from __future__ import annotations

import gradio as gr

from livr_viz import service as S

PANELS = (
    (
        "sensitivity",
        "input → latents: how far the latents move when the image changes, beside the image tokens and the answer row",
    ),
    ("interchange", "latents → answer: does the answer follow another question's latents?"),
    ("collapse", "collapse: how alike the latents of different inputs are, beside the image tokens"),
)
INTRO = (
    "**Mediation: is X → Z → Y real?** As in *Imagination Helps Visual Reasoning, But Not Yet in Latent Space* "
    "(arXiv 2602.22766): perturb the image and see whether the latents move; run a question with another "
    "question's latents and see whether the answer follows them; compare the latents of different inputs. "
    "Intervals are 95 % bootstrap intervals over questions. `livr-viz mediate` runs the same at any size."
)


def mediation_section(default_model: str, model_events: dict, user_errors) -> None:
    """Lay out the Mediation section inside the current tab and wire its events (``model_events``: the app's shared
    concurrency settings; ``user_errors``: its error wrapper)."""
    gr.Markdown(INTRO, elem_id="mediation-intro")
    with gr.Row():
        default = (
            [m for m in S.compare_set(default_model) if S.model_has_latents(m)]
            if default_model in S.DEMO_MODELS
            else [default_model]
        )
        models = gr.CheckboxGroup(S.model_choices(default_model), value=default, label="models (with latents)")
        task = gr.Dropdown(["all", *S.task_names()], value=S.LEAD_TASK, label="task")
        n = gr.Slider(*S.MEDIATION_SAMPLES, value=8, step=1, label="questions per task")
    run = gr.Button("measure the mediation", elem_id="mediation-run")
    verdict = gr.Markdown(elem_id="mediation-verdict")
    last = gr.State({})
    outputs, downloads = [], []
    for key, label in PANELS:
        with gr.Accordion(label, open=True):
            plot = gr.Plot(label=label, elem_id=f"mediation-{key}")
            table = gr.Dataframe(label="numbers (last layer where per layer)", elem_id=f"mediation-{key}-table")
            button = gr.Button("export this panel (PNG + CSV)", elem_id=f"mediation-{key}-export", size="sm")
            files = gr.File(label="export", file_count="multiple", elem_id=f"mediation-{key}-files")
        outputs += [plot, table]
        downloads.append((key, button, files))
    report_file = gr.File(label="whole report (JSON + HTML)", file_count="multiple", elem_id="mediation-report")

    @user_errors
    def on_run(names, task_name, count, progress=gr.Progress()):
        v = S.mediation_view(names, task_name, count, progress=progress)
        panels = [x for key, _ in PANELS for x in (v["figures"][key], v["tables"][key])]
        return [v["markdown"], *panels, [v["files"]["json"], v["files"]["html"]], v["files"]]

    run.click(on_run, [models, task, n], [verdict, *outputs, report_file, last], api_name="mediation", **model_events)
    for key, button, files in downloads:
        button.click(
            user_errors(lambda state, key=key: _panel_files(state, key)),
            [last],
            [files],
            api_name=f"mediation_{key}_export",
        )


def _panel_files(state: dict, key: str) -> list[str]:
    if not state:
        raise S.LIVRError("measure the mediation first")
    return [state[key], state[f"{key}_csv"]]


def swap_section(model, image, prompt, stage, model_events: dict, user_errors) -> None:
    """An accordion in the Latent attention tab: swap this question's latents with another sample's."""
    with gr.Accordion("swap these latents with another sample's: does the answer follow them?", open=False):
        button = gr.Button("swap the latents", elem_id="swap-latents")
        note = gr.Markdown(elem_id="swap-note")
        with gr.Row():
            table = gr.Dataframe(label="option probabilities before / after", elem_id="swap-table")
            source = gr.Image(
                label="the sample whose latents were used", interactive=False, height=180, elem_id="swap-source"
            )

    @user_errors
    def on_swap(model_name, image_path, text, stage_name):
        v = S.swap_latents_view(model_name, image_path, text, stage_name)
        return v["markdown"], v["table"], v["source_image"]

    button.click(on_swap, [model, image, prompt, stage], [note, table, source], api_name="swap_latents", **model_events)

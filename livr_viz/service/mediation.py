"""Causal mediation X → Z → Y (issue 43): the models' mediation report, the Diagnostics tab's Mediation section
and the one-click latent swap."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from livr_viz.core.errors import LIVRError
from livr_viz.data import make_sample, resolve_tasks, task_names
from livr_viz.data.dataset import SyntheticTaskDataset
from livr_viz.service.common import escape_markdown, scratch_dir, without_paths
from livr_viz.service.diagnostics import named_models
from livr_viz.service.models import POOL, display_name
from livr_viz.service.samples import LEAD_TASK, load_upload, suite_questions, synthetic_sample_for

MEDIATION_SAMPLES = (2, 100)  # questions per task in the app (the CLI takes any N)
MEDIATION_CONTROL_SEED_OFFSET = 1  # control questions (latents of an unrelated task) come from seed + this


def mediate_models(
    names, tasks="all", n=50, seed=2026, *, out=None, progress=None, batch_size=64, condition="standard", latents=None
):
    """Causal mediation X → Z → Y (:func:`~livr_viz.methods.mediation.mediate`) for each named model on the same
    ``n`` test questions per task; the ``control`` patch takes latents of one test question per suite task (another
    seed); the options after ``seed`` are named. ``out``: a directory for ``mediation.json``, ``parts/`` (resumable)
    and ``mediation.html``. Models without latents get an n/a entry; when no named model has latents the call fails
    with a clear message."""
    from livr_viz.methods.mediation import mediate
    from livr_viz.views.mediation import mediation_html

    names = named_models(names, "measure")
    resolve_tasks(tasks)  # a bad task list is the first error
    if int(n) < 2:
        raise LIVRError(f"n (test questions per task) must be at least 2 (a question needs a partner); got {n}")
    models = {name: POOL.get(name) for name in names}
    if not any(lm.config.n_latents for lm in models.values()):
        raise LIVRError(
            f"{', '.join(names)} {'has' if len(names) == 1 else 'have'} no latents (variant sft): there "
            "is no X → Z → Y to mediate; choose demo-livr or demo-latents-only"
        )
    items = suite_questions(models, tasks, n, seed)
    fmt = items.answer_format
    controls = SyntheticTaskDataset(
        task_names(), "test", 1, int(seed) + MEDIATION_CONTROL_SEED_OFFSET, answer_format=fmt
    )
    report = mediate(
        models,
        [items[i] for i in range(len(items))],
        [controls[i] for i in range(len(controls))],
        progress,
        out=out,
        batch_size=int(batch_size),
        condition=condition,
        latents=latents,
    )
    if out is not None:
        Path(out, "mediation.html").write_text(mediation_html(report))
    return report


def mediation_view(names, task="all", n=10, seed: int = 2026, progress=None) -> dict:
    """The Diagnostics tab's Mediation section: :func:`mediate_models`, then per panel a figure and its numbers
    (input → latents, latents → answer, collapse), the verdicts and an export folder (JSON, HTML, PNGs, CSVs)."""
    from livr_viz.views.mediation import (
        collapse_figure,
        collapse_table,
        interchange_figure,
        interchange_table,
        mediation_html,
        sensitivity_figure,
        sensitivity_table,
    )

    if not MEDIATION_SAMPLES[0] <= int(n) <= MEDIATION_SAMPLES[1]:
        raise LIVRError(
            f"questions per task must be between {MEDIATION_SAMPLES[0]} and {MEDIATION_SAMPLES[1]} in the "
            "app (`livr-viz mediate` takes any number)"
        )
    tick = progress or (lambda fraction, desc=None: None)
    out = scratch_dir() / f"mediation-{int(time.time() * 1000)}"
    report = mediate_models(
        names, task or "all", int(n), seed, out=out, progress=lambda f, m="": tick(0.95 * f, desc=m)
    )
    # what the app hands the user names no server path: models by their display names, paths shortened
    report.models = {display_name(k): without_paths(v) for k, v in report.models.items()}
    report.save(out / "mediation.json")
    (out / "mediation.html").write_text(mediation_html(report))
    md = "\n".join(
        f"- **{escape_markdown(display_name(name))}**: "
        + (
            "; ".join(escape_markdown(v) for v in report.result(name)["verdict"])
            if report.result(name)["status"] == "done"
            else "n/a — " + escape_markdown(report.result(name)["reason"])
        )
        for name in report.models
    )
    figures = {
        "sensitivity": sensitivity_figure(report),
        "interchange": interchange_figure(report),
        "collapse": collapse_figure(report),
    }
    tables = {
        "sensitivity": sensitivity_table(report),
        "interchange": interchange_table(report),
        "collapse": collapse_table(report),
    }
    for key, fig in figures.items():
        fig.savefig(out / f"{key}.png", dpi=100)
        tables[key].to_csv(out / f"{key}.csv", index=False)
    tick(1.0, desc="done")
    return {
        "markdown": md,
        "figures": figures,
        "tables": tables,
        "report": report.to_dict(),
        "files": {key: str(out / f"{key}.png") for key in figures}
        | {f"{key}_csv": str(out / f"{key}.csv") for key in tables}
        | {"json": str(out / "mediation.json"), "html": str(out / "mediation.html")},
    }


def swap_latents_view(model, image, prompt, stage="full", seed: int = 777) -> dict:
    """The Latent attention tab's one-click swap: this question run with the latents (every layer) of another
    sample's — of the same task with another correct answer when the input is a synthetic sample, else the lead
    task's first test sample — and the answer before and after."""
    from types import SimpleNamespace

    from livr_viz.methods.analysis import parse_choices
    from livr_viz.methods.mediation import interchange

    lm = POOL.get(model)
    if not lm.config.n_latents:
        raise LIVRError(f"{model} has no latents (variant sft): there are no latents to swap")
    if not image:
        raise LIVRError("choose an image first")
    options = parse_choices(prompt or "")
    if not options:
        raise LIVRError(
            "the swap compares the answer's options: ask a question with options (e.g. 'Options: red, blue.')"
        )
    fmt = lm.config.answer_format
    own = synthetic_sample_for(image, prompt)
    task = own.task if own is not None else LEAD_TASK
    candidates = (make_sample(task, "test", seed, i, answer_format=fmt) for i in range(1, 50))
    source = next(s for s in candidates if own is None or s.answer != own.answer)
    target = SimpleNamespace(
        id="input", task=task, image=load_upload(image), prompt=prompt, options=options, answer="A"
    )
    out = interchange(
        lm, [target], [source], "latents", condition="bottleneck" if stage == "bottleneck" else "standard"
    )
    before, after = out["before"][0], out["after"][0]
    source_answer = source.options[int(out["source_before"][0].argmax())]
    frame = pd.DataFrame(
        {
            "option": options,
            "before %": [round(100 * float(p), 1) for p in before],
            "after %": [round(100 * float(p), 1) for p in after],
        }
    )
    answer_before, answer_after = options[int(before.argmax())], options[int(after.argmax())]
    md = (
        f"**Answer before: {escape_markdown(answer_before)} → after the swap: {escape_markdown(answer_after)}** "
        f"({'changed' if answer_before != answer_after else 'unchanged'}). The latents (all {lm.config.n_latents}, "
        f"every layer) came from `{source.id}` (task {task}), which the model answers "
        f"**{escape_markdown(source_answer)}** (correct: {escape_markdown(source.target)})."
    )
    return {
        "markdown": md,
        "table": frame,
        "source_image": source.image,
        "source_id": source.id,
        "before": answer_before,
        "after": answer_after,
    }

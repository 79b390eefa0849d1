""" "Is the model really using its latents?": the diagnosis of named models (CLI and the Diagnostics tab),
the faithfulness of each explanation, and the dataset view of the Attention tab."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from livr_viz.core.errors import LIVRError
from livr_viz.data import make_sample, resolve_tasks
from livr_viz.data.dataset import SyntheticTaskDataset
from livr_viz.methods.analysis import run_analysis
from livr_viz.methods.faithfulness import evidence_scores, heatmaps_for
from livr_viz.service.analysis import pointing_chance
from livr_viz.service.common import escape_markdown, jsonable, progress_callback, without_paths
from livr_viz.service.models import POOL, display_name, model_allowed
from livr_viz.service.samples import suite_items, suite_questions
from livr_viz.views.heatmaps import (
    attention_tile,
)


def stage1_checkpoint(name: str) -> Path | None:
    """The Stage-1 checkpoint saved beside a LIVR model (``tools/reproduce.py`` writes ``<run>/livr/stage1_model`` next
    to ``<run>/livr/model``), or inside it; None when there is none."""
    from livr_viz.core.refs import resolve_reference

    path = Path(resolve_reference(name)).expanduser()
    for candidate in (path.parent / "stage1_model", path / "stage1_model"):
        if (candidate / "livr_config.json").is_file() and candidate.resolve() != path.resolve():
            return candidate
    return None


def named_models(names, verb: str, label=str) -> list[str]:
    """The model names a diagnosis or mediation call was given (one string or a list), stripped; none, an empty one or
    one named twice is a :class:`LIVRError` (``verb``: what the call does to them, ``label``: how a name is shown)."""
    names = [names] if isinstance(names, str) else [str(v).strip() for v in names or []]
    if not names or not all(names):
        raise LIVRError(f"name at least one model to {verb}")
    if len(set(names)) != len(names):
        raise LIVRError(f"a model is named twice: {', '.join(map(label, names))}")
    return names


def diagnose_models(
    names,
    tasks="all",
    n: int = 50,
    seed: int = 2026,
    out_json=None,
    out_html=None,
    progress=None,
    batch_size: int = 32,
    check_backends: bool = False,
    effect_per_task: int | None = 10,
    short_names: bool = False,
):
    """ "Is the model really using its latents?" for each named model on the same ``n`` test questions per task
    (:func:`~livr_viz.methods.diagnostics.diagnose`; ``effect_per_task`` of them per task for the per-latent
    effects, None = all); resumes from ``out_json`` when it exists, writes the HTML page to ``out_html``. A LIVR
    model's Stage-1 checkpoint (:func:`stage1_checkpoint`) is diagnosed with it. ``short_names``: the report names
    each model as :func:`display_name` does (the app: no server path). Returns the ``DiagnosticReport``."""
    from livr_viz.methods.diagnostics import diagnose
    from livr_viz.views.diagnostics import diagnostics_html

    names = named_models(names, "diagnose", display_name)
    resolve_tasks(tasks)  # a bad task list is the first error
    if int(n) < 1:
        raise LIVRError(f"n (test questions per task) must be at least 1; got {n}")
    if int(batch_size) < 1:
        raise LIVRError(f"batch size must be at least 1; got {batch_size}")
    label = display_name if short_names else (lambda name: name)
    if len({label(name) for name in names}) != len(names):
        raise LIVRError(f"two models share a name: {', '.join(map(label, names))}")
    models = {label(name): POOL.get(name) for name in names}
    items = suite_questions(models, tasks, n, seed)
    stage1 = {
        label(name): POOL.get(str(path))
        for name in names
        if models[label(name)].config.variant == "livr"
        and (path := stage1_checkpoint(name)) is not None
        and model_allowed(str(path))
    }
    report = diagnose(
        models,
        items,
        stage1,
        progress,
        out=out_json,
        batch_size=int(batch_size),
        effect_per_task=effect_per_task,
        backends=check_backends,
    )
    if out_html:
        Path(out_html).parent.mkdir(parents=True, exist_ok=True)
        Path(out_html).write_text(diagnostics_html(report))
    return report


DIAGNOSTIC_SAMPLES = (2, 100)  # per task, in the app (the CLI takes any N)


DELETION_ITEMS = 3  # questions per model for the deletion / insertion curves in the app


DELETION_METHODS = ("latent_mean", "answer", "saliency", "random")  # IG costs ~20x more forwards: CLI only


def diagnostics_view(names, tasks="all", n=10, seed: int = 2026, progress=None) -> dict:
    """The Diagnostics tab: :func:`diagnose_models` on the chosen models, then the table (one row per model:
    the verdict, accuracy under each condition of the paper's table, answer → latent attention), the flow per
    layer, the per-latent effect-vs-attention scatter, deletion / insertion AUCs of each explanation on a few
    questions, and the redundancy of the first latent model's maps."""
    from livr_viz.views.deletion import deletion_summary_figure, summary_markdown
    from livr_viz.views.diagnostics import effect_attention_figure, flow_figure

    names = [names] if isinstance(names, str) else list(names or [])
    if not DIAGNOSTIC_SAMPLES[0] <= int(n) <= DIAGNOSTIC_SAMPLES[1]:
        raise LIVRError(
            f"questions per task must be between {DIAGNOSTIC_SAMPLES[0]} and {DIAGNOSTIC_SAMPLES[1]} "
            "in the app (`livr-viz diagnose` takes any number)"
        )
    tick = progress_callback(progress)
    report = diagnose_models(
        names,
        tasks,
        int(n),
        seed,
        progress=lambda f, m="": tick(0.8 * f, desc=m),
        effect_per_task=min(int(n), 10),
        short_names=True,
    )
    rows = []
    for name in map(display_name, names):
        table = report.section(name, "table")
        row = {"model": name, "uses its latents": table.get("verdict", {}).get("answer", "n/a")}
        for condition, value in table.get("conditions", {}).items():
            row[f"{condition} %"] = round(100 * value["average"]["mean"], 1)
        attention = table.get("answer_latent_attention")
        row["answer → latents"] = round(attention["average"]["mean"], 3) if attention else None
        rows.append(row)
    explanations = explanation_diagnostics(
        names, tasks, DELETION_ITEMS, seed, progress=lambda f, m="": tick(0.8 + 0.2 * f, desc=m)
    )
    redundancy, note = explanations["redundancy_figure"], explanations["redundancy_note"]
    summaries, picked = explanations["summaries"], explanations["items"]
    tick(1.0, desc="done")
    md = (
        "```\n" + "\n".join(report.summary_lines()) + "\n```\n\n" + f"Redundancy: {note}.\n\n"
        f"Deletion / insertion on {len(picked)} questions (occluded with the suite's mean colour; lower deletion "
        f"AUC / higher insertion AUC = more faithful):\n\n" + summary_markdown(summaries)
    )
    return {
        "markdown": md,
        "table": pd.DataFrame(rows),
        "flow": flow_figure(report),
        "effects": effect_attention_figure(report),
        "deletion": deletion_summary_figure(summaries),
        "redundancy": redundancy,
        "report": without_paths(report.to_dict()),
    }


def explanation_diagnostics(names, tasks="all", n_items: int = DELETION_ITEMS, seed: int = 2026, progress=None) -> dict:
    """How faithful each explanation is and how redundant the latents are, for ``diagnose`` and the Diagnostics
    tab: deletion / insertion AUCs of the latents' maps, the answer row's map, Saliency and a random order on
    ``n_items`` questions per model (IG costs ~20x more: ``methods.deletion.deletion_report`` has it), and the
    redundancy of the first latent model's maps on the first question. ``to_json`` is the JSON-able part,
    ``markdown`` the AUC table."""
    from livr_viz.methods.deletion import deletion_report
    from livr_viz.methods.geometry import latent_redundancy
    from livr_viz.views.deletion import summary_markdown
    from livr_viz.views.geometry import redundancy_figure

    names = [names] if isinstance(names, str) else list(names)
    if int(n_items) < 1:
        raise LIVRError(f"explanation questions must be at least 1; got {n_items}")
    tick = progress or (lambda fraction, message="": None)
    task_list = resolve_tasks(tasks)
    items = SyntheticTaskDataset(
        task_list,
        "test",
        -(-int(n_items) // len(task_list)),
        seed + 1,
        answer_format=POOL.get(names[0]).config.answer_format,
    )
    picked = [items[i] for i in range(min(int(n_items), len(items)))]
    summaries = []
    for k, name in enumerate(names):
        tick(k / (len(names) + 1), f"deletion curves: {display_name(name)}")
        summaries.append(
            deletion_report(
                POOL.get(name), picked, methods=DELETION_METHODS, n_steps=8, model=display_name(name)
            ).summary
        )
    latent_models = [name for name in names if POOL.get(name).config.n_latents]
    figure, note, numbers = None, "no model with latents: no redundancy matrix", None
    if latent_models:
        a = run_analysis(POOL.get(latent_models[0]), picked[0].image, picked[0].prompt)
        result = latent_redundancy(a.latent_maps(None, None, "mean", "none"))
        figure = redundancy_figure(result)
        note = (
            f"{display_name(latent_models[0])} on `{picked[0].id}`: effective number of distinct latents "
            f"{result.effective_number:.1f} of {len(result.iou)}, mean pairwise IoU {result.mean_pairwise_iou:.2f}"
        )
        numbers = {
            "model": latent_models[0],
            "item": picked[0].id,
            "effective_number": result.effective_number,
            "mean_pairwise_iou": result.mean_pairwise_iou,
            "clusters": result.clusters,
        }
    tick(1.0, "explanations done")
    return {
        "items": picked,
        "summaries": summaries,
        "markdown": summary_markdown(summaries),
        "redundancy_figure": figure,
        "redundancy_note": note,
        "to_json": jsonable(
            {
                "items": [it.id for it in picked],
                "methods": list(DELETION_METHODS),
                "deletion": [asdict(s) for s in summaries],
                "redundancy": numbers,
            }
        ),
    }


DATASET_VIEW_SAMPLES = (2, 64)


def dataset_view(model, task, n, stage="full", aggregation="mean", seed: int = 0) -> dict:
    """The Attention tab's dataset view: one example can mislead, so each latent's map averaged over ``n`` fresh
    samples of ``task`` (drawn over the mean evidence of those samples, its ≥ 50 % region outlined), and per
    latent its mean attention mass inside the evidence, lift (mass / evidence area; 1.0 = no better than
    uniform) and pointing-game hit rate."""
    n = int(n)
    if not DATASET_VIEW_SAMPLES[0] <= n <= DATASET_VIEW_SAMPLES[1]:
        raise LIVRError(f"samples must be between {DATASET_VIEW_SAMPLES[0]} and {DATASET_VIEW_SAMPLES[1]}")
    resolve_tasks([task])
    lm = POOL.get(model)
    items = [make_sample(task, "test", seed, i, answer_format=lm.config.answer_format) for i in range(n)]
    maps = heatmaps_for(lm, items, stage, aggregation)
    scores = [evidence_scores(m, it.evidence, raw) for it, (m, raw) in zip(items, maps)]
    k = len(maps[0][0])
    mean_raw = np.mean([raw for _, raw in maps], axis=0)  # [K, rows, cols]
    density = np.mean([it.evidence for it in items], axis=0)  # [H, W]: how often each pixel is evidence
    background = Image.fromarray((255 - 120 * density).astype(np.uint8)).convert("RGB")
    label = "latent" if lm.config.n_latents else "answer row"

    def mean_of(key: str, i: int, digits: int) -> float:
        return round(float(np.mean([s[key][i] for s in scores])), digits)

    area = round(float(np.mean([s["evidence_area_fraction"] for s in scores])), 3)
    chance = round(float(np.mean([pointing_chance(it.evidence, maps[0][0].shape[1:]) for it in items])), 2)
    rows = [
        {
            label: f"{i:02d}",
            "mass in evidence": mean_of("mass_in_evidence", i, 3),
            "evidence area (chance)": area,
            "lift": mean_of("lift", i, 2),
            "pointing game": mean_of("pointing_hit", i, 2),
            "pointing chance": chance,
        }
        for i in range(k)
    ]
    top = float(mean_raw.max()) or 1.0
    tiles = [
        (
            attention_tile(background, mean_raw[i] / top, top, "global", None, density >= 0.5),
            f"{label} {i} · in evidence {100 * rows[i]['mass in evidence']:.0f}% of {100 * area:.0f}% area · "
            f"lift {rows[i]['lift']:.2f}",
        )
        for i in range(k)
    ]
    lift = float(np.mean([r["lift"] for r in rows]))
    md = (
        f"**{n} fresh `{task}` samples** (test split, seed {seed}), {escape_markdown(display_name(model))}, "
        f"stage `{stage}`: mean lift **{lift:.2f}** (1.0 = attention no more on the evidence than its area), mass "
        f"in evidence {np.mean([r['mass in evidence'] for r in rows]):.3f} over an evidence area of "
        f"{area:.3f} (its chance level); pointing game chance {chance:.2f}. Tiles: mean maps on one shared scale, "
        "over how often each pixel is evidence (darker = more often; outline: evidence in ≥ half the samples)."
    )
    return {"markdown": md, "tiles": tiles, "table": pd.DataFrame(rows)}


def faithfulness_command(
    lm, tasks="all", n: int = 30, seed: int = 2026, stage: str = "full", sanity_n: int = 20
) -> dict:
    """``livr-viz faithfulness``: attention mass in the evidence, lift and pointing game over ``n`` test questions per
    task, and the randomisation sanity check on the first ``sanity_n``."""
    from livr_viz.methods.faithfulness import faithfulness_report, randomization_sanity

    items = suite_items(lm, tasks, n, seed)
    report = faithfulness_report(lm, items, stage)
    report["sanity"] = randomization_sanity(lm, [items[i] for i in range(min(len(items), sanity_n))])
    avg = report["average"]
    line = (
        f"mass in evidence {avg['mass_in_evidence']:.3f}, lift {avg['lift']:.2f}, pointing game "
        f"{avg['pointing_game']:.3f}; randomisation rank correlation {report['sanity']['spearman_mean']:.3f}"
    )
    return {"text": [line], "json": report}

"""The Probes tab: a concept's probes for a model (bundled, cached or trained now), their baselines and the
reading of this input."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

from livr_viz.core.capture import LatentAttention
from livr_viz.core.errors import LIVRError
from livr_viz.data import resolve_tasks
from livr_viz.data.dataset import SyntheticTaskDataset
from livr_viz.demo.bundled import DEMO_NAMES
from livr_viz.methods.probes import (
    PROBES_DIR,
    ConceptSpec,
    ProbeReport,
    builtin_specs,
    probe_baselines,
    probe_margin,
    read_with_probe,
    run_probes,
    weak_baselines,
)
from livr_viz.service.common import escape_markdown, progress_callback, scratch_dir
from livr_viz.service.models import POOL, answer_format_of, check_model, display_name, model_cache_key
from livr_viz.service.samples import load_upload, synthetic_sample_for
from livr_viz.views.probes import probe_curves_figure, save_probe_curves


def default_concept(model_name: str, image: str | None = None) -> str:
    """The probe concept the Probes tab opens on: one that belongs to the loaded sample's task (``image`` a synthetic
    sample: :func:`synthetic_sample_for`), else the first that belongs to a task the model was fine-tuned on
    (``count`` otherwise)."""
    sample = synthetic_sample_for(image) if image else None
    if sample is not None:
        for name in builtin_specs():
            spec = ConceptSpec.load(name)
            if sample.task in (spec.tasks or ()) and concept_value(spec, sample) is not None:
                return name
    trained = POOL.get(model_name).config.training.get("tasks", "all")
    try:
        tasks = set(resolve_tasks(trained))
    except LIVRError:  # e.g. a perception-pretrained backbone
        tasks = set()
    for name in builtin_specs():
        if set(ConceptSpec.load(name).tasks or ()) & tasks:
            return name
    return "count"


def concept_value(spec: ConceptSpec, sample) -> str | None:
    """The sample's own value of the concept (None: the concept does not apply to it, e.g. a CSV concept or a key
    its task does not carry)."""
    if sample is None or not spec.source.startswith("concept:"):
        return None
    value = sample.concepts.get(spec.source.split(":", 1)[1])
    return None if value is None or value == "" else str(value)


def probe_baseline_line(report: ProbeReport) -> str:
    """The best probe's accuracy beside every baseline (:func:`~livr_viz.methods.probes.probe_baselines`), Markdown."""
    best = report.layers[report.best_layer]
    parts = [f"{name} {value:.3f}" for name, value in probe_baselines(report).items()]
    return f"latents **{best['latent_pooled']['accuracy']:.3f}** (margin {probe_margin(best):.3f}) vs " + " · ".join(
        parts
    )


def probe_caveat(report: ProbeReport) -> str:
    """A warning (Markdown) when the latents' best probe does not beat the best of its baselines (majority class,
    control task, image tokens, text tokens, random-weight model) by the documented margin
    (:func:`~livr_viz.methods.probes.probe_margin`: 2 points or one standard error, whichever is larger): its
    reading then says nothing about what the latents themselves encode."""
    weak = weak_baselines(report)
    if not weak:
        return ""
    best = report.layers[report.best_layer]
    failed = " or ".join(f"the {name} ({value:.3f})" for name, value in weak.items())
    return (
        f"\n\n> ⚠ The latents' probe ({best['latent_pooled']['accuracy']:.3f}) does not beat {failed} by more than "
        f"{probe_margin(best):.3f}: its reading says nothing about what the latents themselves encode."
    )


PROBE_TRAIN_SAMPLES = 120  # per task, when the app trains a probe that is not bundled


PROBE_TIMING_ITEMS = 8


PROBE_COST_FACTOR = 5.0


def probe_training_estimate(lm, items, stage: str = "full") -> float:
    """Seconds to train a concept's probes on ``items``, from one timed forward of a few of them, scaled by
    ``PROBE_COST_FACTOR``: the hidden states are collected twice (the model and the random-weight baseline) and the
    cross-validated fits of the concept, its control task and the baselines at every layer cost about as much
    again (measured on demo-latents-only: 41 s for a forward-time extrapolation of 7.7 s)."""
    few = [items[i] for i in range(min(PROBE_TIMING_ITEMS, len(items)))]
    start = time.perf_counter()
    LatentAttention(lm, rows="latent" if lm.config.n_latents else "answer").run(
        lm.build_inputs([it.image for it in few], [it.prompt for it in few]), stage
    )
    return PROBE_COST_FACTOR * (time.perf_counter() - start) * len(items) / len(few)


def probe_view(model, concept, image, prompt, stage, retrain, progress=None) -> dict:
    """The Probes tab: the concept's probes for this model (bundled, else trained now and cached), the accuracy per
    layer beside every baseline (majority, control task, image tokens, text tokens, random-weight model), a warning
    when the latents do not beat the best of them (:func:`probe_caveat`), and the best layer's reading of this
    image — only when the image is a synthetic sample that carries the concept (otherwise the Markdown says why).
    ``progress``: the service's one progress callback, ``progress(fraction, desc=None)``."""
    spec = ConceptSpec.load(concept)
    tick = progress_callback(progress)
    check_model(model)  # before any file is looked for under its name
    bundled = PROBES_DIR / model if model in DEMO_NAMES else None  # probes ship for bundled names only
    cache = scratch_dir() / "probes" / model_cache_key(model)
    found = [
        d / f"{spec.name}_report.json"
        for d in (bundled, cache)
        if d is not None and (d / f"{spec.name}_report.json").is_file()
    ]
    report_path = max(found, key=lambda p: p.stat().st_mtime) if found else None  # the newest: bundled or retrained
    if retrain or report_path is None:
        if not POOL.get(model).config.n_latents:
            raise LIVRError(f"{display_name(model)} has no latents to probe (variant sft); pick a model with latents")
        items = SyntheticTaskDataset(
            spec.tasks or "all", "train", PROBE_TRAIN_SAMPLES, 0, answer_format=answer_format_of(model)
        )
        estimate = probe_training_estimate(POOL.get(model), items, stage)
        tick(0.0, desc=f"training probes on {len(items)} samples: about {estimate:.0f} s")
        start = time.perf_counter()
        report = run_probes(
            POOL.get(model),
            spec,
            items,
            cache,
            stage=stage,
            per_latent=True,
            progress=lambda fraction: tick(fraction, desc="collecting hidden states"),
        )
        save_probe_curves(report, cache)
        source = (
            f"trained now on {report.n} samples in {time.perf_counter() - start:.0f} s (estimated {estimate:.0f} s)"
        )
        folder = cache
    else:
        report = ProbeReport(**json.loads(report_path.read_text()))
        folder = report_path.parent
        source = (
            "bundled with livr-viz" if folder == bundled else "trained earlier on this server (cached)"
        ) + f", {report.n} samples"
    best = report.layers[report.best_layer]
    table = pd.DataFrame(
        [
            {
                "layer": r["layer"],
                "latents": round(r["latent_pooled"]["accuracy"], 3),
                "control": round(r["control"]["accuracy"], 3),
                "selectivity": round(r["selectivity"], 3),
                "image tokens": round(r["image_pooled"]["accuracy"], 3),
                "text tokens": round(r["text_pooled"]["accuracy"], 3),
                "random model": round(r.get("random_model", {}).get("accuracy", float("nan")), 3),
                "majority": round(report.majority, 3),
            }
            for r in report.layers
        ]
    )
    md = (
        f"**{spec.name}** — {escape_markdown(spec.description)}. Probes {source}. Best layer {report.best_layer}: "
        f"{probe_baseline_line(report)} (selectivity {best['selectivity']:+.3f})."
    )
    md += probe_caveat(report)
    reading = {}
    if image and prompt:
        sample = synthetic_sample_for(image)
        truth = concept_value(spec, sample)
        if truth is None:
            md += "\n\n" + _probe_not_read(spec, sample)
        else:
            reading = read_with_probe(
                POOL.get(model),
                Path(folder) / f"{spec.name}_layer{report.best_layer}",
                load_upload(image),
                prompt,
                stage,
            )
            md += (
                f"\n\nThis sample's true {spec.name}: **{escape_markdown(truth)}** (the probe's reading is in the "
                "panel beside this text)."
            )
    return {"markdown": md, "figure": probe_curves_figure(report), "table": table, "reading": reading}


def _probe_not_read(spec: ConceptSpec, sample) -> str:
    """Why a probe's reading of this image is not shown: the concept does not apply to it (a confident-looking
    class from a probe that was never trained on such an input would mislead)."""
    tasks = ", ".join(f"`{t}`" for t in spec.tasks) or "its data's"
    if sample is None:
        return (
            f"Not read out: this image is not one of the synthetic samples (a photo or an upload), and "
            f"**{spec.name}** is defined only on the {tasks} samples, so the probe's class would be a guess."
        )
    return (
        f"Not read out: this `{sample.task}` sample has no **{spec.name}** (it belongs to the {tasks} samples); "
        "pick a concept of this task or a sample of that task."
    )


def probe_command(
    lm,
    concepts: str = "all",
    data: str | None = None,
    csv: str | None = None,
    n: int = 200,
    seed: int = 0,
    no_random: bool = False,
    out: str = "",
) -> dict:
    """``livr-viz probe``: linear probes of each concept at every layer (on the user's JSONL ``data``, else on ``n``
    synthetic samples per task of the concept), curves and ``summary.json`` under ``out``; per concept a line with
    the best layer against the baselines, and the app's warning when the latents do not beat them."""
    names = builtin_specs() if concepts == "all" else concepts.split(",")
    user_items = None
    if data:
        from livr_viz.data.dataset import RecordDataset
        from livr_viz.data.io import load_jsonl

        user_items = RecordDataset(load_jsonl(data)[0])
    summary, lines = {}, []
    for name in names:
        spec = ConceptSpec.load(name)
        items = (
            user_items
            if user_items is not None
            else SyntheticTaskDataset(spec.tasks or "all", "train", n, seed, answer_format=lm.config.answer_format)
        )
        report = run_probes(lm, spec, items, out, csv_path=csv, random_baseline=not no_random)
        save_probe_curves(report, out)
        best = report.layers[report.best_layer]
        baselines = probe_baselines(report)
        summary[spec.name] = {
            "best_layer": report.best_layer,
            "accuracy": best["latent_pooled"]["accuracy"],
            "selectivity": best["selectivity"],
            "majority": report.majority,
            "baselines": baselines,
            "margin": probe_margin(best),
            "weak_against": weak_baselines(report),
        }
        lines.append(
            f"{spec.name:<18} best layer {report.best_layer}: acc {best['latent_pooled']['accuracy']:.3f} "
            f"(selectivity {best['selectivity']:+.3f}) vs " + ", ".join(f"{k} {v:.3f}" for k, v in baselines.items())
        )
        if summary[spec.name]["weak_against"]:  # the same warning as the app's Probes tab
            lines.append(
                f"  warning: does not beat {', '.join(summary[spec.name]['weak_against'])} by more than "
                f"{probe_margin(best):.3f}: the reading says nothing about what the latents encode"
            )
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "summary.json").write_text(json.dumps(summary, indent=2))
    return {"text": [*lines, f"wrote {out}"], "summary": summary}

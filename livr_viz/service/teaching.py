"""The example picked for teaching: scanning a model's test questions for it, and the record the app opens on.

:func:`scan_teaching` asks the model every test question of each task (seed ``TEST_SEED``, the model's answer
format: the questions its numbers are reported on), measures the evidence lift of the ones it answers right with
``p >= P_MIN``, and keeps the first candidate by :data:`~livr_viz.methods.teaching.RULE` that the app's own path
(:func:`~livr_viz.methods.analysis.run_analysis`, what Run shows) confirms. :func:`write_teaching` saves it as
``teaching-<model>.json`` beside the image in the examples folder (``python -m tools.pick_example``). The record
names the model and a fingerprint of its files: :func:`teaching_records` keeps only records whose model is still the
one that was scanned, so a retrained trio never opens on a claim made about the old one.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from pathlib import Path

from livr_viz.core.config import LETTERS, TEST_SEED
from livr_viz.data import make_sample, resolve_tasks
from livr_viz.data.dataset import SyntheticTaskDataset
from livr_viz.demo.bundled import EXAMPLES_DIR, demo_path
from livr_viz.methods.faithfulness import evidence_scores, heatmaps_for
from livr_viz.methods.teaching import (
    LIFT_MIN,
    P_MIN,
    ScoredQuestion,
    ranked_candidates,
    rule_text,
    task_figures,
)
from livr_viz.service.common import escape_markdown, progress_callback
from livr_viz.service.models import display_name

TEACHING_DIR = EXAMPLES_DIR  # where the records and their images live (tests point it elsewhere)
TEACHING_PREFIX = "teaching-"
TEACHING_CHECKS = 20  # candidates confirmed on the app's path at most before the scan gives up


def model_dir(model: str) -> Path | None:
    """The folder a model name stands for (a bundled name or a local checkpoint), or None (a hub id)."""
    path = demo_path(model.strip())
    if path is None:
        path = Path(model).expanduser()
    return path if path.is_dir() else None


@functools.lru_cache(maxsize=16)
def _fingerprint(folder: str, stats: tuple) -> str:
    digest = hashlib.sha256()
    for rel, _size, _mtime in stats:
        digest.update(rel.encode() + b"\0" + (Path(folder) / rel).read_bytes())
    return digest.hexdigest()[:16]


def model_fingerprint(model: str) -> str | None:
    """A short sha256 of every file of the model's folder (names and bytes; cached while sizes and times stay), so a
    record about one checkpoint is never shown for another installed under the same name; None for a hub id."""
    folder = model_dir(model)
    if folder is None:
        return None
    files = sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    stats = tuple((str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    return _fingerprint(str(folder), stats)


def record_path(model: str, directory: Path | None = None) -> Path:
    """``teaching-<model>.json`` (a path's last folder name stands for it)."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(model.strip().rstrip("/")).name or model)
    return Path(directory or TEACHING_DIR) / f"{TEACHING_PREFIX}{name}.json"


# ---------------------------------------------------------------------------------------------------- scanning
def truth_probability(row: dict) -> float:
    """The probability :func:`~livr_viz.training.evaluate.predict` gave the right answer."""
    return float(row["probs"][LETTERS.index(row["answer"])])


def scan_task(lm, task: str, n: int, seed: int = TEST_SEED, p_min: float = P_MIN, batch_size: int = 16):
    """The task's first ``n`` test questions scored: right or wrong and p of the right answer (every question, as
    ``livr-viz eval`` scores them), the same with the latents blinded (models with latents), and the evidence lift
    of the ones answered right with ``p >= p_min`` (the only ones that can qualify)."""
    from livr_viz.training.evaluate import predict

    questions = SyntheticTaskDataset([task], "test", n, seed, answer_format=lm.config.answer_format)
    rows = predict(lm, questions, "full", batch_size)
    blind = predict(lm, questions, "full", batch_size, block_latent_image=True) if lm.config.n_latents else None
    scored = [
        ScoredQuestion(task, i, row["id"], bool(row["correct"]), truth_probability(row)) for i, row in enumerate(rows)
    ]
    if blind is not None:
        for q, row in zip(scored, blind):
            q.correct_blind, q.p_blind = bool(row["correct"]), truth_probability(row)
    confident = [q for q in scored if q.correct and q.p >= p_min]
    items = [questions[q.index] for q in confident]
    for q, item, (maps, raw) in zip(confident, items, heatmaps_for(lm, items, "full", batch_size=batch_size)):
        if item.evidence is not None and item.evidence.any():
            q.lift = float(evidence_scores(maps, item.evidence, raw)["mean_lift"])
    return scored


def confirm(lm, sample) -> tuple[float, float]:
    """(p of the right answer, evidence lift) of one sample on the app's own path: one question through
    :func:`~livr_viz.methods.analysis.run_analysis` at stage ``full``, lift from its latent maps as Compare computes
    it (all layers, mean over heads)."""
    from livr_viz.methods.analysis import run_analysis

    a = run_analysis(lm, sample.image, sample.prompt, "full", hidden_states=False)
    maps, raw = a.latent_maps(None, None, "mean"), a.latent_maps(None, None, "mean", "none")
    return float(a.choice_probs.get(str(sample.target), 0.0)), float(
        evidence_scores(maps, sample.evidence, raw)["mean_lift"]
    )


def scan_teaching(
    lm,
    model: str,
    tasks="all",
    n: int = 500,
    seed: int = TEST_SEED,
    p_min: float = P_MIN,
    lift_min: float = LIFT_MIN,
    progress=None,
) -> dict:
    """Scan ``n`` test questions per task of ``tasks`` and pick the teaching example by
    :data:`~livr_viz.methods.teaching.RULE`. Returns ``{"pick": record or None, "tasks": figures per task, ...}``;
    the record holds every number the app's caption states, each computed here from the model's answers."""
    tick = progress_callback(progress)
    names = resolve_tasks(tasks)
    scans = {}
    for i, task in enumerate(names):
        tick(i / len(names), desc=f"{task}: {n} test questions")
        scans[task] = scan_task(lm, task, n, seed, p_min)
    tick(1.0, desc="confirming the candidates on the app's path")
    figures = {task: task_figures(qs, p_min, lift_min) for task, qs in scans.items()}
    result = {
        "model": model,
        "n_per_task": n,
        "seed": seed,
        "thresholds": {"p": p_min, "lift": lift_min},
        "rule": rule_text(p_min, lift_min),
        "tasks": figures,
        "pick": None,
        "checked": [],
    }
    for q in ranked_candidates(scans, p_min, lift_min)[:TEACHING_CHECKS]:
        sample = make_sample(q.task, "test", seed, q.index, answer_format=lm.config.answer_format)
        p, lift = confirm(lm, sample)
        result["checked"].append({"id": q.id, "p": p, "lift": lift, "scan_p": q.p, "scan_lift": q.lift})
        if p >= p_min and lift >= lift_min:
            result["pick"] = teaching_record(lm, model, sample, q, p, lift, figures[q.task], result)
            break
    return result


def teaching_record(lm, model: str, sample, q: ScoredQuestion, p: float, lift: float, figures: dict, scan: dict):
    """What ``teaching-<model>.json`` holds: the sample, its confirmed p and lift, the rule, and the task's accuracy
    over the scanned questions with its interval (and every task's figures, for the record)."""
    return {
        "model": model,
        "fingerprint": model_fingerprint(model),
        "variant": lm.config.variant,
        "sample_id": sample.id,
        "task": sample.task,
        "split": "test",
        "seed": scan["seed"],
        "index": q.index,
        "answer_format": lm.config.answer_format,
        "image": f"{sample.id}.png",
        "truth": str(sample.target),
        "p": round(p, 4),
        "lift": round(lift, 3),
        "p_latents_blinded": None if q.p_blind is None else round(q.p_blind, 4),
        "right_with_latents_blinded": q.correct_blind,
        "task_accuracy": {
            "n": figures["n"],
            "correct": figures["correct"],
            "accuracy": round(figures["accuracy"], 4),
            "ci95": [round(v, 4) for v in figures["ci95"]],
            "interval": "Wilson 95 %",
        },
        "n_per_task": scan["n_per_task"],
        "thresholds": scan["thresholds"],
        "rule": scan["rule"],
        "tasks": scan["tasks"],
    }


def write_teaching(record: dict, directory: Path | None = None) -> Path:
    """Save the record and its image (a record for the same model made before is replaced, its image removed);
    returns the record's path."""
    directory = Path(directory or TEACHING_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    path = record_path(record["model"], directory)
    drop_teaching(record["model"], directory, keep=record["image"])
    make_sample(
        record["task"], "test", record["seed"], record["index"], answer_format=record["answer_format"]
    ).image.save(directory / record["image"])
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def drop_teaching(model: str, directory: Path | None = None, keep: str | None = None) -> bool:
    """Remove the model's record and its image (unless it is ``keep``); True when there was one."""
    path = record_path(model, directory)
    if not path.is_file():
        return False
    try:
        image = json.loads(path.read_text()).get("image")
    except (OSError, ValueError):
        image = None
    if image and image != keep and Path(image).name == image and (path.parent / image).is_file():
        (path.parent / image).unlink()
    path.unlink()
    return True


# ---------------------------------------------------------------------------------------------------- reading
def load_record(path: Path) -> dict | None:
    """A record whose model is still the scanned one (same fingerprint) and whose image is there, with ``path`` set
    to the image; None for anything else (a stale, unreadable or incomplete record claims nothing)."""
    try:
        record = json.loads(Path(path).read_text())
        image = Path(path).parent / record["image"]
        keys = ("model", "fingerprint", "sample_id", "task", "p", "lift", "task_accuracy")
        if not all(k in record for k in keys) or Path(record["image"]).name != record["image"]:
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not image.is_file() or record["fingerprint"] != model_fingerprint(str(record["model"])):
        return None
    return {**record, "path": str(image)}


def teaching_records(directory: Path | None = None) -> list[dict]:
    """Every valid teaching record of the examples folder (:func:`load_record`), by file name."""
    folder = Path(directory or TEACHING_DIR)
    records = [load_record(p) for p in sorted(folder.glob(f"{TEACHING_PREFIX}*.json"))]
    return [r for r in records if r is not None]


def teaching_for(model: str | None, directory: Path | None = None) -> dict | None:
    """The valid teaching record of ``model`` (by the name the app uses), or None."""
    name = (model or "").strip()
    return next((r for r in teaching_records(directory) if r["model"] == name), None)


def teaching_caption(record: dict) -> str:
    """What the app says beside the picked example, in a teacher's words: that it was picked and by what rule, its
    probability and lift, and how often the model is right on the task over the scanned test questions."""
    acc, model = record["task_accuracy"], escape_markdown(display_name(record["model"]))
    task = record["task"].replace("_", " ")
    lo, hi = acc["ci95"]
    blinded = ""
    if record.get("p_latents_blinded") is not None:
        verdict = "still right" if record.get("right_with_latents_blinded") else "wrong"
        blinded = (
            f" With its latents blinded (cut from the image) it answers {verdict} "
            f"(the right answer's probability: {record['p_latents_blinded']:.2f})."
        )
    return (
        f"★ **Picked for teaching**, not a random sample: of {record['n_per_task']} test questions per task, the one "
        f"that shows the mechanism most clearly for {model} (rule in `{record_path(record['model']).name}`). "
        f"It answers right with probability **{record['p']:.2f}**, and its latents put **{record['lift']:.2f}×** the "
        f"attention a uniform look would put on the evidence (lift {record['lift']:.2f}; 1 = chance).{blinded} "
        f"On all {acc['n']} test questions of {task} it is right **{100 * acc['accuracy']:.1f} %** of the time "
        f"(95 % interval {100 * lo:.1f}–{100 * hi:.1f} %)."
    )


def teaching_note(model: str | None, sample, stage: str = "full") -> str:
    """The caption, as a Markdown quote, when ``sample`` is the example picked for ``model`` and it is answered at
    stage ``full`` (the stage its figures are of); else ''."""
    record = teaching_for(model) if sample is not None and stage == "full" else None
    return f"\n\n> {teaching_caption(record)}" if record and record["sample_id"] == sample.id else ""

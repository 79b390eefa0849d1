"""Is the model really using its latents? One reproducible answer per model (issue 21).

:func:`diagnose` asks every model the same questions and fills five sections per model:

==============  ================================================================================================
``table``       the paper's §4.6 table (the :mod:`~livr_viz.methods.latent_use` conditions): accuracy per task and
                macro-averaged with 95 % intervals, the answer row's mean attention to the latents, the paired
                difference standard − condition, and a ``verdict`` (do blinding / removing the latents cost accuracy?)
``stage1``      the same run's Stage-1 checkpoint, under the standard and the bottleneck mask (when one is given)
``flow``        per layer, where the answer-predicting row's attention goes (image / text / latent mass, mean over
                heads and items) and where the latent rows' goes, under the full and the bottleneck mask
``per_latent``  each latent blinded alone (cut from the image): the drop of the correct answer's probability beside
                that latent's attention mass on the image and on the ground-truth evidence, and Spearman's ρ
``backends``    on request, :func:`check_backends`: the same captures under the other attention kernels
==============  ================================================================================================

A section a model cannot have (variant sft has no latents) reads ``{"status": "n/a", "reason": ...}``. Given an
output path, every finished (model, section) is written at once and skipped when the run is repeated: a killed run
resumes where it stopped; a file made with other questions or another model of the same name is refused.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from livr_viz.core.capture import LatentAttention, attention_kernel, base_attn_implementation, rows_of_segment
from livr_viz.core.config import LETTERS, check_one_of
from livr_viz.core.errors import LIVRError
from livr_viz.core.fsutil import JsonReport
from livr_viz.core.segments import SEGMENT_NAMES, Segment
from livr_viz.methods.faithfulness import evidence_on_grid
from livr_viz.methods.heatmaps import image_attention_maps
from livr_viz.methods.interventions import _answer_logits_blind
from livr_viz.methods.latent_use import CONDITIONS, _options, latent_use_predictions, paired_comparison
from livr_viz.methods.stats import task_summary

SECTIONS = ("table", "stage1", "flow", "per_latent", "backends")
# the paper's §4.6 rows; CONDITIONS' "bottleneck_blind" (no route from image to answer: must sit at chance) is a
# sanity floor that costs one more forward per batch: pass conditions=CONDITIONS to have it
TABLE_CONDITIONS = ("standard", "bottleneck", "blind", "removed")
FLOW_SEGMENTS = (Segment.IMAGE, Segment.TEXT, Segment.LATENT)
EFFECT_PER_TASK = 10  # questions per task in the per-latent section (it costs K forwards per batch); None = all
BACKEND_ITEMS = 64  # questions the backend check reruns (2 captures per stage and kernel)
IMPLEMENTATIONS = ("eager", "sdpa")  # the kernels the capture function wraps
# eager and sdpa agree on float32 attention to ~1e-6 (measured on the demo models); a kernel above these limits
# computes something else, and the report made with it cannot be trusted
BACKEND_ATTENTION_TOLERANCE = 1e-3  # largest |difference| of one captured attention weight
BACKEND_KL_TOLERANCE = 1e-4  # largest KL(reference ‖ other) of the answer-token distribution, in nats
REPORT_VERSION = 1

Progress = Callable[[float, str], None]  # (fraction done in [0, 1], what runs now)


def _na(reason: str) -> dict:
    return {"status": "n/a", "reason": reason}


# ----------------------------------------------------------------------------------------------------- the report
@dataclass
class DiagnosticReport(JsonReport):
    """Everything :func:`diagnose` found, as plain JSON-able values.

    ``settings``: the questions (count, tasks, a digest of ids and prompts) and the options that change results;
    ``models``: ``{name: {"info": {...}, "sections": {section: {...}}}}``; ``comparisons``: the first model against
    each other one on the standard condition (:func:`~livr_viz.methods.latent_use.paired_comparison`).
    """

    KIND, RESUME_FROM, VERSION = "diagnosis", "path", REPORT_VERSION
    KEYS = ("settings", "environment", "models", "comparisons")  # the JSON's order, after "version"

    settings: dict
    models: dict = field(default_factory=dict)
    comparisons: dict = field(default_factory=dict)
    environment: dict = field(default_factory=dict)
    version: int = REPORT_VERSION

    def section(self, model: str, name: str) -> dict:
        return self.models[model]["sections"].get(name) or _na("not run")

    def summary_lines(self) -> list[str]:
        """A few lines per model: the verdict, the table's averages, the flow, the per-latent correlation."""
        lines = []
        for name, entry in self.models.items():
            info, table = entry["info"], self.section(name, "table")
            lines.append(
                f"{name} ({info['variant']}, K = {info['n_latents']}, attention {info['attn_implementation']})"
            )
            if table["status"] == "done":
                verdict = table["verdict"]
                lines.append(f"  uses its latents: {verdict['answer']} — {verdict['reason']}")
                cells = [f"{c} {_pct_ci(v['average'])}" for c, v in table["conditions"].items()]
                lines.append("  accuracy: " + " · ".join(cells))
                if table["answer_latent_attention"]:
                    lines.append(
                        f"  answer → latent attention {table['answer_latent_attention']['average']['mean']:.3f}"
                    )
            stage1 = self.section(name, "stage1")
            if stage1["status"] == "done":
                lines.append(
                    "  Stage-1 checkpoint: "
                    + " · ".join(f"{c} {_pct_ci(v['average'])}" for c, v in stage1["conditions"].items())
                )
            flow = self.section(name, "flow")
            if flow["status"] == "done":
                for stage, rows in flow["stages"].items():
                    for who, segments in rows.items():
                        if segments:
                            image = " ".join(f"{v:.2f}" for v in segments["image"]["average"]["mean"])
                            whose = "answer row's" if who == "answer" else "latent rows'"
                            lines.append(f"  flow ({stage} mask): the {whose} attention on the image per layer {image}")
            effects = self.section(name, "per_latent")
            if effects["status"] == "done":
                rho = {k: v["rho"] for k, v in effects["spearman"].items()}
                text = ", ".join(
                    f"ρ(drop, {k} attention) {'n/a' if r is None else f'{r:+.2f}'}" for k, r in rho.items()
                )
                lines.append(f"  per latent (blinded alone, {effects['n_items']} questions): {text}")
            lines += ["  " + line for line in backend_lines(self.section(name, "backends"))]
        for pair, c in self.comparisons.items():
            a = c["average"]
            lines.append(
                f"{pair}: Δ accuracy {100 * a['delta']:+.1f} points (95 % CI {100 * a['ci95'][0]:+.1f} to "
                f"{100 * a['ci95'][1]:+.1f}), McNemar p = {a['mcnemar_p']:.3g}"
            )
        return lines


def _pct_ci(stat: dict) -> str:
    lo, hi = stat["ci95"] or (float("nan"),) * 2
    return f"{100 * stat['mean']:.1f} % [{100 * lo:.1f}, {100 * hi:.1f}]"


# ---------------------------------------------------------------------------------------------------- the driver
def diagnose(
    models: Mapping[str, object],
    items: Sequence,
    stage1: Mapping[str, object] | None = None,
    progress: Progress | None = None,
    *,
    out: str | Path | None = None,
    batch_size: int = 32,
    conditions: Sequence[str] = TABLE_CONDITIONS,
    effect_per_task: int | None = EFFECT_PER_TASK,
    backends: bool = False,
    backend_items: int = BACKEND_ITEMS,
) -> DiagnosticReport:
    """Diagnose every model in ``models`` (name → :class:`~livr_viz.core.model.LIVRModel`) on the same multiple-choice
    ``items`` (``.id``, ``.task``, ``.image``, ``.prompt``, ``.answer`` letter, ``.options`` or ``.choices``;
    ``.evidence`` ``[H, W]`` bool where known). ``stage1``: name → that model's Stage-1 checkpoint.
    ``out``: the JSON to write after every finished section and to resume from. See the module docstring."""
    if not models:
        raise LIVRError("name at least one model to diagnose")
    items = list(items)
    if not items:
        raise LIVRError("no questions to diagnose the models on")
    if batch_size < 1:
        raise LIVRError(f"batch size must be at least 1; got {batch_size}")
    if effect_per_task is not None and effect_per_task < 1:
        raise LIVRError(
            f"questions per task for the per-latent effects must be at least 1 (or None: all); got {effect_per_task}"
        )
    unknown = [c for c in conditions if c not in CONDITIONS]
    if unknown:
        raise LIVRError(f"unknown condition(s) {unknown}; known: {', '.join(CONDITIONS)}")
    opts = SimpleNamespace(
        batch_size=batch_size,
        effect_per_task=effect_per_task,
        backend_items=backend_items,
        conditions=("standard", *[c for c in conditions if c != "standard"]),
    )
    settings = {
        "n_items": len(items),
        "tasks": sorted({it.task for it in items}),
        "items_digest": _digest(items),
        "conditions": list(opts.conditions),
        "effect_per_task": effect_per_task,
        "backend_items": backend_items,
    }
    report = DiagnosticReport(settings, environment=_environment())
    if out is not None and Path(out).is_file():
        report = DiagnosticReport.load(out)
        _check_same(report.settings, settings, out, "questions or settings")
    stage1 = stage1 or {}
    wanted = [s for s in SECTIONS if s != "backends" or backends]
    plan = []
    for name, lm in models.items():
        info = _model_info(lm, stage1.get(name))
        entry = report.models.setdefault(name, {"info": info, "sections": {}})
        _check_same(entry["info"], info, out, f"model {name!r}")
        plan += [(name, s) for s in wanted if s not in entry["sections"]]
    for j, (name, section) in enumerate(plan):
        message = f"{name}: {section}"

        def tick(f: float, j: int = j, m: str = message) -> None:
            if progress:
                progress((j + f) / len(plan), m)

        tick(0.0)
        lm, stage1_lm = models[name], stage1.get(name)
        with reuse_image_features(lm), reuse_image_features(stage1_lm):
            result = RUNNERS[section](lm, items, stage1_lm, opts, tick)
        report.models[name]["sections"][section] = result
        if out is not None:
            report.save(out)
    report.comparisons = _comparisons(report, list(models))
    if out is not None:
        report.save(out)
    if progress:
        progress(1.0, "done")
    return report


def _digest(items: Sequence) -> str:
    text = "\n".join(f"{it.id}\t{it.task}\t{it.answer}\t{it.prompt}" for it in items)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _environment() -> dict:
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__}


def _fingerprint(lm) -> str:
    """Digest of what training changes (LoRA weights, latent rows; all weights of a model trained in full)."""
    digest = hashlib.sha1()
    for name, p in lm.model.named_parameters():
        if p.requires_grad:
            digest.update(name.encode())
            digest.update(p.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def _model_info(lm, stage1_lm) -> dict:
    c = lm.config
    return {
        "variant": c.variant,
        "n_latents": c.n_latents,
        "backbone": c.backbone,
        "trained_steps": c.trained_steps,
        "latent_placement": c.latent_placement,
        "answer_format": c.answer_format,
        "weights": _fingerprint(lm),
        "attn_implementation": base_attn_implementation(lm.base_model),
        "stage1_weights": None if stage1_lm is None else _fingerprint(stage1_lm),
    }


def _check_same(stored: dict, now: dict, out, what: str) -> None:
    changed = [k for k in now if k in stored and stored[k] != now[k]]
    if changed:
        k = changed[0]
        raise LIVRError(
            f"{out} holds a diagnosis made with other {what} ({k}: {stored[k]!r} there, {now[k]!r} now); "
            "pass another output path or delete it"
        )


# ------------------------------------------------------------------------------------------------ shared helpers
@contextmanager
def reuse_image_features(lm):
    """Inside the block the vision tower runs once per batch: forwards given the same ``pixel_values`` tensor (the
    same :class:`~livr_viz.core.model.LIVRBatch`) reuse its output. Masks, capture and LoRA act on the language model
    only, so no number changes; a section's passes over one batch (conditions, stages, K blinded latents) then cost
    the language model alone (the demo models' vision tower is ~30 % of a forward). Scoped like every hook: the
    instance attribute is removed in ``finally``. ``lm=None`` does nothing."""
    inner = None if lm is None else lm.base_model.model
    if inner is None or not hasattr(inner, "get_image_features"):
        yield
        return
    original, own = inner.get_image_features, "get_image_features" in vars(inner)
    last: dict = {}

    def cached(*args, **kwargs):
        pixels = kwargs.get("pixel_values", args[0] if args else None)
        entry = last.get("entry")  # (pixels, output), read once: a thread that replaces it meanwhile is harmless
        if entry is None or entry[0] is not pixels:
            entry = (pixels, original(*args, **kwargs))
            last["entry"] = entry
        return entry[1]

    inner.get_image_features = cached
    try:
        yield
    finally:
        if own:
            inner.get_image_features = original
        else:
            del inner.get_image_features


def _batches(items: Sequence, batch_size: int) -> list[list[int]]:
    """Item indices in batches that share a number of options (so option ids stack into one tensor)."""
    groups: dict[int, list[int]] = {}
    for i, it in enumerate(items):
        groups.setdefault(len(_options(it)), []).append(i)
    return [idx[s : s + batch_size] for idx in groups.values() for s in range(0, len(idx), batch_size)]


def _capture_rows(batch, n_latents: int) -> torch.Tensor:
    """``[B, 1 + K]``: the row predicting the answer, then the latent rows."""
    answer = (batch.answer_start - 1).unsqueeze(1)
    return torch.cat([answer, rows_of_segment(batch.segments, Segment.LATENT)], 1) if n_latents else answer


def _by_task(items: Sequence, values) -> dict[str, np.ndarray]:
    out: dict[str, list] = defaultdict(list)
    for it, v in zip(items, values):
        out[it.task].append(v)
    return {task: np.asarray(v, dtype=np.float64) for task, v in out.items()}


def _predictions(lm, items: Sequence, conditions: Sequence[str], opts, tick) -> tuple[dict, list[float]]:
    """:func:`latent_use_predictions` batch by batch (for progress), rows in item order."""
    rows: dict[str, list] = {c: [None] * len(items) for c in conditions}
    attention = [0.0] * len(items)
    batches = _batches(items, opts.batch_size)
    for j, idx in enumerate(batches):
        part = latent_use_predictions(lm, [items[i] for i in idx], list(conditions), opts.batch_size)
        for c in conditions:
            for i, r in zip(idx, part[c]):
                rows[c][i] = {k: r[k] for k in ("id", "task", "answer", "prediction", "correct")}
        for i, v in zip(idx, part["answer_latent_attention"]):
            attention[i] = v
        tick((j + 1) / len(batches))
    return rows, attention


def _accuracy(items: Sequence, rows: list[dict]) -> dict:
    return task_summary(_by_task(items, [float(r["correct"]) for r in rows]), binary=True)


# ----------------------------------------------------------------------------------------------------- sections
def _table(lm, items, _stage1, opts, tick) -> dict:
    k = lm.config.n_latents
    conditions = opts.conditions if k else ("standard",)
    rows, attention = _predictions(lm, items, conditions, opts, tick)
    table: dict[str, Any] = {
        "status": "done",
        "conditions": {c: _accuracy(items, rows[c]) for c in conditions},
        "answer_latent_attention": task_summary(_by_task(items, attention)) if k else None,
        "paired": {c: paired_comparison(rows["standard"], rows[c]) for c in conditions[1:]},
        "predictions": rows,
    }
    table["verdict"] = _verdict(table["paired"], k)
    return table


def _verdict(paired: dict, n_latents: int) -> dict:
    """ "yes" when blinding or removing the latents costs accuracy (the paired 95 % interval of standard − condition
    lies above 0); "not shown" otherwise."""
    if not n_latents:
        return {"answer": "n/a", "reason": "the model has no latents (variant sft)"}
    tests = {c: paired[c]["average"] for c in ("blind", "removed") if c in paired}
    if not tests:
        return {"answer": "n/a", "reason": "neither the blind nor the removed condition was run"}
    text = "; ".join(
        f"standard − {c}: {100 * v['delta']:+.1f} points (95 % CI {100 * v['ci95'][0]:+.1f} to "
        f"{100 * v['ci95'][1]:+.1f}, McNemar p = {v['mcnemar_p']:.2g})"
        for c, v in tests.items()
    )
    used = any(v["ci95"][0] > 0 for v in tests.values())
    return {"answer": "yes" if used else "not shown", "reason": text}


def _stage1(lm, items, stage1_lm, opts, tick) -> dict:
    if stage1_lm is None:
        return _na(
            "no Stage-1 checkpoint was given"
            if lm.config.variant == "livr"
            else f"variant {lm.config.variant} has no Stage 1"
        )
    if not stage1_lm.config.n_latents:
        return _na("the Stage-1 checkpoint has no latents")
    conditions = ("standard", "bottleneck")
    rows, _ = _predictions(stage1_lm, items, conditions, opts, tick)
    return {
        "status": "done",
        "conditions": {c: _accuracy(items, rows[c]) for c in conditions},
        "paired": {"bottleneck": paired_comparison(rows["standard"], rows["bottleneck"])},
        "predictions": rows,
    }


def _segment_mass(result) -> torch.Tensor:
    """``[L, B, R, S]``: each captured row's attention mass on each of :data:`FLOW_SEGMENTS`, mean over heads."""
    onehot = torch.stack([result.segments == int(s) for s in FLOW_SEGMENTS], -1).float()  # [B, T, S]
    return torch.einsum("lbhrt,bts->lbrs", result.attention, onehot) / result.n_heads


@torch.no_grad()
def _flow(lm, items, _stage1, opts, tick) -> dict:
    k = lm.config.n_latents
    stages = ("full", "bottleneck") if k else ("full",)
    mass: dict[tuple[str, str], list] = {(s, who): [None] * len(items) for s in stages for who in ("answer", "latent")}
    batches = _batches(items, opts.batch_size)
    for j, idx in enumerate(batches):
        batch = lm.build_inputs([items[i].image for i in idx], [items[i].prompt for i in idx])
        for stage in stages:
            result = LatentAttention(lm, rows=_capture_rows(batch, k), hidden_states=False).run(batch, stage)
            m = _segment_mass(result)  # [L, B, R, S]
            for b, i in enumerate(idx):
                mass[stage, "answer"][i] = m[:, b, 0].numpy()  # [L, S]
                if k:
                    mass[stage, "latent"][i] = m[:, b, 1:].mean(1).numpy()
        tick((j + 1) / len(batches))

    def profiles(values: list) -> dict:  # per segment: [L] per task and macro-averaged
        return {
            SEGMENT_NAMES[s]: task_summary(_by_task(items, [v[:, n] for v in values]))
            for n, s in enumerate(FLOW_SEGMENTS)
        }

    out = {
        stage: {"answer": profiles(mass[stage, "answer"]), "latent": profiles(mass[stage, "latent"]) if k else None}
        for stage in stages
    }
    n_layers = len(next(iter(mass.values()))[0])
    return {
        "status": "done",
        "n_layers": n_layers,
        "stages": out,
        "note": "mass per layer, mean over heads and questions (latent rows: also over latents); rows 'answer' = "
        "the position predicting the first answer token",
    }


def _first_per_task(items: Sequence, limit: int | None) -> list:
    if limit is None:
        return list(items)
    seen: dict[str, int] = defaultdict(int)
    chosen = []
    for it in items:
        if seen[it.task] < limit:
            seen[it.task] += 1
            chosen.append(it)
    return chosen


def _correct_prob(logits: torch.Tensor, option_ids: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """``[B]`` probability of the correct option, renormalised over the options."""
    probs = logits.gather(1, option_ids).float().softmax(-1)  # [B, n_options]
    return probs[torch.arange(len(truth)), truth]


def _spearman(x, y) -> dict:
    from scipy.stats import spearmanr

    x, y = np.ravel(np.asarray(x, float)), np.ravel(np.asarray(y, float))
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:  # a constant has no ranks to correlate
        return {"rho": None, "p": None, "n": len(x)}
    r = spearmanr(x, y)
    return {"rho": float(r.statistic), "p": float(r.pvalue), "n": len(x)}


@torch.no_grad()
def _per_latent(lm, items, _stage1, opts, tick) -> dict:
    k = lm.config.n_latents
    if not k:
        return _na("the model has no latents (variant sft)")
    chosen = _first_per_task(items, opts.effect_per_task)
    drops: list[Any] = [None] * len(chosen)
    image: list[Any] = [None] * len(chosen)
    evidence: list[Any] = [None] * len(chosen)
    batches = _batches(chosen, opts.batch_size)
    for j, idx in enumerate(batches):
        chunk = [chosen[i] for i in idx]
        batch = lm.build_inputs([it.image for it in chunk], [it.prompt for it in chunk])
        option_ids = torch.tensor([lm.choice_token_ids(list(_options(it))) for it in chunk])  # [B, n_options]
        truth = torch.tensor([LETTERS.index(it.answer) for it in chunk])
        latents = rows_of_segment(batch.segments, Segment.LATENT)  # [B, K]
        result = LatentAttention(lm, rows=_capture_rows(batch, k), hidden_states=False).run(batch, "full")
        before = _correct_prob(result.answer_logits, option_ids, truth)  # [B]
        after = torch.stack(
            [
                _correct_prob(_answer_logits_blind(lm, batch, latents[:, [i]], "full"), option_ids, truth)
                for i in range(k)
            ],
            1,
        )  # [B, K]
        on_image = _segment_mass(result)[..., 1:, 0].mean(0)  # [B, K]: mean over layers
        for b, (i, it) in enumerate(zip(idx, chunk)):
            drops[i], image[i] = (before[b] - after[b]).numpy(), on_image[b].numpy()
            evidence[i] = _evidence_mass(lm, result, batch, b, it)
        tick((j + 1) / len(batches))
    has_evidence = all(e is not None for e in evidence)
    summary = {
        "drop": task_summary(_by_task(chosen, drops)),
        "image": task_summary(_by_task(chosen, image)),
        "evidence": task_summary(_by_task(chosen, evidence)) if has_evidence else None,
    }
    means = {key: np.asarray(s["average"]["mean"]) for key, s in summary.items() if s}
    spearman = {key: _spearman(means["drop"], means[key]) for key in ("image", "evidence") if key in means}
    pairs = {
        key: _spearman(drops, values) for key, values in (("image", image), ("evidence", evidence)) if key in means
    }
    return {
        "status": "done",
        "stage": "full",
        "n_items": len(chosen),
        "n_latents": k,
        "latents": summary,
        "spearman": spearman,
        "spearman_pairs": pairs,
        "note": "drop = p(correct) intact − p(correct) with that latent alone cut from the image; attention = the "
        "latent row's mass on the image (on the evidence patches), mean over layers and heads; spearman: "
        "over the K latents' averages; spearman_pairs: over every (question, latent)",
    }


def _evidence_mass(lm, result, batch, b: int, item) -> np.ndarray | None:
    """``[K]`` each latent row's attention mass on the evidence patches (None without evidence or a patch grid)."""
    if getattr(item, "evidence", None) is None:
        return None
    try:
        grid = lm.family.patch_grid(lm.base_model, batch.inputs, b)
        maps = image_attention_maps(result, grid, b, normalisation="none")[1:]  # [K, rows, cols]
    except LIVRError:
        return None
    return (maps * evidence_on_grid(item.evidence, grid)[None]).sum((1, 2))


def _backends(lm, items, _stage1, opts, tick) -> dict:
    return check_backends(lm, items[: opts.backend_items], opts.batch_size, progress=lambda f, _message: tick(f))


RUNNERS = {"table": _table, "stage1": _stage1, "flow": _flow, "per_latent": _per_latent, "backends": _backends}


def _comparisons(report: DiagnosticReport, names: list[str]) -> dict:
    done = [n for n in names if report.section(n, "table")["status"] == "done"]
    return {
        f"{done[0]} vs {other}": paired_comparison(
            report.section(done[0], "table")["predictions"]["standard"],
            report.section(other, "table")["predictions"]["standard"],
        )
        for other in done[1:]
    }


# ------------------------------------------------------------------------------------------------ backend guard
def available_implementations() -> tuple[list[str], dict[str, str]]:
    """The kernels a report can be checked under, and those present but not comparable (with why)."""
    from transformers.utils import is_flash_attn_2_available

    skipped = {}
    if is_flash_attn_2_available():
        skipped["flash_attention_2"] = (
            "not compared: flash attention takes no float 4D mask (the bottleneck), and "
            "the capture function wraps only eager and sdpa"
        )
    return list(IMPLEMENTATIONS), skipped


@contextmanager
def attention_implementation(lm, name: str):
    """Run the language model's attention on kernel ``name`` (eager | sdpa) inside the block, capture kept, for the
    forwards of this thread (context) only: :func:`~livr_viz.core.capture.attention_kernel`. The shared model is not
    switched (``set_attn_implementation`` would switch it for every thread that uses it), so other requests on the
    same model keep its own kernel meanwhile."""
    check_one_of("attention implementation", name, IMPLEMENTATIONS)
    with attention_kernel(lm.base_model, name):
        yield


def backend_lines(check: dict) -> list[str]:
    """:func:`check_backends`'s result in a few lines (its warnings last); none for a check not done."""
    if check.get("status") != "done":
        return []
    lines = [
        f"backend {impl} vs {check['reference']} ({stage}): answer agreement {r['agreement']:.3f}, KL max "
        f"{r['kl_max']:.1e}, |Δ attention| max {r['max_attention_diff']:.1e}"
        for impl, stages in check["implementations"].items()
        for stage, r in stages.items()
    ]
    return lines + [f"⚠ {w}" for w in check["warnings"]]


def _kl(reference: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """``[B]`` KL(reference ‖ other) of the next-token distributions, from logits ``[B, V]``, in float64."""
    log_p, log_q = reference.double().log_softmax(-1), other.double().log_softmax(-1)
    return (log_p.exp() * (log_p - log_q)).sum(-1).clamp_min(0.0)


@torch.no_grad()
def check_backends(
    lm,
    items: Sequence,
    batch_size: int = 32,
    implementations: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> dict:
    """Rerun the captures of ``items`` (``.image``, ``.prompt``) under every other attention kernel and compare them
    with the model's own (the reference): per kernel and stage, answer agreement (the first answer token, argmax
    over the vocabulary), mean / max KL of that token's distribution, and the largest absolute difference of a
    captured attention weight (the answer row and the latent rows). ``warnings`` lists every comparison above
    :data:`BACKEND_ATTENTION_TOLERANCE` / :data:`BACKEND_KL_TOLERANCE`."""
    items = list(items)
    if not items:
        raise LIVRError("no questions to check the attention backends on")
    reference = base_attn_implementation(lm.base_model)
    available, skipped = available_implementations()
    others = [n for n in (implementations or available) if n != reference]
    for name in others:
        check_one_of("attention implementation", name, IMPLEMENTATIONS)
    if not others:
        return _na(f"no kernel besides {reference} to compare with")
    k = lm.config.n_latents
    stages = ("full", "bottleneck") if k else ("full",)
    agree = {(n, s): 0 for n in others for s in stages}
    kls: dict = {(n, s): [] for n in others for s in stages}
    largest = dict.fromkeys(agree, 0.0)
    chunks = [items[s : s + batch_size] for s in range(0, len(items), batch_size)]
    for j, chunk in enumerate(chunks):
        batch = lm.build_inputs([it.image for it in chunk], [it.prompt for it in chunk])
        capture = LatentAttention(lm, rows=_capture_rows(batch, k), hidden_states=False)
        for stage in stages:
            ref = capture.run(batch, stage)
            for name in others:
                with attention_implementation(lm, name):
                    other = capture.run(batch, stage)
                agree[name, stage] += int((ref.answer_logits.argmax(-1) == other.answer_logits.argmax(-1)).sum())
                kls[name, stage] += _kl(ref.answer_logits, other.answer_logits).tolist()
                largest[name, stage] = max(largest[name, stage], float((ref.attention - other.attention).abs().max()))
        if progress:
            progress((j + 1) / len(chunks), f"backends {j + 1}/{len(chunks)}")
    results: dict = {n: {} for n in others}
    warnings = []
    for (name, stage), kl in kls.items():
        r = {
            "agreement": agree[name, stage] / len(items),
            "kl_mean": float(np.mean(kl)),
            "kl_max": float(max(kl)),
            "max_attention_diff": largest[name, stage],
        }
        results[name][stage] = r
        if r["max_attention_diff"] > BACKEND_ATTENTION_TOLERANCE or r["kl_max"] > BACKEND_KL_TOLERANCE:
            warnings.append(
                f"{name} and {reference} disagree ({stage} mask): attention differs by up to "
                f"{r['max_attention_diff']:.2g}, answer KL up to {r['kl_max']:.2g}, agreement "
                f"{r['agreement']:.3f}: a report made with one kernel does not hold for the other"
            )
    return {
        "status": "done",
        "reference": reference,
        "n_items": len(items),
        "implementations": results,
        "skipped": skipped,
        "warnings": warnings,
        "tolerance": {"attention": BACKEND_ATTENTION_TOLERANCE, "kl": BACKEND_KL_TOLERANCE},
    }

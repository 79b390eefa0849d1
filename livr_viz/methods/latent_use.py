""" "Are the latents used?" — the paper's §4.6 table for any model, and paired comparisons between models.

:func:`latent_use_predictions` answers every multiple-choice item under each condition of the paper's table:

==================  ==========================================================================================
``standard``        ordinary (Stage 2) mask: how the model is used
``bottleneck``      the Stage-1 mask at test time: text and answer rows cut from the image, only latents see it
``blind``           ordinary mask, every latent cut from the image (what they carry comes from the text)
``removed``         ordinary mask, no later token may read any latent (as if they were not there)
``bottleneck_blind`` both: no path from the image to the answer is left (must sit at chance)
==================  ==========================================================================================

and records the answer row's mean attention to the latents (the paper's "mean answer → latent attention").
:func:`paired_comparison` compares two models on the *same* questions: the difference in accuracy per task and
macro-averaged, a paired bootstrap 95 % interval (items resampled within each task) and McNemar's exact test.
A single draw of test questions misleads (RESULTS.md): claims hold only where the paired interval excludes 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from livr_viz.core.capture import LatentAttention, rows_of_segment
from livr_viz.core.config import CONDITIONS, LETTERS  # noqa: F401 - CONDITIONS: part of this module's API
from livr_viz.core.errors import LIVRError
from livr_viz.core.segments import Segment
from livr_viz.methods.interventions import _answer_logits_without


def _options(item) -> tuple[str, ...]:
    return tuple(getattr(item, "options", None) or LETTERS[: len(item.choices)])


def _condition_logits(lm, batch, condition: str) -> torch.Tensor:
    if condition == "bottleneck":
        return lm.answer_logits(batch, "bottleneck")
    if condition == "blind":
        return lm.answer_logits(batch, "full", block_latent_image=True)
    if condition == "bottleneck_blind":
        return lm.answer_logits(batch, "bottleneck", block_latent_image=True)
    if condition == "removed":
        return _answer_logits_without(lm, batch, rows_of_segment(batch.segments, Segment.LATENT), "full")
    raise LIVRError(f"unknown condition {condition!r}; known: {', '.join(CONDITIONS)}")


@torch.no_grad()
def latent_use_predictions(
    lm, items: Sequence, conditions: Sequence[str] | None = None, batch_size: int = 32, progress: bool = False
) -> dict:
    """Per condition, one row per item: ``{"id", "task", "answer", "prediction", "correct", "probs"}``; plus
    ``answer_latent_attention``: per item, the answer row's attention mass on all latents (mean over layers and
    heads; 0 for a model without latents). Conditions other than ``standard`` need latents."""
    k = lm.config.n_latents
    conditions = list(conditions or (CONDITIONS if k else ("standard",)))
    unknown = [c for c in conditions if c not in CONDITIONS]
    if unknown:
        raise LIVRError(f"unknown condition(s) {unknown}; known: {', '.join(CONDITIONS)}")
    if not k and conditions != ["standard"]:
        raise LIVRError("a model without latents (variant sft) has only the standard condition")
    if not len(items):
        raise LIVRError("no items to evaluate")
    out: dict = {c: [None] * len(items) for c in conditions}
    attention = [0.0] * len(items)
    groups: dict[int, list[int]] = {}
    for i in range(len(items)):
        groups.setdefault(len(_options(items[i])), []).append(i)  # one number of options per batch
    chunks = [(n, idx[s : s + batch_size]) for n, idx in groups.items() for s in range(0, len(idx), batch_size)]
    iterator: Iterable = chunks
    if progress:
        iterator = tqdm(chunks, desc=f"latent use {lm.config.variant}", leave=False)
    for n_options, idx in iterator:
        chunk = [items[i] for i in idx]
        batch = lm.build_inputs([it.image for it in chunk], [it.prompt for it in chunk])
        ids = torch.tensor([lm.choice_token_ids(list(_options(it))) for it in chunk])  # [B, n_options]: per item
        letters = LETTERS[:n_options]
        capture = LatentAttention(lm, rows="answer", hidden_states=False).run(batch, "full")
        if k:
            keys = batch.segments == int(Segment.LATENT)  # [B, T]
            mass = (capture.attention[:, :, :, 0, :] * keys[None, :, None, :]).sum(-1).mean(dim=(0, 2))  # [B]
            for j, i in enumerate(idx):
                attention[i] = float(mass[j])
        for condition in conditions:
            logits = capture.answer_logits if condition == "standard" else _condition_logits(lm, batch, condition)
            probs = logits.gather(1, ids).float().softmax(-1)
            for j, (i, it) in enumerate(zip(idx, chunk)):
                pred = letters[int(probs[j].argmax())]
                out[condition][i] = {
                    "id": it.id,
                    "task": it.task,
                    "answer": it.answer,
                    "prediction": pred,
                    "correct": pred == it.answer,
                    "probs": [round(float(p), 5) for p in probs[j]],
                }
    out["answer_latent_attention"] = attention
    return out


# ------------------------------------------------------------------------------------------------- statistics
def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value: a binomial test of the discordant pairs against 1/2."""
    n = a_only + b_only
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(a_only, b_only) + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired_comparison(rows_a: Sequence[dict], rows_b: Sequence[dict], n_boot: int = 10_000, seed: int = 0) -> dict:
    """Accuracy of A minus accuracy of B on the same items (matched by ``id``), per task and macro-averaged over
    tasks: ``{"tasks": {task: {...}}, "average": {...}}`` with ``delta``, ``ci95`` (paired bootstrap: items
    resampled within each task, both models together), ``mcnemar_p``, ``a_only`` / ``b_only`` (items only A / only
    B answers correctly) and ``n``."""
    by_id = {r["id"]: r for r in rows_b}
    missing = [r["id"] for r in rows_a if r["id"] not in by_id]
    if missing or len(rows_a) != len(rows_b):
        raise LIVRError(f"the two prediction sets are not over the same items ({len(missing)} unmatched ids)")
    tasks: dict[str, tuple[list[bool], list[bool]]] = {}
    for r in rows_a:
        a, b = tasks.setdefault(r["task"], ([], []))
        a.append(bool(r["correct"]))
        b.append(bool(by_id[r["id"]]["correct"]))
    rng = np.random.default_rng(seed)
    out: dict = {"tasks": {}}
    boot_sum = np.zeros(n_boot)
    for task, (a, b) in sorted(tasks.items()):
        diff = np.asarray(a, float) - np.asarray(b, float)  # per item: +1, 0, -1
        n = len(diff)
        boots = diff[rng.integers(0, n, (n_boot, n))].mean(1)
        boot_sum += boots
        a_only, b_only = int((diff > 0).sum()), int((diff < 0).sum())
        out["tasks"][task] = {
            "n": n,
            "accuracy_a": float(np.mean(a)),
            "accuracy_b": float(np.mean(b)),
            "delta": float(diff.mean()),
            "ci95": [float(v) for v in np.quantile(boots, [0.025, 0.975])],
            "a_only": a_only,
            "b_only": b_only,
            "mcnemar_p": mcnemar_exact(a_only, b_only),
        }
    t = out["tasks"]
    boot_avg = boot_sum / len(t)
    out["average"] = {
        "n": sum(v["n"] for v in t.values()),
        "accuracy_a": float(np.mean([v["accuracy_a"] for v in t.values()])),
        "accuracy_b": float(np.mean([v["accuracy_b"] for v in t.values()])),
        "delta": float(np.mean([v["delta"] for v in t.values()])),
        "ci95": [float(v) for v in np.quantile(boot_avg, [0.025, 0.975])],
        "a_only": sum(v["a_only"] for v in t.values()),
        "b_only": sum(v["b_only"] for v in t.values()),
    }
    out["average"]["mcnemar_p"] = mcnemar_exact(out["average"]["a_only"], out["average"]["b_only"])
    return out

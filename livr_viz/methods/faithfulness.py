"""Faithfulness of attention maps against ground-truth evidence masks (synthetic data knows the truth)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from PIL import Image

from livr_viz.core.capture import LatentAttention
from livr_viz.core.errors import LIVRError
from livr_viz.methods.heatmaps import image_attention_maps
from livr_viz.methods.probes import randomized_copy


def evidence_on_grid(evidence: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """``[rows, cols]`` fraction of each patch covered by the pixel evidence mask ``[H, W]``."""
    mask = Image.fromarray((np.asarray(evidence) > 0).astype(np.float32))
    return np.asarray(mask.resize((grid[1], grid[0]), Image.Resampling.BOX), dtype=np.float64)


def evidence_scores(maps: np.ndarray, evidence: np.ndarray, raw: np.ndarray | None = None) -> dict:
    """Per row (latent) and averaged: attention mass inside the evidence, its lift, pointing-game hit.

    ``maps``: ``[R, rows, cols]`` (any normalisation; used for the argmax of the pointing game).
    ``raw``: the same maps without normalisation, used for mass (defaults to ``maps``).
    mass = sum(raw * cover) / sum(raw); lift = mass / area fraction (1.0 = no better than uniform);
    hit = the strongest patch is at least half covered by evidence.
    """
    raw = maps if raw is None else raw
    cover = evidence_on_grid(evidence, maps.shape[1:])
    area = float(cover.mean())
    if area <= 0:
        raise LIVRError("the evidence mask is empty")
    totals = raw.reshape(len(raw), -1).sum(1)
    mass = (raw * cover).reshape(len(raw), -1).sum(1) / np.where(totals > 0, totals, 1)
    peaks = maps.reshape(len(maps), -1).argmax(1)
    hits = cover.ravel()[peaks] >= 0.5
    return {
        "evidence_area_fraction": area,
        "mass_in_evidence": [float(m) for m in mass],
        "lift": [float(m / area) for m in mass],
        "pointing_hit": [bool(h) for h in hits],
        "mean_mass_in_evidence": float(mass.mean()),
        "mean_lift": float(mass.mean() / area),
        "pointing_game": float(hits.mean()),
    }


def heatmaps_for(lm, items, stage: str = "full", aggregation: str = "mean", batch_size: int = 16):
    """Per item: (normalised maps, raw maps) of the latent rows (answer row for sft) over the image grid."""
    rows = "latent" if lm.config.n_latents else "answer"
    out = []
    for start in range(0, len(items), batch_size):
        chunk = [items[i] for i in range(start, min(len(items), start + batch_size))]
        batch = lm.build_inputs([it.image for it in chunk], [it.prompt for it in chunk])
        result = LatentAttention(lm, rows=rows, hidden_states=False).run(batch, stage)
        for b in range(len(chunk)):
            grid = lm.family.patch_grid(lm.base_model, batch.inputs, b)
            out.append(
                (
                    image_attention_maps(result, grid, b, aggregation=aggregation),
                    image_attention_maps(result, grid, b, aggregation=aggregation, normalisation="none"),
                )
            )
    return out


def faithfulness_report(lm, items, stage: str = "full") -> dict:
    """Mean mass-in-evidence, lift and pointing-game hit rate per task (and overall) for one model."""
    per_task: dict[str, list[dict]] = defaultdict(list)
    for item, (maps, raw) in zip(items, heatmaps_for(lm, items, stage)):
        per_task[item.task].append(evidence_scores(maps, item.evidence, raw))
    tasks = {}
    for task, rows in per_task.items():
        tasks[task] = {
            "n": len(rows),
            "mass_in_evidence": float(np.mean([r["mean_mass_in_evidence"] for r in rows])),
            "area_fraction": float(np.mean([r["evidence_area_fraction"] for r in rows])),
            "lift": float(np.mean([r["mean_lift"] for r in rows])),
            "pointing_game": float(np.mean([r["pointing_game"] for r in rows])),
        }
    overall = {k: float(np.mean([t[k] for t in tasks.values()])) for k in ("mass_in_evidence", "lift", "pointing_game")}
    return {"variant": lm.config.variant, "stage": stage, "tasks": tasks, "average": overall}


def randomization_sanity(lm, items, seed: int = 0) -> dict:
    """Adebayo et al. (2018): heatmaps after re-initialising every weight must change.

    Returns the Spearman rank correlation between trained and randomised maps per item (mean and all);
    a faithful method gives correlations near 0, a method blind to the weights gives ~1.
    """
    from scipy.stats import spearmanr

    trained = heatmaps_for(lm, items)
    randomized = heatmaps_for(randomized_copy(lm, seed), items)
    rhos = []
    for (a, _), (b, _) in zip(trained, randomized):
        rho = spearmanr(a.ravel(), b.ravel()).statistic
        rhos.append(float(0.0 if np.isnan(rho) else rho))
    return {"spearman_mean": float(np.mean(rhos)), "spearman": rhos, "n": len(rhos)}

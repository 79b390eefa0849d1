"""Faithfulness of attention maps against ground-truth evidence masks (synthetic data knows the truth)."""

from __future__ import annotations

import numpy as np
from PIL import Image


def evidence_on_grid(evidence: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """``[rows, cols]`` fraction of each patch covered by the pixel evidence mask ``[H, W]``."""
    mask = Image.fromarray((np.asarray(evidence) > 0).astype(np.float32))
    return np.asarray(mask.resize((grid[1], grid[0]), Image.BOX), dtype=np.float64)


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
        raise ValueError("the evidence mask is empty")
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

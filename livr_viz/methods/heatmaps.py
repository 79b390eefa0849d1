"""Latent→image attention maps: from a :class:`CaptureResult` to per-latent grids, and figures.

Views take results in and return arrays or figures; they never run the model.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import numpy as np
import torch

from livr_viz.core.capture import CaptureResult
from livr_viz.core.config import AGGREGATIONS, NORMALISATIONS, check_one_of
from livr_viz.core.errors import LIVRError
from livr_viz.core.segments import Segment


def _select(values: torch.Tensor, picks: Sequence[int] | None, name: str, size: int) -> torch.Tensor:
    if picks is None:
        return values
    picks = list(picks)
    bad = [p for p in picks if not -size <= p < size]
    if bad or not picks:
        raise LIVRError(f"{name} must be a non-empty list of indices in [0, {size}); got {picks}")
    return values[picks]


def image_attention_maps(
    result: CaptureResult,
    grid: tuple[int, int],
    index: int = 0,
    layers: Sequence[int] | None = None,
    heads: Sequence[int] | None = None,
    aggregation: str = "mean",
    normalisation: str = "per_latent",
) -> np.ndarray:
    """``[R, rows, cols]`` attention of each captured row over the image-patch grid.

    ``aggregation``: ``mean`` / ``max`` over the chosen layers and heads, or ``rollout``
    (Abnar & Zuidema): the rows' attention is propagated back through the chosen layers' head-averaged
    attention with the residual identity, so mass that went via text/latent tokens is credited to the
    image tokens those attended — here approximated with the captured rows only, i.e. the product of the
    per-layer (0.5·A + 0.5·I) restricted to the image columns of each layer's rows.
    """
    check_one_of("aggregation", aggregation, AGGREGATIONS)
    check_one_of("normalisation", normalisation, NORMALISATIONS)
    image_keys = result.key_positions(Segment.IMAGE, index)
    n_rows, n_cols = grid
    if len(image_keys) != n_rows * n_cols:
        raise LIVRError(f"the input has {len(image_keys)} image tokens but the grid is {n_rows}x{n_cols}")
    att = result.attention[:, index]  # [L, H, R, T]
    att = _select(att, layers, "layers", att.shape[0])
    att = _select(att.transpose(0, 1), heads, "heads", att.shape[1]).transpose(0, 1)  # [L', H', R, T]
    if aggregation == "mean":
        maps = att[..., image_keys].mean(dim=(0, 1))  # [R, N]
    elif aggregation == "max":
        maps = att[..., image_keys].amax(dim=(0, 1))
    else:
        maps = _rollout(att.mean(1), image_keys)  # [R, N]
    out = maps.reshape(-1, n_rows, n_cols).float().numpy()
    if normalisation == "per_latent":
        lo = out.min(axis=(1, 2), keepdims=True)
        hi = out.max(axis=(1, 2), keepdims=True)
        out = (out - lo) / np.where(hi - lo > 0, hi - lo, 1.0)
    elif normalisation == "global":
        lo, hi = out.min(), out.max()
        out = (out - lo) / (hi - lo if hi > lo else 1.0)
    return out


def _rollout(att: torch.Tensor, image_keys: torch.Tensor) -> torch.Tensor:
    """Rollout restricted to captured rows: ``[L, R, T]`` → ``[R, N_image]``.

    With only the captured rows known per layer, the image share of layer l is mixed with the residual:
    ``m_l = 0.5 * A_l[:, image] + 0.5 * m_{l-1}``, starting from the first chosen layer.
    """
    rolled = None
    for layer in range(att.shape[0]):
        current = att[layer][:, image_keys]
        rolled = current if rolled is None else 0.5 * current + 0.5 * rolled
    if rolled is None:
        raise LIVRError("rollout needs at least one captured layer")
    return rolled


def top_regions(maps: np.ndarray, k: int = 3) -> list[list[tuple[int, int, float]]]:
    """Per row, the ``k`` strongest patches as (grid_row, grid_col, value)."""
    out = []
    for m in maps:
        flat = np.argsort(m.ravel())[::-1][:k]
        out.append([(int(i // m.shape[1]), int(i % m.shape[1]), float(m.ravel()[i])) for i in flat])
    return out

"""How patch-aligned are a vision tower's image tokens? Change one patch, see which tokens move.

A heatmap over the image tokens is read as "this latent looks *here*". That reading holds only as far as token
(i, j) stands for patch (i, j): a tower whose late layers mix the whole image (a ViT's global attention, the
spatial reader's attention layers) spreads a local change to other tokens. :func:`patch_spread` measures it: for
each probed patch it replaces that patch's pixels with noise, runs the tower and the projector (what the language
model reads) and reports how much every token moved, grouped by Chebyshev distance (in patches) from the changed
one — ring 0 is the patch itself, ring 1 its 8 neighbours, and so on — as a share of the total movement, and
whether the changed patch's own token moved most.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from livr_viz.core.errors import LIVRError
from livr_viz.core.families import family_for


@dataclass
class PatchSpread:
    grid: int
    patch_size: int
    probes: list[tuple[int, int]]
    own_token_moves_most: list[bool]  # per probe
    ring_share: np.ndarray  # [n_rings] mean share of the total token movement at each Chebyshev distance
    ring_mean: np.ndarray  # [n_rings] mean movement of one token at that distance, relative to the changed token's

    def summary(self) -> str:
        near = float(self.ring_share[:2].sum())
        return (
            f"{sum(self.own_token_moves_most)}/{len(self.probes)} probed patches move their own token most; "
            f"{100 * self.ring_share[0]:.0f} % of the movement stays on the changed patch's token, "
            f"{100 * near:.0f} % within one patch of it"
        )


def _tokens(model, pixel_values: torch.Tensor) -> torch.Tensor:
    """``[B, N, D]``: the image features the language model receives (tower, feature layer, projector)."""
    feats = model.model.get_image_features(
        pixel_values=pixel_values,
        vision_feature_layer=model.config.vision_feature_layer,
        vision_feature_select_strategy=model.config.vision_feature_select_strategy,
    )
    pooled = feats.pooler_output if hasattr(feats, "pooler_output") else feats
    return torch.stack(list(pooled)) if isinstance(pooled, (list, tuple)) else pooled


@torch.no_grad()
def patch_spread(
    model, processor, image: Image.Image, probes: list[tuple[int, int]] | None = None, seed: int = 0
) -> PatchSpread:
    """Measure how far a change confined to one patch spreads over a LLaVA-style model's image tokens."""
    size, patch = family_for(model.config).square_tower(model)
    grid = size // patch
    probes = probes or [(0, 0), (grid // 2, grid // 2), (grid - 1, grid - 1), (1, grid - 2), (grid - 2, 1)]
    for r, c in probes:
        if not (0 <= r < grid and 0 <= c < grid):
            raise LIVRError(f"probe patch {(r, c)} is outside the {grid} x {grid} grid")
    base = np.asarray(image.convert("RGB").resize((size, size), Image.Resampling.BICUBIC)).copy()
    rng = np.random.default_rng(seed)
    images = [Image.fromarray(base)]
    for r, c in probes:
        changed = base.copy()
        changed[r * patch : (r + 1) * patch, c * patch : (c + 1) * patch] = rng.integers(0, 256, (patch, patch, 3))
        images.append(Image.fromarray(changed))
    pixels = processor.image_processor(images, return_tensors="pt")["pixel_values"]
    was_training = model.training
    model.eval()
    tokens = _tokens(model, pixels.to(next(model.parameters()).dtype)).float()  # [1 + P, N, D]
    model.train(was_training)
    if tokens.shape[1] != grid * grid:
        raise LIVRError(f"expected {grid * grid} image tokens, got {tokens.shape[1]}")
    rows, cols = np.divmod(np.arange(grid * grid), grid)
    n_rings = grid
    shares, means, own = np.zeros((len(probes), n_rings)), np.zeros((len(probes), n_rings)), []
    for p, (r, c) in enumerate(probes):
        move = (tokens[p + 1] - tokens[0]).norm(dim=-1).numpy()  # [N]
        ring = np.maximum(np.abs(rows - r), np.abs(cols - c))
        own.append(int(move.argmax()) == r * grid + c)
        total = move.sum() or 1.0
        for k in range(n_rings):
            if (ring == k).any():
                shares[p, k] = move[ring == k].sum() / total
                means[p, k] = move[ring == k].mean() / (move[r * grid + c] or 1.0)
    return PatchSpread(grid, patch, list(probes), own, shares.mean(0), means.mean(0))

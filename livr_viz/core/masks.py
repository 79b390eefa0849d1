"""Attention masks for the two LIVR stages, as float *additive* masks.

Why float and not bool: transformers 5 hands a 4D ``attention_mask`` to the
attention function unchanged, and eager attention *adds* it to the scores.  A
boolean mask then becomes +1/+0 and every "blocked" key stays visible (measured:
answer→image leakage under eager).  A float mask with 0 (allowed) and
``finfo(dtype).min`` (blocked) means the same thing to eager, sdpa and our
capture function.

Rules, for query row q and key column k of one sequence (``seg`` = segments):

* ``full`` (Stage 2, inference): allowed iff ``k <= q`` and ``seg[k] != PAD``.
* ``bottleneck`` (Stage 1): as ``full``, and additionally blocked where
  ``seg[q] in {TEXT, ANSWER}`` and ``seg[k] == IMAGE``.  LATENT rows still see
  IMAGE and TEXT keys, so image information reaches the answer only through the
  latents.  IMAGE rows are untouched (they are causal like everything else).
* ``block_latent_image=True`` (either stage) also blocks ``seg[q] == LATENT`` ×
  ``seg[k] == IMAGE``: the "blind" model used by leakage tests and ablations.
* ``image_bias`` (``full`` only; training's gradual opening of Stage 2): a bias ``b`` <= 0 added to the TEXT/ANSWER
  rows' IMAGE keys, which scales those keys' attention weights by ``e^b`` before the softmax renormalises (b = 0:
  ``full``; b = -inf: blocked, exactly ``bottleneck``).

The diagonal is always allowed (also for PAD rows) so that no row is fully
masked; PAD rows' outputs are never read.
"""

from __future__ import annotations

import math

import torch

from livr_viz.core.config import STAGES, check_one_of
from livr_viz.core.segments import Segment


def allowed_attention(segments: torch.Tensor, stage: str = "full", block_latent_image: bool = False) -> torch.Tensor:
    """Boolean ``[B, T, T]`` matrix, True where query row may attend to key column."""
    check_one_of("stage", stage, STAGES)
    if segments.dim() != 2:
        raise ValueError(f"segments must be [B, T], got shape {tuple(segments.shape)}")
    B, T = segments.shape
    device = segments.device
    causal = torch.ones(T, T, dtype=torch.bool, device=device).tril()  # [T, T]
    key_real = (segments != int(Segment.PAD)).unsqueeze(1)  # [B, 1, T]
    allowed = causal.unsqueeze(0) & key_real  # [B, T, T]

    key_image = (segments == int(Segment.IMAGE)).unsqueeze(1)  # [B, 1, T]
    blocked_rows = torch.zeros_like(segments, dtype=torch.bool)
    if stage == "bottleneck":
        blocked_rows |= (segments == int(Segment.TEXT)) | (segments == int(Segment.ANSWER))
    if block_latent_image:
        blocked_rows |= segments == int(Segment.LATENT)
    allowed &= ~(blocked_rows.unsqueeze(2) & key_image)
    allowed |= torch.eye(T, dtype=torch.bool, device=device).unsqueeze(0)
    return allowed


def attention_mask_4d(
    segments: torch.Tensor,
    stage: str = "full",
    block_latent_image: bool = False,
    dtype: torch.dtype = torch.float32,
    image_bias: float = 0.0,
) -> torch.Tensor:
    """Float additive mask ``[B, 1, T, T]``: 0 where allowed, ``finfo(dtype).min`` where blocked; ``image_bias`` < 0
    (stage ``full`` only) is added to the TEXT/ANSWER rows' IMAGE keys (see the module docstring)."""
    if not dtype.is_floating_point:
        raise ValueError(f"mask dtype must be floating point (a bool mask leaks under eager), got {dtype}")
    if math.isnan(image_bias) or image_bias > 0.0:
        raise ValueError(f"image_bias must be <= 0 (a share of the image, e^bias), got {image_bias!r}")
    if image_bias < 0.0 and stage != "full":
        raise ValueError(f"image_bias opens the full stage's text->image attention; stage {stage!r} takes none")
    if image_bias == -math.inf:
        stage = "bottleneck"  # a closed view is Stage 1's mask, exactly
    allowed = allowed_attention(segments, stage, block_latent_image)
    mask = torch.zeros(allowed.shape, dtype=dtype, device=segments.device)
    if -math.inf < image_bias < 0.0:
        text = (segments == int(Segment.TEXT)) | (segments == int(Segment.ANSWER))  # [B, T]
        opening = text.unsqueeze(2) & (segments == int(Segment.IMAGE)).unsqueeze(1) & allowed  # [B, T, T]
        mask.masked_fill_(opening, image_bias)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask.unsqueeze(1)

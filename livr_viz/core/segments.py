"""Segment labels: which part of a LIVR sequence each position belongs to.

A LIVR input reads ``image · prompt · latents · answer`` (plus template text and
padding).  Everything downstream — the Stage 1 mask, capture, heatmaps, probes —
is keyed on these labels, so they are computed in exactly one place, here, as a
pure function of tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum

import torch


class Segment(IntEnum):
    """Per-position label. Values are stable: they are saved in reports."""

    PAD = 0
    IMAGE = 1
    TEXT = 2  # prompt, chat template, system text, vision delimiters
    LATENT = 3
    ANSWER = 4


SEGMENT_NAMES = {s: s.name.lower() for s in Segment}


def segment_ids(
    input_ids: torch.Tensor,
    padding_mask: torch.Tensor | None,
    image_token_id: int | Sequence[int],
    latent_token_ids: Sequence[int],
    answer_start: torch.Tensor | Sequence[int] | None = None,
) -> torch.Tensor:
    """Label every position of a batch.

    Args:
        input_ids: ``[B, T]`` token ids.
        padding_mask: ``[B, T]``, 1 for real tokens and 0 for padding (any
            padding side); ``None`` means no padding.
        image_token_id: id(s) of the placeholder tokens the model replaces by
            image features (e.g. LLaVA ``<image>``, Qwen2-VL ``<|image_pad|>``).
        latent_token_ids: ids of the K latent tokens (empty for ``sft``).
        answer_start: ``[B]`` index of the first answer token per row, or
            ``None`` when the batch holds no answer (inference).  Every real
            token at or after it is ANSWER, whatever its id.

    Returns:
        ``[B, T]`` long tensor of :class:`Segment` values.
    """
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must be [B, T], got shape {tuple(input_ids.shape)}")
    B, T = input_ids.shape
    if padding_mask is None:
        padding_mask = torch.ones_like(input_ids)
    if padding_mask.shape != input_ids.shape:
        raise ValueError(f"padding_mask shape {tuple(padding_mask.shape)} != input_ids shape {(B, T)}")
    image_ids = torch.as_tensor(
        [image_token_id] if isinstance(image_token_id, int) else list(image_token_id), device=input_ids.device
    )
    latent_ids = torch.as_tensor(list(latent_token_ids), dtype=input_ids.dtype, device=input_ids.device)

    seg = torch.full_like(input_ids, int(Segment.TEXT))
    seg[torch.isin(input_ids, image_ids)] = int(Segment.IMAGE)
    if latent_ids.numel():
        seg[torch.isin(input_ids, latent_ids)] = int(Segment.LATENT)
    if answer_start is not None:
        start = torch.as_tensor(answer_start, device=input_ids.device).reshape(B, 1)
        positions = torch.arange(T, device=input_ids.device).unsqueeze(0)  # [1, T]
        seg[positions >= start] = int(Segment.ANSWER)
    seg[padding_mask == 0] = int(Segment.PAD)
    return seg


def segment_spans(segments_row: torch.Tensor, segment: Segment) -> torch.Tensor:
    """Positions ``[n]`` of one segment in a single ``[T]`` row."""
    return (segments_row == int(segment)).nonzero(as_tuple=True)[0]

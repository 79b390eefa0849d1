"""Mask builder properties: causality, padding, exactly the documented bottleneck rows/columns."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from livr_viz.core.masks import allowed_attention, attention_mask_4d
from livr_viz.core.segments import Segment, segment_ids

P, I, T, L, A = (int(s) for s in (Segment.PAD, Segment.IMAGE, Segment.TEXT, Segment.LATENT, Segment.ANSWER))


@st.composite
def segment_batches(draw):
    """Random LIVR layouts: text? image text latents answer, with left or right padding per row."""
    batch = draw(st.integers(1, 3))
    rows = []
    for _ in range(batch):
        parts = (
            [T] * draw(st.integers(0, 3))
            + [I] * draw(st.integers(1, 6))
            + [T] * draw(st.integers(1, 4))
            + [L] * draw(st.integers(0, 4))
            + [A] * draw(st.integers(0, 3))
        )
        rows.append(parts)
    width = max(map(len, rows)) + draw(st.integers(0, 3))
    out = []
    for parts in rows:
        pad = [P] * (width - len(parts))
        out.append(pad + parts if draw(st.booleans()) else parts + pad)
    return torch.tensor(out)


@settings(max_examples=150, deadline=None)
@given(segment_batches(), st.sampled_from(["full", "bottleneck"]), st.booleans())
def test_mask_properties(segs, stage, block_latent_image):
    allowed = allowed_attention(segs, stage, block_latent_image)
    B, T_ = segs.shape
    for b in range(B):
        for q in range(T_):
            for k in range(T_):
                if q == k:
                    expected = True  # the diagonal is always open: no fully masked row
                else:
                    expected = k < q and segs[b, k] != P
                    if segs[b, k] == I and (
                        (stage == "bottleneck" and segs[b, q] in (T, A)) or (block_latent_image and segs[b, q] == L)
                    ):
                        expected = False
                assert bool(allowed[b, q, k]) == expected, (b, q, k, segs[b].tolist())
    mask = attention_mask_4d(segs, stage, block_latent_image)
    assert mask.shape == (B, 1, T_, T_) and mask.dtype == torch.float32
    assert torch.equal(mask[:, 0] == 0, allowed)
    assert (mask[:, 0][~allowed] == torch.finfo(torch.float32).min).all()


def test_mask_by_hand():
    # positions: text, image, image, text, latent, answer
    segs = torch.tensor([[T, I, I, T, L, A]])
    expected = torch.tensor(
        [
            [1, 0, 0, 0, 0, 0],
            [1, 1, 0, 0, 0, 0],
            [1, 1, 1, 0, 0, 0],
            [1, 0, 0, 1, 0, 0],  # prompt text after the image: image keys blocked
            [1, 1, 1, 1, 1, 0],  # latent: sees image and prompt
            [1, 0, 0, 1, 1, 1],  # answer: sees text and latents, not the image
        ],
        dtype=torch.bool,
    )
    assert torch.equal(allowed_attention(segs, "bottleneck")[0], expected)
    full = torch.ones(6, 6, dtype=torch.bool).tril()
    assert torch.equal(allowed_attention(segs, "full")[0], full)
    blind = expected.clone()
    blind[4, 1:3] = False
    assert torch.equal(allowed_attention(segs, "bottleneck", block_latent_image=True)[0], blind)


def test_mask_rejects_bool_dtype_and_bad_stage():
    segs = torch.tensor([[T, I, T]])
    with pytest.raises(ValueError, match="bool mask leaks"):
        attention_mask_4d(segs, dtype=torch.bool)
    with pytest.raises(ValueError, match="stage"):
        attention_mask_4d(segs, stage="stage1")


def test_bf16_mask_uses_bf16_min():
    mask = attention_mask_4d(torch.tensor([[T, I, T, A]]), "bottleneck", dtype=torch.bfloat16)
    assert mask.dtype == torch.bfloat16 and mask.min() == torch.finfo(torch.bfloat16).min


def test_segment_ids_labels_every_kind():
    ids = torch.tensor([[5, 9, 9, 6, 100, 101, 7, 8, 0], [0, 0, 5, 9, 9, 6, 100, 101, 7]])
    pad = (torch.arange(9) < 8).long().unsqueeze(0).repeat(2, 1)
    pad[1] = torch.tensor([0, 0, 1, 1, 1, 1, 1, 1, 1])
    segs = segment_ids(ids, pad, image_token_id=9, latent_token_ids=[100, 101], answer_start=[6, 8])
    assert segs[0].tolist() == [T, I, I, T, L, L, A, A, P]
    assert segs[1].tolist() == [P, P, T, I, I, T, L, L, A]
    assert segment_ids(ids, pad, 9, [], None)[0].tolist() == [T, I, I, T, T, T, T, T, P]


def test_image_bias_scales_the_text_rows_image_weights_and_nothing_else():
    """A gradual Stage-2 opening: ``image_bias`` b lands on the TEXT/ANSWER rows' IMAGE keys only, so after the
    softmax those keys' weights are e^b times the open mask's before renormalising; -inf is Stage 1's mask exactly."""
    segs = torch.tensor([[T, I, I, T, L, A, P]])
    full, bottleneck = attention_mask_4d(segs, "full"), attention_mask_4d(segs, "bottleneck")
    assert torch.equal(attention_mask_4d(segs, "full", image_bias=-math.inf), bottleneck)
    assert torch.equal(attention_mask_4d(segs, "full", image_bias=0.0), full)
    half = attention_mask_4d(segs, "full", image_bias=math.log(0.5))[0, 0]
    biased = torch.zeros(7, 7, dtype=torch.bool)
    biased[3, 1:3] = biased[5, 1:3] = True  # text row 3 and answer row 5 × the two image keys; latent row 4 untouched
    assert torch.allclose(half[biased], torch.tensor(math.log(0.5)))
    assert torch.equal(half[~biased], full[0, 0][~biased])
    scores = torch.randn(7, 7)
    open_w, half_w = (torch.softmax(scores + m, -1) for m in (full[0, 0], half))
    row = 3  # unnormalised weights: image keys halved, the rest unchanged
    expected = open_w[row, :4].clone()
    expected[1:3] *= 0.5
    assert torch.allclose(half_w[row, :4], expected / expected.sum(), atol=1e-6)


def test_image_bias_is_checked():
    segs = torch.tensor([[T, I, T, A]])
    for bad in (0.5, math.nan):
        with pytest.raises(ValueError, match="image_bias must be <= 0"):
            attention_mask_4d(segs, "full", image_bias=bad)
    with pytest.raises(ValueError, match="stage 'bottleneck' takes none"):
        attention_mask_4d(segs, "bottleneck", image_bias=-3.0)

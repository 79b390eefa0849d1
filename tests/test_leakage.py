"""Leakage invariance of the Stage 1 bottleneck, in eager and sdpa, on the demo model and every family."""

import pytest
import torch

from livr_viz.core import masks as masks_module
from livr_viz.core.capture import install_capture
from livr_viz.core.model import LIVRModel
from livr_viz.core.segments import Segment
from livr_viz.demo.tiny import TINY_BUILDERS

from .conftest import random_image

IMPLS = ["eager", "sdpa"]


def _backbone(name):
    """``demo``: the shipped demo architecture (ViT tower); ``demo-spatial``: the same with the spatial reader."""
    if name in ("demo", "demo-spatial"):
        from livr_viz.demo.backbone import DemoBackboneConfig, build_demo_backbone

        return build_demo_backbone(DemoBackboneConfig(seed=3, tower="spatial" if name == "demo-spatial" else "vit"))
    return TINY_BUILDERS[name]()


def _wrap(name):
    model, processor = _backbone(name)
    return LIVRModel.from_backbone("test", model=model, processor=processor, n_latents=4)


# the spatial reader's full-size demo is the slowest to build and run: the quick tier (-m "not slow") leaves it out
FAMILIES = ["demo", pytest.param("demo-spatial", marks=pytest.mark.slow), "llava", "qwen2_vl", "qwen2_5_vl", "idefics3"]


@pytest.fixture(scope="module", params=FAMILIES)
def wrapped(request):
    return _wrap(request.param)


def _pair(lm):
    size = (96, 96) if lm.config.family == "llava" else (40, 56)
    prompts = ["How many red circles?", "Which point is darker? Choices: (A) A (B) B"]
    b1 = lm.build_inputs([random_image(1, size), random_image(1, size)], prompts, answers=["A", "B"])
    b2 = lm.build_inputs([random_image(2, size), random_image(2, size)], prompts, answers=["A", "B"])
    assert torch.equal(b1.segments, b2.segments)
    return b1, b2


def _states(lm, batch, stage, blind):
    with torch.no_grad():
        hidden = lm.hidden_states(batch, stage, blind).last_hidden_state
        logits = lm.answer_logits(batch, stage, blind)
    return hidden, logits


def _pair_states(lm, impl, stage, blind):
    """Two inputs that differ only in the image, under ``impl``: (batch, hidden / logits of one, of the other)."""
    install_capture(lm.base_model, impl)
    b1, b2 = _pair(lm)
    return b1, _states(lm, b1, stage, blind), _states(lm, b2, stage, blind)


@pytest.mark.parametrize("impl", IMPLS)
def test_bottleneck_with_blind_latents_makes_answer_independent_of_image(wrapped, impl):
    _, (_, l1), (_, l2) = _pair_states(wrapped, impl, "bottleneck", True)
    assert torch.allclose(l1, l2, atol=1e-5), (l1 - l2).abs().max()


@pytest.mark.parametrize("impl", IMPLS)
def test_bottleneck_text_invariant_latents_see_image(wrapped, impl):
    b1, (h1, _), (h2, _) = _pair_states(wrapped, impl, "bottleneck", False)
    seg = b1.segments
    diff = (h1 - h2).abs()
    positions = torch.arange(seg.shape[1]).expand_as(seg)
    first_latent = (seg == int(Segment.LATENT)).int().argmax(1, keepdim=True)
    # prompt text before the latents never sees the image; the template text after them (Q' = Q + L) may, but only
    # through the latents (test_bottleneck_with_blind_latents_makes_answer_independent_of_image)
    assert diff[(seg == int(Segment.TEXT)) & (positions < first_latent)].max() < 1e-5
    assert diff[seg == int(Segment.LATENT)].max() > 1e-3
    # ...and the answer depends on the image only through the latents
    assert diff[seg == int(Segment.ANSWER)].max() > 1e-4


@pytest.mark.parametrize("impl", IMPLS)
def test_full_stage_answer_sees_image(wrapped, impl):
    _, (_, l1), (_, l2) = _pair_states(wrapped, impl, "full", False)
    assert (l1 - l2).abs().max() > 1e-4


def test_a_boolean_mask_would_leak_in_eager_and_the_test_catches_it(monkeypatch):
    """The measured transformers-5 gotcha: eager *adds* a bool mask. Our invariance check must fail then."""
    lm = _wrap("llava")

    def bool_mask(segments, stage="full", block_latent_image=False, dtype=torch.float32, image_bias=0.0):
        return masks_module.allowed_attention(segments, stage, block_latent_image).unsqueeze(1)

    monkeypatch.setattr("livr_viz.core.model.attention_mask_4d", bool_mask)
    _, (_, l1), (_, l2) = _pair_states(lm, "eager", "bottleneck", True)
    assert (l1 - l2).abs().max() > 1e-5, "a boolean mask did not leak: the leakage tests would be toothless"


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("family", [f for f in FAMILIES if f != "qwen2_5_vl"])
def test_latents_at_the_end_of_the_prompt_keep_the_bottleneck(family, impl):
    """``latent_placement="end_of_prompt"``: the template's assistant marker (a blocked TEXT row) reads out."""
    model, processor = _backbone(family)
    lm = LIVRModel.from_backbone(
        "test", model=model, processor=processor, n_latents=4, latent_placement="end_of_prompt"
    )
    install_capture(lm.base_model, impl)
    b1, b2 = _pair(lm)
    for row in range(2):
        seg = b1.segments[row]
        last_latent = int((seg == int(Segment.LATENT)).nonzero().max())
        readout = int(b1.answer_start[row]) - 1
        assert last_latent < readout and seg[readout] == int(Segment.TEXT)
    _, l1 = _states(lm, b1, "bottleneck", True)
    _, l2 = _states(lm, b2, "bottleneck", True)
    assert torch.allclose(l1, l2, atol=1e-5), (l1 - l2).abs().max()  # blind latents: nothing reaches the answer
    _, l1 = _states(lm, b1, "bottleneck", False)
    _, l2 = _states(lm, b2, "bottleneck", False)
    assert (l1 - l2).abs().max() > 1e-4  # through the latents it does


def test_bad_latent_placement_is_a_clear_error():
    from livr_viz.core.errors import LIVRError
    from livr_viz.core.model import LIVRConfig

    with pytest.raises(LIVRError, match="latent_placement must be one of end_of_prompt, before_answer"):
        LIVRConfig(latent_placement="first")

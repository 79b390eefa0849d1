"""Row capture equals output_attentions (eager) on a saved checkpoint and every family; hooks are scoped."""

import numpy as np
import pytest
import torch

from livr_viz.core.capture import _ACTIVE, CAPTURE_PREFIX, CaptureResult, LatentAttention, install_capture
from livr_viz.core.model import LIVRModel
from livr_viz.demo.tiny import TINY_BUILDERS

from .conftest import random_image


def _reference_rows(lm, batch, stage, rows):
    install_capture(lm.base_model, "eager")
    impl = {k: ("eager" if k == "text_config" else "sdpa") for k in list(lm.base_model.config.sub_configs) + [""]}
    lm.base_model.set_attn_implementation(impl)
    try:
        with torch.no_grad():
            full = torch.stack(lm.hidden_states(batch, stage, output_attentions=True).attentions)  # [L, B, H, T, T]
    finally:
        install_capture(lm.base_model, "sdpa")
    return torch.stack([full[:, b][:, :, rows[b]] for b in range(rows.shape[0])], 1)


@pytest.mark.parametrize("name", ["checkpoint", *sorted(TINY_BUILDERS)])
@pytest.mark.parametrize("stage", ["full", "bottleneck"])
def test_capture_matches_output_attentions(name, stage, tiny_paths):
    if name == "checkpoint":
        from livr_viz.core.model import load_model

        lm, size = load_model(tiny_paths["livr"]), (96, 96)
    else:
        model, processor = TINY_BUILDERS[name]()
        lm, size = LIVRModel.from_backbone("x", model=model, processor=processor, n_latents=4), (40, 56)
    batch = lm.build_inputs([random_image(1, size), random_image(2, size)], ["How many?", "Which one is darker?"])
    install_capture(lm.base_model, "eager")  # same kernel as the reference upstream of every layer
    result = LatentAttention(lm).run(batch, stage)
    install_capture(lm.base_model, "sdpa")
    result_sdpa = LatentAttention(lm).run(batch, stage)
    reference = _reference_rows(lm, batch, stage, result.rows)
    assert result.attention.shape == reference.shape
    assert (result.attention - reference).abs().max() < 1e-5
    # under sdpa the earlier layers' outputs differ from eager by float rounding only
    assert (result_sdpa.attention - reference).abs().max() < 1e-4
    with torch.no_grad():  # capture does not change the model's output
        plain = lm.answer_logits(batch, stage)
    assert torch.allclose(plain.float(), result.answer_logits, atol=1e-5)


def test_no_recorder_left_after_an_exception():
    model, processor = TINY_BUILDERS["llava"]()
    lm = LIVRModel.from_backbone("x", model=model, processor=processor, n_latents=2)
    batch = lm.build_inputs([random_image(0)], ["hi"])
    batch.inputs["pixel_values"] = batch.inputs["pixel_values"][:, :2]  # wrong channel count: forward raises
    with pytest.raises(RuntimeError):  # the convolution's channel mismatch
        LatentAttention(lm).run(batch)
    assert _ACTIVE.get() is None
    assert lm.base_model.config.get_text_config()._attn_implementation.startswith(CAPTURE_PREFIX)


def test_capture_result_round_trips_through_npz(tmp_path):
    model, processor = TINY_BUILDERS["qwen2_vl"]()
    lm = LIVRModel.from_backbone("x", model=model, processor=processor, n_latents=3)
    result = LatentAttention(lm).run(lm.build_inputs([random_image(0)], ["hi"]))
    result.save(tmp_path / "cap")
    again = CaptureResult.load(tmp_path / "cap")
    assert torch.equal(again.attention, result.attention) and again.row_segment == "latent"
    assert np.allclose(
        sum(again.segment_attention(0)[k][0] for k in ("image", "text", "latent", "answer")), 1.0, atol=1e-5
    )

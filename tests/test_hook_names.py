"""The capture points the capture module's docstring names exist: a CaptureResult is indexed by them."""

import pytest
import torch
from PIL import Image

from livr_viz.core.capture import LatentAttention
from livr_viz.core.model import LIVRModel
from livr_viz.demo.tiny import tiny_llava


def test_named_capture_points_index_the_result():
    model, processor = tiny_llava()
    lm = LIVRModel.from_backbone("tiny-llava", variant="livr", n_latents=4, model=model, processor=processor)
    batch = lm.build_inputs([Image.new("RGB", (32, 32), (200, 30, 30))], ["How many red squares?"])
    result = LatentAttention(lm).run(batch)
    L = result.n_layers
    assert result.names()[0] == "embed" and len(result.names()) == 1 + 2 * L
    assert torch.equal(result["layers.1.attn.rows"], result.attention[1])
    assert result["layers.1.attn.rows"].shape[2] == 4  # [batch, head, row = the 4 latents, key]
    assert torch.equal(result[f"layers.{L - 1}.resid_post"], result.hidden_states[L])
    assert torch.equal(result["embed"], result.hidden_states[0])
    with pytest.raises(KeyError, match="no capture point"):
        result[f"layers.{L}.attn.rows"]

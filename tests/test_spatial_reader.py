"""The spatial reader (a conv stem with global attention layers) as a LLaVA vision tower: it loads like a stock
tower, keeps a patch-aligned token grid, and its stem's receptive field is what the docs say.

The Stage-1 placement invariant on this tower (eager and sdpa) lives with the others in test_leakage.py."""

import numpy as np
import pytest
import torch
from PIL import Image

from livr_viz.core.model import LIVRModel, load_backbone
from livr_viz.core.spatial_reader import SpatialReaderConfig, SpatialReaderModel, stem_receptive_field
from livr_viz.data import make_sample
from livr_viz.demo.backbone import DemoBackboneConfig, build_demo_backbone, save_demo_backbone
from livr_viz.methods.patch_spread import patch_spread


@pytest.fixture(scope="module")
def spatial():
    return build_demo_backbone(DemoBackboneConfig(tower="spatial", seed=0))


def test_bad_geometry_is_a_clear_error():
    with pytest.raises(ValueError, match="must multiply to patch_size"):
        SpatialReaderConfig(patch_size=12, strides=(2, 2, 2))
    from livr_viz.core.errors import LIVRError

    with pytest.raises(LIVRError, match="tower must be one of vit, spatial"):
        DemoBackboneConfig(tower="cnn")


def test_saves_and_loads_offline_as_a_llava_tower(spatial, tmp_path):
    model, processor = spatial
    save_demo_backbone(tmp_path, DemoBackboneConfig(tower="spatial", seed=0), model, processor)
    loaded, loaded_processor = load_backbone(str(tmp_path))
    assert isinstance(loaded.model.vision_tower, SpatialReaderModel)
    sample = make_sample("visual_similarity", "test", 2026, 0)
    plain = LIVRModel.from_backbone("t", model=loaded, processor=loaded_processor, variant="sft").build_inputs(
        [sample.image], [sample.prompt]
    )
    with torch.no_grad():
        assert torch.allclose(model(**plain.inputs).logits, loaded(**plain.inputs).logits, atol=1e-5)
    loaded, loaded_processor = load_backbone(str(tmp_path))
    lm = LIVRModel.from_backbone("t", model=loaded, processor=loaded_processor, n_latents=4)
    batch = lm.build_inputs([sample.image], [sample.prompt])
    assert int((batch.input_ids == loaded.config.image_token_index).sum()) == 64  # 8 x 8, no CLS
    assert lm.family.patch_grid(loaded, batch.inputs, 0) == (8, 8)


def test_a_change_in_one_patch_moves_that_patch_token_most(spatial):
    model, processor = spatial
    spread = patch_spread(model, processor, make_sample("jigsaw", "test", 2026, 0).image)
    assert all(spread.own_token_moves_most), spread.summary()
    assert spread.ring_share[:2].sum() > 0.4  # measured 0.60 at seed 0 (README: "How patch-aligned are the tokens")


def test_the_stem_receptive_field_is_exact():
    """Before the global attention layers, a token depends on exactly the pixels stem_receptive_field names."""
    config = SpatialReaderConfig(num_hidden_layers=1)
    tower = SpatialReaderModel(config).eval()
    rf = stem_receptive_field(config)
    assert rf == 38  # 12-px patch + 13 px each side
    base = torch.zeros(1, 3, 96, 96)
    changed = base.clone()
    changed[..., 48:49, 48:49] = 1.0  # one pixel, the top-left pixel of patch (4, 4)
    with torch.no_grad():
        a = tower(base).hidden_states[0][0]
        b = tower(changed).hidden_states[0][0]
    moved = ((a - b).abs().amax(-1) > 0).reshape(8, 8).numpy()
    # token (i, j) covers pixels 12 i - 13 .. 12 i + 24 (its patch and 13 px each side): pixel 48 for i = 2 .. 5
    assert np.flatnonzero(moved.any(1)).tolist() == [2, 3, 4, 5]
    assert np.flatnonzero(moved.any(0)).tolist() == [2, 3, 4, 5]
    assert moved[2:6, 2:6].all()


def test_every_token_sees_every_patch_after_the_attention_layers(spatial):
    """The late layers span the panels: a reference panel's change reaches the candidates' tokens."""
    model, _ = spatial
    tower = model.model.vision_tower
    base = torch.zeros(1, 3, 96, 96)
    changed = base.clone()
    changed[..., :12, :12] = 1.0
    with torch.no_grad():
        moved = (tower(base).hidden_states[-1] - tower(changed).hidden_states[-1]).abs().amax(-1)[0]
    assert bool((moved > 0).all())


def test_a_photo_of_another_size_is_resized_to_the_grid(spatial):
    model, processor = spatial
    lm = LIVRModel.from_backbone("t", model=model, processor=processor, n_latents=2)
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (50, 130, 3), dtype=np.uint8))
    batch = lm.build_inputs([photo], ["What is in this picture?"])
    assert int((batch.input_ids == model.config.image_token_index).sum()) == 64

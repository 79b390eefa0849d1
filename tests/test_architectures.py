"""Every supported family, as a tiny random config built here: segments, LoRA targets, save/load."""

import pytest
import torch

from livr_viz.core.model import LIVRModel, load_model
from livr_viz.core.segments import Segment
from livr_viz.demo.tiny import TINY_BUILDERS

from .conftest import random_image


@pytest.fixture(scope="module", params=sorted(TINY_BUILDERS))
def backbone_dir(request, tmp_path_factory):
    model, processor = TINY_BUILDERS[request.param]()
    path = tmp_path_factory.mktemp(request.param) / "base"
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return request.param, path


def test_segments_match_the_processor(backbone_dir):
    name, path = backbone_dir
    lm = LIVRModel.from_backbone(str(path), n_latents=5)
    batch = lm.build_inputs(
        [random_image(1), random_image(2, (64, 48))], ["What is this?", "Count them."], answers=["A", "BC"]
    )
    seg = batch.segments
    image_id = lm.image_token_id
    assert torch.equal(seg == int(Segment.IMAGE), (batch.input_ids == image_id) & (batch.padding_mask == 1))
    assert ((seg == int(Segment.LATENT)).sum(1) == 5).all()
    assert torch.equal(seg == int(Segment.PAD), batch.padding_mask == 0)
    for b in range(2):
        row = seg[b]
        latents = (row == int(Segment.LATENT)).nonzero().flatten()
        answer = (row == int(Segment.ANSWER)).nonzero().flatten()
        image = (row == int(Segment.IMAGE)).nonzero().flatten()
        # order: image · prompt · latents · template text (the assistant marker) · answer: the latents end the
        # user turn (Q' = Q + L) and a TEXT row predicts the first answer token
        assert image.max() < latents.min() and latents.max() + 1 < answer.min()
        assert (row[latents.max() + 1 : answer.min()] == int(Segment.TEXT)).all()
        assert torch.equal(latents, torch.arange(latents.min(), latents.max() + 1))
        assert batch.labels[b][answer].tolist() == batch.input_ids[b][answer].tolist()
    assert (batch.labels[seg != int(Segment.ANSWER)] == -100).all()


def test_lora_targets_only_the_language_model(backbone_dir):
    name, path = backbone_dir
    lm = LIVRModel.from_backbone(str(path), n_latents=3)
    trainable = [n for n, p in lm.model.named_parameters() if p.requires_grad]
    lora = [n for n in trainable if "lora_" in n]
    assert lora, "no LoRA parameters were created"
    lm_prefix = lm.family.lm_prefix
    assert all(f"{lm_prefix}." in n for n in lora), [n for n in lora if f"{lm_prefix}." not in n][:3]
    leaves = {n.split(".lora_")[0].split(".")[-1] for n in lora}
    assert {"q_proj", "k_proj", "v_proj", "o_proj"} <= leaves
    others = [n for n in trainable if "lora_" not in n]
    assert others and all("trainable_tokens" in n for n in others), others
    assert not any(("vision" in n or "visual" in n) for n in trainable)


@pytest.mark.parametrize("freeze_vision", [False, True])
def test_full_parameter_mode_can_freeze_the_vision_encoder(backbone_dir, freeze_vision):
    name, path = backbone_dir
    lm = LIVRModel.from_backbone(str(path), variant="sft", lora=False, freeze_vision=freeze_vision)
    tower = {id(p) for p in lm.family.vision_encoder_parameters(lm.model)}
    assert tower, f"{name}: no vision encoder found"
    trainable = {id(p) for p in lm.model.parameters() if p.requires_grad}
    assert not (tower & trainable) if freeze_vision else (tower <= trainable)
    language = {id(p) for p in lm.family.language_model(lm.model).parameters()}
    assert language <= trainable  # the language model (and the projector) always train in this mode
    projector = [p for n, p in lm.model.named_parameters() if "projector" in n or "connector" in n or "merger" in n]
    assert projector and all(p.requires_grad for p in projector)


def test_save_load_round_trip_gives_identical_logits(backbone_dir, tmp_path):
    name, path = backbone_dir
    lm = LIVRModel.from_backbone(str(path), n_latents=4, variant="livr")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in lm.model.parameters():
            if p.requires_grad:  # pretend training happened: LoRA B and latent deltas move off zero
                p.add_(torch.randn(p.shape, generator=generator) * 0.05)
    images, prompts = [random_image(3), random_image(4)], ["What is this?", "Is it red?"]
    batch = lm.build_inputs(images, prompts)
    with torch.no_grad():
        before = lm.forward(batch).logits
    lm.save(tmp_path / "ckpt")
    assert {"adapter_model.safetensors", "adapter_config.json", "latents.safetensors", "livr_config.json"} <= {
        p.name for p in (tmp_path / "ckpt").iterdir()
    }
    again = load_model(str(tmp_path / "ckpt"))
    with torch.no_grad():
        after = again.forward(again.build_inputs(images, prompts)).logits
    assert torch.equal(before, after)
    assert torch.equal(lm.latent_embeddings(), again.latent_embeddings())


@pytest.mark.parametrize("variant", ["sft", "latents_only"])
def test_variants_on_llava(variant, tmp_path):
    model, processor = TINY_BUILDERS["llava"]()
    lm = LIVRModel.from_backbone("x", model=model, processor=processor, variant=variant, n_latents=6)
    batch = lm.build_inputs([random_image(0)], ["hi"], answers=["A"])
    expected = 0 if variant == "sft" else 6
    assert int((batch.segments == int(Segment.LATENT)).sum()) == expected
    assert lm.config.stage1_fraction == 0.0


@pytest.mark.parametrize("name", ["llava", "qwen2_vl", "qwen2_5_vl"])
def test_patch_grid_covers_every_image_token(name):
    model, processor = TINY_BUILDERS[name]()
    lm = LIVRModel.from_backbone("x", model=model, processor=processor, n_latents=2)
    batch = lm.build_inputs([random_image(0, (56, 84)), random_image(1, (40, 40))], ["a", "b"])
    for b in range(2):
        rows, cols = lm.family.patch_grid(lm.base_model, batch.inputs, b)
        assert rows * cols == int((batch.segments[b] == int(Segment.IMAGE)).sum())
    if name != "llava":  # dynamic grid: the tall image (56 wide, 84 high) gets more rows than columns
        rows, cols = lm.family.patch_grid(lm.base_model, batch.inputs, 0)
        assert rows > cols


def test_unsupported_layout_is_a_clear_error():
    from livr_viz.core.errors import LIVRError

    model, processor = TINY_BUILDERS["idefics3"]()
    lm = LIVRModel.from_backbone("x", model=model, processor=processor, n_latents=2)
    batch = lm.build_inputs([random_image(0)], ["a"])
    with pytest.raises(LIVRError, match="not supported yet"):
        lm.family.patch_grid(lm.base_model, batch.inputs, 0)

"""Stage-0 vision pretraining: pixel-exact patch labels, only the tower changes, clear errors."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from livr_viz.core.errors import LIVRError
from livr_viz.data import draw as D
from livr_viz.data.perception import make_perception_sample
from livr_viz.training.trainer import TrainConfig, build_datasets
from livr_viz.training.vision_pretrain import (
    VisionPretrainConfig,
    draw_glyphs,
    glyph_labels,
    image_stream,
    patch_targets,
    pretrain_vision,
)


def test_patch_labels_come_from_the_pixels():
    img = Image.new("RGB", (96, 96), D.BACKGROUND)
    img.paste(D.PALETTE["blue"], (24, 36, 48, 48))  # exactly patches (row 3, cols 2-3)
    img.paste((0, 0, 0), (84, 0, 96, 12))  # a black patch, top right
    t = patch_targets(img, 8, {"kind": "shape", "shape": "square", "colour": "blue"})
    colour = t["colour"].reshape(8, 8)
    blue = 2 + list(D.PALETTE).index("blue")
    assert colour[3, 2] == colour[3, 3] == blue and colour[0, 7] == 1
    assert (colour == blue).sum() == 2 and (colour == 1).sum() == 1 and (colour == 0).sum() == 61
    shape = t["shape"].reshape(8, 8)
    assert shape[3, 2] == D.SHAPES.index("square") and (shape >= 0).sum() == 2  # only on the coloured object
    lum = t["luminance"].reshape(8, 8, 4, 4)
    assert lum[0, 7].max() == 0.0 and lum[0, 0].min() == pytest.approx(np.mean(D.BACKGROUND) / 255)


def test_patch_labels_of_a_generated_question_cover_its_object():
    s = make_perception_sample("shape", "train", 0, 3)
    t = patch_targets(s.image, 8, s.concepts)
    assert (t["shape"] == D.SHAPES.index(s.concepts["shape"])).sum() >= 2
    no_shape = patch_targets(make_perception_sample("count", "train", 0, 3).image, 8, {"kind": "count"})
    assert (no_shape["shape"] < 0).all()  # several objects: no shape label


def test_glyph_labels_mark_the_patch_holding_each_letter():
    img = Image.new("RGB", (96, 96), D.BACKGROUND)
    ink, letters = draw_glyphs(img, np.random.default_rng(3), 3)
    assert len(letters) == 3 and ink.max() <= 3
    drawn = np.asarray(img.convert("RGB")) != np.array(D.BACKGROUND)
    assert not (ink > 0)[~drawn.any(-1)].any()  # ink only where pixels changed
    labels = glyph_labels(ink, letters, 8)
    visible = [i for i in range(3) if (ink == i + 1).sum() >= 4]
    assert sorted(labels[labels > 0] - 1) == sorted(letters[i] for i in visible)
    for i in visible:  # the labelled patch holds more of the letter than any other patch
        per_patch = (ink == i + 1).reshape(8, 12, 8, 12).sum((1, 3)).ravel()
        assert labels[per_patch.argmax()] == 1 + letters[i]
    inked = (ink.reshape(8, 12, 8, 12) > 0).any((1, 3)).ravel()
    assert (labels[~inked] == 0).all()  # no ink: "no letter"
    assert ((labels[inked] == -100) | (labels[inked] > 0)).all()  # fragments: ignored
    t = patch_targets(img, 8, {"kind": "colour"}, (ink, letters))
    assert (t["glyph"] == labels).all()
    assert (patch_targets(img, 8, {"kind": "colour"})["glyph"] == -100).all()  # no glyph map: unknown


def test_image_stream_draws_letters_only_on_letter_free_images():
    from livr_viz.data.perception import LETTER_FREE

    plain = image_stream(0, 96)
    assert all(next(plain)[2] is None for _ in range(20))  # letters are opt-in
    stream = image_stream(0, 96, letters=True)
    seen = 0
    for _ in range(60):
        image, concepts, glyphs = next(stream)
        kind = concepts.get("kind")
        if glyphs is not None:
            assert kind in LETTER_FREE + ("glyphs",)
            seen += len(glyphs[1])
        else:
            assert kind not in LETTER_FREE
    assert seen > 0


def test_patch_labels_reject_images_that_do_not_tile():
    with pytest.raises(LIVRError, match="square image"):
        patch_targets(Image.new("RGB", (96, 80)), 8)
    with pytest.raises(LIVRError, match="square image"):
        patch_targets(Image.new("RGB", (90, 90)), 8)


def test_only_the_vision_tower_changes(tmp_path):
    from livr_viz.demo.backbone import DemoBackboneConfig, save_demo_backbone

    init = save_demo_backbone(tmp_path / "init", DemoBackboneConfig(seed=0))
    cfg = VisionPretrainConfig(steps=3, batch_size=4, warmup_steps=1, log_every=1)
    metrics = pretrain_vision(init, cfg, tmp_path / "vision", progress=False, log=lambda *a: None)
    assert {"loss_colour", "loss_luminance", "loss_position", "acc_colour"} <= set(metrics)
    before = load_file(init / "model.safetensors")
    after = load_file(tmp_path / "vision" / "model" / "model.safetensors")
    assert before.keys() == after.keys()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all("vision_tower" in k for k in changed)
    assert any("encoder.layers.0" in k for k in changed)
    log = [json.loads(line) for line in (tmp_path / "vision" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3]
    from livr_viz.core.model import LIVRModel

    LIVRModel.from_backbone(str(tmp_path / "vision" / "model"), variant="sft")  # loads as a backbone


@pytest.mark.slow
def test_letter_reading_adds_the_glyph_losses(tmp_path):
    from livr_viz.demo.backbone import DemoBackboneConfig, save_demo_backbone

    init = save_demo_backbone(tmp_path / "init", DemoBackboneConfig(seed=0))
    cfg = VisionPretrainConfig(steps=2, batch_size=6, warmup_steps=1, log_every=1, letters=True)
    metrics = pretrain_vision(init, cfg, tmp_path / "vision", progress=False, log=lambda *a: None)
    assert {"loss_glyph", "loss_letter", "acc_glyph"} <= set(metrics) and 0 <= metrics["acc_glyph"] <= 1
    assert json.loads((tmp_path / "vision" / "vision_config.json").read_text())["letters"] is True


def test_present_labels_see_a_ring_on_a_shape():
    img = Image.new("RGB", (96, 96), D.BACKGROUND)
    img.paste(D.PALETTE["purple"], (0, 0, 12, 12))  # a shape filling patch (0, 0)
    img.paste(D.PALETTE["red"], (2, 2, 6, 6))  # a small red ring on it: 16 px of 144, not the majority
    t = patch_targets(img, 8)
    names = list(D.PALETTE)
    assert t["colour"][0] == 2 + names.index("purple")  # the majority head sees the shape only
    assert {names[i] for i in np.flatnonzero(t["present"][0])} == {"purple", "red"}
    assert t["present"][1:].sum() == 0


@pytest.mark.slow
def test_marker_images_and_the_present_head(tmp_path):
    from livr_viz.data.perception import WORD_CURRICULUM
    from livr_viz.demo.backbone import DemoBackboneConfig, save_demo_backbone

    stream = image_stream(0, 96, markers=True)
    kinds = [next(stream)[1].get("kind") for _ in range(2 * len(WORD_CURRICULUM))][::2]
    assert kinds == list(WORD_CURRICULUM)  # the word curriculum, alternating with the tasks in the word format
    with pytest.raises(LIVRError, match="exclusive"):
        VisionPretrainConfig(letters=True, markers=True)
    init = save_demo_backbone(tmp_path / "init", DemoBackboneConfig(seed=0))
    cfg = VisionPretrainConfig(steps=2, batch_size=8, warmup_steps=1, log_every=1, markers=True)
    metrics = pretrain_vision(init, cfg, tmp_path / "vision", progress=False, log=lambda *a: None)
    assert "loss_present" in metrics and 0 <= metrics["acc_present_mixed"] <= 1
    cfg = VisionPretrainConfig(steps=1, batch_size=4, warmup_steps=1, log_every=1)
    plain = pretrain_vision(init, cfg, tmp_path / "plain", progress=False, log=lambda *a: None)
    assert "loss_present" not in plain  # opt-in: the default stage 0 is unchanged


def test_compare_targets_are_the_answers_in_a_fixed_option_order():
    """The compare head predicts an option index, which only means something when a task's options always come in
    one order; counting (shuffled numbers) predicts the count instead."""
    from livr_viz.data import make_sample, task_names
    from livr_viz.training.vision_pretrain import compare_class

    for task in task_names():
        samples = [make_sample(task, "train", 0, i) for i in range(40)]
        if task == "counting":
            assert len({tuple(s.choices) for s in samples}) > 1
            assert all(s.choices[s.letters.index(s.answer)] == str(compare_class(s.concepts, 0)) for s in samples)
        else:
            assert len({tuple(s.choices) for s in samples}) == 1, task
    stream = image_stream(0, 96, compare=True)
    task_items = [c for _, c, _ in (next(stream) for _ in range(18)) if "task" in c]
    assert len(task_items) == 9 and all("compare_class" in c for c in task_items)


def test_the_spatial_reader_pretrains_with_the_compare_heads(tmp_path):
    from livr_viz.demo.backbone import DemoBackboneConfig, save_demo_backbone

    init = save_demo_backbone(tmp_path / "init", DemoBackboneConfig(seed=0, tower="spatial"))
    cfg = VisionPretrainConfig(steps=2, batch_size=18, warmup_steps=1, log_every=1, compare=True, markers=True)
    metrics = pretrain_vision(init, cfg, tmp_path / "vision", progress=False, log=lambda *a: None)
    assert "loss_compare" in metrics and 0 <= metrics["acc_compare"] <= 1 and "loss_present" in metrics
    before = load_file(init / "model.safetensors")
    after = load_file(tmp_path / "vision" / "model" / "model.safetensors")
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all("vision_tower" in k for k in changed)
    assert any("stem" in k for k in changed) and any("layers.0" in k for k in changed)


@pytest.mark.slow
def test_a_killed_stage_0_resumes_bit_for_bit(tmp_path, monkeypatch):
    """Stage 0 killed after its step-2 checkpoint and started again ends with exactly the weights of one unbroken
    run (tower, heads, optimizer, data position and the letters' generator all restored)."""
    from livr_viz.demo.backbone import DemoBackboneConfig, save_demo_backbone
    from livr_viz.training import vision_pretrain as vp

    init = save_demo_backbone(tmp_path / "init", DemoBackboneConfig(seed=0, tower="spatial"))
    cfg = VisionPretrainConfig(
        steps=4, batch_size=6, warmup_steps=1, log_every=1, checkpoint_every=2, compare=True, markers=True
    )
    quiet = dict(progress=False, log=lambda *a: None)
    pretrain_vision(init, cfg, tmp_path / "straight", **quiet)

    calls, real = [0], vp.patch_targets

    def dies_in_step_3(*args, **kwargs):
        calls[0] += 1
        if calls[0] > 2 * cfg.batch_size:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(vp, "patch_targets", dies_in_step_3)
    with pytest.raises(KeyboardInterrupt):
        pretrain_vision(init, cfg, tmp_path / "broken", **quiet)
    assert (tmp_path / "broken" / "checkpoint").is_dir() and not (tmp_path / "broken" / "model").exists()
    monkeypatch.setattr(vp, "patch_targets", real)
    pretrain_vision(init, cfg, tmp_path / "broken", **quiet)
    a = load_file(tmp_path / "straight" / "model" / "model.safetensors")
    b = load_file(tmp_path / "broken" / "model" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not (tmp_path / "broken" / "checkpoint").exists()
    steps = [json.loads(line)["step"] for line in (tmp_path / "broken" / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    with pytest.raises(LIVRError, match="other settings"):
        (tmp_path / "other" / "checkpoint").mkdir(parents=True)
        (tmp_path / "other" / "vision_config.json").write_text("{}")
        torch.save({}, tmp_path / "other" / "checkpoint" / "state.pt")
        pretrain_vision(init, cfg, tmp_path / "other", **quiet)


def test_non_llava_backbones_are_refused(tmp_path):
    from livr_viz.demo.tiny import tiny_qwen2_vl

    model, processor = tiny_qwen2_vl()
    model.save_pretrained(tmp_path / "qwen")
    processor.save_pretrained(tmp_path / "qwen")
    with pytest.raises(LIVRError, match="LLaVA-family"):
        pretrain_vision(tmp_path / "qwen", VisionPretrainConfig(steps=1), tmp_path / "out", progress=False)
    with pytest.raises(LIVRError, match="steps"):
        VisionPretrainConfig(steps=0)


def test_perception_kind_subsets():
    train, val = build_datasets(TrainConfig(variant="sft", tasks="perception:colour,count", n_val_per_task=3))
    assert {train[i].task for i in range(8)} == {"perception_colour", "perception_count"} and len(val) == 6
    with pytest.raises(LIVRError, match="unknown perception kind"):
        TrainConfig(variant="sft", tasks="perception:colour,smell")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["pretrain-vision", "--model", "/no/such/dir", "--out", "x"], "backbone directory"),
        (["pretrain", "--model", "demo", "--tasks", "perception:smell", "--out", "x"], "unknown perception kind"),
    ],
)
def test_cli_pretraining_errors_are_one_line(argv, message, capsys, tmp_path, monkeypatch):
    from livr_viz.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err

"""The demo suite's two answer formats and the paper's latent placement (Q' = Q + L).

* Placement invariant: with the default placement, in Stage 1 no row that predicts an answer token (positions
  ``answer_start - 1 … end - 1``) has any attention to an image key: demo model and the four tiny architectures,
  eager and sdpa; and ``run_analysis(..., "bottleneck")`` reports exactly 0 for the answer row → image.
* Answer-format round trip, both formats: sample → prompt → target → labels → scoring.
"""

import numpy as np
import pytest
import torch

from livr_viz.core.capture import LatentAttention, install_capture
from livr_viz.core.model import LIVRConfig, LIVRModel
from livr_viz.core.segments import Segment
from livr_viz.data import draw as D
from livr_viz.data import make_sample, task_names
from livr_viz.data.tasks import LETTERS, MARKER_WORDS, format_prompt
from livr_viz.demo.tiny import TINY_BUILDERS
from livr_viz.methods.analysis import parse_choices, run_analysis
from livr_viz.training.evaluate import predict

from .conftest import random_image

FAMILIES = ["demo", "llava", "qwen2_vl", "qwen2_5_vl", "idefics3"]


def _wrap(family: str) -> LIVRModel:
    if family == "demo":
        from livr_viz.demo.backbone import DemoBackboneConfig, build_demo_backbone

        model, processor = build_demo_backbone(DemoBackboneConfig(seed=3))
    else:
        model, processor = TINY_BUILDERS[family]()
    return LIVRModel.from_backbone("test", model=model, processor=processor, n_latents=4)  # default placement


def test_default_placement_is_the_papers():
    assert LIVRConfig().latent_placement == "end_of_prompt"
    assert LIVRConfig().answer_format == "word"
    # a model saved before these fields existed keeps what it was trained with
    old = LIVRConfig.from_json('{"variant": "livr", "n_latents": 4}')
    assert (old.latent_placement, old.answer_format) == ("before_answer", "letter")


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
@pytest.mark.parametrize("family", FAMILIES)
def test_stage1_answer_predicting_rows_never_attend_to_the_image(family, impl):
    lm = _wrap(family)
    install_capture(lm.base_model, impl)
    size = (96, 96) if family == "demo" else (40, 56)
    prompt = "Which marked point is on the darker surface?\nOptions: red, blue, same.\nAnswer with one word."
    for answer in ("red", "same thing"):  # one- and multi-token answers: every predicting row is checked
        batch = lm.build_inputs([random_image(5, size)], [prompt], answers=[answer])
        seg = batch.segments[0]
        start = int(batch.answer_start[0])
        end = int((seg == int(Segment.ANSWER)).nonzero().max()) + 1
        rows = torch.arange(start - 1, end).unsqueeze(0)  # [1, R]: the rows whose logits predict answer tokens
        assert (seg[rows[0]] != int(Segment.LATENT)).all(), "a latent row predicts an answer token"
        image_keys = seg == int(Segment.IMAGE)
        bottleneck = LatentAttention(lm, rows=rows, hidden_states=False).run(batch, "bottleneck")
        assert bottleneck.attention[..., image_keys].abs().max().item() == 0.0
        full = LatentAttention(lm, rows=rows, hidden_states=False).run(batch, "full")
        assert full.attention[..., image_keys].sum().item() > 0  # the check has teeth: Stage 2 does look


@pytest.mark.parametrize("family", ["demo", "qwen2_vl"])
def test_analysis_reports_exactly_zero_answer_to_image_under_the_bottleneck(family):
    lm = _wrap(family)
    install_capture(lm.base_model, "sdpa")
    size = (96, 96) if family == "demo" else (40, 56)
    prompt = format_prompt("Which box fits the cyan star best?", ["red", "blue"], "word")
    a = run_analysis(lm, random_image(9, size), prompt, "bottleneck")
    assert a.segment_attention("answer")["image"] == [0.0] * a.capture.n_layers
    full = run_analysis(lm, random_image(9, size), prompt, "full")
    assert max(full.segment_attention("answer")["image"]) > 0


def test_before_answer_placement_is_kept_as_the_documented_contrast():
    """Latents after the assistant marker: the last latent predicts the answer and sees the image in Stage 1."""
    model, processor = TINY_BUILDERS["llava"]()
    lm = LIVRModel.from_backbone(
        "test", model=model, processor=processor, n_latents=4, latent_placement="before_answer"
    )
    install_capture(lm.base_model, "sdpa")
    batch = lm.build_inputs([random_image(5, (96, 96))], ["How many?"], answers=["3"])
    readout = int(batch.answer_start[0]) - 1
    assert batch.segments[0, readout] == int(Segment.LATENT)
    cap = LatentAttention(lm, rows=torch.tensor([[readout]]), hidden_states=False).run(batch, "bottleneck")
    assert cap.attention[..., batch.segments[0] == int(Segment.IMAGE)].sum().item() > 0


# ------------------------------------------------------------------------------------------- answer formats
@pytest.fixture(scope="module")
def demo_lm():
    from livr_viz.demo.backbone import DemoBackboneConfig, build_demo_backbone

    model, processor = build_demo_backbone(DemoBackboneConfig(seed=3))
    return LIVRModel.from_backbone("test", model=model, processor=processor, n_latents=2)


@pytest.mark.parametrize("fmt", ["word", "letter"])
@pytest.mark.parametrize("task", task_names())
def test_answer_format_round_trip(task, fmt, demo_lm, monkeypatch):
    s = make_sample(task, "test", 11, 3, answer_format=fmt)
    assert s.answer_format == fmt and s.answer in LETTERS[: s.n_choices]
    target = s.choices[LETTERS.index(s.answer)] if fmt == "word" else s.answer
    assert s.target == target
    # the prompt offers exactly the options that are scored
    assert parse_choices(s.prompt) == s.options
    assert s.options == (list(s.choices) if fmt == "word" else s.letters)
    if fmt == "word" and task != "counting":
        assert set(s.choices) <= {*MARKER_WORDS, "same", "left", "right", "top", "bottom"}
    # training target: the labels hold exactly the target's tokens (+ EOS)
    batch = demo_lm.build_inputs([s.image], [s.prompt], answers=[s.target])
    labelled = batch.labels[0][batch.labels[0] != -100].tolist()
    assert demo_lm.tokenizer.decode(labelled[:-1]) == s.target and labelled[-1] == demo_lm.tokenizer.eos_token_id
    # scoring: a model that puts its mass on an option's first token is scored by that option
    for pick in range(s.n_choices):
        option_id = demo_lm.choice_token_ids(s.options)[pick]

        def logits(batch, stage="full", block=False, _id=option_id):
            out = torch.zeros(batch.input_ids.shape[0], len(demo_lm.tokenizer))
            out[:, _id] = 10.0
            return out

        monkeypatch.setattr(demo_lm, "answer_logits", logits)
        row = predict(demo_lm, [s])[0]
        assert row["prediction"] == LETTERS[pick] and row["correct"] == (LETTERS[pick] == s.answer)


@pytest.mark.parametrize(
    "task",
    [
        "object_localization",
        "relative_reflectance",
        "visual_correspondence",
        "semantic_correspondence",
        "functional_correspondence",
    ],
)
def test_word_format_markers_are_the_only_pixels_in_their_colours(task):
    """Options are told apart by marker colour: every marker is drawn, and scene content never uses those hues."""
    for index in range(6):
        s = make_sample(task, "test", 5, index, answer_format="word")
        pixels = np.asarray(s.image)
        near_options = s.evidence  # the markers' discs, or the boxes' outlines
        for word in s.choices:
            if word not in MARKER_WORDS:
                continue
            hit = (pixels == np.array(D.PALETTE[word], np.uint8)).all(-1)
            assert hit.any(), f"{s.id}: no {word} marker drawn"
            assert not (hit & ~near_options).any(), f"{s.id}: {word} pixels outside the markers"


def test_word_format_draws_no_text():
    """No drawn letters: where the letter format draws panel titles and option letters, the word format leaves the
    canvas white (these tasks draw the same scene in both formats otherwise)."""
    for task in ("visual_similarity", "art_style", "jigsaw"):
        for index in range(3):
            word = np.asarray(make_sample(task, "test", 0, index, answer_format="word").image)
            letter = np.asarray(make_sample(task, "test", 0, index, answer_format="letter").image)
            diff = (word != letter).any(-1)
            assert diff.sum() > 10  # the letter version drew its labels ...
            assert (word[diff] == 255).all()  # ... where the word version is blank


def test_bad_answer_format_is_a_clear_error():
    with pytest.raises(ValueError, match="answer_format must be one of"):
        make_sample("counting", answer_format="emoji")


def test_shipped_examples_are_the_generators_draws():
    """The app's gallery ships one word-format test sample per task; each must be exactly what the generator draws
    now, or the app would show a picture the question and the models were not made for."""
    from PIL import Image

    from livr_viz.demo.bundled import EXAMPLES_DIR

    for task in task_names():
        s = make_sample(task, "test", 0, 0, answer_format="word")
        shipped = np.asarray(Image.open(EXAMPLES_DIR / f"{s.id}.png").convert("RGB"))
        assert np.array_equal(shipped, np.asarray(s.image)), f"assets/examples/{s.id}.png is stale"

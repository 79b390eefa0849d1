"""The app's engine-side helpers: ground truth by content, escaping, attribution targets (no server needed)."""

import json
import shutil
from types import SimpleNamespace

import pytest
from PIL import Image

from livr_viz import service as S
from livr_viz.core.errors import LIVRError
from livr_viz.data import make_sample


def test_ground_truth_needs_the_samples_own_pixels_and_question(tmp_path):
    sample = make_sample("counting", "test", 4242, 0)
    real = tmp_path / f"{sample.id}.png"
    sample.image.save(real)
    assert S.synthetic_sample_for(real, sample.prompt).id == sample.id
    assert S.synthetic_sample_for(real).id == sample.id  # picking an example: the prompt comes from the sample
    # another question about the same image: no ground truth (it would answer a question nobody asked)
    assert S.synthetic_sample_for(real, "What colour is the star?") is None
    # a photo renamed like a sample: no ground truth, whatever the prompt
    impostor = tmp_path / "x" / f"{sample.id}.png"
    impostor.parent.mkdir()
    Image.new("RGB", (96, 96), (10, 200, 10)).save(impostor)
    assert S.synthetic_sample_for(impostor, sample.prompt) is None
    # the letter-format file name (no suffix) regenerates the letter-format sample
    letter = make_sample("counting", "test", 4242, 0, answer_format="letter")
    letter.image.save(tmp_path / f"{letter.id}.png")
    assert S.synthetic_sample_for(tmp_path / f"{letter.id}.png", letter.prompt).answer_format == "letter"


def test_user_text_is_inert_in_markdown():
    text = S.escape_markdown("<latent_3><image><s> How many *x*? [a](b)")
    assert "<" not in text and "&lt;s&gt;" in text and "\\*x\\*" in text and "\\[a\\]" in text


def test_attribution_target_must_be_an_option():
    analysis = SimpleNamespace(answer="red", choice_probs={"red": 0.7, "blue": 0.3})
    assert S.attribution_target("", analysis) == "red"
    assert S.attribution_target(" BLUE ", analysis) == "blue"
    with pytest.raises(LIVRError, match="'Z' is not one of this prompt's options \\(red, blue\\)"):
        S.attribution_target("Z", analysis)
    free = SimpleNamespace(answer="star", choice_probs={})
    assert S.attribution_target("circle", free) == "circle"


def test_ig_warns_above_the_documented_threshold():
    from livr_viz.methods.attribution import IG_DELTA_WARNING, Attribution

    ok = Attribution("integrated_gradients", None, None, None, IG_DELTA_WARNING / 2, "red")
    bad = Attribution("integrated_gradients", None, None, None, 5.1, "red")
    assert ok.warning is None and "did not converge" in bad.warning and "5.10" in bad.warning
    assert Attribution("saliency", None, None, None, None, "red").warning is None


def test_a_probe_no_better_than_its_baselines_says_so():
    good = {"latent_pooled": {"accuracy": 0.9}, "random_model": {"accuracy": 0.4}}
    assert S.probe_caveat(good, majority=0.5) == ""
    weak = {"latent_pooled": {"accuracy": 0.35}, "random_model": {"accuracy": 0.36}}
    text = S.probe_caveat(weak, majority=0.3)
    assert "no better than the same probe on a random-weight model (0.360)" in text
    assert "majority" not in text
    assert "the majority class (0.500)" in S.probe_caveat({"latent_pooled": {"accuracy": 0.5}}, majority=0.5)


def test_probe_concept_defaults_to_the_models_tasks():  # reads what the shipped models were trained on
    assert S.default_concept("demo-livr") == "brightness_order"  # nine tasks: the first concept of any of them


def test_probe_concept_of_a_single_task_model(tiny_paths, tmp_path):
    path = tmp_path / "art-style-only"
    shutil.copytree(tiny_paths["sft"], path)
    cfg = json.loads((path / "livr_config.json").read_text())
    cfg["training"] = dict(cfg.get("training") or {}, tasks="art_style")
    (path / "livr_config.json").write_text(json.dumps(cfg))
    assert S.default_concept(str(path)) == "style"  # not 'count', which art style never trained


def test_the_apps_first_example_is_answered_right_by_its_default_model():
    """The gallery leads with the task the shipped models answer best; the default model (the nine-task LIVR)
    answers that first example correctly (measured: probability 0.59 on the right side, 2-way)."""
    from livr_viz.training.evaluate import predict

    first = S.ensure_examples()[0]
    sample = S.synthetic_sample_for(first)
    assert sample is not None and sample.task == S.LEAD_TASK == S.example_tasks()[0]
    (row,) = predict(S.POOL.get("demo-livr"), [sample])
    assert row["correct"] and max(row["probs"]) >= 0.55

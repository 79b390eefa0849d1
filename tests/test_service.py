"""The app's engine-side helpers: ground truth by content, escaping, attribution targets (no server needed)."""

import json
import shutil
from pathlib import Path
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


def _report(latents, majority=0.3, control=0.3, image=0.3, text=0.3, random=0.3, folds=None):
    from livr_viz.methods.probes import ProbeReport

    row = {"layer": 0, "latent_pooled": {"accuracy": latents, "folds": folds or [latents] * 5},
           "control": {"accuracy": control}, "selectivity": latents - control, "image_pooled": {"accuracy": image},
           "text_pooled": {"accuracy": text}, "random_model": {"accuracy": random}}
    return ProbeReport("c", 100, ["a", "b"], majority, [row], 0)


def test_a_probe_no_better_than_any_of_its_baselines_says_so():
    """The latents must beat the best of majority, control, image tokens, text tokens and the random-weight model by
    max(2 points, one standard error): the shipped brightness_order (0.545 vs text tokens 0.57) and texture (0.290
    vs majority 0.250 with a 0.049 standard error) are warned."""
    from livr_viz.methods.probes import PROBE_MARGIN, probe_margin

    assert S.probe_caveat(_report(0.9)) == ""
    text = S.probe_caveat(_report(0.545, majority=0.335, image=0.545, text=0.57))
    assert "⚠" in text and "the image tokens (0.545)" in text and "the text tokens (0.570)" in text
    assert "majority" not in text and "random" not in text
    assert "the random-weight model (0.900)" in S.probe_caveat(_report(0.8, random=0.9))
    assert "the control task (0.790)" in S.probe_caveat(_report(0.8, control=0.79))
    # the margin: 2 points, or one standard error over the folds when that is larger
    assert probe_margin(_report(0.5).layers[0]) == PROBE_MARGIN
    noisy = _report(0.29, majority=0.25, image=0.2, text=0.2, random=0.2, control=0.2,
                    folds=[0.1, 0.2, 0.3, 0.4, 0.45])
    assert probe_margin(noisy.layers[0]) > 0.04 and "the majority class (0.250)" in S.probe_caveat(noisy)
    # every baseline is printed beside the latents
    line = S.probe_baseline_line(_report(0.9, majority=0.25))
    for name in ("majority class 0.250", "control task", "image tokens", "text tokens", "random-weight model"):
        assert name in line


def test_the_shipped_probes_are_shown_beside_every_baseline_and_weak_ones_warned():
    """The bundled demo-livr probes: texture and brightness_order do not beat their best baseline (measured: texture
    0.290 vs image tokens 0.335, brightness_order 0.545 vs image tokens 0.575 at their best layer)."""
    example = S.ensure_examples()[0]
    prompt = S.synthetic_sample_for(example).prompt
    for concept in ("texture", "brightness_order"):
        v = S.probe_view("demo-livr", concept, example, prompt, "full", False)
        assert "⚠" in v["markdown"] and "text tokens" in v["markdown"] and "majority class" in v["markdown"]
        assert {"majority", "image tokens", "text tokens", "random model", "control"} <= set(v["table"].columns)


def test_a_concept_that_does_not_apply_is_not_read_out():
    examples = S.ensure_examples()
    art = S.synthetic_sample_for(examples[0])
    v = S.probe_view("demo-livr", "count", examples[0], art.prompt, "full", False)
    assert v["reading"] == {} and "Not read out" in v["markdown"] and "`art_style` sample has no **count**" in v["markdown"]
    photo = [p for p in examples if "photo-" in p][0]
    v = S.probe_view("demo-livr", "shape", photo, S.photo_prompt(), "full", False)
    assert v["reading"] == {} and "not one of the synthetic samples" in v["markdown"]
    v = S.probe_view("demo-livr", "style", examples[0], art.prompt, "full", False)
    assert set(v["reading"]) == {"warm", "cool", "pastel", "mono"}
    assert f"true style: **{art.concepts['palette']}**" in v["markdown"]


def test_the_default_probe_concept_follows_the_loaded_sample():
    examples = S.ensure_examples()
    assert S.synthetic_sample_for(examples[0]).task == "art_style"
    assert S.default_concept("demo-livr", examples[0]) == "style"
    counting = next(p for p in examples if "counting-" in p)
    assert S.default_concept("demo-livr", counting) in ("count", "color")
    photo = next(p for p in examples if "photo-" in p)
    assert S.default_concept("demo-livr", photo) == S.default_concept("demo-livr")  # a photo: the model's tasks


class GradioLikeProgress:
    """The call signature of ``gr.Progress`` (the service's one progress callback), recording its calls."""

    def __init__(self):
        self.calls = []

    def __call__(self, progress, desc=None, total=None, unit="steps", _tqdm=None):
        assert 0.0 <= progress <= 1.0
        self.calls.append((progress, desc))


def test_train_again_works_on_a_model_without_bundled_probes(tiny_paths, monkeypatch):
    """'train again' (and the first load of a model with no bundled probes) with a gr.Progress-shaped callback:
    the path that failed with "unexpected keyword argument 'desc'"."""
    monkeypatch.setattr(S, "PROBE_TRAIN_SAMPLES", 16)
    model = tiny_paths["livr"]
    example = S.ensure_examples()[0]
    prompt = S.synthetic_sample_for(example).prompt
    for retrain in (False, True):  # nothing bundled: both train
        progress = GradioLikeProgress()
        v = S.probe_view(model, "style", example, prompt, "full", retrain, progress=progress)
        assert "trained now on 16 samples" in v["markdown"] and len(v["table"]) == 5
        assert progress.calls and all(desc for _, desc in progress.calls)
        assert set(v["reading"]) <= {"warm", "cool", "pastel", "mono"} and v["reading"]
    v = S.probe_view(model, "style", example, prompt, "full", False)  # now cached on this server
    assert "trained earlier on this server" in v["markdown"]
    assert not any(Path(tiny_paths["livr"]).glob("style_*")), "the probes were written beside the model"
    with pytest.raises(LIVRError, match="no latents to probe"):
        S.probe_view(tiny_paths["sft"], "style", example, prompt, "full", True, progress=GradioLikeProgress())


@pytest.mark.slow
@pytest.mark.parametrize("model", ["demo-livr", "demo-latents-only", "demo-base"])
def test_train_again_works_for_every_shipped_model_with_latents(model, monkeypatch):
    monkeypatch.setattr(S, "PROBE_TRAIN_SAMPLES", 16)
    example = S.ensure_examples()[0]
    v = S.probe_view(model, "style", example, S.synthetic_sample_for(example).prompt, "full", True,
                     progress=GradioLikeProgress())
    assert "trained now on 16 samples" in v["markdown"] and v["reading"]


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

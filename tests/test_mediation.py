"""Causal mediation of the latents, X → Z → Y (issue 43): every measurement against a case whose answer is known."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from livr_viz.core.errors import LIVRError
from livr_viz.core.model import LIVRModel
from livr_viz.methods import mediation as M

from .conftest import small_model

OPTIONS = ["red", "blue", "same"]
PROMPT = "Which marked point is on the darker surface?\nOptions: red, blue, same.\nAnswer with one word."


def _tiny(variant: str = "livr") -> LIVRModel:
    return small_model(variant, lora=False)


def _readout(lm: LIVRModel, items, condition: str) -> LIVRModel:
    """Make the option scores read what varies between ``items`` under ``condition`` (as a trained model's do): the
    options' output rows become random directions orthogonal to the mean answer-row state, so the answer is decided
    by how this question's answer row differs from the others', not by a bias every random model has."""
    engine = M.Mediation(lm, condition)
    batch, option_ids = engine._batch(items)
    final = M._forward(lm, batch, condition, option_ids).states[-1]  # [B, T, D]
    mean = final[torch.arange(len(items)), batch.answer_start - 1].mean(0)
    directions = torch.randn(len(OPTIONS), mean.shape[0], generator=torch.Generator().manual_seed(0))
    directions -= (directions @ mean)[:, None] * mean / mean.dot(mean)
    with torch.no_grad():
        lm.base_model.lm_head.weight[option_ids[0]] = 50 * directions / directions.norm(dim=1, keepdim=True)
    return lm


def _image(seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (48, 48, 3), dtype=np.uint8))


def _items(task: str, seed: int, n: int = 6, same_image: bool = False) -> list:
    """Questions with one prompt (so a question's text rows are the same in every question of the task)."""
    evidence = np.zeros((48, 48), bool)
    evidence[8:24, 8:24] = True
    return [
        SimpleNamespace(
            id=f"{task}-{i}",
            task=task,
            image=_image(seed if same_image else seed + i),
            prompt=PROMPT,
            choices=OPTIONS,
            options=OPTIONS,
            answer="ABC"[i % 3],
            evidence=evidence,
        )
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def steered(questions):
    return _readout(_tiny(), questions, "bottleneck")


@pytest.fixture(scope="module")
def plain():
    return _tiny()


@pytest.fixture(scope="module")
def questions():
    return _items("t1", 0) + _items("t2", 100)


def test_blinded_latents_do_not_move_when_the_input_changes(plain, questions):
    result = M.Mediation(plain, condition="bottleneck_blind", n_boot=200).run(questions)
    for pert, entry in result["sensitivity"].items():
        assert np.max(entry["latent_cos"]["average"]["mean"]) < 1e-9, pert
        assert np.max(entry["latent_l2"]["average"]["mean"]) < 1e-6, pert
        assert np.min(entry["image_cos"]["average"]["mean"]) > 1e-3, pert  # the image tokens do move
        assert entry["ratio_cos"]["average"]["mean"][-1] == pytest.approx(0, abs=1e-6)
    # nothing about the image reaches the latents, so they are the same state for every input: collapse is total
    assert result["collapse"]["latent"]["all"][-1] == pytest.approx(1.0, abs=1e-6)


def test_unblinded_latents_do_move(plain, questions):
    result = M.Mediation(plain, n_boot=200).run(questions)
    assert result["sensitivity"]["blank"]["latent_cos"]["average"]["mean"][-1] > 1e-3


@pytest.mark.parametrize("what", ["latents", "image", "reverse"])
def test_patching_a_question_with_itself_changes_no_answer(plain, questions, what):
    out = M.interchange(plain, questions, questions, what=what)
    assert torch.allclose(out["before"], out["after"], atol=1e-5)
    assert (out["before"].argmax(-1) == out["after"].argmax(-1)).all()


def test_the_image_interchange_is_the_question_on_the_other_image(plain):
    """The ``image`` patch (image tokens at every layer input) equals really swapping the image: so ``other_image``
    can be read off it."""
    a, b = _items("t", 0, 4), _items("t", 50, 4)[::-1]
    patched = M.interchange(plain, a, b, what="image")["after"]
    swapped = [SimpleNamespace(**{**vars(x), "image": y.image}) for x, y in zip(a, b)]
    real = M.interchange(plain, swapped, swapped, what="latents")["before"]
    assert torch.allclose(patched, real, atol=1e-5)


def test_a_bottleneck_model_follows_swapped_latents(steered, questions):
    """Under the Stage-1 mask the answer row reads only the text (the same in every question) and the latents: with
    B's latents at every layer it computes exactly B's answer."""
    result = M.Mediation(steered, condition="bottleneck", n_boot=200).run(questions)
    follows = result["interchange"]["latents"]["follows"]["average"]
    assert follows["n"] >= 4 and follows["mean"] == pytest.approx(1.0)
    # the image reaches the answer only through the latents: held fixed, a swapped image changes nothing
    assert result["interchange"]["reverse"]["changed"]["average"]["mean"] == pytest.approx(0.0)
    assert "follows swapped latents in 100 %" in result["verdict"][0]


def test_a_model_that_cannot_read_its_latents_ignores_swapped_ones(questions):
    lm = _readout(_tiny(), questions, "removed")
    result = M.Mediation(lm, condition="removed", n_boot=200).run(questions)
    inter = result["interchange"]
    for name in ("latents", "control", *[f"latents@{layer}" for layer in range(result["n_layers"] - 1)]):
        assert inter[name]["changed"]["average"]["mean"] == pytest.approx(0.0), name
        assert inter[name]["drop"]["average"]["mean"] == pytest.approx(0.0, abs=1e-6), name
    assert inter["latents"]["follows"]["average"]["mean"] == pytest.approx(0.0)
    assert inter["latents"]["follows"]["average"]["n"] >= 1


def test_collapse_of_identical_inputs_is_one(plain):
    items = _items("t1", 7, 4, same_image=True) + _items("t2", 7, 4, same_image=True)
    result = M.Mediation(plain, n_boot=100).run(items)
    for who in ("latent", "image"):
        c = result["collapse"][who]
        assert np.allclose(c["all"], 1.0, atol=1e-5) and np.allclose(c["effective_rank"], 1.0, atol=1e-3)
        assert np.allclose(c["mean_similarity"]["average"]["mean"], 1.0, atol=1e-5)
    # ... and another image gives a different one
    assert result["collapse"]["latent"]["effective_rank"][-1] == pytest.approx(1.0, abs=1e-3)
    assert M.effective_rank(np.eye(4)) == pytest.approx(4.0)


def test_bootstrap_intervals_cover_and_ratio_is_of_means():
    out = M._bootstrap({"a": np.array([0.0, 1.0] * 20), "b": np.array([1.0] * 10)}, n_boot=500)
    assert out["tasks"]["a"]["mean"] == 0.5 and out["tasks"]["b"]["ci95"] == [1.0, 1.0]
    assert out["average"]["mean"] == 0.75 and out["average"]["ci95"][0] < 0.75 < out["average"]["ci95"][1]
    ratio = M._bootstrap({"a": np.array([1.0, 3.0])}, denominator={"a": np.array([2.0, 2.0])}, n_boot=100)
    assert ratio["tasks"]["a"]["mean"] == 1.0
    assert M._bootstrap({"a": np.array([np.nan, 1.0])})["tasks"]["a"]["n"] == 1  # NaN questions are left out


def test_a_model_without_latents_gets_a_clear_error_and_an_na_entry(questions):
    sft = _tiny("sft")
    with pytest.raises(LIVRError, match="no latents"):
        M.Mediation(sft)
    report = M.mediate({"sft": sft}, questions)
    assert report.result("sft")["status"] == "n/a" and "no latents" in report.result("sft")["reason"]


def test_bad_settings_are_refused(plain):
    with pytest.raises(LIVRError, match="condition"):
        M.Mediation(plain, condition="sideways")
    with pytest.raises(LIVRError, match="latent indices"):
        M.Mediation(plain, latents=[7])
    with pytest.raises(LIVRError, match="no questions"):
        M.Mediation(plain).run([])


def test_a_rerun_resumes_from_the_finished_tasks(plain, questions, tmp_path, monkeypatch):
    first = M.mediate({"m": plain}, questions, out=tmp_path, n_boot=100)
    assert sorted(p.name for p in (tmp_path / "parts" / "m").iterdir()) == ["t1.npz", "t2.npz"]
    data = json.loads((tmp_path / "mediation.json").read_text())
    data["models"]["m"].pop("result")  # as if killed after the parts were written
    (tmp_path / "mediation.json").write_text(json.dumps(data))
    monkeypatch.setattr(M.Mediation, "run_task", lambda *a, **k: pytest.fail("a finished task ran again"))
    again = M.mediate({"m": plain}, questions, out=tmp_path, n_boot=100)
    assert again.result("m")["interchange"] == first.result("m")["interchange"]
    with pytest.raises(LIVRError, match="other questions or settings"):
        M.mediate({"m": plain}, questions[:6], out=tmp_path, n_boot=100)


@pytest.mark.slow
def test_cli_writes_json_html_and_lists_a_model_without_latents(tiny_paths, tmp_path, capsys):
    from livr_viz.cli.main import main

    out = tmp_path / "med"
    assert (
        main(
            [
                "mediate",
                "--model",
                tiny_paths["livr"],
                tiny_paths["sft"],
                "--tasks",
                "counting,jigsaw",
                "--n",
                "2",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "follows swapped latents" in printed and "n/a: the model has no latents" in printed
    data = json.loads((out / "mediation.json").read_text())
    livr = data["models"][tiny_paths["livr"]]["result"]
    assert livr["status"] == "done" and livr["n_items"] == 4 and sorted(livr["tasks"]) == ["counting", "jigsaw"]
    page = (out / "mediation.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and "http" not in page.replace("http-equiv", "")
    assert main(["mediate", "--model", tiny_paths["sft"], "--out", str(tmp_path / "x"), "--n", "2"]) == 2
    assert "has no latents" in capsys.readouterr().err


def test_the_app_swap_shows_the_answer_before_and_after(tiny_paths, tmp_path):
    from livr_viz import service as S

    path, prompt = S.new_sample("object_localization", tmp_path, index=3)
    view = S.swap_latents_view(tiny_paths["livr"], path, prompt)
    assert "Answer before" in view["markdown"] and list(view["table"].columns) == ["option", "before %", "after %"]
    assert view["table"]["after %"].sum() == pytest.approx(100, abs=0.5)
    with pytest.raises(LIVRError, match="no latents"):
        S.swap_latents_view(tiny_paths["sft"], path, prompt)

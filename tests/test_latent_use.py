"""The paper's "are the latents used?" conditions and the paired statistics behind every LIVR-vs-SFT claim."""

from types import SimpleNamespace

import pytest

from livr_viz.core.errors import LIVRError
from livr_viz.core.model import LIVRModel
from livr_viz.methods.latent_use import latent_use_predictions, mcnemar_exact, paired_comparison

from .conftest import random_image


def _rows(correct, task="t"):
    return [{"id": f"{task}-{i}", "task": task, "correct": bool(c)} for i, c in enumerate(correct)]


def test_mcnemar_exact_known_values():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(10, 0) == pytest.approx(2 / 1024)
    assert mcnemar_exact(3, 3) == 1.0
    assert mcnemar_exact(1, 5) == pytest.approx(2 * 7 / 64)  # P(X <= 1), X ~ Bin(6, 1/2), two-sided


def test_paired_comparison_known_cases():
    same = paired_comparison(_rows([1, 0, 1, 1]), _rows([1, 0, 1, 1]))
    assert same["average"]["delta"] == 0 and same["average"]["ci95"] == [0, 0] and same["average"]["mcnemar_p"] == 1
    all_vs_none = paired_comparison(_rows([1] * 20), _rows([0] * 20))
    assert all_vs_none["tasks"]["t"]["delta"] == 1 and all_vs_none["tasks"]["t"]["ci95"] == [1, 1]
    # the macro average weighs tasks equally, whatever their sizes
    a = _rows([1] * 10, "x") + _rows([0] * 30, "y")
    b = _rows([0] * 10, "x") + _rows([0] * 30, "y")
    mixed = paired_comparison(a, b)
    assert mixed["average"]["delta"] == pytest.approx(0.5) and mixed["average"]["n"] == 40
    # pairs are matched by id, not by order
    assert paired_comparison(_rows([1, 0]), list(reversed(_rows([1, 0]))))["average"]["delta"] == 0
    with pytest.raises(LIVRError, match="not over the same items"):
        paired_comparison(_rows([1, 0]), _rows([1, 0], task="other"))


def test_bootstrap_interval_covers_the_difference_and_tightens_with_n():
    small = paired_comparison(_rows([1, 0] * 10), _rows([0, 0] * 10), seed=1)["tasks"]["t"]
    large = paired_comparison(_rows([1, 0] * 200), _rows([0, 0] * 200), seed=1)["tasks"]["t"]
    for c in (small, large):
        assert c["ci95"][0] <= c["delta"] == 0.5 <= c["ci95"][1]
    assert large["ci95"][1] - large["ci95"][0] < small["ci95"][1] - small["ci95"][0]


@pytest.fixture(scope="module")
def tiny():
    from livr_viz.demo.backbone import DemoBackboneConfig, build_demo_backbone

    model, processor = build_demo_backbone(DemoBackboneConfig(seed=4))
    return LIVRModel.from_backbone("test", model=model, processor=processor, n_latents=3)


def _items(seed):
    prompt = "Which marked point is on the darker surface?\nOptions: red, blue, same.\nAnswer with one word."
    return [
        SimpleNamespace(
            id=f"q{i}",
            task="relative_reflectance",
            image=random_image(seed + i, (96, 96)),
            prompt=prompt,
            choices=["red", "blue", "same"],
            options=["red", "blue", "same"],
            answer="ABC"[i % 3],
        )
        for i in range(4)
    ]


def test_conditions_with_known_answers(tiny):
    a, b = latent_use_predictions(tiny, _items(0)), latent_use_predictions(tiny, _items(50))
    # bottleneck + blinded latents leave no route from the image to the answer: other images, same probabilities
    for ra, rb in zip(a["bottleneck_blind"], b["bottleneck_blind"]):
        assert ra["probs"] == pytest.approx(rb["probs"], abs=1e-5)
    # the standard condition does see the image
    assert any(ra["probs"] != pytest.approx(rb["probs"], abs=1e-4) for ra, rb in zip(a["standard"], b["standard"]))
    # answer -> latent attention is a share of one row's attention: in (0, 1]
    assert all(0 < v <= 1 for v in a["answer_latent_attention"])
    assert [r["id"] for r in a["removed"]] == ["q0", "q1", "q2", "q3"]


def test_a_model_without_latents_has_only_the_standard_condition():
    from livr_viz.demo.backbone import DemoBackboneConfig, build_demo_backbone

    model, processor = build_demo_backbone(DemoBackboneConfig(seed=4))
    sft = LIVRModel.from_backbone("test", model=model, processor=processor, variant="sft")
    rows = latent_use_predictions(sft, _items(0))
    assert set(rows) == {"standard", "answer_latent_attention"} and rows["answer_latent_attention"] == [0.0] * 4
    with pytest.raises(LIVRError, match="only the standard condition"):
        latent_use_predictions(sft, _items(0), ["bottleneck"])

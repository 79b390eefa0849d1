"""Deletion / insertion curves: the occlusion engine on a toy scorer whose answer depends only on the evidence (known
AUCs), the evidence-vs-outside test, bad input, and one end-to-end run on a tiny random LIVR model."""

from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from livr_viz.core.errors import LIVRError
from livr_viz.methods.deletion import (
    DATASET_MEAN_RGB,
    DeletionResult,
    curves_for_orders,
    deletion_report,
    evidence_vs_outside,
    occlude,
    rank_patches,
    summarise_deletion,
)
from livr_viz.methods.faithfulness import evidence_on_grid
from livr_viz.views.deletion import (
    deletion_curves_figure,
    deletion_summary_figure,
    evidence_figure,
    occlusion_strip,
    summary_markdown,
)

GRID = (4, 4)
RED = (220, 30, 30)


def _scene(cells) -> tuple[Image.Image, np.ndarray]:
    """32 x 32 grey image with red squares on the given (row, col) cells of a 4 x 4 grid; evidence = those pixels."""
    pixels = np.full((32, 32, 3), 90, np.uint8)
    evidence = np.zeros((32, 32), bool)
    for r, c in cells:
        evidence[r * 8 : (r + 1) * 8, c * 8 : (c + 1) * 8] = True
    pixels[evidence] = RED
    return Image.fromarray(pixels), evidence


def _toy_scorer(evidence, calls):
    """Two options; p(option 0) = 0.05 + 0.9 x the share of evidence pixels still red. Nothing else matters."""

    def score(images):
        calls.append(len(images))
        out = []
        for im in images:
            still = (np.asarray(im)[evidence] == RED).all(1).mean()
            p = 0.05 + 0.9 * still
            out.append([p, 1 - p])
        return np.array(out)

    return score


def test_occlude_paints_exactly_the_chosen_cells():
    image, _ = _scene([])
    out = np.array(occlude(image, GRID, [6], fill=(1, 2, 3)))  # cell (1, 2)
    assert (out[8:16, 16:24] == (1, 2, 3)).all()
    out[8:16, 16:24] = 90
    assert (out == 90).all()
    mask = np.zeros(GRID, bool)
    mask[1, 2] = True
    assert np.array_equal(
        np.asarray(occlude(image, GRID, mask, (1, 2, 3))), np.asarray(occlude(image, GRID, [6], (1, 2, 3)))
    )


def test_evidence_explanation_beats_random_with_known_aucs():
    image, evidence = _scene([(0, 0), (0, 1)])
    calls = []
    scorer = _toy_scorer(evidence, calls)
    orders = {
        "evidence": rank_patches(evidence_on_grid(evidence, GRID), GRID),
        "random": rank_patches(np.random.default_rng(3).random(GRID), GRID),
    }
    curves = curves_for_orders(image, GRID, orders, scorer, target=0, n_steps=16)
    assert len(calls) == 1 and calls[0] < 2 * 2 * 17  # one call; the shared intact / blank images scored once
    ev = curves["evidence"]
    assert np.allclose(ev.fractions, np.arange(17) / 16)
    # deletion: 0.95 -> 0.5 -> 0.05 over the first two of 16 steps, then flat at 0.05
    assert ev.deletion_auc == pytest.approx(((0.95 + 0.5) / 2 + (0.5 + 0.05) / 2) / 16 + 0.05 * 14 / 16)
    assert ev.insertion_auc == pytest.approx(1 - ev.deletion_auc)  # mirror image: 0.05 -> 0.95 in two steps
    assert ev.deletion[0] == ev.insertion[-1] == pytest.approx(0.95)
    assert ev.deletion_auc < curves["random"].deletion_auc - 0.2
    assert ev.insertion_auc > curves["random"].insertion_auc + 0.2


def test_evidence_vs_outside_and_summary_pick_the_evidence():
    results = []
    for i, cells in enumerate([[(0, 0), (0, 1)], [(2, 2)], [(3, 0), (3, 1), (2, 0)], [(1, 3)]]):
        image, evidence = _scene(cells)
        scorer = _toy_scorer(evidence, [])
        test = evidence_vs_outside(image, evidence, GRID, scorer, target=0, n_draws=5, seed=i)
        assert test.evidence_patches == len(cells) and test.changed_evidence and test.changed_outside == 0
        assert test.drop_evidence == pytest.approx(0.9) and test.drop_outside == pytest.approx(0.0)
        maps = {"evidence": evidence_on_grid(evidence, GRID), "random": np.random.default_rng(i).random(GRID)}
        orders = {m: rank_patches(v, GRID, i) for m, v in maps.items()}
        curves = curves_for_orders(image, GRID, orders, scorer, 0, n_steps=8)
        results.append(DeletionResult(image, "p", ["a", "b"], "a", GRID, maps, orders, curves, test, id=str(i)))
    summary = summarise_deletion(results, "toy", n_boot=500)
    assert summary.most_faithful == {"deletion": "evidence", "insertion": "evidence"}
    score = summary.score("evidence")
    assert score.n == 4 and score.deletion_vs_random_ci95[1] < 0 < score.insertion_vs_random_ci95[0]
    assert summary.evidence["changed_evidence"] == 1 and summary.evidence["drop_outside"] == pytest.approx(0)
    assert "**evidence**" in summary_markdown([summary])
    for fig in (
        deletion_curves_figure(results[0]),
        deletion_summary_figure([summary, summary]),
        evidence_figure([summary]),
    ):
        plt.close(fig)
    assert occlusion_strip(results[0], "evidence", 4).width > 0


def test_bad_input_is_a_livr_error():
    image, evidence = _scene([(0, 0)])
    scorer = _toy_scorer(evidence, [])
    with pytest.raises(LIVRError, match="empty"):
        evidence_vs_outside(image, np.zeros((32, 32), bool), GRID, scorer, 0)
    with pytest.raises(LIVRError, match="no equal area"):
        big = np.ones((32, 32), bool)
        evidence_vs_outside(image, big, GRID, scorer, 0)
    with pytest.raises(LIVRError, match=r"\[rows, cols\]"):
        rank_patches(np.zeros((3, 4)), GRID)
    with pytest.raises(LIVRError, match="permutation"):
        curves_for_orders(image, GRID, {"bad": np.arange(15)}, scorer, 0)
    with pytest.raises(LIVRError, match="fill"):
        occlude(image, GRID, [0], fill=(300, 0, 0))


@pytest.fixture(scope="module")
def tiny_livr():
    from livr_viz.core.model import LIVRModel
    from livr_viz.demo.tiny import tiny_llava

    model, processor = tiny_llava(seed=0, image_size=32, patch_size=8)
    return LIVRModel.from_backbone("tiny", variant="livr", n_latents=4, model=model, processor=processor)


def test_end_to_end_on_a_tiny_livr_model(tiny_livr):
    prompt = "What colour is the square?\nOptions: red, blue.\nAnswer with one word."
    items = [
        SimpleNamespace(id=f"q{i}", image=_scene(cells)[0].resize((48, 48)), prompt=prompt, evidence=_scene(cells)[1])
        for i, cells in enumerate([[(0, 0)], [(2, 1), (2, 2)]])
    ]
    report = deletion_report(tiny_livr, items, n_steps=4, ig_steps=2, n_draws=2, n_boot=100)
    methods = [f"latent_{i}" for i in range(4)] + [
        "latent_mean",
        "answer",
        "saliency",
        "integrated_gradients",
        "random",
    ]
    first = report.items[0]
    assert first.image.size == (32, 32) and first.grid == GRID and first.answer in ("red", "blue")
    assert list(first.curves) == methods and all(m.shape == GRID for m in first.maps.values())
    intact = tiny_livr.choice_probs(tiny_livr.build_inputs([first.image], [prompt]), ["red", "blue"])[0]
    p = float(intact.max())
    for c in first.curves.values():
        assert len(c.fractions) == 5 and 0 <= c.deletion_auc <= 1 and 0 <= c.insertion_auc <= 1
        assert c.deletion[0] == pytest.approx(p, abs=1e-5) and c.insertion[-1] == pytest.approx(p, abs=1e-5)
    assert first.evidence is not None and first.evidence.evidence_patches == 1
    assert [s.method for s in report.summary.scores] == methods and report.summary.n_items == 2
    assert report.summary.model == "livr" and report.summary.evidence["n"] == 2
    fig = deletion_summary_figure([report.summary])
    plt.close(fig)
    assert not np.allclose(np.asarray(first.image), DATASET_MEAN_RGB)

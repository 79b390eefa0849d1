"""Latent geometry: redundancy numbers with known answers (identical, disjoint, mixed maps), Procrustes and
trustworthiness on exact cases, shared projections, bad input, and one end-to-end run on a tiny random LIVR model."""

from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pytest
from scipy.spatial import procrustes

from livr_viz.core.errors import LIVRError
from livr_viz.methods.geometry import (
    fit_procrustes,
    knn_overlap,
    latent_maps_by_layer,
    latent_redundancy,
    shared_projection,
    top_mass_regions,
    trustworthiness,
)
from livr_viz.methods.tokenmap import TokenPoints
from livr_viz.views.geometry import filmstrip_figure, redundancy_figure, shared_projection_figure

from .conftest import random_image


def test_identical_maps_are_one_latent():
    base = np.random.default_rng(0).random((5, 6)) + 0.01
    r = latent_redundancy(np.stack([base] * 4))
    assert r.effective_number == pytest.approx(1.0, abs=1e-6)
    assert np.allclose(r.iou, 1) and np.allclose(r.cosine, 1) and len(set(r.clusters)) == 1


def test_disjoint_maps_are_k_latents():
    maps = np.eye(16)[[0, 5, 10, 15]].reshape(4, 4, 4)  # one-hot on four different patches
    r = latent_redundancy(maps)
    assert r.effective_number == pytest.approx(4.0)
    assert np.allclose(r.iou, np.eye(4)) and r.mean_pairwise_iou == 0 and len(set(r.clusters)) == 4
    plt.close(redundancy_figure(r))


def test_mixed_maps_and_top_mass_regions():
    # two copies of one map plus two distinct ones: eigenvalues (2, 1, 1, 0) / 4 -> exp(H) = 2 ** 1.5
    maps = np.eye(9)[[0, 0, 4, 8]].reshape(4, 3, 3)
    assert latent_redundancy(maps).effective_number == pytest.approx(2**1.5)
    ramp = np.array([[[4.0, 3.0, 2.0, 1.0]]])  # half of the mass (5 of 10) is reached at the second patch
    assert top_mass_regions(ramp, 0.5)[0, 0].tolist() == [True, True, False, False]
    assert top_mass_regions(np.ones((1, 2, 2)), 0.5).all()  # ties stay together: a uniform map is all region


def test_bad_maps_and_q_are_livr_errors():
    maps = np.random.default_rng(0).random((3, 4, 4))
    for q in (0, 1, 1.5, -0.2):
        with pytest.raises(LIVRError, match=r"\(0, 1\)"):
            latent_redundancy(maps, q=q)
    with pytest.raises(LIVRError, match=r"\[K, rows, cols\]"):
        latent_redundancy(maps[0])
    with pytest.raises(LIVRError, match="non-negative"):
        latent_redundancy(maps - 0.5)
    with pytest.raises(LIVRError, match="all zeros"):
        latent_redundancy(np.zeros((2, 3, 3)))


def test_procrustes_undoes_rotation_scale_shift_and_reflection():
    rng = np.random.default_rng(1)
    ref = rng.normal(size=(40, 2))
    t = np.deg2rad(37)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]) @ np.diag([1, -1])
    moved = 2.5 * ref @ rot + [3.0, -7.0]
    fit = fit_procrustes(ref, moved)
    assert fit.disparity == pytest.approx(0, abs=1e-12)
    assert np.allclose(fit.apply(moved), ref)
    noisy = moved + rng.normal(scale=0.3, size=moved.shape)
    assert fit_procrustes(ref, noisy).disparity == pytest.approx(procrustes(ref, noisy)[2])  # scipy's definition


def test_trustworthiness_and_knn_overlap_of_identity():
    x = np.random.default_rng(2).normal(size=(50, 2))
    assert trustworthiness(x, x) == pytest.approx(1.0)
    assert knn_overlap(x, x @ np.array([[0, 1], [-1, 0]]) * 3) == 1.0  # a similarity transform keeps neighbours
    high = np.random.default_rng(3).normal(size=(50, 10))
    assert trustworthiness(high, high[:, :2]) < 0.95


def _points(vectors):
    n = len(vectors)
    return TokenPoints(vectors, np.zeros(n, int), {"sample": [i // 5 for i in range(n)], "position": list(range(n))})


def test_shared_projection_joint_and_procrustes():
    rng = np.random.default_rng(4)
    # a 2-D layout embedded in 8 dims: separate PCA fits of both sets find the same plane, up to rotation / reflection
    a = rng.normal(size=(30, 2)) * [3, 1] @ rng.normal(size=(2, 8)) + rng.normal(scale=0.01, size=(30, 8))
    a = a.astype(np.float32)
    sets = {"livr": _points(a), "sft": _points(a[:24] + rng.normal(scale=0.01, size=(24, 8)).astype(np.float32))}
    joint = shared_projection(sets, "pca", "joint")
    assert joint.xy["livr"].shape == (30, 2) and joint.xy["sft"].shape == (24, 2)
    assert np.allclose(joint.xy["livr"][:24], joint.xy["sft"], atol=0.1)  # one frame: the same tokens coincide
    quality = joint.quality["livr"]
    assert 0.5 < quality.trustworthiness <= 1 and quality.seed_disparity == pytest.approx(0, abs=1e-9)  # PCA: seedless
    aligned = shared_projection(sets, "pca", "procrustes")
    assert aligned.alignment_disparity["livr"] == 0 and aligned.alignment_disparity["sft"] < 0.01
    assert np.allclose(aligned.xy["livr"][:24], aligned.xy["sft"], atol=0.1)
    plt.close(shared_projection_figure(aligned))
    with pytest.raises(LIVRError, match="one width"):
        shared_projection({"a": _points(a), "b": _points(a[:, :4])}, "pca", "joint")


def test_tsne_seed_stability_is_reported():
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.normal(c, 0.3, size=(20, 6)) for c in (0, 4)]).astype(np.float32)
    q = shared_projection({"one": _points(x)}, "tsne", "joint", seed=0).quality["one"]
    assert 0 <= q.seed_disparity < 1 and 0 < q.seed_knn_overlap <= 1 and q.trustworthiness > 0.8


def test_end_to_end_on_a_tiny_livr_model():
    from livr_viz.core.model import LIVRModel
    from livr_viz.demo.tiny import tiny_llava
    from livr_viz.methods.analysis import run_analysis
    from livr_viz.methods.tokenmap import dataset_points

    model, processor = tiny_llava(seed=0, image_size=32, patch_size=8)
    lm = LIVRModel.from_backbone("tiny", variant="livr", n_latents=4, model=model, processor=processor)
    prompt = "What colour is the square?\nOptions: red, blue.\nAnswer with one word."
    analysis = run_analysis(lm, random_image(0, (32, 32)), prompt, hidden_states=False)
    r = latent_redundancy(analysis.latent_maps(normalisation="none"))
    assert r.iou.shape == r.cosine.shape == (4, 4) and r.regions.shape == (4, 4, 4) and 1 <= r.effective_number <= 4
    film = latent_maps_by_layer(analysis)
    assert film.shape == (lm.base_model.config.text_config.num_hidden_layers, 4, 4, 4)
    plt.close(filmstrip_figure(film, analysis.image))
    items = [SimpleNamespace(image=random_image(i, (32, 32)), prompt=prompt, task="t") for i in range(2)]
    stages = {s: dataset_points(lm, items, layer=1, stage=s) for s in ("full", "bottleneck")}
    shared = shared_projection(stages, "pca", "joint")
    assert {n: xy.shape[0] for n, xy in shared.xy.items()} == {n: len(p.vectors) for n, p in stages.items()}
    plt.close(shared_projection_figure(shared))

"""Engine pieces on tiny random models (the bundled ones where their training is the subject): analysis report,
interventions, probes, token maps, attribution, faithfulness."""

import json

import numpy as np
import pytest
import torch

from livr_viz.core.errors import LIVRError
from livr_viz.data import make_sample
from livr_viz.data.dataset import SyntheticTaskDataset
from livr_viz.methods.analysis import parse_choices, run_analysis
from livr_viz.methods.faithfulness import evidence_on_grid, evidence_scores
from livr_viz.methods.interventions import LatentAblation, LatentPatching, replace_positions
from livr_viz.methods.probes import (
    ConceptSpec,
    LinearProbe,
    builtin_specs,
    control_labels,
    read_concept_csv,
    run_probes,
)
from livr_viz.methods.tokenmap import _CACHE, points_from_capture, project
from livr_viz.views.probes import save_probe_curves

from .conftest import run_cli


def test_parse_choices():
    assert parse_choices("Q? Choices: (A) x (B) y (C) z") == ["A", "B", "C"]
    assert parse_choices("no choices here") == []
    assert parse_choices("Which one?\nOptions: red, blue, same.\nAnswer with one word.") == ["red", "blue", "same"]
    assert parse_choices("Options: 3, 0, 5, 1.") == ["3", "0", "5", "1"]
    assert parse_choices("Options: red.") == []  # one option is no choice


def test_analysis_rows_and_views(tiny_model):
    s = make_sample("counting", "test", 0, 0, answer_format=tiny_model.config.answer_format)
    a = run_analysis(tiny_model, s.image, s.prompt)
    assert set(a.choice_probs) == set(s.options) and abs(sum(a.choice_probs.values()) - 1) < 1e-5
    maps = a.latent_maps()
    assert maps.shape == (16, 8, 8) and maps.min() >= 0 and maps.max() <= 1
    for aggregation in ("max", "rollout"):
        assert a.latent_maps(layers=[0, 3], heads=[1], aggregation=aggregation).shape == (16, 8, 8)
    bars = a.answer_latent_attention()
    assert bars.shape == (16,) and (bars >= 0).all() and bars.sum() <= 1 + 1e-6
    seg = a.segment_attention("latent")
    total = [sum(seg[k][layer] for k in seg) for layer in range(4)]
    assert np.allclose(total, 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="layers"):
        a.latent_maps(layers=[9])


def test_analyze_cli_writes_the_report(tmp_path, tiny_model, tiny_paths):
    s = make_sample("jigsaw", "test", 0, 0, answer_format=tiny_model.config.answer_format)
    s.image.save(tmp_path / "in.png")
    question = ("--image", str(tmp_path / "in.png"), "--prompt", s.prompt, "--stage", "bottleneck")
    proc = run_cli("analyze", "--model", tiny_paths["livr"], *question, "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["answer"] in s.options and set(report["choice_probs"]) == set(s.options)
    assert report["answer_segment_attention"]["image"] == [0.0] * 4  # Stage 1: the answer row never sees the image
    assert report["attention_implementation"] == "sdpa"  # every report names the kernel that produced it
    assert set(report["segment_attention"]) == {"image", "text", "latent", "answer"}
    assert report["latent_image_attention_shape"] == [16, 8, 8]
    for path in report["figures"].values():
        assert (tmp_path / "out" / path.split("/")[-1]).stat().st_size > 1000


def test_sft_analysis_uses_the_answer_row(tiny_paths):
    from livr_viz.core.model import load_model

    lm = load_model(tiny_paths["sft"])
    s = make_sample("counting", "test", 0, 1)
    a = run_analysis(lm, s.image, s.prompt)
    assert a.latent_maps().shape == (1, 8, 8) and a.answer_latent_attention().size == 0
    with pytest.raises(LIVRError, match="no latents"):
        LatentAblation(lm)


def test_ablation_and_patching_move_probabilities_and_unhook(tiny_model):
    s, s2 = make_sample("counting", "test", 0, 2), make_sample("counting", "test", 0, 3)
    b = tiny_model.build_inputs([s.image], [s.prompt])
    b2 = tiny_model.build_inputs([s2.image], [s2.prompt])
    for mode in ("zero", "mean", "noise", "remove", "blind"):
        r = LatentAblation(tiny_model, mode).run(b, range(16), s.letters)
        assert r.after.shape == (1, 4) and torch.allclose(r.after.sum(-1), torch.ones(1))
        assert r.delta.abs().max() > 0
    blind = LatentAblation(tiny_model, "blind").run(b, range(16), s.letters, "bottleneck").after
    masked = (
        tiny_model.answer_logits(b, "bottleneck", block_latent_image=True)[:, tiny_model.choice_token_ids(s.letters)]
        .float()
        .softmax(-1)
    )
    assert torch.allclose(blind, masked, atol=1e-5)  # blinding every latent == the mask's blind-latents option
    same = LatentPatching(tiny_model, layer=1).run(b, b, s.letters)
    other = LatentPatching(tiny_model, layer=1).run(b, b2, s.letters)
    assert other.after.shape == (1, 4)
    assert torch.allclose(same.before, same.after, atol=1e-5)  # patching in your own latents changes nothing
    with pytest.raises(LIVRError, match="latent indices"):
        LatentAblation(tiny_model).run(b, [99], s.letters)
    for make in (
        lambda layer: LatentAblation(tiny_model, "zero", layer),
        lambda layer: LatentAblation(tiny_model, "remove", layer),
        lambda layer: LatentPatching(tiny_model, layer=layer).run(b, b2, s.letters),
    ):
        for layer in (99, 4, -2):  # the LM has layers 0..3; -1 (embeddings) is the only negative
            with pytest.raises(LIVRError, match="layer must be -1 \\(embeddings\\) or 0..3"):
                make(layer)
    layer = tiny_model.family.language_model(tiny_model.base_model).layers[0]
    hooks_before = dict(layer._forward_hooks)  # transformers keeps its own output-capturing hooks here
    with pytest.raises(RuntimeError), replace_positions(tiny_model, 0, torch.tensor([[0]]), torch.zeros(1, 1, 64)):
        raise RuntimeError("boom")
    assert dict(layer._forward_hooks) == hooks_before


def test_linear_probe_learns_a_planted_direction_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    X = rng.normal(size=(300, 20))
    X[:, 0] += 3 * y
    probe = LinearProbe(seed=0).fit(X, y)
    assert probe.score(X, y) > 0.9
    cv = probe.cross_validate(X, y)
    assert cv["accuracy"] > 0.85 and cv["ci95"][0] < cv["accuracy"] < cv["ci95"][1]
    control = probe.cross_validate(X, control_labels(y, 0))
    assert control["accuracy"] < 0.5  # shuffled labels cannot be read off the features
    probe.save(tmp_path / "p", {"layer": 2})
    again = LinearProbe.load(tmp_path / "p")
    assert np.allclose(again.predict_proba(X), probe.predict_proba(X))
    assert again.meta_["layer"] == 2


def test_builtin_specs_and_probe_run(tiny_model, tmp_path):
    assert {"count", "color", "shape", "quadrant", "brightness_order", "transform", "style"} <= set(builtin_specs())
    items = SyntheticTaskDataset("counting", "train", 40, 0)
    report = run_probes(tiny_model, ConceptSpec.load("count"), items, tmp_path, random_baseline=True, per_latent=False)
    assert len(report.layers) == 5 and report.n == 40
    layer = report.layers[-1]
    assert {"latent_pooled", "control", "selectivity", "image_pooled", "text_pooled", "random_model"} <= set(layer)
    assert (tmp_path / "count_layer4.npz").exists() and (tmp_path / "count_report.json").exists()
    assert save_probe_curves(report, tmp_path).name == "count_curves.png"  # the figure is a view's job
    assert not list(tmp_path.glob("*.pkl"))


def test_concept_csv_errors(tmp_path):
    (tmp_path / "c.csv").write_text("id,size\na,1\n,2\n")
    with pytest.raises(LIVRError, match="line 3: missing id"):
        read_concept_csv(tmp_path / "c.csv", "size")
    (tmp_path / "d.csv").write_text("id,size\nnot-an-id,1\n")
    spec = ConceptSpec(name="size", source="csv:size")
    from livr_viz.methods.probes import labels_for

    with pytest.raises(LIVRError, match="not in the data"):
        labels_for(spec, SyntheticTaskDataset("counting", "train", 3, 0), tmp_path / "d.csv")
    with pytest.raises(LIVRError, match="no column"):
        read_concept_csv(tmp_path / "d.csv", "colour")


def test_tokenmap_projection_is_cached_and_deterministic(tiny_model):
    s = make_sample("art_style", "test", 0, 0)
    a = run_analysis(tiny_model, s.image, s.prompt)
    points = points_from_capture(a.capture, layer=4, index=0)
    assert set(np.unique(points.segment)) == {1, 2, 3}
    xy = project(points.vectors, "pca")
    assert xy.shape == (len(points.vectors), 2)
    n_cached = len(_CACHE)
    assert project(points.vectors, "pca") is xy and len(_CACHE) == n_cached


def test_evidence_scores_math():
    evidence = np.zeros((8, 8), bool)
    evidence[:4, :4] = True  # a quarter of the image
    maps = np.zeros((2, 4, 4))
    maps[0, 0, 0] = 1.0  # all mass inside
    maps[1, 3, 3] = 1.0  # all mass outside
    scores = evidence_scores(maps, evidence)
    assert scores["evidence_area_fraction"] == pytest.approx(0.25)
    assert scores["lift"] == pytest.approx([4.0, 0.0]) and scores["pointing_hit"] == [True, False]
    assert evidence_on_grid(evidence, (2, 2)).tolist() == [[1.0, 0.0], [0.0, 0.0]]


def test_attribution_reports_convergence_delta(tiny_model):
    from livr_viz.methods.attribution import attribute

    s = make_sample("counting", "test", 0, 4)
    b = tiny_model.build_inputs([s.image], [s.prompt])
    ig = attribute(tiny_model, b, "A", "integrated_gradients", n_steps=8, grid=(8, 8))
    assert ig.pixels.shape == (96, 96) and ig.patches.shape == (8, 8) and ig.latents.shape == (16,)
    assert ig.convergence_delta is not None and np.isfinite(ig.convergence_delta)
    sal = attribute(tiny_model, b, "B", "saliency")
    assert sal.convergence_delta is None and sal.pixels.sum() > 0


def test_collator_builds_training_batches(tiny_model):
    from livr_viz.core.segments import Segment
    from livr_viz.data.dataset import LIVRCollator

    items = [SyntheticTaskDataset("all", "train", 2, 0)[i] for i in range(4)]
    batch = LIVRCollator(tiny_model)(items)
    assert batch.meta["tasks"] == [it.task for it in items]
    answers = batch.labels[batch.labels != -100]
    assert len(answers) == 2 * len(items)  # the letter and the end-of-sequence token per item
    assert (batch.segments == int(Segment.ANSWER)).sum() == 2 * len(items)


def test_tokenmap_cli(tmp_path, tiny_paths):
    options = ("--n", "6", "--method", "pca", "--color-by", "task", "--out", str(tmp_path / "map"))
    proc = run_cli("tokenmap", "--model", tiny_paths["livr"], *options)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "map.png").stat().st_size > 5000 and "plotly" in (tmp_path / "map.html").read_text()[:100000]


@pytest.mark.slow
def test_probe_and_faithfulness_cli(tmp_path, tiny_paths):
    options = ("--concepts", "count", "--n", "25", "--no-random", "--out", str(tmp_path / "p"))
    proc = run_cli("probe", "--model", tiny_paths["livr"], *options)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "p" / "count_report.json").read_text())
    assert report["concept"] == "count" and len(report["layers"]) == 5
    assert (tmp_path / "p" / "count_curves.png").exists() and (tmp_path / "p" / "summary.json").exists()
    models = (tiny_paths["livr"], tiny_paths["sft"])
    options = ("--tasks", "counting,jigsaw", "--n", "3", "--sanity-n", "3", "--json", str(tmp_path / "f.json"))
    proc = run_cli("faithfulness", "--model", ",".join(models), *options)
    assert proc.returncode == 0, proc.stderr
    faith = json.loads((tmp_path / "f.json").read_text())
    assert set(faith) == set(models)
    for report in faith.values():
        assert set(report["tasks"]) == {"counting", "jigsaw"}
        assert {"mass_in_evidence", "lift", "pointing_game"} <= set(report["average"])
        assert -1.0 <= report["sanity"]["spearman_mean"] <= 1.0


def test_ablation_accuracy_refuses_a_model_without_latents_and_groups_mixed_tasks(tiny_model, tiny_paths):
    from livr_viz.core.model import load_model
    from livr_viz.data.dataset import SyntheticTaskDataset
    from livr_viz.methods.interventions import ablation_accuracy

    items = SyntheticTaskDataset("art_style", "test", 2, 2026)
    with pytest.raises(LIVRError, match="no latents"):
        ablation_accuracy(load_model(tiny_paths["sft"]), [items[0]])
    mixed = SyntheticTaskDataset("counting,jigsaw", "test", 3, 2026)  # other options per task: grouped, not mixed
    assert ablation_accuracy(tiny_model, [mixed[i] for i in range(len(mixed))], "remove", each=False)["n"] == 6


@pytest.mark.slow
def test_ablation_accuracy_over_a_dataset():
    """Dataset-level ablation on the shipped LIVR's art-style answers under the bottleneck (measured on these 40:
    67.5 % intact, 50 % with all latents blinded; blinding latent 7 alone costs 12.5 points, any other one nothing)."""
    from livr_viz.core.model import load_model
    from livr_viz.data.dataset import SyntheticTaskDataset
    from livr_viz.methods.interventions import ablation_accuracy
    from livr_viz.training.evaluate import evaluate

    lm = load_model("demo-livr")
    items = SyntheticTaskDataset("art_style", "test", 40, 2026)
    r = ablation_accuracy(lm, [items[i] for i in range(len(items))], "blind", stage="bottleneck", batch_size=16)
    assert r["n"] == 40 and len(r["per_latent_change"]) == 16
    assert r["accuracy_intact"] == evaluate(lm, items, "bottleneck")["average"]["accuracy"]
    assert (
        r["accuracy_all_ablated"] == evaluate(lm, items, "bottleneck", block_latent_image=True)["average"]["accuracy"]
    )
    assert r["accuracy_intact"] - r["accuracy_all_ablated"] >= 0.1  # the latents carry what the answer uses
    assert min(r["per_latent_change"]) <= -0.1 and sum(c == 0 for c in r["per_latent_change"]) >= 12  # a few carry it

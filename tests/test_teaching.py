"""The example picked for teaching: the rule, the scan's numbers against the model's own predictions, the record's
validity, the tool's no-candidate path, and the app's opening state with and without a record."""

import json
import re

import pytest

from livr_viz import service as S
from livr_viz.data.dataset import SyntheticTaskDataset
from livr_viz.methods.stats import wilson_interval
from livr_viz.methods.teaching import LIFT_MIN, P_MIN, ScoredQuestion, ranked_candidates, task_figures

TASKS = ["art_style", "counting"]
N = 3


def q(task, index, correct=True, p=0.9, lift=1.5, blind=None):
    return ScoredQuestion(task, index, f"{task}-{index}", correct, p, blind, None, lift)


def test_the_rule_orders_tasks_by_what_blinding_costs_then_prefers_flips_and_lift():
    scans = {
        # blinding costs nothing here: its questions come last, however high their lift
        "a": [q("a", 0, lift=3.0, blind=True), q("a", 1, blind=True)],
        # blinding costs 1/2: first; the flip before the higher lift, then lift
        "b": [q("b", 0, lift=2.0, blind=True), q("b", 1, lift=1.4, blind=False), q("b", 2, p=0.5, lift=3, blind=False)],
    }
    figures = task_figures(scans["b"])
    assert figures["accuracy"] == 1 and figures["accuracy_latents_blinded"] == pytest.approx(1 / 3)
    assert figures["blinding_cost"] == pytest.approx(2 / 3) and figures["ci95"] == list(wilson_interval(3, 3))
    assert figures["right_with_p_min"] == 2 and figures["eligible"] == 2 and figures["best_lift_among_them"] == 2.0
    assert [c.id for c in ranked_candidates(scans)] == ["b-1", "b-0", "a-0", "a-1"]
    below = {"a": [q("a", 0, p=P_MIN - 0.01, lift=5), q("a", 1, lift=LIFT_MIN - 0.01), q("a", 2, correct=False)]}
    assert ranked_candidates(below) == []  # the thresholds hold: nothing below them is ever a candidate


@pytest.fixture(scope="module")
def forced_scan(tiny_paths):
    """The tiny LIVR scanned on N questions of two tasks with the thresholds at 0, so it has a pick (a random model
    reaches no real threshold; the tool never lowers them)."""
    lm = S.POOL.get(tiny_paths["livr"])
    return lm, S.scan_teaching(lm, tiny_paths["livr"], TASKS, N, p_min=0.0, lift_min=0.0)


def test_the_records_numbers_are_the_models_predictions(forced_scan, tiny_paths):
    from livr_viz.training.evaluate import evaluate

    lm, result = forced_scan
    pick = result["pick"]
    assert pick is not None and pick["fingerprint"] == S.model_fingerprint(tiny_paths["livr"])
    questions = SyntheticTaskDataset([pick["task"]], "test", N, 2026, answer_format=lm.config.answer_format)
    metrics = evaluate(lm, questions)["tasks"][pick["task"]]  # what `livr-viz eval` says of the same questions
    acc = pick["task_accuracy"]
    assert acc["n"] == N and acc["accuracy"] == pytest.approx(metrics["accuracy"], abs=1e-4)
    assert acc["ci95"] == pytest.approx(metrics["ci95"], abs=1e-4)
    sample = questions[pick["index"]]
    assert sample.id == pick["sample_id"]
    # p and lift as the app shows them: the Attention tab's probabilities and its tiles' lifts (their mean is
    # Compare's lift: mass / area averaged over the latents)
    image = _saved(sample, tiny_paths)
    view = S.attention_view(tiny_paths["livr"], image, sample.prompt, "full", "all", "mean", "mean", "per_latent", 0.55)
    lifts = [float(re.search(r"lift (\d+\.\d+)", caption).group(1)) for _, caption in view["tiles"]]
    assert view["choice_probs"][str(sample.target)] == pytest.approx(pick["p"], abs=1e-3)
    assert sum(lifts) / len(lifts) == pytest.approx(pick["lift"], abs=0.006)
    checked = result["checked"][0]  # the batched scan and the single-question path agree
    assert checked["scan_p"] == pytest.approx(checked["p"], abs=1e-3)
    assert checked["scan_lift"] == pytest.approx(checked["lift"], abs=1e-3)


def _saved(sample, tiny_paths):
    from pathlib import Path

    path = Path(tiny_paths["base"]).parent / "teaching-samples" / f"{sample.id}.png"
    path.parent.mkdir(exist_ok=True)
    sample.image.save(path)
    return str(path)


def test_a_record_holds_only_while_its_model_is_the_scanned_one(forced_scan, tmp_path):
    _, result = forced_scan
    path = S.write_teaching(result["pick"], tmp_path)
    assert S.load_record(path)["path"] == str(tmp_path / result["pick"]["image"])
    stale = json.loads(path.read_text())
    stale["fingerprint"] = "0" * 16  # another checkpoint installed under the same name
    path.write_text(json.dumps(stale))
    assert S.load_record(path) is None and S.teaching_records(tmp_path) == []
    assert S.drop_teaching(result["pick"]["model"], tmp_path) and not list(tmp_path.iterdir())


def test_no_candidate_the_tool_says_so_and_records_nothing(tiny_paths, tmp_path, capsys):
    from tools.pick_example import main

    status = main(["--model", tiny_paths["livr"], "--tasks", "art_style", "--n", str(N), "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert status == 1 and "no test question" in out and f"p >= {P_MIN}" in out and f"lift >= {LIFT_MIN}" in out
    assert "art_style" in out.split("no test question")[0]  # the best figures found, per task
    assert not list(tmp_path.iterdir())


@pytest.fixture
def picked(forced_scan, tiny_paths, tmp_path, monkeypatch):
    """The examples folder with the tiny LIVR's record in it (views drawn before it, without the caption, dropped
    from the cache: a served app reads its records once, at start)."""
    _, result = forced_scan
    monkeypatch.setattr(S.teaching, "TEACHING_DIR", tmp_path)
    S.write_teaching(result["pick"], tmp_path)
    S.VIEWS.clear()
    yield result["pick"]
    S.VIEWS.clear()


def test_the_app_opens_on_the_picked_example_and_says_so(picked, tiny_paths):
    from livr_viz.ui.app import build_app, example_items

    model = tiny_paths["livr"]
    image, prompt = S.opening_example(model)
    assert image == S.teaching_for(model)["path"] and S.synthetic_sample_for(image, prompt).id == picked["sample_id"]
    assert S.gallery_examples() == [image, *S.ensure_examples()]  # added first; each task's first sample stays
    view = S.attention_view(model, image, prompt, "full", "all", "mean", "mean", "per_latent", 0.55)
    caption = view["markdown"]
    assert "Picked for teaching" in caption and f"{picked['p']:.2f}" in caption and f"{picked['lift']:.2f}" in caption
    acc = picked["task_accuracy"]
    assert f"{100 * acc['accuracy']:.1f} %" in caption and f"{100 * acc['ci95'][0]:.1f}" in caption
    assert (
        "Picked for teaching"
        not in S.attention_view(model, image, prompt, "bottleneck", "all", "mean", "mean", "per_latent", 0.55)[
            "markdown"
        ]
    )  # the figures are of stage full
    assert (
        "Picked for teaching"
        not in S.attention_view(tiny_paths["sft"], image, prompt, "full", "all", "mean", "mean", "per_latent", 0.55)[
            "markdown"
        ]
    )  # nor claimed for another model
    items = example_items(model)
    verdicts = S.example_verdicts(model)
    assert len(items) == len(verdicts) == len(S.gallery_examples())
    assert items[0][1].lstrip("✔✘ ").startswith("★ ") and not any("★" in name for _, name in items[1:])
    assert all(name[0] in "✔✘" for (_, name), v in zip(items, verdicts) if v is not None)
    answer = next(b for b in build_app(model).blocks.values() if getattr(b, "elem_id", None) == "answer")
    assert "Picked for teaching" in answer.value


def test_without_a_record_the_app_opens_as_before(tiny_paths, tmp_path, monkeypatch):
    from livr_viz.ui.app import build_app

    monkeypatch.setattr(S.teaching, "TEACHING_DIR", tmp_path)  # an examples folder with no record
    model = tiny_paths["livr"]
    assert S.gallery_examples() == S.ensure_examples()
    assert S.opening_example(model) == S.example_pick(model, 0)
    assert S.synthetic_sample_for(S.opening_example(model)[0]).task == S.LEAD_TASK
    answer = next(b for b in build_app(model).blocks.values() if getattr(b, "elem_id", None) == "answer")
    assert "Answer:" in answer.value and "Picked for teaching" not in answer.value


def test_every_shipped_record_holds_for_the_shipped_model():
    """A record in assets/examples is about the model installed now (a retrained trio needs the tool run again: it
    replaces the record or, with no candidate, removes it), and the app shows its p and lift at or above the
    thresholds when it answers the example."""
    files = sorted(S.EXAMPLES_DIR.glob(f"{S.TEACHING_PREFIX}*.json"))
    records = S.teaching_records(S.EXAMPLES_DIR)
    assert len(records) == len(files), "a record made on other model files: run python -m tools.pick_example"
    for record in records:
        image, prompt = S.opening_example(record["model"])
        assert image == record["path"]
        view = S.attention_view(record["model"], image, prompt, "full", "all", "mean", "mean", "per_latent", 0.55)
        lifts = [float(re.search(r"lift (\d+\.\d+)", caption).group(1)) for _, caption in view["tiles"]]
        p = view["choice_probs"][record["truth"]]
        assert p >= P_MIN and p == pytest.approx(record["p"], abs=1e-3)
        lift = sum(lifts) / len(lifts)  # the tiles' mean: Compare's lift
        assert lift >= LIFT_MIN and lift == pytest.approx(record["lift"], abs=0.006)
        assert "Picked for teaching" in view["markdown"]

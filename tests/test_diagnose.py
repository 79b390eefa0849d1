""" "Is the model really using its latents?" (issue 21): every diagnostic against a case whose answer is known."""

import json

import numpy as np
import pytest

from livr_viz.core.capture import base_attn_implementation
from livr_viz.core.errors import LIVRError
from livr_viz.core.model import LIVRModel
from livr_viz.data.dataset import SyntheticTaskDataset
from livr_viz.demo.backbone import DemoBackboneConfig, save_demo_backbone
from livr_viz.methods import diagnostics as D
from livr_viz.methods.stats import task_summary, wilson_interval

from .conftest import SMALL_BACKBONE, run_cli, small_model


@pytest.fixture(scope="module")
def livr():
    return small_model("livr")


@pytest.fixture(scope="module")
def sft():
    return small_model("sft")


@pytest.fixture(scope="module")
def items():
    return SyntheticTaskDataset(["counting", "object_localization"], "test", 2, 7, answer_format="word")


@pytest.fixture(scope="module")
def report(livr, sft, items):
    return D.diagnose({"livr": livr, "sft": sft}, items, batch_size=3)


def test_intervals_have_known_values():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    lo, hi = wilson_interval(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    s = task_summary({"a": [1, 1, 0, 0], "b": [1, 1, 1, 1]}, binary=True)
    assert (
        s["average"]["mean"] == 0.75
        and s["average"]["n"] == 8
        and 0 < s["average"]["ci95"][0] < 0.75 < s["average"]["ci95"][1] <= 1
    )
    per_layer = task_summary({"a": np.array([[0.0, 1.0], [2.0, 1.0]])})  # trailing axes (layers) are kept
    assert per_layer["tasks"]["a"]["mean"] == [1.0, 1.0] and per_layer["tasks"]["a"]["ci95"][0][1] == 1.0
    assert task_summary({"a": [0.3]})["average"]["ci95"] is None  # one value: no interval, not a made-up one


def test_a_model_without_latents_says_na(report):
    sft = report.models["sft"]["sections"]
    assert list(sft["table"]["conditions"]) == ["standard"] and sft["table"]["verdict"]["answer"] == "n/a"
    assert sft["stage1"]["status"] == sft["per_latent"]["status"] == "n/a"
    assert sft["flow"]["stages"]["full"]["latent"] is None and "bottleneck" not in sft["flow"]["stages"]
    assert sft["table"]["answer_latent_attention"] is None
    assert report.section("livr", "stage1")["reason"] == "no Stage-1 checkpoint was given"
    assert any(line.startswith("livr vs sft: Δ accuracy") for line in report.summary_lines())


def test_table_counts_every_question_under_every_condition(report, items):
    table = report.section("livr", "table")
    assert list(table["conditions"]) == list(D.TABLE_CONDITIONS)
    for summary in table["conditions"].values():
        assert summary["average"]["n"] == len(items) and set(summary["tasks"]) == {"counting", "object_localization"}
    assert 0 < table["answer_latent_attention"]["average"]["mean"] <= 1
    assert table["verdict"]["answer"] in ("yes", "not shown") and "standard − blind" in table["verdict"]["reason"]


def test_under_the_bottleneck_the_answer_row_sees_no_image_in_any_layer(report):
    flow = report.section("livr", "flow")
    assert flow["n_layers"] == 2
    bottleneck, full = flow["stages"]["bottleneck"], flow["stages"]["full"]
    for task in bottleneck["answer"]["image"]["tasks"].values():
        assert task["mean"] == [0.0, 0.0]  # exactly: the float mask's blocked weights are exactly 0 after softmax
    assert all(v > 0 for v in full["answer"]["image"]["average"]["mean"])  # the ordinary mask does see it
    assert all(v > 0 for v in bottleneck["latent"]["image"]["average"]["mean"])  # latents still see the image
    for rows in (full["answer"], full["latent"], bottleneck["answer"]):  # image + text + latent = all the mass
        total = np.sum([rows[s]["average"]["mean"] for s in ("image", "text", "latent")], axis=0)
        assert np.allclose(total, 1.0, atol=1e-5)


def test_blinding_a_latent_that_is_already_blind_changes_nothing(livr, items, monkeypatch):
    live = D.diagnose({"livr": livr}, items).section("livr", "per_latent")
    assert np.abs(live["latents"]["drop"]["average"]["mean"]).max() > 0  # a random model's latents do matter a bit
    assert live["spearman"]["image"]["n"] == 3 and live["latents"]["evidence"] is not None
    model_kwargs = livr.model_kwargs  # a model whose latents never see the image
    monkeypatch.setattr(
        livr,
        "model_kwargs",
        lambda batch, stage="full", block_latent_image=False, image_bias=0.0: model_kwargs(
            batch, stage, True, image_bias
        ),
    )
    blind = D.diagnose({"livr": livr}, items)
    effects = blind.section("livr", "per_latent")
    assert effects["latents"]["drop"]["average"]["mean"] == [0.0] * 3
    assert effects["latents"]["image"]["average"]["mean"] == [0.0] * 3
    assert effects["spearman"]["image"]["rho"] is None  # no variation to rank, and no made-up correlation
    assert blind.section("livr", "table")["paired"]["blind"]["average"]["delta"] == 0


def test_eager_and_sdpa_agree_and_a_perturbed_kernel_is_caught(livr, items, monkeypatch):
    from transformers import AttentionInterface

    check = D.check_backends(livr, items, batch_size=2)
    assert check["reference"] == "sdpa" and set(check["implementations"]) == {"eager"}
    for r in check["implementations"]["eager"].values():
        assert r["agreement"] == 1.0 and r["kl_max"] < 1e-9 and r["max_attention_diff"] < 1e-5
    assert check["warnings"] == [] and base_attn_implementation(livr.base_model) == "sdpa"
    eager = AttentionInterface._global_mapping["livr_capture_eager"]
    monkeypatch.setitem(
        AttentionInterface._global_mapping,
        "livr_capture_eager",
        lambda module, query, *args, **kwargs: eager(module, query * 3, *args, **kwargs),
    )
    bad = D.check_backends(livr, items, batch_size=2)
    assert bad["implementations"]["eager"]["full"]["max_attention_diff"] > D.BACKEND_ATTENTION_TOLERANCE
    assert bad["warnings"] and "disagree" in bad["warnings"][0]
    with pytest.raises(RuntimeError), D.attention_implementation(livr, "eager"):
        raise RuntimeError("a forward that fails")
    assert base_attn_implementation(livr.base_model) == "sdpa"  # the kernel comes back, also after an exception


def test_the_vision_tower_runs_once_per_batch_and_no_number_changes(livr, items):
    from livr_viz.methods.latent_use import latent_use_predictions

    calls = []
    handle = livr.base_model.model.vision_tower.register_forward_hook(lambda *args: calls.append(1))
    try:
        plain, n_plain = latent_use_predictions(livr, items), len(calls)
        with D.reuse_image_features(livr):
            reused = latent_use_predictions(livr, items)
    finally:
        handle.remove()
    assert reused == plain  # bit for bit: every probability of every condition
    assert n_plain == 5 * (len(calls) - n_plain)  # 1 capture + 4 conditions per batch, the tower once per batch
    assert "get_image_features" not in vars(livr.base_model.model)  # nothing left behind


def test_a_rerun_skips_finished_sections(livr, sft, items, tmp_path, monkeypatch):
    out = tmp_path / "diagnosis.json"
    calls = []
    for lm in (livr, sft):
        monkeypatch.setattr(lm, "model_kwargs", lambda *a, _f=lm.model_kwargs, **k: calls.append(1) or _f(*a, **k))
    seen = []
    first = D.diagnose({"livr": livr, "sft": sft}, items, out=out, progress=lambda f, m: seen.append(f))
    assert calls and seen[-1] == 1.0 and seen == sorted(seen)
    calls.clear()
    again = D.diagnose({"livr": livr, "sft": sft}, items, out=out)
    assert calls == [] and again.to_dict() == json.loads(json.dumps(first.to_dict()))
    data = json.loads(out.read_text())
    del data["models"]["livr"]["sections"]["flow"]
    out.write_text(json.dumps(data))
    resumed = D.diagnose({"livr": livr, "sft": sft}, items, out=out)
    assert len(calls) == 2 * len(D._batches(list(items), 32))  # full + bottleneck per batch: only the flow ran again
    assert resumed.section("livr", "flow") == first.section("livr", "flow")
    other = SyntheticTaskDataset(["counting"], "test", 2, 8, answer_format="word")
    with pytest.raises(LIVRError, match="other questions or settings"):
        D.diagnose({"livr": livr}, other, out=out)
    assert D.DiagnosticReport.load(out).to_dict() == resumed.to_dict()


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    """A run folder as tools/reproduce.py lays it out: livr/model, livr/stage1_model, sft/model."""
    root = tmp_path_factory.mktemp("run")
    base = save_demo_backbone(root / "base", DemoBackboneConfig(seed=5, **SMALL_BACKBONE))
    livr = LIVRModel.from_backbone(str(base), variant="livr", n_latents=2)
    livr.save(root / "livr" / "model")
    livr.save(root / "livr" / "stage1_model")
    LIVRModel.from_backbone(str(base), variant="sft").save(root / "sft" / "model")
    return root


def test_cli_writes_json_and_a_self_contained_html(saved_run, tmp_path):
    from livr_viz.cli.main import main

    out_json, out_html = tmp_path / "d.json", tmp_path / "d.html"
    code = main(
        [
            "diagnose",
            "--model",
            str(saved_run / "livr" / "model"),
            "--compare",
            str(saved_run / "sft" / "model"),
            "--tasks",
            "counting",
            "--n",
            "2",
            "--batch-size",
            "2",
            "--check-backends",
            "--json",
            str(out_json),
            "--html",
            str(out_html),
        ]
    )
    assert code == 0
    data = json.loads(out_json.read_text())
    livr = data["models"][str(saved_run / "livr" / "model")]
    assert livr["sections"]["stage1"]["status"] == "done"  # found beside the model, as reproduce saves it
    assert livr["sections"]["backends"]["warnings"] == [] and livr["info"]["attn_implementation"] == "sdpa"
    assert len(data["comparisons"]) == 1
    page = out_html.read_text()
    assert page.count("src='data:image/png;base64,") == 2  # figures inside the page: nothing else to fetch
    assert "src='http" not in page and "<script" not in page and "<link" not in page
    assert "Uses its latents" in page and "Stage-1 checkpoint, bottleneck" in page


def test_the_service_default_is_the_librarys():
    import inspect

    from livr_viz.service import diagnose_models

    assert inspect.signature(diagnose_models).parameters["effect_per_task"].default == D.EFFECT_PER_TASK


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--tasks", "counting,nope"], "unknown task"),
        (["--n", "0"], "must be at least 1"),
        (["--model", "/no/such/model"], "model path not found"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    from livr_viz.cli.main import main

    assert main(["diagnose", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


def test_report_round_trips_through_json(report):
    again = D.DiagnosticReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert again.to_dict() == json.loads(json.dumps(report.to_dict()))
    with pytest.raises(LIVRError, match="not a diagnosis report"):
        D.DiagnosticReport.from_dict({"version": 0})


@pytest.mark.slow
def test_cli_scores_explanations_beside_the_report(tmp_path):
    """``--explanations N``: deletion / insertion AUCs per explanation and the latents' redundancy, as JSON."""
    out = tmp_path / "d.json"
    sizes = ("--tasks", "counting", "--n", "2", "--effect-n", "1", "--explanations", "1")
    proc = run_cli("diagnose", "--model", "demo-livr", *sizes, "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    found = json.loads(out.with_suffix(".explanations.json").read_text())
    assert found["items"] and {s["model"] for s in found["deletion"]} == {"demo-livr"}
    assert found["redundancy"]["effective_number"] >= 1 and "deletion AUC" in proc.stdout

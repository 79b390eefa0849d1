"""``livr-viz sweep``: value × seed LIVR fine-tunes plus SFT per seed, one JSON and one plot, resumable, refusing a
folder made with other settings. The orchestration is tested with a fake trainer (fast); one end-to-end run trains
a tiny random backbone for real, through the Python API and the command line."""

import json
from pathlib import Path

import pytest

from livr_viz.core.errors import LIVRError
from livr_viz.training import sweep as sweep_module
from livr_viz.training.sweep import check_seeds, check_values, parse_param, summarize_sweep, sweep
from livr_viz.training.trainer import TrainConfig

from .conftest import run_cli


@pytest.mark.parametrize(
    "param, values, message",
    [
        ("dropout", ["1"], "cannot sweep 'dropout'"),
        ("n_latents", ["0"], "integers >= 1"),
        ("n_latents", ["4.5"], "integers >= 1"),
        ("n_latents", [True], "integers >= 1"),
        ("lora_r", ["-2"], "integers >= 1"),
        ("stage1_fraction", ["1.5"], r"in \[0, 1\]"),
        ("stage1_fraction", ["nan"], r"in \[0, 1\]"),
        ("stage1_fraction", ["0.2", "0.20"], "given twice"),
        ("n_latents", [], "at least one value"),
    ],
)
def test_bad_params_and_values_are_clear_errors(param, values, message):
    with pytest.raises(LIVRError, match=message):
        check_values(param, values)


def test_values_parse_sort_and_bad_settings_stop_before_any_work(tmp_path):
    assert parse_param("stage1_fraction=0.4, 0,0.2") == ("stage1_fraction", ["0.4", "0", "0.2"])
    assert check_values("stage1_fraction", ["0.4", "0", "0.2"]) == [0.0, 0.2, 0.4]
    assert check_values("n_latents", [32, "4"]) == [4, 32] and check_seeds(3) == [0, 1, 2]
    for text in ("n_latents", "n_latents=", "=4,8"):
        with pytest.raises(LIVRError, match="NAME=V1,V2"):
            parse_param(text)
    with pytest.raises(LIVRError, match="seeds"):
        check_seeds(0)
    with pytest.raises(LIVRError, match="n_latents"):  # above the model's limit: found when the configs are built
        sweep("n_latents", [4, 100_000], 1, "counting", tmp_path / "a")
    with pytest.raises(LIVRError, match="unknown task"):
        sweep("n_latents", [4], 1, "countin", tmp_path / "b")
    with pytest.raises(LIVRError, match="unknown preset"):
        sweep("n_latents", [4], 1, "counting", tmp_path / "c", preset="huge")
    assert not any(tmp_path.iterdir())  # nothing written


def _run(variant, value, seed, **tasks):
    return {
        "variant": variant,
        "value": value,
        "seed": seed,
        "tasks": tasks,
        "average": sum(tasks.values()) / 2,
        "chance": 0.5,
    }


def _runs(record: dict) -> list[tuple]:
    return [(r["variant"], r["value"], r["seed"]) for r in record["runs"]]


def _expected_runs(values: list, seeds: int) -> list[tuple]:
    """A sweep's order: seed by seed, the SFT baseline and then LIVR at each value."""
    return [run for seed in range(seeds) for run in [("sft", None, seed)] + [("livr", v, seed) for v in values]]


def test_aggregation_is_mean_and_sample_sd_over_seeds():
    runs = [
        _run("sft", None, 0, a=0.5, b=0.5),
        _run("sft", None, 1, a=0.7, b=0.5),
        _run("livr", 4, 0, a=0.6, b=0.6),
        _run("livr", 4, 1, a=0.8, b=0.8),
        _run("livr", 4, 2, a=0.7, b=0.7),
        _run("livr", 8, 0, a=0.9, b=0.5),
    ]
    summary = summarize_sweep(runs, [4, 8, 16])
    four, eight, sixteen = summary["livr"]
    assert four["n_seeds"] == 3 and four["average"]["mean"] == pytest.approx(0.7)
    assert four["average"]["sd"] == pytest.approx(0.1)  # sd of 0.6, 0.8, 0.7 with n - 1
    assert four["tasks"]["a"] == pytest.approx({"mean": 0.7, "sd": 0.1})
    assert four["vs_sft"]["mean"] == pytest.approx(((0.6 - 0.5) + (0.8 - 0.6)) / 2)  # seed 2 has no SFT pair
    assert eight["average"] == pytest.approx({"mean": 0.7, "sd": None})  # one seed: no sd
    assert sixteen["n_seeds"] == 0 and sixteen["average"] == {"mean": None, "sd": None}
    assert summary["sft"]["average"]["mean"] == pytest.approx(0.55)
    assert summary["sft"]["average"]["sd"] == pytest.approx(0.0707107)
    assert summary["chance"] == 0.5


@pytest.fixture
def fake_training(monkeypatch):
    """Replaces training, loading and evaluation in the sweep: ``calls`` lists (run dir, resume) per train."""
    calls, loaded = [], []

    def train(backbone, cfg, out, resume=False, progress=True):
        calls.append((f"{out.parent.name}/{out.name}", resume))
        (out / "model").mkdir(parents=True)
        (out / "train_config.json").write_text(json.dumps(cfg.to_dict()))
        return cfg, {}

    def evaluate(cfg, items, stage):
        accuracy = 0.5 + cfg.n_latents / 100 + cfg.seed / 1000  # the "model" is its config
        return {"tasks": {"counting": {"accuracy": accuracy}}, "average": {"accuracy": accuracy, "chance": 0.5}}

    def load_model(path):
        loaded.append(path)
        return TrainConfig.from_dict(json.loads((Path(path).parent / "train_config.json").read_text()))

    monkeypatch.setattr(sweep_module, "train", train)
    monkeypatch.setattr(sweep_module, "evaluate", evaluate)
    monkeypatch.setattr(sweep_module, "load_model", load_model)
    return calls, loaded


def test_sweep_writes_every_run_resumes_and_refuses_other_settings(tmp_path, fake_training):
    calls, loaded = fake_training
    lines = []
    args = ("n_latents", ["8", "4"], 2, "counting", tmp_path)
    result = sweep(*args, n_test=3, log=lines.append)
    assert [c for c in calls] == [
        ("sft/seed0", False),
        ("n_latents=4/seed0", False),
        ("n_latents=8/seed0", False),
        ("sft/seed1", False),
        ("n_latents=4/seed1", False),
        ("n_latents=8/seed1", False),
    ]
    assert len(lines) == 7 and lines[1].startswith("[1/6] sft/seed0: trained 24 steps, test accuracy 0.500")
    record = json.loads((tmp_path / "sweep.json").read_text())
    assert record["settings"] | {"tasks": None} == {
        "param": "n_latents",
        "values": [4, 8],
        "seeds": [0, 1],
        "tasks": None,
        "preset": "quick",
        "steps": 24,
        "backbone": "demo-base",
        "n_test": 3,
        "test_seed": 2026,
    }
    assert _runs(record) == _expected_runs([4, 8], seeds=2)
    assert record["summary"]["livr"][1]["average"] == pytest.approx({"mean": 0.5805, "sd": 0.000707107})
    assert record["summary"]["livr"][1]["vs_sft"] == pytest.approx({"mean": 0.08, "sd": 0.0})
    assert result.summary == record["summary"] and (tmp_path / "sweep.png").stat().st_size > 0
    assert "0.581 ± 0.001    +0.080 ± 0.000" in "\n".join(result.summary_lines())

    calls.clear()
    sweep(*args, n_test=3, log=lines.append)  # finished: nothing trained, nothing loaded
    assert calls == [] and loaded == []

    # interrupted: one run killed mid-training (a checkpoint, no model), one after training but before its eval
    record["runs"] = [r for r in record["runs"] if (r["value"], r["seed"]) not in ((4, 1), (8, 1))]
    (tmp_path / "sweep.json").write_text(json.dumps(record))
    (tmp_path / "n_latents=4/seed1/model").rmdir()
    (tmp_path / "n_latents=4/seed1/checkpoint").mkdir()
    sweep(*args, n_test=3, log=lines.append)
    assert calls == [("n_latents=4/seed1", True)] and loaded == [str(tmp_path / "n_latents=8/seed1/model")]
    assert json.loads((tmp_path / "sweep.json").read_text())["summary"] == result.summary

    calls.clear()
    with pytest.raises(LIVRError, match=r"other settings \(values: \[4, 8\] -> \[4, 16\]; n_test: 3 -> 5\)"):
        sweep("n_latents", ["4", "16"], 2, "counting", tmp_path, n_test=5)
    with pytest.raises(LIVRError, match="other settings"):
        sweep("stage1_fraction", ["0.2"], 2, "counting", tmp_path, n_test=3)
    assert calls == []
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(LIVRError, match="not empty and holds no sweep.json"):
        sweep(*args[:-1], tmp_path / "other")


def test_lora_rank_sweep_keeps_alpha_at_twice_the_rank():
    _, cfg = sweep_module.plan_runs("lora_r", [4], [0], ["counting"], "quick", 5)[1]
    assert (cfg.variant, cfg.lora_r, cfg.lora_alpha, cfg.steps, cfg.seed, cfg.data_seed) == ("livr", 4, 8, 5, 0, 0)


def test_cli_bad_input_exits_2(tmp_path):
    for param, message in (("n_latents=0,4", "n_latents takes integers >= 1"), ("K=4", "cannot sweep 'K'")):
        proc = run_cli("sweep", "--tasks", "counting", "--out", str(tmp_path / "s"), "--param", param)
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "s").exists()


@pytest.fixture(scope="module")
def tiny_backbone(tmp_path_factory):
    from livr_viz.demo.backbone import DemoBackboneConfig, save_demo_backbone

    vision = dict(vision_hidden=32, vision_layers=1, vision_heads=2)
    sizes = DemoBackboneConfig(**vision, text_hidden=32, text_layers=2, text_heads=2, text_intermediate=64)
    return str(save_demo_backbone(tmp_path_factory.mktemp("sweep") / "base", sizes))


@pytest.mark.slow
def test_sweep_end_to_end_on_a_tiny_backbone(tmp_path, tiny_backbone, monkeypatch):
    def sweep_k(values):  # K in ``values``, 2 seeds, 2 steps each, into the same folder
        kwargs = dict(steps=2, backbone=tiny_backbone, n_test=4, log=lambda line: None)
        return sweep("n_latents", values, 2, "counting", tmp_path / "api", **kwargs)

    result = sweep_k([2, 4])
    record = json.loads(result.json_path.read_text())
    assert _runs(record) == _expected_runs([2, 4], seeds=2)
    for run in record["runs"]:
        assert (tmp_path / "api" / run["dir"] / "model" / "livr_config.json").is_file()
        assert set(run["tasks"]) == {"counting"} and 0 <= run["average"] <= 1 and run["steps"] == 2
    assert [(row["value"], row["n_seeds"]) for row in record["summary"]["livr"]] == [(2, 2), (4, 2)]
    assert record["summary"]["sft"]["n_seeds"] == 2 and result.plot_path.stat().st_size > 0

    trained = []
    monkeypatch.setattr(sweep_module, "train", lambda *a, **k: trained.append(a))
    again = sweep_k([4, 2])
    assert trained == [] and again.runs == result.runs
    monkeypatch.undo()  # the command below trains for real, in this process

    monkeypatch.setenv("TQDM_DISABLE", "1")
    options = ("--seeds", "1", "--tasks", "counting", "--steps", "2", "--n-test", "4", "--model", tiny_backbone)
    proc = run_cli("sweep", "--param", "stage1_fraction=0,0.5", *options, "--out", str(tmp_path / "cli"))
    assert proc.returncode == 0, proc.stderr
    assert "[3/3] stage1_fraction=0.5/seed0: trained 2 steps" in proc.stderr and "wrote" in proc.stdout
    runs = json.loads((tmp_path / "cli" / "sweep.json").read_text())["runs"]
    assert [r["dir"] for r in runs] == ["sft/seed0", "stage1_fraction=0.0/seed0", "stage1_fraction=0.5/seed0"]
    assert (tmp_path / "cli" / "sweep.png").is_file()

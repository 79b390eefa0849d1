"""tools/experiments/seeds.py: the replicated-runs table computes per-seed deltas and refuses runs with different
recipes."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _seeds_module():
    spec = importlib.util.spec_from_file_location("bench_seeds", ROOT / "tools" / "experiments" / "seeds.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(path: Path, seed: int, acc: dict, steps: int = 300) -> str:
    def block(a):
        return {"tasks": {"art_style": {"accuracy": a, "chance": 0.5}}}

    configs = {v: {"seed": seed, "data_seed": seed, "steps": steps} for v in ("sft", "latents_only", "livr")}
    results = {
        "tasks": ["art_style"],
        "test_seed": 2026,
        "n_test_per_task": 200,
        "preset": "demo",
        "configs": configs,
        "eval": {
            "sft": {"full": block(acc["sft"])},
            "latents_only": {"full": block(acc["lo"])},
            "livr": {"full": block(acc["livr"]), "bottleneck_blind_latents": block(0.5)},
            "livr_stage1_only": {"bottleneck": block(acc["s1"])},
        },
    }
    path.mkdir()
    (path / "results.json").write_text(json.dumps(results))
    return str(path)


def test_table_reports_every_seed_mean_sd_and_paired_delta(tmp_path):
    seeds = _seeds_module()
    a = _run(tmp_path / "a", 42, {"sft": 0.685, "lo": 0.705, "livr": 0.715, "s1": 0.645})
    b = _run(tmp_path / "b", 1, {"sft": 0.69, "lo": 0.64, "livr": 0.72, "s1": 0.615})
    text = seeds.table([a, b])
    assert "| seed 42 | seed 1 | mean | sd |" in text
    assert "| SFT | 68.5 | 69.0 | 68.8 | 0.4 |" in text
    assert "| latents-only | 70.5 | 64.0 | 67.2 | 4.6 |" in text
    assert "| LIVR − SFT | +3.0 | +3.0 | +3.0 | 0.0 |" in text
    assert "| LIVR after Stage 1, bottleneck mask | 64.5 | 61.5 | 63.0 | 2.1 |" in text


def test_runs_with_another_recipe_are_refused(tmp_path):
    seeds = _seeds_module()
    a = _run(tmp_path / "a", 42, {"sft": 0.6, "lo": 0.6, "livr": 0.6, "s1": 0.6})
    b = _run(tmp_path / "b", 1, {"sft": 0.6, "lo": 0.6, "livr": 0.6, "s1": 0.6}, steps=800)
    with pytest.raises(SystemExit, match="more than the seeds"):
        seeds.table([a, b])
    with pytest.raises(SystemExit, match="not found"):
        seeds.table([a, str(tmp_path / "missing")])

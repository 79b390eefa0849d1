"""The paper's K and schedule ablations as one call: fine-tune a LIVR model for every value of one setting × seed,
plus an SFT baseline per seed, evaluate each on the same test questions, and write ``OUT/sweep.json`` (settings,
every run's accuracy per task and macro average, mean ± sd over seeds per value) and ``OUT/sweep.png``.

Runs live in ``OUT/<param>=<value>/seed<k>/`` and ``OUT/sft/seed<k>/`` (each a trainer run directory). Seed ``k``
is both the init / dropout seed and the data seed, so the SFT run of seed ``k`` is the paired baseline of every
value's run of seed ``k``. Resumable: a run whose model is saved and whose evaluation is in ``sweep.json`` is
skipped, an interrupted one continues from its checkpoint (the trainer's ``resume=True``), and ``OUT`` made with
other settings is refused. sd is the sample standard deviation over seeds (None for a single seed).
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from livr_viz.core.config import TEST_SEED
from livr_viz.core.errors import LIVRError
from livr_viz.core.fsutil import previous_copy
from livr_viz.core.model import load_model
from livr_viz.data.dataset import SyntheticTaskDataset
from livr_viz.data.tasks import resolve_tasks
from livr_viz.training.evaluate import evaluate
from livr_viz.training.trainer import TrainConfig, check_run_settings, preset_config, train
from livr_viz.views.sweep import plot_sweep

# the settings a sweep may vary, and the values each takes (LIVRConfig checks the upper bounds)
PARAMS = {
    "n_latents": "integers >= 1 (K, the number of latent tokens)",
    "stage1_fraction": "numbers in [0, 1] (the share of steps in Stage 1)",
    "lora_r": "integers >= 1 (the LoRA rank; alpha follows at 2 x rank)",
}
RESULTS_NAME, PLOT_NAME = "sweep.json", "sweep.png"


# --------------------------------------------------------------------------------------------- settings
def parse_param(text: str) -> tuple[str, list[str]]:
    """``"n_latents=4,8,16"`` → ``("n_latents", ["4", "8", "16"])`` (checked by :func:`check_values`)."""
    name, sep, values = text.partition("=")
    if not sep or not name.strip() or not values.strip():
        raise LIVRError(
            f"--param takes NAME=V1,V2,...; e.g. n_latents=4,8,16 or stage1_fraction=0,0.2,0.4; got {text!r}"
        )
    return name.strip(), [v.strip() for v in values.split(",")]


def check_values(param: str, values: Sequence) -> list[int | float]:
    """The values of ``param`` as numbers, ascending; LIVRError for an unknown parameter, a bad or repeated value."""
    if param not in PARAMS:
        raise LIVRError(f"cannot sweep {param!r}; choose from {', '.join(PARAMS)}")
    integer = param != "stage1_fraction"
    checked = []
    for raw in values:
        try:
            value = None if isinstance(raw, bool) else int(str(raw)) if integer else float(str(raw))
        except ValueError:
            value = None
        if value is None or not (value >= 1 if integer else 0.0 <= value <= 1.0):  # nan fails the range too
            raise LIVRError(f"{param} takes {PARAMS[param]}; got {raw!r}")
        if value in checked:
            raise LIVRError(f"{param}={value} is given twice; give each value once")
        checked.append(value)
    if not checked:
        raise LIVRError(f"give at least one value of {param}, e.g. {param}=4,8,16")
    return sorted(checked)


def check_seeds(seeds: int | Sequence[int]) -> list[int]:
    """A count (``3`` → seeds 0, 1, 2) or the seeds themselves."""
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            raise LIVRError(f"--seeds must be at least 1; got {seeds}")
        return list(range(seeds))
    chosen = list(seeds)
    if not chosen or len(set(chosen)) != len(chosen) or not all(isinstance(s, int) and s >= 0 for s in chosen):
        raise LIVRError(f"seeds must be a count >= 1 or distinct integers >= 0; got {seeds!r}")
    return chosen


def plan_runs(
    param: str, values: list, seeds: list[int], tasks: list[str], preset: str, steps: int | None
) -> list[tuple[dict, TrainConfig]]:
    """Every run in training order (per seed: SFT, then each value, so an early stop still gives whole curves), as
    ``({"variant", "value", "seed", "dir"}, TrainConfig)``. Building every config first rejects bad settings before
    any training."""
    runs = []
    for seed in seeds:
        common = {"tasks": ",".join(tasks), "steps": steps, "seed": seed, "data_seed": seed}
        runs.append(
            (
                {"variant": "sft", "value": None, "seed": seed, "dir": f"sft/seed{seed}"},
                preset_config(preset, variant="sft", **common),
            )
        )
        for value in values:
            setting = {param: value, **({"lora_alpha": 2 * value} if param == "lora_r" else {})}
            runs.append(
                (
                    {"variant": "livr", "value": value, "seed": seed, "dir": f"{param}={value}/seed{seed}"},
                    preset_config(preset, variant="livr", **common, **setting),
                )
            )
    return runs


# --------------------------------------------------------------------------------------------- aggregation
def mean_sd(xs: Sequence[float]) -> dict:
    """``{"mean", "sd"}`` with the sample sd (n - 1); None where the values cannot give one."""
    return {"mean": statistics.fmean(xs) if xs else None, "sd": statistics.stdev(xs) if len(xs) > 1 else None}


def summarize_sweep(runs: list[dict], values: list) -> dict:
    """Per value (LIVR) and for SFT: seeds done, mean ± sd of the macro average and of each task's accuracy over
    seeds; per value also ``vs_sft``, mean ± sd of the paired difference to SFT of the same seed."""
    sft = {r["seed"]: r for r in runs if r["variant"] == "sft"}

    def group(rows: list[dict]) -> dict:
        tasks = rows[0]["tasks"] if rows else {}
        return {
            "n_seeds": len(rows),
            "average": mean_sd([r["average"] for r in rows]),
            "tasks": {t: mean_sd([r["tasks"][t] for r in rows]) for t in tasks},
        }

    livr = []
    for value in values:
        rows = [r for r in runs if r["variant"] == "livr" and r["value"] == value]
        paired = [r["average"] - sft[r["seed"]]["average"] for r in rows if r["seed"] in sft]
        livr.append({"value": value, **group(rows), "vs_sft": mean_sd(paired)})
    return {"livr": livr, "sft": group(list(sft.values())), "chance": runs[0]["chance"] if runs else None}


# --------------------------------------------------------------------------------------------- the sweep
@dataclass
class SweepResult:
    """What ``sweep.json`` holds, and where it and the plot are."""

    settings: dict
    runs: list[dict]  # per run: variant, value (None for SFT), seed, dir, tasks {task: accuracy}, average, ...
    summary: dict  # see summarize_sweep
    json_path: Path
    plot_path: Path

    def summary_lines(self) -> list[str]:
        def cell(stats: dict, sign: str = "") -> str:
            if stats["mean"] is None:
                return "-"
            return f"{stats['mean']:{sign}.3f}" + ("" if stats["sd"] is None else f" ± {stats['sd']:.3f}")

        param = self.settings["param"]
        lines = [f"{param:<16} {'test accuracy':<16} {'vs SFT (paired)':<16} seeds"]
        for row in self.summary["livr"]:
            lines.append(
                f"{row['value']:<16g} {cell(row['average']):<16} {cell(row['vs_sft'], '+'):<16} {row['n_seeds']}"
            )
        sft = self.summary["sft"]
        lines.append(f"{'SFT':<16} {cell(sft['average']):<16} {'':<16} {sft['n_seeds']}")
        if self.summary["chance"] is not None:
            lines.append(f"{'chance':<16} {self.summary['chance']:.3f}")
        return lines


def _open_record(out: Path, settings: dict) -> dict:
    """The existing ``sweep.json`` of ``out`` if it was made with ``settings``; a fresh record for a new ``out``."""
    path = out / RESULTS_NAME
    if path.is_file():
        try:
            record = json.loads(path.read_text())
        except ValueError:
            raise LIVRError(f"{path} is not readable JSON; move it away to start the sweep afresh") from None
        changed = [
            f"{k}: {record['settings'].get(k)!r} -> {v!r}"
            for k, v in settings.items()
            if record["settings"].get(k) != v
        ]
        if changed:
            raise LIVRError(
                f"{out} holds a sweep with other settings ({'; '.join(changed)}); rerun with its settings "
                "to resume it, or use a fresh --out"
            )
        return record
    if out.is_dir() and any(out.iterdir()):
        raise LIVRError(f"{out} is not empty and holds no {RESULTS_NAME}; give the sweep a fresh --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LIVRError(f"cannot write to output directory {out}: {exc.strerror or exc}") from None
    return {"settings": settings, "runs": [], "summary": {}}


def _write(out: Path, record: dict) -> None:
    """``sweep.json`` (written whole, then renamed over the old one) and the plot of what is done so far."""
    settings = record["settings"]
    record["summary"] = summarize_sweep(record["runs"], settings["values"])
    tmp = out / (RESULTS_NAME + ".tmp")
    tmp.write_text(json.dumps(record, indent=2))
    os.replace(tmp, out / RESULTS_NAME)
    title = (
        f"{', '.join(settings['tasks'])} · {settings['preset']} preset, {settings['steps']} steps · "
        f"{len(settings['seeds'])} seed(s) · {settings['n_test']} test questions per task"
    )
    plot_sweep(
        record["summary"], settings["param"], out / PLOT_NAME, log_x=settings["param"] != "stage1_fraction", title=title
    )


def _trained_model(backbone: str, cfg: TrainConfig, run_dir: Path):
    """The run's model: its saved one when training finished (the evaluation was not recorded), else trained,
    continuing from its checkpoint when there is one. Returns (model, what was done)."""
    check_run_settings(run_dir, cfg)
    if (run_dir / "model").is_dir():
        return load_model(str(run_dir / "model")), "evaluated its saved model"
    resume = (run_dir / "checkpoint").is_dir() or previous_copy(run_dir / "checkpoint").is_dir()
    lm, _ = train(backbone, cfg, run_dir, resume=resume, progress=False)
    return lm, f"resumed, trained to step {cfg.steps}" if resume else f"trained {cfg.steps} steps"


def sweep(
    param: str,
    values: Sequence,
    seeds: int | Sequence[int],
    tasks: str | Sequence[str],
    out: str | Path,
    preset: str = "quick",
    steps: int | None = None,
    backbone: str = "demo-base",
    n_test: int = 200,
    log: Callable[[str], None] = print,
) -> SweepResult:
    """Fine-tune LIVR for every value of ``param`` (n_latents | stage1_fraction | lora_r) × seed and SFT per seed on
    ``backbone``, evaluate each on ``n_test`` test questions per task, write ``out/sweep.json`` and
    ``out/sweep.png``; ``seeds`` is a count or a list. ``log`` gets one line per run. See the module docstring."""
    values, seeds, tasks = check_values(param, values), check_seeds(seeds), resolve_tasks(tasks)
    if not isinstance(n_test, int) or n_test < 1:
        raise LIVRError(f"n_test (test questions per task) must be an integer >= 1; got {n_test!r}")
    plan = plan_runs(param, values, seeds, tasks, preset, steps)
    settings = {
        "param": param,
        "values": values,
        "seeds": seeds,
        "tasks": tasks,
        "preset": preset,
        "steps": plan[0][1].steps,
        "backbone": backbone,
        "n_test": n_test,
        "test_seed": TEST_SEED,
    }
    out = Path(out)
    record = _open_record(out, settings)
    _write(out, record)
    test = SyntheticTaskDataset(tasks, "test", n_test, TEST_SEED, answer_format=plan[0][1].answer_format)
    done = {r["dir"]: r for r in record["runs"]}
    log(
        f"sweep {param} = {', '.join(f'{v:g}' for v in values)} × seeds {', '.join(map(str, seeds))}, plus SFT: "
        f"{len(plan)} runs of {settings['steps']} steps on {backbone} → {out}"
    )
    for i, (run, cfg) in enumerate(plan, 1):
        run_dir, label = out / run["dir"], f"[{i}/{len(plan)}] {run['dir']}"
        if run["dir"] in done and (run_dir / "model").is_dir():
            log(f"{label}: done earlier, test accuracy {done[run['dir']]['average']:.3f}")
            continue
        t0 = time.perf_counter()
        lm, what = _trained_model(backbone, cfg, run_dir)
        metrics = evaluate(lm, test, "full")
        del lm
        seconds = time.perf_counter() - t0
        done[run["dir"]] = {
            **run,
            "tasks": {t: m["accuracy"] for t, m in metrics["tasks"].items()},
            "average": metrics["average"]["accuracy"],
            "chance": metrics["average"]["chance"],
            "steps": cfg.steps,
            "seconds": round(seconds, 1),
        }
        record["runs"] = [done[r["dir"]] for r, _ in plan if r["dir"] in done]
        _write(out, record)
        log(f"{label}: {what}, test accuracy {done[run['dir']]['average']:.3f} ({seconds:.0f} s)")
    return SweepResult(settings, record["runs"], record["summary"], out / RESULTS_NAME, out / PLOT_NAME)

"""Replicated fine-tunes side by side: one table over several ``python -m tools.reproduce`` runs that differ only in
--seed.

    python tools/experiments/seeds.py runs/demo4 runs/art_s1 runs/art_s2 [--markdown OUT.md]

Per task and variant: test accuracy of every run, their mean and sample standard deviation, and LIVR − SFT per run
(same test questions in every run, so the difference is paired within a run).  The runs must share tasks, test seed
and size, preset and fine-tune settings apart from the seeds: anything else is refused, not averaged.
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

ROWS = [
    ("sft", "full", "SFT"),
    ("latents_only", "full", "latents-only"),
    ("livr", "full", "LIVR"),
    ("livr_stage1_only", "bottleneck", "LIVR after Stage 1, bottleneck mask"),
    ("livr", "bottleneck_blind_latents", "LIVR, bottleneck + latents blind to the image"),
]
SEED_KEYS = ("seed", "data_seed")


def load_runs(paths: list[str]) -> list[dict]:
    runs = []
    for p in paths:
        f = Path(p) / "results.json"
        if not f.is_file():
            sys.exit(f"error: {f} not found (run `python -m tools.reproduce --out {p}` first)")
        runs.append(json.loads(f.read_text()))
    first = runs[0]

    def recipe(r):
        cfgs = {v: {k: x for k, x in c.items() if k not in SEED_KEYS} for v, c in r["configs"].items()}
        return r["tasks"], r["test_seed"], r["n_test_per_task"], r["preset"], cfgs

    for p, r in zip(paths[1:], runs[1:]):
        if recipe(r) != recipe(first):
            sys.exit(f"error: {p} differs from {paths[0]} in more than the seeds (tasks, test set or recipe)")
    return runs


def accuracy(run: dict, variant: str, mode: str, task: str) -> float | None:
    try:
        return 100 * run["eval"][variant][mode]["tasks"][task]["accuracy"]
    except KeyError:
        return None


def _sd(values: list[float]) -> str:
    return f"{statistics.stdev(values):.1f}" if len(values) > 1 else "–"


def table(paths: list[str]) -> str:
    runs = load_runs(paths)
    seeds = [r["configs"]["sft"]["seed"] for r in runs]
    head = "| " + " | ".join([""] + [f"seed {s}" for s in seeds] + ["mean", "sd"]) + " |"
    lines = [
        (
            f"Test set: {runs[0]['n_test_per_task']} questions per task, seed {runs[0]['test_seed']}; "
            f"runs: {', '.join(paths)}."
        ),
        "",
    ]
    for task in runs[0]["tasks"]:
        chance = 100 * runs[0]["eval"]["sft"]["full"]["tasks"][task]["chance"]
        lines += [f"**{task}** (chance {chance:.1f} %)", "", head, "|" + "---|" * (len(seeds) + 3)]
        for variant, mode, label in ROWS:
            values = [accuracy(r, variant, mode, task) for r in runs]
            if any(v is None for v in values):
                continue
            lines.append(
                f"| {label} | "
                + " | ".join(f"{v:.1f}" for v in values)
                + f" | {statistics.mean(values):.1f} | {_sd(values)} |"
            )
        deltas = [accuracy(r, "livr", "full", task) - accuracy(r, "sft", "full", task) for r in runs]
        lines += [
            "| LIVR − SFT | "
            + " | ".join(f"{d:+.1f}" for d in deltas)
            + f" | {statistics.mean(deltas):+.1f} | {_sd(deltas)} |",
            "",
        ]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="reproduce output directories (each with results.json)")
    ap.add_argument("--markdown", default=None, help="also write the table here")
    a = ap.parse_args(argv)
    text = table(a.runs)
    print(text)
    if a.markdown:
        Path(a.markdown).write_text(text + "\n")


if __name__ == "__main__":
    main()

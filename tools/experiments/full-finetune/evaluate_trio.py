"""Test-split evaluation of a trio folder OUT holding sft/, latents_only/, livr/ (each with model/ and
train_config.json; livr/ also stage1_model/): every condition of the paper's "are the latents used?" table and the
paired LIVR comparisons, exactly as `python -m tools.reproduce` computes them (tools/reproduce.py: evaluate_run).
  PYTHONPATH=. python tools/experiments/full-finetune/evaluate_trio.py OUT [N_PER_TASK] [--reference DIR]
(from the repository root). --reference DIR: a folder this script wrote before (results.json and predictions.json or
predictions.json.gz, on the same test questions); a variant OUT has no model for is taken from there, and the tables
say so. Writes OUT/results.json, OUT/predictions.json and OUT/RESULTS-trio.md (per-task table, targets, §4.6 table)."""

import argparse
import gzip
import json
from pathlib import Path

from livr_viz.core.config import TEST_SEED
from livr_viz.core.errors import LIVRError
from livr_viz.data.dataset import SyntheticTaskDataset
from tools.reproduce import VARIANTS, accuracy_table_lines, evaluate_run, latent_use_lines, target_lines

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("out", type=Path)
parser.add_argument("n", type=int, nargs="?", default=500, help="test questions per task (default 500)")
parser.add_argument("--reference", type=Path, default=None)
args = parser.parse_args()

test = SyntheticTaskDataset("all", "test", args.n, TEST_SEED, answer_format="word")
configs, stored, reused = {}, None, []
if args.reference is not None:
    ref = json.loads((args.reference / "results.json").read_text())
    if (ref["test_seed"], ref["n_test_per_task"]) != (TEST_SEED, args.n):
        raise LIVRError(
            f"{args.reference} was evaluated on {ref['n_test_per_task']} questions per task from seed "
            f"{ref['test_seed']}, not {args.n} from {TEST_SEED}"
        )
    plain, packed = args.reference / "predictions.json", args.reference / "predictions.json.gz"
    if plain.is_file():
        text = plain.read_text()
    else:
        with gzip.open(packed, "rt") as f:
            text = f.read()
    stored = {"predictions": json.loads(text), "answer_latent_attention": ref["answer_latent_attention"]}
    reused = [v for v in VARIANTS if not (args.out / v / "model").is_dir()]
    configs = {v: ref["configs"][v] for v in reused}
configs |= {v: json.loads((args.out / v / "train_config.json").read_text()) for v in VARIANTS if v not in reused}
results = {
    "tasks": test.tasks,
    "n_test_per_task": args.n,
    "test_seed": TEST_SEED,
    "configs": configs,
    "reused_from": {v: str(args.reference) for v in reused},
}
results.update(evaluate_run(args.out, test, stored=stored))
(args.out / "results.json").write_text(json.dumps(results, indent=2))
lines = [f"Test split: {args.n} questions per task, seed {TEST_SEED}, the same questions for every model."]
if reused:
    lines.append(
        f"Not retrained here, their stored predictions from {args.reference}: {', '.join(reused)}"
        + (" (and the LIVR Stage-1 checkpoint)" if "livr" in reused else "")
        + "."
    )
lines += [""] + accuracy_table_lines(results)
lines += ["", "Targets:", ""] + target_lines(results) + ["", "Are the latents used?", ""] + latent_use_lines(results)
(args.out / "RESULTS-trio.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))

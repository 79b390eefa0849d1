"""Test-split evaluation of a trio folder OUT holding sft/, latents_only/, livr/ (each with model/ and
train_config.json; livr/ also stage1_model/): every condition of the paper's "are the latents used?" table and the
paired LIVR comparisons, exactly as `livr-viz reproduce` computes them (tools/reproduce.py: evaluate_run).
  PYTHONPATH=. python docs/experiments/full-finetune/evaluate_trio.py OUT [N_PER_TASK]   (from the repository root)
Writes OUT/results.json, OUT/predictions.json and OUT/RESULTS-trio.md (the per-task table, targets, §4.6 table)."""
import json
import sys
from pathlib import Path

from livr_viz.core.config import TEST_SEED
from livr_viz.data.dataset import SyntheticTaskDataset
from tools.reproduce import VARIANTS, accuracy_table_lines, evaluate_run, latent_use_lines, target_lines

out = Path(sys.argv[1])
n = int(sys.argv[2]) if len(sys.argv) > 2 else 500
test = SyntheticTaskDataset("all", "test", n, TEST_SEED, answer_format="word")
results = {"tasks": test.tasks, "n_test_per_task": n, "test_seed": TEST_SEED,
           "configs": {v: json.loads((out / v / "train_config.json").read_text()) for v in VARIANTS}}
results.update(evaluate_run(out, test))
(out / "results.json").write_text(json.dumps(results, indent=2))
lines = [f"Test split: {n} questions per task, seed {TEST_SEED}, the same questions for every model.", ""]
lines += accuracy_table_lines(results)
lines += ["", "Targets:", ""] + target_lines(results) + ["", "Are the latents used?", ""] + latent_use_lines(results)
(out / "RESULTS-trio.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))

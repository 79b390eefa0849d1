"""Evaluate extra models on reproduce's test questions and compare them, paired, with a run's predictions.
  python pair_eval.py RUN_DIR NAME=MODEL_DIR [NAME=MODEL_DIR ...] [--n 500] [--against sft]
Writes RUN_DIR/extra-predictions.json (merged) and prints per-task accuracy and paired deltas."""

import argparse
import json
from pathlib import Path

from livr_viz.core.config import TEST_SEED
from livr_viz.core.model import load_model
from livr_viz.data.dataset import SyntheticTaskDataset
from livr_viz.methods.latent_use import latent_use_predictions, paired_comparison
from livr_viz.training.evaluate import summarize

ap = argparse.ArgumentParser()
ap.add_argument("run")
ap.add_argument("models", nargs="+")
ap.add_argument("--n", type=int, default=500)
ap.add_argument("--against", default="sft")
a = ap.parse_args()
run = Path(a.run)
base = json.loads((run / "predictions.json").read_text())
extra_path = run / "extra-predictions.json"
extra = json.loads(extra_path.read_text()) if extra_path.is_file() else {}
test = SyntheticTaskDataset("all", "test", a.n, TEST_SEED, answer_format="word")
for spec in a.models:
    name, path = spec.split("=", 1)
    if name not in extra:
        rows = latent_use_predictions(load_model(path), test, ("standard",), progress=True)
        rows.pop("answer_latent_attention", None)
        extra[name] = rows
        extra_path.write_text(json.dumps(extra))
    s = summarize(extra[name]["standard"])
    ref = base[a.against]["standard"]
    c = paired_comparison(extra[name]["standard"], ref)
    print(
        name,
        json.dumps({t: round(v["accuracy"] * 100, 1) for t, v in s["tasks"].items()}),
        "avg",
        round(s["average"]["accuracy"] * 100, 1),
    )
    print(f"  vs {a.against}:", json.dumps(c)[:1500])

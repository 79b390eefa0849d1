#!/usr/bin/env bash
# Ship the 5,000-step full-fine-tune trio as the bundled demo set: lay the finished runs out as `reproduce` expects
# (the bundled backbone as OUT/pretrain-words/model, so stages 0-1c are skipped; their logs and times are the
# bundled demo-base's), then `reproduce --preset full --finetune full`, which finds every phase trained, evaluates
# the trio on the test split (500 per task, seed 2026, every condition of the paper's table), writes RESULTS.md
# and installs assets/demo-{livr,latents-only,sft} (demo-base is copied back byte for byte).
#   LIVR, SFT:      livr-viz train --finetune full --preset full --variant {livr,sft} --out /work/runs/s8/{livr,sft}
#   latents-only:   livr-viz train --finetune full --preset full --variant latents_only --out /work/runs/s9/latents_only
set -euo pipefail
cd "$(dirname "$0")/../../.."
R=${1:-/work/runs/ship}
LIVR=${LIVR:-/work/runs/s8/livr} SFT=${SFT:-/work/runs/s8/sft} LO=${LO:-/work/runs/s9/latents_only}
mkdir -p "$R/pretrain-words" "$R/vision" "$R/pretrain-colour" "$R/pretrain"
[ -d "$R/pretrain-words/model" ] || cp -r assets/demo-base "$R/pretrain-words/model"
cp docs/demo-run/pretrain-words-log.jsonl "$R/pretrain-words/log.jsonl"
D=docs/experiments/letter-format/demo-run  # the backbone's earlier phases (the run demo-base was continued from)
cp $D/vision-log.jsonl "$R/vision/log.jsonl"
cp $D/pretrain-colour-log.jsonl "$R/pretrain-colour/log.jsonl"
cp $D/pretrain-log.jsonl "$R/pretrain/log.jsonl"
for pair in livr:$LIVR sft:$SFT latents_only:$LO; do
  ln -sfn "${pair#*:}" "$R/${pair%%:*}"
done
R="$R" python - <<'PY'
import json, os
from pathlib import Path
r = Path(os.environ["R"])
phases = json.loads(Path("docs/demo-run/results.json").read_text())["phase_seconds"]
for name, folder in (("vision", "vision"), ("pretrain_colour", "pretrain-colour"), ("pretrain", "pretrain"),
                     ("pretrain_words", "pretrain-words")):
    (r / folder / "time.json").write_text(json.dumps({"seconds": phases[name]}))
for v in ("livr", "sft", "latents_only"):  # one uninterrupted run each: first file written to the final model's
    d = r / v
    if not (d / "time.json").is_file():
        seconds = (d / "model" / "livr_config.json").stat().st_mtime - (d / "train_config.json").stat().st_mtime
        (d / "time.json").write_text(json.dumps({"seconds": seconds, "from": "file times of the run folder"}))
PY
python -m livr_viz.cli reproduce --preset full --finetune full --n-test 500 --out "$R" --install

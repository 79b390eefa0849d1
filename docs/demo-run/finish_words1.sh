#!/usr/bin/env bash
# After run_words.sh: lay words1 out as the new reproduce expects and evaluate with the new code (500 per task).
set -euo pipefail
R=/work/runs/words1/repro
if [ -d $R/pretrain/model ] && [ ! -d $R/pretrain-words ]; then
  mv $R/pretrain $R/pretrain-words
  cp /work/runs/words1/pretrain-words/log.jsonl /work/runs/words1/pretrain-words/train_config.json $R/pretrain-words/
fi
# the backbone's earlier phases are the bundled demo-base's (letter-format run): their logs and times
D=/work/main/docs/experiments/letter-format/demo-run
mkdir -p $R/vision $R/pretrain-colour $R/pretrain
cp $D/vision-log.jsonl $R/vision/log.jsonl
cp $D/pretrain-colour-log.jsonl $R/pretrain-colour/log.jsonl
cp $D/pretrain-log.jsonl $R/pretrain/log.jsonl
python - <<'PY'
import json
r = json.load(open("/work/main/docs/experiments/letter-format/demo-run/results.json"))
for name, folder in (("vision", "vision"), ("pretrain_colour", "pretrain-colour"), ("pretrain", "pretrain")):
    s = r["phase_seconds"].get(name)
    if s is not None:
        json.dump({"seconds": s}, open(f"/work/runs/words1/repro/{folder}/time.json", "w"))
PY
cd /work/main
python -m livr_viz.cli reproduce --preset demo --out $R --steps 1000 --n-test 500

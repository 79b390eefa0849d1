#!/usr/bin/env bash
# After run-all.sh and pixel-all.sh: the test split (500 per task, seed 2026) of each single-task model, and the
# LoRA single-task run of README.md.   finish.sh SNAPSHOT RUNS
set -uo pipefail
snap=$1 runs=$2
B=/work/runs/discs3/pretrain-words/model
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 PYTHONPATH=$snap
here=$(cd "$(dirname "$0")" && pwd)
[ -d "$runs/jigsaw-lora/model" ] || python "$here/../../../tools/experiments/task-ceilings/ceiling_run.py" "$runs/jigsaw-lora" "$B" jigsaw lora 1000 2e-3
for run in "$runs"/*-full "$runs"/*-lora; do
  task=$(basename "$run"); task=${task%-*}
  [ -f "$run/test.json" ] || python -m livr_viz.cli eval --model "$run/model" --data "$task" --split test --n 500 \
    --seed 2026 --json "$run/test.json"
done

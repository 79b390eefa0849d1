#!/usr/bin/env bash
# The second batch of README.md: three more tasks alone, every parameter (as run-all.sh), then their test split.
#   more.sh SNAPSHOT RUNS
set -uo pipefail
snap=$1 runs=$2
B=/work/runs/discs3/pretrain-words/model
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 PYTHONPATH=$snap
here=$(cd "$(dirname "$0")" && pwd)
for task in object_localization functional_correspondence relative_reflectance; do
  out=$runs/$task-full
  [ -d "$out/model" ] || python "$here/../../../tools/experiments/task-ceilings/ceiling_run.py" "$out" "$B" "$task" full 1000 3e-4
  [ -f "$out/test.json" ] || python -m livr_viz.cli eval --model "$out/model" --data "$task" --split test --n 500 \
    --seed 2026 --json "$out/test.json"
done

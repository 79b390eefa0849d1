#!/usr/bin/env bash
# The runs of README.md, one after another (2 cores: never two at once); resumable.
#   run-all.sh SNAPSHOT RUNS
# SNAPSHOT: `git archive` of branch discs at 878561a; the backbone is the discs3 run's pretrain-words/model.
set -uo pipefail
snap=$1 runs=$2
B=/work/runs/discs3/pretrain-words/model
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 PYTHONPATH=$snap
here=$(cd "$(dirname "$0")" && pwd)
for task in visual_correspondence semantic_correspondence jigsaw visual_similarity; do
  out=$runs/$task-full
  [ -d "$out/model" ] || python "$here/../../../tools/experiments/task-ceilings/ceiling_run.py" "$out" "$B" "$task" full 1000 3e-4
done

#!/usr/bin/env bash
# The pixel baselines of README.md, one after another; a finished task is skipped.   pixel-all.sh RUNS
set -uo pipefail
runs=$1
here=$(cd "$(dirname "$0")" && pwd)
for task in visual_similarity jigsaw visual_correspondence semantic_correspondence; do
  [ -f "$runs/pixel-$task.json" ] || python "$here/../../../tools/experiments/task-ceilings/pixel_baseline.py" "$runs/pixel-$task.json" "$task" 1500 64 1e-3
done

#!/usr/bin/env bash
# The nine-task trio with the five learnable tasks at weight 4 in every batch (the others 1), fine-tuned on the
# bundled demo-base (a copy of it as OUT/pretrain-words/model skips every pretraining phase). Resumable: rerun it.
# usage: REPO=/path/to/livr-viz RUN=/path/to/run-folder docs/experiments/task-weights/run.sh
set -euo pipefail
REPO=${REPO:-$(git rev-parse --show-toplevel)}
RUN=${RUN:-$REPO/runs/task-weights}
cd "$REPO"
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 PYTHONPATH="$REPO"
if [ ! -d "$RUN"/repro/pretrain-words/model ]; then
  mkdir -p "$RUN"/repro/pretrain-words && cp -r assets/demo-base "$RUN"/repro/pretrain-words/model
fi
python -m livr_viz.cli reproduce --preset demo --out "$RUN"/repro --n-test 500 \
  --task-weights counting=4,object_localization=4,relative_reflectance=4,jigsaw=4,art_style=4
echo ALL DONE

#!/usr/bin/env bash
# nine-task LIVR, learnable tasks weighted 4:1 as the task-weights trio, Stage 2 at peak lr 6e-4
set -euo pipefail
REPO=${REPO:-$(git rev-parse --show-toplevel)}
cd "$REPO"
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 PYTHONPATH="$REPO"
out=${RUN:-runs/stage2-lr}/nine-s2lr-6e-4
resume=""; [ -d $out/checkpoint ] && resume="--resume"
[ -d $out/model ] || python -m livr_viz.cli train --model demo --variant livr --tasks all --preset demo \
  --task-weights counting=4,object_localization=4,relative_reflectance=4,jigsaw=4,art_style=4 \
  --stage2-lr 6e-4 --out $out $resume
for stage in full bottleneck; do
  python -m livr_viz.cli eval --model $out/model --data all --split test --n 500 --stage $stage --json $out/test-$stage.json
done
echo ALL DONE

#!/usr/bin/env bash
# art style alone, LIVR with a lower Stage-2 peak learning rate; evaluated on the art run's test questions
# usage: [REPO=..] [RUN=..] stage2-lr-run.sh 2e-4 6e-4
set -euo pipefail
REPO=${REPO:-$(git rev-parse --show-toplevel)}
cd "$REPO"
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 PYTHONPATH="$REPO"
for s2 in "$@"; do
  out=${RUN:-runs/stage2-lr}/art-s2lr-$s2
  resume=""; [ -d $out/checkpoint ] && resume="--resume"
  [ -d $out/model ] || python -m livr_viz.cli train --model demo --variant livr --tasks art_style --preset demo \
    --steps 300 --stage2-lr $s2 --out $out $resume
  for stage in full bottleneck; do
    python -m livr_viz.cli eval --model $out/model --data art_style --split test --n 500 --stage $stage \
      --json $out/test-$stage.json
  done
done
echo ALL DONE

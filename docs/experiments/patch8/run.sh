#!/usr/bin/env bash
# Resolution lever for the demo models: the shipped backbone's shape with 8-px patches (12x12 = 144 image tokens
# at 96 px instead of 8x8 = 64), then the whole reproduce pipeline (vision pretraining -> perception -> words ->
# three fine-tunes -> evaluation). Resumable: rerun this script after an interruption.
set -euo pipefail
cd /work/trainsnap8
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 PYTHONPATH=/work/trainsnap8
RUN=/work/runs/p8
[ -f $RUN/init/config.json ] || python -m livr_viz.cli build-demo --out $RUN/init --patch-size 8
python -m livr_viz.cli reproduce --preset demo --out $RUN --n-test 500
echo ALL DONE

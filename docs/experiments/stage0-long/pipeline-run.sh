#!/usr/bin/env bash
# The demo pipeline on a stage 0 of 1,800 steps (docs/experiments/stage0-long/): 12-px backbone, then the
# perception and word curricula, the three fine-tunes and the evaluation. vision/ is that experiment's stage 0
# (same init, same config as --vision-steps 1800), so reproduce skips it. Resumable: rerun this script.
set -euo pipefail
cd /work/trainsnap-s0
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 PYTHONPATH=/work/trainsnap-s0
python -m livr_viz.cli reproduce --preset demo --vision-steps 1800 --out /work/runs/s0long --n-test 500
echo ALL DONE

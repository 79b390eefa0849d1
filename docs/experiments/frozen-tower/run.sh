#!/usr/bin/env bash
# The demo pipeline with the vision tower frozen after stage 0 (docs/experiments/frozen-tower/): 12-px backbone,
# stage 0 of 1,800 steps (copied from /work/runs/s0long/vision: same init, same config as the new default),
# then the colour warm start, the perception and word curricula, the three fine-tunes and the evaluation.
# Resumable: rerun this script.
set -euo pipefail
cd /work/trainsnap-frozen
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 PYTHONPATH=/work/trainsnap-frozen
python -m livr_viz.cli reproduce --preset demo --out /work/runs/frozen --n-test 500
echo ALL DONE

#!/usr/bin/env bash
# The demo pipeline on the `discs` branch, third try: stage 0 and the colour warm start reused from the first discs
# run (same settings), then a 1,200-step look-up phase (one- and two-shape look-ups, --lookup-steps) before the
# perception curriculum (1,500 steps, look-ups kept in), the weighted word mix (3,000), the three fine-tunes and the
# evaluation on 500 fresh questions per task. Resumable: rerun this script.
set -euo pipefail
cd /work/trainsnap-discs3
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 PYTHONPATH=/work/trainsnap-discs3
python -m livr_viz.cli reproduce --preset demo --out /work/runs/discs3 --n-test 500 --vision-markers \
    --freeze-vision-tower --vision-steps 1800 --pretrain-steps 1500 --words-steps 3000 --lookup-steps 1200
echo ALL DONE

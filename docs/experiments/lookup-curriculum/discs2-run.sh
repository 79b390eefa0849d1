#!/usr/bin/env bash
# The demo pipeline on the `discs` branch, second try: stages 0-1b reused from the first discs run (same settings:
# stage 0 with markers 1,800 steps, tower frozen after it, 1,500 perception steps), then the word phase with the
# two-shape look-up step and the look-ups weighted up (WORD_MIX), 4,000 steps, the three fine-tunes and the
# evaluation on 500 fresh questions per task. Resumable: rerun this script.
set -euo pipefail
cd /work/trainsnap-discs2
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 PYTHONPATH=/work/trainsnap-discs2
python -m livr_viz.cli reproduce --preset demo --out /work/runs/discs2 --n-test 500 --vision-markers \
    --freeze-vision-tower --vision-steps 1800 --pretrain-steps 1500 --words-steps 4000
echo ALL DONE

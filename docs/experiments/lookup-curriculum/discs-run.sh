#!/usr/bin/env bash
# The demo pipeline on the `discs` branch (word-format points are filled discs): stage 0 with the word format's
# images and the every-colour head (1,800 steps), the tower frozen after it, a shorter perception curriculum
# (1,500 steps) and a longer word curriculum (3,000), then the three fine-tunes and the evaluation on 500 fresh
# questions per task. Why: docs/experiments/lookup-curriculum/README.md, "Second round". Resumable: rerun this script.
set -euo pipefail
cd /work/trainsnap-discs
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 PYTHONPATH=/work/trainsnap-discs
python -m livr_viz.cli reproduce --preset demo --out /work/runs/discs --n-test 500 --vision-markers \
    --freeze-vision-tower --vision-steps 1800 --pretrain-steps 1500 --words-steps 3000
echo ALL DONE

#!/bin/bash
# Stage 1 alone on each TASK (bottleneck only, validation every 100 steps on 100 questions) from a LIVR run's backbone
# and settings, into OUTDIR/s1-alone[STEPS]-TASK. The fifteenth session's runs: SNAP=/work/snap/ffeb2fc,
# RUN=/work/runs/spatial-trio/livr-s1frac0.4 (then named livr), STEPS 400 (art style, object localisation) and 1200.
#   SNAP=... RUN=... [STEPS=400] [OUTDIR=/work/runs/spatial-trio] bash s1-alone.sh TASK...
set -euo pipefail
STEPS=${STEPS:-400}; OUTDIR=${OUTDIR:-/work/runs/spatial-trio}
for task in "$@"; do
  name=s1-alone-$task; [ "$STEPS" = 400 ] || name=s1-alone$STEPS-$task
  PYTHONPATH="$SNAP:$SNAP/tools/experiments/spatial-trio" OMP_NUM_THREADS=1 python -c "
import sys; from pathlib import Path
from branch_stage2 import retrain
sys.exit(retrain(Path('$RUN'), Path('$OUTDIR/$name'), {'tasks': '$task', 'steps': $STEPS, 'stage1_fraction': 1.0,
                 'stage2_lr': None, 'eval_every': 100, 'n_val_per_task': 100}))
" > "$OUTDIR/log-$name.txt" 2> "$OUTDIR/stderr-$name.txt"
done

#!/usr/bin/env bash
# The spatial-reader trio (issue #40): backbone with the spatial reader and stage 0's comparison targets, then the
# three full fine-tunes at the long preset (5,000 steps each; LIVR's Stage 2 at 1e-4, a third of
# the fine-tunes' peak 3e-4, the ratio that kept LoRA LIVR's route), from a `git archive` snapshot.
# Resumable: rerun the same command after a stop; finished phases are skipped, a killed one resumes from its last
# checkpoint.
#   bash run.sh SNAPSHOT OUT [THREADS [MORE REPRODUCE OPTIONS, e.g. --variants latents_only]]
SNAP=$1; OUT=$2; THREADS=${3:-2}
cd "$SNAP"
export PYTHONPATH="$SNAP" OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
mkdir -p "$OUT"
python -m tools.reproduce --out "$OUT" --preset full --finetune full --tower spatial --vision-compare \
  --vision-markers --vision-steps 2400 --stage2-lr 1e-4 --n-test 500 \
  --half-backbone "${@:4}" >> "$OUT/log.txt" 2>> "$OUT/stderr.txt"

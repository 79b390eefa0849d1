#!/usr/bin/env bash
# The trio of run.sh in two processes of one thread each, once the backbone exists (run.sh trained it): LIVR then
# latents-only in one, SFT in the other; then the command of run.sh (no --variants) evaluates the three. Every
# fine-tune checkpoints every 100 steps and resumes: rerun the same command after a stop.
#   bash run-trio.sh SNAPSHOT OUT
SNAP=$1; OUT=$2
cd "$SNAP"
export PYTHONPATH="$SNAP" OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
ARGS=(--out "$OUT" --preset full --finetune full --tower spatial --vision-compare --vision-markers
  --vision-steps 2400 --stage2-lr 1e-4 --n-test 500 --half-backbone)
(python -m tools.reproduce "${ARGS[@]}" --variants livr && python -m tools.reproduce "${ARGS[@]}" --variants latents_only) \
  >> "$OUT/log-a.txt" 2>> "$OUT/stderr-a.txt" &
python -m tools.reproduce "${ARGS[@]}" --variants sft >> "$OUT/log-b.txt" 2>> "$OUT/stderr-b.txt" &
wait

#!/usr/bin/env bash
# The next spatial trio (issue #40): the spatial trio's stage 0 (copied, not retrained), then the colour warm start and
# the perception and word curricula with the vision tower frozen as stage 0 left it (--freeze-vision-tower), so the
# language model meets tokens that still carry stage 0's comparisons; then the three full fine-tunes as in
# ../spatial-trio/run.sh. Why: a flat token probe reads visual similarity from stage 0's tokens at 81.0 % and from
# the trained-through tower's at 64.6 % (../spatial-trio/README.md, "the curricula wash the comparison out").
# From a `git archive` snapshot; resumable (rerun the same command).
#   bash run.sh SNAPSHOT OUT [THREADS [MORE REPRODUCE OPTIONS, e.g. --variants sft]]
set -euo pipefail
SNAP=$1; OUT=$2; THREADS=${3:-2}
FROM=${STAGE0_FROM:-/work/runs/spatial-trio}  # the run whose init/ and vision/ (stage 0) are reused
mkdir -p "$OUT"
for phase in init vision; do
  [ -d "$OUT/$phase" ] || cp -r "$FROM/$phase" "$OUT/$phase"
done
cd "$SNAP"
export PYTHONPATH="$SNAP" OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
python -m tools.reproduce --out "$OUT" --preset full --finetune full --tower spatial --vision-compare \
  --vision-markers --vision-steps 2400 --freeze-vision-tower --stage2-lr 1e-4 --n-test 500 \
  --half-backbone "${@:4}" >> "$OUT/log.txt" 2>> "$OUT/stderr.txt"

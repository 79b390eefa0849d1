#!/usr/bin/env bash
# What ran (2026-12-07): the spatial reader alone on each task, one thread a run, from a `git archive` snapshot of
# commit 2871d37 (SNAPSHOT), results in OUT. Two or three runs went side by side (functional correspondence and
# object localisation beside the first queue; semantic correspondence last).
#   bash run.sh SNAPSHOT OUT
SNAP=$1; OUT=$2
cd "$SNAP"
export PYTHONPATH="$SNAP" OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
for spec in visual_similarity:1000 visual_correspondence:1500 jigsaw:1000 functional_correspondence:1500 \
            object_localization:1000 semantic_correspondence:1000; do
  python tools/experiments/reader_alone.py "$OUT" "${spec%%:*}" --steps "${spec##*:}" >> "$OUT/log.jsonl"
done

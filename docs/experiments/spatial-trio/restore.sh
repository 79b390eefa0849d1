#!/usr/bin/env bash
# Lay the committed spatial backbone (rebuilt/pretrain-words/model-float16: the float16 rounding the trio fine-tunes
# from) out as the run folder OUT, so `run.sh SNAPSHOT OUT ...` skips the backbone phases (about 1.7 h on 2 cores)
# and fine-tunes from it. Run folders outside git do not survive a new machine (sixteenth session); this file does.
#   bash restore.sh OUT
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:?usage: bash restore.sh OUT}
SRC=$HERE/rebuilt/pretrain-words
if [ -e "$OUT/pretrain-words/model" ] || [ -e "$OUT/pretrain-words/model-float16" ]; then
  echo "$OUT already holds a backbone; nothing copied" >&2
  exit 1
fi
mkdir -p "$OUT/pretrain-words"
# reproduce counts the backbone phases done once pretrain-words/model exists, and with --half-backbone loads
# model-float16 as it finds it; the float16 weights load as the float32 values the trio started from
cp -r "$SRC/model-float16" "$OUT/pretrain-words/model-float16"
cp -r "$SRC/model-float16" "$OUT/pretrain-words/model"
cp "$SRC/train_config.json" "$SRC/log.jsonl" "$OUT/pretrain-words/"
echo "restored the spatial backbone into $OUT/pretrain-words"

#!/usr/bin/env bash
# Word-format demo trio: continue the bundled backbone on the word curriculum, then reproduce's three fine-tunes.
set -euo pipefail
cd /work/trainsnap
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 PYTHONPATH=/work/trainsnap
RUN=/work/runs/words1
mkdir -p $RUN
if [ ! -d $RUN/repro/pretrain/model ]; then
  resume=""; [ -d $RUN/pretrain-words/checkpoint ] && resume="--resume"
  python -m livr_viz.cli pretrain --model assets/demo-base --tasks perception:words --preset demo --steps 1500 \
    --out $RUN/pretrain-words $resume
  mkdir -p $RUN/repro/pretrain && cp -r $RUN/pretrain-words/model $RUN/repro/pretrain/model
fi
python -m livr_viz.cli reproduce --preset demo --out $RUN/repro --steps 1000 --n-test 500
echo ALL DONE

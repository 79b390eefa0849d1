#!/usr/bin/env bash
# The 2,000-step fine-tunes with fresh training questions (no question repeats) on the discs3 backbone, one variant
# per call (README.md ran livr, then sft):  ft2k-run.sh SNAPSHOT BACKBONE OUT VARIANT
# SNAPSHOT: `git archive` of branch discs at 878561a; BACKBONE: the discs3 run's pretrain-words/model. Resumable.
#   ft2k-run.sh /work/trainsnap-ft2k /work/runs/discs3/pretrain-words/model /work/runs/ft2k livr
# Test split afterwards (SFT): PYTHONPATH=SNAPSHOT python pair_eval.py /work/runs/discs3 ft2k_sft=OUT/sft/model
set -euo pipefail
snapshot=$1 backbone=$2 out=$3 v=$4
cd "$snapshot"
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 PYTHONPATH=$snapshot
resume=""; [ -d "$out/$v/checkpoint" ] && resume="--resume"
python -m livr_viz.cli train --variant "$v" --tasks all --model "$backbone" --preset demo \
  --steps 2000 --n-train-per-task 1000000 --out "$out/$v" $resume

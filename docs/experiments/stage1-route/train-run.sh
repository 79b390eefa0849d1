#!/usr/bin/env bash
# One `livr-viz train` run of README.md, resumable (rerun the same command):
#   train-run.sh SNAPSHOT OUT [livr-viz train options...]
# SNAPSHOT: `git archive` of branch discs at 878561a (the trainer that logs eval_bottleneck); B below: the discs3
# run's pretrain-words/model (/work/runs/discs3/pretrain-words/model). Every run: --preset demo --model B
# --n-train-per-task 1000000 (fresh questions, none repeats), plus:
#   Stage 1 alone, perception (OUT route/s1; OMP_NUM_THREADS=1 beside another run):
#     --variant livr --stage1-fraction 1.0 --steps 400 --tasks perception:colour,shape,count,darker_marker,box_around,marker_on_two
#   Stage 1 alone, three tasks (OUT route/s1-three; OMP_NUM_THREADS=1):
#     --variant livr --stage1-fraction 1.0 --steps 400 --tasks counting,object_localization,relative_reflectance
#   the 2,000-step fine-tunes (OUT ft2k/livr, then ft2k/sft):
#     --variant livr --tasks all --steps 2000        --variant sft --tasks all --steps 2000
# Test split afterwards: PYTHONPATH=SNAPSHOT python tools/experiments/stage1-route/pair_eval.py /work/runs/discs3 ft2k_sft=OUT/model
set -euo pipefail
snapshot=$1 out=$2
shift 2
cd "$snapshot"
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 PYTHONPATH=$snapshot
resume=""; [ -d "$out/checkpoint" ] && resume="--resume"
python -m livr_viz.cli train --preset demo --n-train-per-task 1000000 --out "$out" "$@" $resume

#!/usr/bin/env bash
# Stage 1 alone (the bottleneck mask for every step) from the discs3 backbone, with validation under both masks
# every 200 steps (the trainer's eval_bottleneck):  run.sh SNAPSHOT BACKBONE OUT TASKS [STEPS]
# SNAPSHOT: `git archive` of branch discs at 878561a (the trainer that logs eval_bottleneck); BACKBONE: the discs3
# run's pretrain-words/model. The two runs of README.md:
#   run.sh /work/trainsnap-ft2k /work/runs/discs3/pretrain-words/model /work/runs/route/s1 \
#       perception:colour,shape,count,darker_marker,box_around,marker_on_two 400
#   run.sh /work/trainsnap-ft2k /work/runs/discs3/pretrain-words/model /work/runs/route/s1-three \
#       counting,object_localization,relative_reflectance 400
set -euo pipefail
snapshot=$1 backbone=$2 out=$3 tasks=$4 steps=${5:-400}
cd "$snapshot"
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 PYTHONPATH=$snapshot OMP_NUM_THREADS=1
resume=""; [ -d "$out/checkpoint" ] && resume="--resume"
python -m livr_viz.cli train --variant livr --stage1-fraction 1.0 --tasks "$tasks" --model "$backbone" \
  --preset demo --steps "$steps" --n-train-per-task 1000000 --out "$out" $resume

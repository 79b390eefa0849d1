#!/usr/bin/env bash
# The demo pipeline on the `discs` branch (word-format points are filled discs): stage 0 with the word format's
# images and the every-colour head (1,800 steps), the tower frozen after it, 1,500 perception steps, then the word
# curriculum, the three fine-tunes and the evaluation on 500 fresh questions per task. Resumable: rerun it.
#   discs-run.sh SNAPSHOT OUT [reproduce options...]
# SNAPSHOT: `git archive discs` unpacked at the commit that ran; OUT: the run folder (phases already in it are
# reused). The three runs of README.md, "Second round" and "Third round":
#   discs-run.sh /work/trainsnap-discs  /work/runs/discs  --words-steps 3000                     (branch at 4fee254)
#   discs-run.sh /work/trainsnap-discs2 /work/runs/discs2 --words-steps 4000                     (e65f9a7; stages 0-1b
#                                                                                                 copied from discs)
#   discs-run.sh /work/trainsnap-discs3 /work/runs/discs3 --words-steps 3000 --lookup-steps 1200 (d4bc618; stage 0
#                                                                                  and the warm start copied from discs)
set -euo pipefail
snapshot=$1 out=$2
shift 2
cd "$snapshot"
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 PYTHONPATH=$snapshot
python -m livr_viz.cli reproduce --preset demo --out "$out" --n-test 500 --vision-markers \
    --freeze-vision-tower --vision-steps 1800 --pretrain-steps 1500 "$@"
echo ALL DONE

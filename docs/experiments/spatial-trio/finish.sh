#!/usr/bin/env bash
# After the trio has trained (run.sh / run-trio.sh): retire the ViT trio's write-up, evaluate the spatial trio on the
# test split and install it as the bundled demo set, then refresh everything that describes the shipped models.
# Run from anywhere; it works in the clone that holds this file (not a snapshot: --install writes its assets/).
#   bash finish.sh [OUT [MORE REPRODUCE OPTIONS: the LIVR flags its run trained with, e.g.
#                        --stage1-fraction 0.8 --stage2-open-steps 300]]
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=${1:-/work/runs/spatial-trio}
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1

# 1. the retired ViT trio's RESULTS.md, hand-written summary and notes, diagnosis, mediation report and pictures
#    go to docs/experiments/long-trio/shipped/ (links rewritten for the new place); done once
R=docs/experiments/long-trio/shipped
if [ -f docs/results-summary.md ]; then
  mkdir -p "$R/diagnostics" "$R/mediation" "$R/pictures"
  git mv docs/results-summary.md docs/results-notes.md "$R/"
  git mv docs/diagnostics/demo-trio.json docs/diagnostics/demo-trio.html "$R/diagnostics/"
  [ -f docs/mediation/demo-trio.html ] && cp docs/mediation/demo-trio.html "$R/mediation/"
  cp docs/app.png docs/results.png docs/training-*.png "$R/pictures/"
  # links in RESULTS.md and in the summary and notes it embeds are relative to the repository root
  relink() {
    sed -e 's#](docs/diagnostics/)#](diagnostics/)#g' -e 's#](docs/mediation/#](mediation/#g' \
      -e 's#](docs/results.png)#](pictures/results.png)#g' -e 's#](docs/#](../../../#g' "$@"
  }
  relink RESULTS.md > "$R/RESULTS.md"
  for f in results-summary.md results-notes.md; do relink "$R/$f" > "$R/$f.new" && mv "$R/$f.new" "$R/$f"; done
  sed -i 's#](results.png)#](pictures/results.png)#' "$R/RESULTS-generated.md"
fi

# 2. evaluate (500 test questions per task, every condition of the paper's table) and install
python -m tools.reproduce --out "$OUT" --preset full --finetune full --tower spatial --vision-compare \
  --vision-markers --vision-steps 2400 --stage2-lr 1e-4 --n-test 500 --half-backbone --install "${@:2}"

# 3. what describes the shipped models: the teaching example, the probes, the diagnosis, the app's picture
python -m tools.pick_example --model demo-livr
for m in demo-livr demo-latents-only; do
  livr-viz probe --model "$m" --concepts all --out "probes/$m"
done
livr-viz diagnose --model demo-livr --compare demo-latents-only demo-sft --tasks all --n 50 \
  --json docs/diagnostics/demo-trio.json --html docs/diagnostics/demo-trio.html
python -m tools.app_screenshot docs/app.png
du -sb assets

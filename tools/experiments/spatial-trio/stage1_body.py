"""Train a LIVR run again from its own backbone and settings, with Stage 1 moving every parameter but the latent rows
at a fraction of the rate (``stage1_body_lr_scale``); data, seed, steps and both stages' rates stay the run's own,
and validation (standard and under the bottleneck) is logged every ``eval_every`` steps, so the two Stage 1s and their
Stage 2s compare on the same questions. Built to test whether Stage 2's opening loss shock comes from a
full-parameter Stage 1 unlearning the backbone's reading; at 0.1 the shock was larger (docs/experiments/spatial-trio/).

    python tools/experiments/spatial-trio/stage1_body.py /work/runs/spatial-trio/livr 0.1 \\
        /work/runs/spatial-trio/livr-s1body0.1 [--resume]

To ship it instead of the run, swap the folders (``OUT/livr`` is what ``reproduce`` evaluates) and give reproduce the
same ``--stage1-body-lr-scale``: its settings check then matches the new ``train_config.json``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from branch_stage2 import retrain  # this folder's sibling (a script's folder is on sys.path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="the LIVR run folder (holds train_config.json, backbone.json)")
    p.add_argument("scale", type=float, help="Stage 1's rate for all but the latent rows, as a fraction of the rate")
    p.add_argument("out", type=Path, help="the new run's folder (fresh, or --resume)")
    p.add_argument("--resume", action="store_true", help="continue the new run from its own checkpoint")
    args = p.parse_args(argv)
    return retrain(args.run, args.out, {"stage1_body_lr_scale": args.scale}, resume=args.resume)


if __name__ == "__main__":
    sys.exit(main())

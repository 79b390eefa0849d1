"""Train a LIVR run again from its own backbone and settings, with Stage 1 moving every parameter but the latent rows
at a fraction of the rate (``stage1_body_lr_scale``); data, seed, steps and both stages' rates stay the run's own,
and validation (standard and under the bottleneck) is logged every ``eval_every`` steps, so the two Stage 1s and their
Stage 2s compare on the same questions. Why: a full-parameter Stage 1 unlearns reading the image with full attention
and Stage 2 opens with a loss shock (docs/experiments/spatial-trio/README.md).

    python tools/experiments/spatial-trio/stage1_body.py /work/runs/spatial-trio/livr 0.1 \\
        /work/runs/spatial-trio/livr-s1body0.1 [--resume]

To ship it instead of the run, swap the folders (``OUT/livr`` is what ``reproduce`` evaluates) and give reproduce the
same ``--stage1-body-lr-scale``: its settings check then matches the new ``train_config.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from livr_viz.core.errors import LIVRError
from livr_viz.training.trainer import TrainConfig, Trainer, build_model_for_training


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="the LIVR run folder (holds train_config.json, backbone.json)")
    p.add_argument("scale", type=float, help="Stage 1's rate for all but the latent rows, as a fraction of the rate")
    p.add_argument("out", type=Path, help="the new run's folder (fresh, or --resume)")
    p.add_argument("--resume", action="store_true", help="continue the new run from its own checkpoint")
    args = p.parse_args(argv)
    try:
        record = args.run / "backbone.json"
        if not record.is_file():
            raise LIVRError(f"{args.run} does not record its backbone (backbone.json)")
        backbone = json.loads(record.read_text())["backbone"]
        settings = json.loads((args.run / "train_config.json").read_text())
        cfg = TrainConfig.from_dict({**settings, "stage1_body_lr_scale": args.scale})
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "backbone.json").write_text(json.dumps({"backbone": backbone}) + "\n")
        lm = build_model_for_training(backbone, cfg)
        Trainer(lm, cfg, args.out).run(resume=args.resume)
    except LIVRError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out / 'model'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Train another Stage 2 for a LIVR run from its end of Stage 1 (``stage1_checkpoint/``), with another Stage-2 peak
learning rate; everything else (backbone, data, seed, steps) is the run's own. The branch logs validation (standard
and under the bottleneck) every ``eval_every`` steps, as the run did, so the two Stage-2 rates compare on the same
questions; it ends bit for bit where a straight run at that rate would (``Trainer.run(branch_from=...)``, tested).

    python tools/experiments/spatial-trio/branch_stage2.py /work/runs/spatial-trio/livr 3e-4 \\
        /work/runs/spatial-trio/livr-stage2lr3e-4 [--open-steps N] [--resume]

To ship the branch instead of the run, swap the folders (``OUT/livr`` is what ``reproduce`` evaluates) and give
reproduce the branch's ``--stage2-lr``: its settings check then matches the branch's ``train_config.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from livr_viz.core.errors import LIVRError
from livr_viz.training.trainer import TrainConfig, Trainer, build_model_for_training


def retrain(run: Path, out: Path, changes: dict, resume: bool = False, branch: bool = False) -> int:
    """Train LIVR into ``out`` with ``run``'s backbone and settings, ``changes`` applied: from the start, from
    ``out``'s own checkpoint (``resume``), or from ``run``'s end of Stage 1 (``branch``). Exit status (2: an error,
    said on stderr)."""
    try:
        record = run / "backbone.json"
        if not record.is_file():
            raise LIVRError(f"{run} does not record its backbone (backbone.json)")
        backbone = json.loads(record.read_text())["backbone"]
        settings = json.loads((run / "train_config.json").read_text())
        cfg = TrainConfig.from_dict({**settings, **changes})
        out.mkdir(parents=True, exist_ok=True)
        (out / "backbone.json").write_text(json.dumps({"backbone": backbone}) + "\n")
        trainer = Trainer(build_model_for_training(backbone, cfg), cfg, out)
        if resume:
            trainer.run(resume=True)
        else:
            trainer.run(branch_from=run if branch else None)
    except LIVRError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out / 'model'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="the LIVR run folder (holds stage1_checkpoint/, backbone.json)")
    p.add_argument("stage2_lr", type=float, help="the branch's Stage-2 peak learning rate")
    p.add_argument("out", type=Path, help="the branch's folder (fresh, or --resume)")
    p.add_argument(
        "--open-steps",
        type=int,
        default=0,
        help="open the text rows' view of the image over this many Stage-2 steps (stage2_open_steps; 0: at once)",
    )
    p.add_argument("--resume", action="store_true", help="continue the branch from its own checkpoint")
    args = p.parse_args(argv)
    changes = {"stage2_lr": args.stage2_lr, "stage2_open_steps": args.open_steps}
    return retrain(args.run, args.out, changes, resume=args.resume, branch=True)


if __name__ == "__main__":
    sys.exit(main())

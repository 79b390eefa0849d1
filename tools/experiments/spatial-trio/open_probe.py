"""How a LIVR Stage-1 model takes the image being opened to its text rows: the mean answer loss on training
questions with a bias b on the TEXT/ANSWER rows' image keys (their attention weights times e^b; b = -inf is the
Stage-1 mask, 0 the Stage-2 one). Where the loss leaves its closed value says how far above their own keys those rows
score the image, and so where a gradual opening (``--stage2-open-steps``) has to start.

    python tools/experiments/spatial-trio/open_probe.py /work/runs/spatial-trio/livr/stage1_model \\
        /work/runs/spatial-trio/livr [--n 256]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

from livr_viz.core.model import LIVRModel
from livr_viz.training.trainer import TrainConfig, build_datasets

BIASES = (-math.inf, -46.0, -37.0, -30.0, -23.0, -18.4, -13.8, -9.2, -6.9, -4.6, -2.3, -1.2, 0.0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", type=Path, help="a LIVR model folder (e.g. RUN/stage1_model)")
    p.add_argument("run", type=Path, help="the run folder whose train_config.json names the training questions")
    p.add_argument("--n", type=int, default=256, help="training questions (a seeded draw; default 256)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    cfg = TrainConfig.from_dict(json.loads((args.run / "train_config.json").read_text()))
    train, _ = build_datasets(cfg)
    items = [
        train[i] for i in torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[: args.n].tolist()
    ]
    lm = LIVRModel.load(args.model, attn_implementation="eager")
    lm.model.eval()
    batches = [
        lm.build_inputs([x.image for x in chunk], [x.prompt for x in chunk], [x.target for x in chunk])
        for chunk in (items[k : k + 64] for k in range(0, len(items), 64))
    ]
    rows = []
    with torch.no_grad():
        for bias in BIASES:
            loss = sum(float(lm.loss(b, "full", image_bias=bias)) * b.padding_mask.shape[0] for b in batches)
            rows.append({"image_bias": bias, "share": math.exp(bias), "loss": loss / len(items)})
            print(f"bias {bias:>6}  weight x {math.exp(bias):.1e}  loss {loss / len(items):.3f}", flush=True)
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

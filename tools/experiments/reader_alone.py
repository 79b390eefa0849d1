"""The spatial reader alone on one task: can its tokens carry the comparison a task needs?

Decision 1 of the spatial-reader issue: measure the new tower (``livr_viz.core.spatial_reader``) on each task the
ViT tower left at chance, alone, for at least 1,000 steps, before any full pipeline. The reader is the tower exactly
as the demo backbone builds it (8 x 8 patch-aligned tokens at 96 px) and, on top, the lightest read-out that can
pick an option: a layer norm and one linear layer from the 64 flattened tokens to the task's options (see
:class:`Reader`). The comparison therefore has to happen *inside the tower* (its global layers), where the language
model will later find it. For the tasks measured here the options come in a fixed order (a side, a piece,
a ring colour), so the option index is the answer, as in task-ceilings' pixel CNN (same test questions: split test,
seed 2026, indices 0..499).

    python tools/experiments/reader_alone.py OUT_DIR TASK [--steps 1000] [--batch 32] [--lr 1e-3] [--threads 1]

Writes OUT_DIR/<task>.json (curve every 125 steps on 200 validation questions, test accuracy with its Wilson
interval, seconds per step) and a log line per evaluation to stdout. Fresh training questions: none repeats.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from livr_viz.core.spatial_reader import SpatialReaderConfig, SpatialReaderModel
from livr_viz.data.tasks import TASKS, make_sample
from livr_viz.methods.stats import wilson_interval
from livr_viz.training.trainer import warmup_cosine

MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)  # the demo processor's CLIP normalisation
STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)


def pixels(images) -> torch.Tensor:
    x = np.stack([(np.asarray(im.convert("RGB"), np.float32) / 255.0 - MEAN) / STD for im in images])
    return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()


def batch_of(task: str, split: str, seed: int, start: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    samples = [make_sample(task, split, seed, i, answer_format="word") for i in range(start, start + n)]
    return pixels([s.image for s in samples]), torch.tensor([s.letters.index(s.answer) for s in samples])


class Reader(nn.Module):
    """The tower and a *linear* read-out of its flattened tokens. A linear map cannot compare two panels (whether
    two textures match is not linear in their features), so the comparison has to be made inside the tower; it can
    tell where a token sits, which a pooled read-out cannot (a first version with one attention query over the tokens
    stayed at ln 2 on visual similarity: its uniform attention at initialisation averages the left and right
    candidates together)."""

    def __init__(self, n_options: int, config: SpatialReaderConfig, hidden: int = 0):
        super().__init__()
        self.tower = SpatialReaderModel(config)
        n = (config.image_size // config.patch_size) ** 2
        self.norm = nn.LayerNorm(config.hidden_size)
        if hidden:  # a diagnostic, not the design: can anything read the answer from the tokens? (the CNN's head)
            self.head = nn.Sequential(
                nn.Linear(n * config.hidden_size, hidden), nn.GELU(), nn.Linear(hidden, n_options)
            )
        else:
            self.head = nn.Linear(n * config.hidden_size, n_options)

    def forward(self, x):
        return self.head(self.norm(self.tower(x).hidden_states[-1]).flatten(1))


def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, int]:
    net.eval()
    with torch.no_grad():
        pred = torch.cat([net(x[i : i + 100]).argmax(-1) for i in range(0, len(x), 100)])
    net.train()
    hits = int((pred == y).sum())
    return hits / len(y), hits


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("task", choices=sorted(TASKS))
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--layers", type=int, default=3, help="global attention layers inside the tower")
    ap.add_argument("--no-token-mixing", action="store_true", help="attention only inside the tower")
    ap.add_argument("--no-first-norm", action="store_true", help="no per-pixel norm at full resolution")
    ap.add_argument("--overlap", type=int, default=0, help="widen each stem downsampling by this many px a side")
    ap.add_argument(
        "--mlp-readout", type=int, default=0, metavar="WIDTH", help="a read-out with one hidden layer of this width"
    )
    ap.add_argument("--global-mlp", type=int, default=0, metavar="WIDTH", help="the tower's global MLP block")
    ap.add_argument("--tag", default="", help="suffix of the result file's name")
    ap.add_argument("--n-val", type=int, default=200)
    ap.add_argument("--n-test", type=int, default=500)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = SpatialReaderConfig(
        num_hidden_layers=args.layers,
        token_mixing=not args.no_token_mixing,
        first_norm=not args.no_first_norm,
        overlap=args.overlap,
        global_mlp=args.global_mlp,
    )
    net = Reader(TASKS[args.task].n_choices, config, args.mlp_readout)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: warmup_cosine(i, args.steps, max(1, args.steps // 20), 1.0)
    )
    val_x, val_y = batch_of(args.task, "val", 0, 0, args.n_val)
    curve, t0, losses = [], time.time(), []
    for step in range(1, args.steps + 1):
        x, y = batch_of(args.task, "train", 0, (step - 1) * args.batch, args.batch)
        loss = nn.functional.cross_entropy(net(x), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        if step % 125 == 0 or step == args.steps:
            acc, _ = accuracy(net, val_x, val_y)
            curve.append(
                {
                    "step": step,
                    "val": round(100 * acc, 1),
                    "loss": round(float(np.mean(losses)), 4),
                    "seconds": round(time.time() - t0, 1),
                }
            )
            losses = []
            print(json.dumps({"task": args.task, **curve[-1]}), flush=True)
    train_seconds = time.time() - t0
    test_x, test_y = batch_of(args.task, "test", 2026, 0, args.n_test)
    acc, hits = accuracy(net, test_x, test_y)
    lo, hi = wilson_interval(hits, args.n_test)
    result = {
        "task": args.task,
        "chance": round(100 / TASKS[args.task].n_choices, 1),
        "test": round(100 * acc, 1),
        "test_interval": [round(100 * lo, 1), round(100 * hi, 1)],
        "n_test": args.n_test,
        "steps": args.steps,
        "batch": args.batch,
        "lr": args.lr,
        "threads": args.threads,
        "tower_layers": args.layers,
        "token_mixing": config.token_mixing,
        "first_norm": config.first_norm,
        "overlap": config.overlap,
        "mlp_readout": args.mlp_readout,
        "global_mlp": config.global_mlp,
        "tower_parameters": sum(p.numel() for p in net.tower.parameters()),
        "seconds_per_step": round(train_seconds / args.steps, 3),
        "curve": curve,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = f"{args.task}{'' if config.token_mixing else '-attention-only'}{args.tag}.json"
    (out / name).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "curve"}), flush=True)


if __name__ == "__main__":
    main()

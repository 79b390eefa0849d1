"""A reference point for the task ceilings: a small CNN classifier trained from pixels on one task alone (no
language model, no tokens), fresh training questions, the same test questions as the VLM runs (split test, seed
2026, indices 0..N-1). If a network of this size learns a task from 96-px images in a few thousand steps, the demo
VLM's tower / connector is what fails it; if this network cannot either, the task at this resolution needs more
than the demo's budget.
  python pixel_baseline.py OUT_JSON TASK [STEPS] [BATCH] [LR]   (defaults 3000 64 1e-3)"""

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from livr_viz.data.tasks import TASKS, make_sample
from livr_viz.training.trainer import warmup_cosine

out, task = sys.argv[1], sys.argv[2]
steps, batch, lr = (
    int(sys.argv[3]) if len(sys.argv) > 3 else 3000,
    int(sys.argv[4]) if len(sys.argv) > 4 else 64,
    float(sys.argv[5]) if len(sys.argv) > 5 else 1e-3,
)
n_test, n_val = 500, 200
torch.manual_seed(0)
n_choices = TASKS[task].n_choices


def batch_of(split: str, seed: int, start: int, n: int):
    samples = [make_sample(task, split, seed, i, answer_format="word") for i in range(start, start + n)]
    x = torch.from_numpy(np.stack([np.asarray(s.image.convert("RGB"), np.float32) / 255.0 for s in samples]))
    return x.permute(0, 3, 1, 2), torch.tensor([s.letters.index(s.answer) for s in samples])


def block(cin, cout, stride):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
        nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
    )


# 96 → 48 → 24 → 12 (stride-2 blocks, then one at 12 x 12): keeps a 12 x 12 map (the VLM's 8 x 8 token grid is
# coarser) and flattens it, so the head can relate what is where (a colour at one place to a structure at another)
net = nn.Sequential(
    block(3, 32, 2),
    block(32, 64, 2),
    block(64, 96, 2),
    block(96, 96, 1),
    nn.Conv2d(96, 32, 1),
    nn.ReLU(),
    nn.Flatten(),
    nn.Linear(32 * 12 * 12, 256),
    nn.ReLU(),
    nn.Linear(256, n_choices),
)
params = sum(p.numel() for p in net.parameters())
opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.01)
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: warmup_cosine(i, steps, max(1, steps // 20), 1.0))
val_x, val_y = batch_of("val", 0, 0, n_val)


def accuracy(x, y) -> float:
    net.eval()
    with torch.no_grad():
        pred = torch.cat([net(x[i : i + 100]).argmax(-1) for i in range(0, len(x), 100)])
    net.train()
    return float((pred == y).float().mean())


curve, t0 = [], time.time()
for step in range(1, steps + 1):
    x, y = batch_of("train", 0, (step - 1) * batch, batch)  # fresh questions: none repeats
    loss = nn.functional.cross_entropy(net(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()
    if step % 250 == 0 or step == steps:
        curve.append({"step": step, "loss": round(loss.item(), 4), "val": round(accuracy(val_x, val_y), 4)})
        print(task, curve[-1], f"{time.time() - t0:.0f}s", flush=True)
test_x, test_y = batch_of("test", 2026, 0, n_test)
result = {
    "task": task,
    "params": params,
    "steps": steps,
    "batch": batch,
    "lr": lr,
    "n_test": n_test,
    "test_accuracy": accuracy(test_x, test_y),
    "curve": curve,
    "seconds": round(time.time() - t0),
}
print(json.dumps(result), flush=True)
Path(out).write_text(json.dumps(result, indent=1))

"""Where does a task's answer get lost: in the image tokens, or after them?  A probe on frozen image tokens.

The backbone is frozen; the 64 projected image tokens of each question (what the language model reads) are cached,
and a small probe learns the task's answer from them alone. Two probes: ``--pool mean``, transformer encoder layers
over the tokens (learnt position embedding added), mean-pooled, then an MLP over the task's options; ``--pool
flat``, each token projected to 32 numbers and the 64 of them concatenated into an MLP (what the pixel CNN's head
does with its 12 x 12 map), so the probe can compare one place with another without attention. The question text
is not needed: each task asks one fixed question, and the options are identified by colour or position in the
image. ``--raw`` probes the 12-px patches' pixels instead (the same tokens, before any tower). Training questions
are drawn fresh (split train, seed 0); the test is the VLM runs' test questions (split test, seed 2026, the first
``--val``). README.md has the runs (``--train 10000 --steps 2000``), e.g.

    python tools/experiments/task-ceilings/token_probe.py --model BACKBONE --task visual_similarity --pool flat
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from livr_viz.data.tasks import TASKS, make_sample

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lookup-curriculum"))
from attn_probe import frozen_backbone, image_tokens, probe_args


@torch.no_grad()
def features(model, processor, task: str, split: str, seed: int, count: int, batch: int = 128):
    """The questions' image tokens (attn_probe.image_tokens; ``model`` None: raw patches) and answer indices."""
    feats, answers = [], []
    for start in range(0, count, batch):
        samples = [
            make_sample(task, split, seed, i, answer_format="word") for i in range(start, min(count, start + batch))
        ]
        feats.append(image_tokens(model, processor, [s.image for s in samples]))
        answers += [s.letters.index(s.answer) for s in samples]
    return torch.cat(feats), torch.tensor(answers)


class Probe(nn.Module):
    def __init__(self, dim: int, tokens: int, n_out: int, layers: int, pool: str, width: int = 128):
        super().__init__()
        self.pool = pool
        if pool == "flat":
            self.inp = nn.Sequential(
                nn.LayerNorm(dim),
                nn.Linear(dim, 32),
                nn.GELU(),
                nn.Flatten(),
                nn.Linear(32 * tokens, 256),
                nn.GELU(),
                nn.Linear(256, n_out),
            )
            return
        self.inp = nn.Linear(dim, width)
        self.pos = nn.Parameter(torch.zeros(tokens, width))
        self.mix = nn.ModuleList(
            nn.TransformerEncoderLayer(width, 4, 2 * width, dropout=0.0, batch_first=True) for _ in range(layers)
        )
        self.out = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, n_out))

    def forward(self, feats):
        if self.pool == "flat":
            return self.inp(feats)
        x = self.inp(feats) + self.pos
        for layer in self.mix:
            x = layer(x)
        return self.out(x.mean(1))


def main(argv=None):
    ap = probe_args(argparse.ArgumentParser(description=__doc__.splitlines()[0]), val=500)
    ap.add_argument("--task", required=True, choices=sorted(TASKS))
    ap.add_argument("--pool", choices=("mean", "flat"), default="mean")
    ap.add_argument("--layers", type=int, default=2, help="transformer encoder layers of the mean-pooled probe")
    a = ap.parse_args(argv)
    model, processor = frozen_backbone(a)
    t0 = time.time()
    tr = features(model, processor, a.task, "train", 0, a.train)
    va = features(model, processor, a.task, "test", 2026, a.val)
    print(
        f"{a.task} {'raw pixels' if a.raw else a.model}, pool {a.pool}: features {tuple(tr[0].shape)} "
        f"({time.time() - t0:.0f} s)",
        flush=True,
    )
    probe = Probe(tr[0].shape[-1], tr[0].shape[1], TASKS[a.task].n_choices, a.layers, a.pool)
    opt = torch.optim.AdamW(probe.parameters(), lr=a.lr, weight_decay=0.01)
    rng = np.random.default_rng(0)
    for step in range(a.steps):
        idx = torch.from_numpy(rng.integers(a.train, size=128))
        loss = F.cross_entropy(probe(tr[0][idx]), tr[1][idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (step + 1) % 500 == 0:
            with torch.no_grad():
                acc = (probe(va[0]).argmax(-1) == va[1]).float().mean().item()
                fit = (probe(tr[0][:1000]).argmax(-1) == tr[1][:1000]).float().mean().item()
            print(
                f"step {step + 1} loss {loss.item():.3f} train {fit:.3f} test {acc:.3f} ({time.time() - t0:.0f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()

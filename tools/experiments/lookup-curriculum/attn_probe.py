"""Experiment: do a backbone's image tokens carry the binding at all?  An attention probe on frozen image tokens.

The look-up "which coloured point is on the purple triangle?" stays at the pick-either-colour level in every
language-model curve.  This asks the image tokens directly: the backbone is frozen, its projected image tokens
(what the language model reads) are cached, and a small probe learns the look-up from them.

The probe: the asked shape's colour and shape words are two learnt embeddings, summed into one query. ``--hops 0``
lets that query attend once over the 64 image tokens (one head, learnt position embedding added to the keys) and
reads the answer (4 marker words) off the attended value with an MLP. ``--hops 1`` first runs one self-attention
layer over the image tokens, so a disc's patch and its shape's patches can exchange what they hold before the
query looks.  ``--raw`` probes the patches' pixels instead (is the probe able to learn it at all?).  The look{N}
scenes are lookup_curves.py's (MARKER=dot for discs).

    MARKER=dot python tools/experiments/lookup-curriculum/attn_probe.py --model assets/demo-base --n 2 --hops 0
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lookup_curves as L

from livr_viz.core.model import load_backbone
from livr_viz.data import draw as D
from livr_viz.data.tasks import LETTERS, SCENE_COLOURS


def scene_query(sample) -> tuple[int, int]:
    words = sample.question.rstrip("?").split()
    return SCENE_COLOURS.index(words[-2]), D.SHAPES.index(words[-1])


@torch.no_grad()
def image_tokens(model, processor, images) -> torch.Tensor:
    """``[B, 64, D]``: the images' tokens as the language model reads them (``model`` None: the 12-px patches'
    pixels, before any tower)."""
    pixels = processor.image_processor(images, return_tensors="pt")["pixel_values"]
    if model is None:
        p = processor.patch_size
        grid = pixels.unfold(2, p, p).unfold(3, p, p)  # [B, 3, g, g, p, p]
        return grid.permute(0, 2, 3, 1, 4, 5).flatten(3).flatten(1, 2)
    # the layer and CLS handling LLaVA's projector reads (as tools/experiments/tower_probe.py)
    hidden = model.model.vision_tower(pixels, output_hidden_states=True).hidden_states
    hidden = hidden[model.config.vision_feature_layer]
    if model.config.vision_feature_select_strategy == "default":
        hidden = hidden[:, 1:]
    return model.model.multi_modal_projector(hidden)


@torch.no_grad()
def features(model, processor, n: int, split: str, count: int, batch: int = 128):
    """The look{n} scenes' image tokens (``image_tokens``), each scene's query (colour, shape) and answer index."""
    feats, queries, answers = [], [], []
    for start in range(0, count, batch):
        samples = [L.look(n, split, 0, i) for i in range(start, min(count, start + batch))]
        feats.append(image_tokens(model, processor, [s.image for s in samples]))
        queries += [scene_query(s) for s in samples]
        answers += [LETTERS.index(s.answer) for s in samples]
    return torch.cat(feats), torch.tensor(queries), torch.tensor(answers)


class Probe(nn.Module):
    def __init__(self, dim: int, tokens: int, hops: int, width: int = 128):
        super().__init__()
        self.colour = nn.Embedding(len(SCENE_COLOURS), width)
        self.shape = nn.Embedding(len(D.SHAPES), width)
        self.inp = nn.Linear(dim, width)
        self.pos = nn.Parameter(torch.zeros(tokens, width))
        self.mix = nn.TransformerEncoderLayer(width, 4, 2 * width, dropout=0.0, batch_first=True) if hops else None
        self.q, self.k, self.v = nn.Linear(width, width), nn.Linear(width, width), nn.Linear(width, width)
        self.out = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, 4))

    def forward(self, feats, query):
        x = self.inp(feats) + self.pos
        if self.mix is not None:
            x = self.mix(x)
        q = self.q(self.colour(query[:, 0]) + self.shape(query[:, 1]))
        att = torch.softmax(torch.einsum("bd,btd->bt", q, self.k(x)) / x.shape[-1] ** 0.5, dim=-1)
        return self.out(torch.einsum("bt,btd->bd", att, self.v(x)))


def probe_args(ap: argparse.ArgumentParser, val: int) -> argparse.ArgumentParser:
    """The options every frozen-token probe here takes (this one and task-ceilings/token_probe.py)."""
    ap.add_argument("--model", required=True, help="backbone directory (its processor gives the patches for --raw)")
    ap.add_argument("--train", type=int, default=20000)
    ap.add_argument("--val", type=int, default=val)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--raw", action="store_true", help="probe the patches' pixels instead of the image tokens")
    return ap


def frozen_backbone(a: argparse.Namespace):
    """(model or None for --raw, processor), with the global seed set for the probe."""
    torch.manual_seed(0)
    model, processor = load_backbone(a.model)
    return (None if a.raw else model.eval()), processor


def main(argv=None):
    ap = probe_args(argparse.ArgumentParser(description=__doc__.splitlines()[0]), val=1000)
    ap.add_argument("--n", type=int, default=2, help="shapes per scene (look{n})")
    ap.add_argument("--hops", type=int, default=0, choices=(0, 1))
    a = ap.parse_args(argv)
    model, processor = frozen_backbone(a)
    t0 = time.time()
    tr, va = features(model, processor, a.n, "train", a.train), features(model, processor, a.n, "val", a.val)
    print(f"features: {tuple(tr[0].shape)} train, {tuple(va[0].shape)} val ({time.time() - t0:.0f} s)", flush=True)
    probe = Probe(tr[0].shape[-1], tr[0].shape[1], a.hops)
    opt = torch.optim.AdamW(probe.parameters(), lr=a.lr, weight_decay=0.01)
    rng = np.random.default_rng(0)
    for step in range(a.steps):
        idx = torch.from_numpy(rng.integers(a.train, size=256))
        loss = F.cross_entropy(probe(tr[0][idx], tr[1][idx]), tr[2][idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (step + 1) % 250 == 0:
            with torch.no_grad():
                acc = (probe(va[0], va[1]).argmax(-1) == va[2]).float().mean().item()
                fit = (probe(tr[0][:2000], tr[1][:2000]).argmax(-1) == tr[2][:2000]).float().mean().item()
            print(
                f"step {step + 1} loss {loss.item():.3f} train {fit:.3f} val {acc:.3f} ({time.time() - t0:.0f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()

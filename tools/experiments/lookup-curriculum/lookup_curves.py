"""Experiment: a look-up curriculum for the binding read-out (marker_on_shape) -- does the language model learn
"which coloured ring sits on the named shape" when the scene grows from one shape to four?

Kinds ``lookN`` (N = 1..4): marker_on_shape's layout with N shapes (distinct shapes, scene colours), one ring on
each in N distinct marker colours drawn at random; the question names one shape, the options are always the four
marker words (4-way at every N; N = 1 is reading the one ring's colour).  MARKER=dot (DOT_R=4) draws filled discs
instead of the suite's rings; TEXT_FIRST=1 puts the question before the image and FREEZE_TOWER=1 freezes the
tower (../frozen-tower/curves_variants.py); DENSE=1 makes each training target answer every shape's look-up.
Kinds ``tlookN`` tell lookN's scene in words on a blank image (the same look-up with nothing to see).  Everything else
is tools/experiments/perception_curves.py (the kinds are patched into its sampler):

    python tools/experiments/lookup-curriculum/lookup_curves.py --init assets/demo-base \
        --phases "look1:150;look1+look2:400;look2+look3:700;look3+look4:1000" --steps 1000
"""

import os
import sys
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "frozen-tower"))
import curves_variants  # noqa: F401  (TEXT_FIRST=1 / FREEZE_TOWER=1 switches)
import perception_curves as pc
from text_lookup import told

from livr_viz.data import draw as D
from livr_viz.data.tasks import LETTERS, MARKER_WORDS, SCENE_COLOURS, SPLITS, Sample

_orig = pc.make_perception_sample
MARKER = os.environ.get("MARKER", "ring")  # ring: the suite's draw_ring | dot: a filled disc of radius DOT_R
DOT_R = float(os.environ.get("DOT_R", "4"))
# DENSE=1: a training item's target goes on to ask and answer the look-up for every other shape of its scene
# ("blue\nWhich coloured point is on the orange square? yellow ..."): N supervised look-ups per image instead of
# one (validation unchanged)
DENSE = os.environ.get("DENSE") == "1"


def look(n: int, split: str, seed: int, index: int, size: int = 96) -> Sample:
    rng = np.random.default_rng(np.random.SeedSequence([zlib.crc32(b"look"), n, SPLITS[split], seed, index]))
    img = Image.new("RGB", (size, size), D.BACKGROUND)
    draw = ImageDraw.Draw(img)
    r = rng.uniform(0.1, 0.13) * size
    centres = D.place_disjoint(rng, n, img.size, r, margin=3)
    shapes = [str(s) for s in rng.choice(D.SHAPES, size=n, replace=False)]
    colours = [str(c) for c in rng.choice(SCENE_COLOURS, size=n)]
    rings = [str(c) for c in rng.choice(MARKER_WORDS, size=n, replace=False)]
    for (x, y), shape, colour, ring in zip(centres, shapes, colours, rings):
        D.draw_shape(draw, shape, x, y, r, D.PALETTE[colour])
        mx, my = x + rng.uniform(-r / 3, r / 3), y + rng.uniform(-r / 3, r / 3)
        if MARKER == "dot":  # a filled disc instead of a ring: the marker colour owns most of its patch
            draw.ellipse([mx - DOT_R - 1, my - DOT_R - 1, mx + DOT_R + 1, my + DOT_R + 1], fill=(0, 0, 0))
            draw.ellipse([mx - DOT_R, my - DOT_R, mx + DOT_R, my + DOT_R], fill=D.PALETTE[ring])
        else:
            D.draw_ring(draw, mx, my, D.PALETTE[ring])
    t = int(rng.integers(n))
    evidence = D.disc_mask(img.size, *centres[t], r)
    sample = Sample(
        id=f"look{n}-{split}-{seed}-{index}",
        task=f"perception_look{n}",
        image=img,
        question=f"Which coloured point is on the {colours[t]} {shapes[t]}?",
        choices=list(MARKER_WORDS),
        answer=LETTERS[MARKER_WORDS.index(rings[t])],
        evidence=evidence,
        concepts={"shape": shapes[t]},
        answer_format="word",
    )
    if not (DENSE and split == "train"):
        return sample
    more = "".join(
        f"\nWhich coloured point is on the {colours[i]} {shapes[i]}? {rings[i]}" for i in rng.permutation(n) if i != t
    )
    return SimpleNamespace(image=img, prompt=sample.prompt, target=sample.target + more)


def text_look(n: int, split: str, seed: int, index: int, size: int = 96) -> Sample:
    """``look{n}``'s scene told in words on a blank image: the same look-up with no seeing to do."""
    rng = np.random.default_rng(np.random.SeedSequence([zlib.crc32(b"tlook"), n, SPLITS[split], seed, index]))
    scene, question, answer = told(rng, n)
    return Sample(
        id=f"tlook{n}-{split}-{seed}-{index}",
        task=f"perception_tlook{n}",
        image=Image.new("RGB", (size, size), D.BACKGROUND),
        question=f"{scene} {question}",
        choices=list(MARKER_WORDS),
        answer=LETTERS[MARKER_WORDS.index(answer)],
        evidence=np.zeros((size, size), bool),
        concepts={},
        answer_format="word",
    )


def make_perception_sample(kind, split="train", seed=0, index=0, size=96):
    if kind.startswith("tlook"):
        return text_look(int(kind[5:]), split, seed, index, size)
    if kind.startswith("look"):
        return look(int(kind[4:]), split, seed, index, size)
    return _orig(kind, split, seed, index, size)


pc.make_perception_sample = make_perception_sample

if __name__ == "__main__":
    pc.main()

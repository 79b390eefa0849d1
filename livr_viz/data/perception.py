"""Perception curriculum for pretraining the demo backbone: simple questions that teach it to *see*.

The LIVR fine-tunes start, as in the paper, from a model with visual skill.  Our from-scratch demo
backbone gets it here: colour, shape, position, counting, brightness, reading drawn labels and boxes.
None of these questions is one of the nine evaluation tasks; they are the skills those tasks build on.
Like the task suite, a question is a pure function of ``(kind, split, seed, index)``.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from livr_viz.core.errors import LIVRError
from livr_viz.data import draw as D
from livr_viz.data.tasks import (
    LETTERS,
    MARKER_WORDS,
    REFERENCE_RING,
    SCENE_COLOURS,
    SPLITS,
    Sample,
    _part_points,
    _shuffle_into,
)

# sub-skills of the nine tasks' word-format read-outs, each in the layout of the task it serves (see SUBSKILLS)
SUBSKILLS = ("marker_on_shape", "darker_marker", "box_around", "match_side", "same_place", "marker_part")
WORD_ANSWERS = ("colour", "shape", "quadrant", "count", "same_shape", *SUBSKILLS)
# the curriculum the shipped backbone was trained on ("perception"), in round-robin order
CURRICULUM = ("colour", "shape", "quadrant", "count", "brighter", "label_on", "box_contains", "same_shape")
# diagnostic kinds that isolate one skill of the nine tasks' answer format (RESULTS.md), on request:
# read_letter (name a drawn letter), count_letter (count, answer by option letter), pick_option (a text-only
# option lookup: "Which option is 7?"), match_colour (the suite's reference-and-two-candidates layout with the
# one visual skill the backbone has: which candidate has the reference's colour)
DIAGNOSTIC = ("read_letter", "count_letter", "pick_option", "match_colour")
# the word-answer curriculum the word-format demo models continue pretraining on ("perception:words"): the word
# kinds above plus one question per task read-out, in the task's own layout and marker colours --
#   marker_on_shape  which coloured ring sits on the named shape (correspondence / localisation read-out)
#   darker_marker    which coloured ring sits on the darker of two grey squares (relative reflectance)
#   box_around       which coloured box contains the named shape (object localisation)
#   match_side       reference on top, two candidates below: which one has the reference's colour (similarity, art)
#   same_place       two identical panels: which coloured ring in the right one marks the reference point's place
#                    (visual correspondence with no transform: its easiest level)
#   marker_part      which coloured ring marks the named part (top / bottom / left / right / centre) of a shape
#                    (semantic correspondence's part vocabulary)
WORD_CURRICULUM = ("colour", "shape", "quadrant", "count", *SUBSKILLS)
KINDS = CURRICULUM + DIAGNOSTIC + SUBSKILLS
# kinds whose images carry no drawn letters (stage-0 vision pretraining draws its own letters on them)
LETTER_FREE = ("colour", "shape", "quadrant", "count", "same_shape", "count_letter", "pick_option", *SUBSKILLS)
_CODES = {k: 7919 * (i + 1) for i, k in enumerate(KINDS)}
QUADRANTS = ("topleft", "topright", "bottomleft", "bottomright")


def _rng(kind, split, seed, index):
    return np.random.default_rng(np.random.SeedSequence([_CODES[kind], SPLITS[split], seed, index, 0xBEEF]))


def _decoys(rng, draw, size: tuple[int, int], r: float) -> None:
    """0–2 small shapes in palette colours, unrelated to the question."""
    for _ in range(int(rng.integers(0, 3))):
        ((x, y),) = D.place_disjoint(rng, 1, size, r, margin=2)
        D.draw_shape(draw, str(rng.choice(D.SHAPES)), x, y, r, D.PALETTE[str(rng.choice(D.COLOR_NAMES))])


def _options(rng, correct: str, pool, n=4):
    others = [p for p in pool if p != correct]
    picks = list(rng.choice(others, size=n - 1, replace=False))
    target = int(rng.integers(n))
    return [str(x) for x in picks[:target] + [correct] + picks[target:]], LETTERS[target]


def make_perception_sample(kind: str, split: str = "train", seed: int = 0, index: int = 0, size: int = 96):
    if kind not in KINDS:
        raise LIVRError(f"unknown perception kind {kind!r}; known: {KINDS}")
    rng = _rng(kind, split, seed, index)
    img = Image.new("RGB", (size, size), D.BACKGROUND)
    draw = ImageDraw.Draw(img)
    evidence = np.zeros((size, size), bool)
    concepts: dict = {"kind": kind}
    r = rng.uniform(0.08, 0.16) * size
    if kind in ("colour", "shape", "quadrant"):
        shape, colour = str(rng.choice(D.SHAPES)), str(rng.choice(D.COLOR_NAMES))
        (x, y), *others = D.place_disjoint(rng, 1 + int(rng.integers(0, 3)), img.size, r, margin=2)
        D.draw_shape(draw, shape, x, y, r, D.PALETTE[colour])
        evidence |= D.disc_mask(img.size, x, y, r)
        quadrant = QUADRANTS[(y >= size / 2) * 2 + (x >= size / 2)]
        for ox, oy in others:  # small grey decoys
            D.draw_shape(draw, str(rng.choice(D.SHAPES)), ox, oy, r * 0.5, (150, 150, 150))
        concepts.update(shape=shape, colour=colour, quadrant=quadrant)
        if kind == "colour":
            question, (choices, answer) = "What colour is the large shape?", _options(rng, colour, D.COLOR_NAMES)
        elif kind == "shape":
            question, (choices, answer) = f"What shape is the {colour} object?", _options(rng, shape, D.SHAPES)
        else:
            question, (choices, answer) = f"Where is the {colour} {shape}?", _options(rng, quadrant, QUADRANTS)
    elif kind in ("count", "count_letter"):
        colour = str(rng.choice(D.COLOR_NAMES))
        n = int(rng.integers(1, 7))
        n_other = int(rng.integers(0, 4))
        rr = 0.06 * size
        for i, (x, y) in enumerate(D.place_disjoint(rng, n + n_other, img.size, rr, margin=3)):
            c = colour if i < n else str(rng.choice([c for c in D.COLOR_NAMES if c != colour]))
            D.draw_shape(draw, "circle", x, y, rr, D.PALETTE[c])
            if i < n:
                evidence |= D.disc_mask(img.size, x, y, rr)
        concepts.update(count=n, colour=colour)
        question, (choices, answer) = (
            f"How many {colour} circles are there?",
            _options(rng, str(n), [str(v) for v in range(9)]),
        )
    elif kind == "brighter":
        levels = rng.uniform(0.1, 0.9, 2)
        while abs(levels[0] - levels[1]) < 0.15:
            levels = rng.uniform(0.1, 0.9, 2)
        pts = D.place_disjoint(rng, 2, img.size, 14, margin=4)
        for j, ((x, y), lvl) in enumerate(zip(pts, levels)):
            g = int(lvl * 255)
            draw.rectangle((x - 12, y - 12, x + 12, y + 12), fill=(g, g, g))
            D.draw_marker(draw, x, y, "AB"[j], colour=(255, 0, 0))
            evidence |= D.disc_mask(img.size, x, y, 12)
        brighter = "AB"[int(levels[1] > levels[0])]
        concepts.update(brighter=brighter)
        question, choices, answer = "Which marked square is brighter?", ["A", "B"], brighter
    elif kind == "label_on":
        shape, colour = str(rng.choice(D.SHAPES)), str(rng.choice(D.COLOR_NAMES))
        big = 0.2 * size
        ((x, y),) = D.place_disjoint(rng, 1, img.size, big)
        D.draw_shape(draw, "circle", x, y, big, D.PALETTE[colour])
        target = int(rng.integers(4))
        inside = np.array([x, y]) + rng.uniform(-0.5, 0.5, 2) * big
        pts = []
        for _ in range(500):
            if len(pts) == 3:
                break
            p = rng.uniform(6, size - 6, 2)
            if np.hypot(*(p - [x, y])) > big + 5 and all(np.hypot(*(p - q)) > 10 for q in pts + [inside]):
                pts.append(p)
        pts = pts[:target] + [inside] + pts[target:]
        for i, p in enumerate(pts):
            D.draw_marker(draw, p[0], p[1], LETTERS[i])
        evidence |= D.disc_mask(img.size, x, y, big + 2)
        concepts.update(colour=colour)
        question, choices, answer = (
            f"Which labelled point is on the {colour} circle?",
            [f"point {c}" for c in "ABCD"],
            LETTERS[target],
        )
    elif kind == "box_contains":
        shapes = rng.choice(D.SHAPES, size=2, replace=False)
        pts = D.place_disjoint(rng, 2, img.size, 16, margin=4)
        target = int(rng.integers(2))
        for j, (x, y) in enumerate(pts):
            D.draw_shape(draw, str(shapes[j]), x, y, 9, D.PALETTE[str(rng.choice(D.COLOR_NAMES))])
            draw.rectangle((x - 14, y - 14, x + 14, y + 14), outline=(0, 0, 0))
            draw.text((x - 13, y - 14), "AB"[j], font=D.font(8), fill=(0, 0, 0))
            evidence |= D.box_mask(img.size, (x - 14, y - 14, x + 14, y + 14))
        question, choices, answer = f"Which box contains the {shapes[target]}?", ["box A", "box B"], "AB"[target]
        concepts.update(shape=str(shapes[target]))
    elif kind == "read_letter":
        _decoys(rng, draw, img.size, r * 0.6)
        target = int(rng.integers(4))
        x, y = rng.uniform(2, size - 10, 2)
        fill = D.LETTER_COLOURS[int(rng.integers(len(D.LETTER_COLOURS)))]
        if fill == (255, 255, 255):  # white letters on a dark tile, as on dark surfaces in the tasks
            draw.rectangle(D.letter_tile(x, y), fill=(40, 40, 40))
        draw.text((x, y), LETTERS[target], font=D.font(int(rng.choice([8, 9]))), fill=fill)
        evidence |= D.box_mask(img.size, (x - 1, y, x + 8, y + 10))
        concepts.update(letter=LETTERS[target])
        question, choices, answer = "Which letter is written in the image?", list("ABCD"), LETTERS[target]
    elif kind == "pick_option":  # text only: find the option in the list (the image is a distraction)
        _decoys(rng, draw, img.size, r * 0.6)
        pool = [[str(v) for v in range(9)], D.COLOR_NAMES, D.SHAPES, QUADRANTS][int(rng.integers(4))]
        word = str(rng.choice(pool))
        question, (choices, answer) = f"Which option is {word}?", _options(rng, word, pool)
        concepts.update(word=word)
    elif kind == "match_colour":  # the layout of visual_similarity / art_style, compared by colour alone
        img, evidence, ref, target = _colour_match(rng, size, ["REF", "A", "B"])
        concepts.update(colour=ref)
        question = "Which candidate has the same colour as the reference?"
        choices, answer = ["candidate A", "candidate B"], "AB"[target]
    elif kind in SUBSKILLS:
        img, question, choices, answer, evidence, more = _subskill(kind, rng, size)
        concepts.update(more)
    else:  # same_shape: left and right halves
        a = str(rng.choice(D.SHAPES))
        same = bool(rng.integers(2))
        b = a if same else str(rng.choice([s for s in D.SHAPES if s != a]))
        D.draw_shape(draw, a, size * 0.25, size / 2, r, D.PALETTE[str(rng.choice(D.COLOR_NAMES))])
        D.draw_shape(draw, b, size * 0.75, size / 2, r, D.PALETTE[str(rng.choice(D.COLOR_NAMES))])
        evidence |= D.disc_mask(img.size, size * 0.25, size / 2, r) | D.disc_mask(img.size, size * 0.75, size / 2, r)
        question, choices, answer = "Do the two objects have the same shape?", ["yes", "no"], "A" if same else "B"
        concepts.update(same=same)
    # colour / shape / position / count / same-shape are answered with the word itself (no letter binding to
    # learn); the label-reading questions keep letters, because the letters are drawn in the image; count_letter
    # asks the count question with lettered options, the binding the nine tasks' option lists need, and
    # pick_option teaches that binding on its own (a text lookup: "Which option is 7?").
    fmt = "word" if kind in WORD_ANSWERS else "letter"
    return Sample(
        id=f"perception-{kind}-{split}-{seed}-{index}",
        task=f"perception_{kind}",
        image=img,
        question=question,
        choices=choices,
        answer=answer,
        evidence=evidence,
        concepts=concepts,
        answer_format=fmt,
    )


def _colour_match(rng, size: int, labels: list[str]):
    """Reference on top, two candidates below (visual similarity's and art style's layout), one shape each; the
    candidate at ``target`` has the reference's colour. Returns (image, evidence, reference colour, target)."""
    side = (size - 24) // 2
    ref, other = rng.choice(D.COLOR_NAMES, size=2, replace=False)
    target = int(rng.integers(2))
    panels = []
    for colour in (ref, *_shuffle_into(rng, ref, [other], target)):
        panel = Image.new("RGB", (side, side), D.BACKGROUND)
        D.draw_shape(
            ImageDraw.Draw(panel),
            str(rng.choice(D.SHAPES)),
            side / 2,
            side / 2,
            side * rng.uniform(0.25, 0.45),
            D.PALETTE[str(colour)],
        )
        panels.append(panel)
    img, boxes = D.compose_panels(panels, labels, size, layout="ref_top")
    evidence = np.zeros((size, size), bool)
    for box in boxes:
        evidence |= D.box_mask(img.size, box)
    return img, evidence, str(ref), target


def _rings(draw, points, offset=(0, 0)) -> None:
    for i, (x, y) in enumerate(points):
        D.draw_ring(draw, x + offset[0], y + offset[1], D.PALETTE[MARKER_WORDS[i]])


def _subskill(kind: str, rng, size: int):
    """One word-answer sub-skill question in its task's layout: (image, question, choices, answer letter, evidence,
    concepts). Scene content uses :data:`SCENE_COLOURS`, options are the marker colours or ``left`` / ``right``."""
    img = Image.new("RGB", (size, size), D.BACKGROUND)
    draw = ImageDraw.Draw(img)
    evidence = np.zeros((size, size), bool)
    if kind == "darker_marker":
        img.paste((128, 128, 128), (0, 0, size, size))
        levels = rng.uniform(0.1, 0.9, 2)
        while abs(levels[0] - levels[1]) < 0.12:
            levels = rng.uniform(0.1, 0.9, 2)
        half = rng.uniform(9, 13)
        horizontal = rng.random() < 0.5  # side by side or stacked, as the task's two surfaces
        spots = []
        for j in range(2):
            along = rng.uniform(half + 2 + j * size / 2, (j + 1) * size / 2 - half - 2)
            across = rng.uniform(half + 2, size - half - 2)
            spots.append((along, across) if horizontal else (across, along))
        for j, ((x, y), lvl) in enumerate(zip(spots, levels)):
            g = int(lvl * 255)
            draw.rectangle((x - half, y - half, x + half, y + half), fill=(g, g, g))
            px, py = x + rng.uniform(-half + 5, half - 5), y + rng.uniform(-half + 5, half - 5)
            D.draw_ring(draw, px, py, D.PALETTE[MARKER_WORDS[j]], outline=(255, 255, 255) if lvl < 0.45 else (0, 0, 0))
            evidence |= D.disc_mask(img.size, px, py, 5)
        target = int(levels[1] < levels[0])
        return (
            img,
            "Which marked point is on the darker surface?",
            list(MARKER_WORDS[:2]),
            LETTERS[target],
            evidence,
            {"darker": MARKER_WORDS[target]},
        )
    if kind == "match_side":
        img, evidence, ref, target = _colour_match(rng, size, ["", "", ""])
        return (
            img,
            "The reference is on top. Which candidate below has the same colour as the reference?",
            ["left", "right"],
            LETTERS[target],
            evidence,
            {"colour": ref},
        )
    if kind == "same_place":
        side = (size - 6) // 2
        panel = Image.new("RGB", (side, side), tuple(int(v) for v in rng.integers(200, 250, 3)))
        pd = ImageDraw.Draw(panel)
        for _ in range(5):
            D.draw_shape(
                pd,
                str(rng.choice(D.SHAPES)),
                *rng.uniform(0, side, 2),
                rng.uniform(0.08, 0.2) * side,
                D.PALETTE[str(rng.choice(SCENE_COLOURS))],
                angle=rng.uniform(0, np.pi),
            )
        pts = [rng.uniform(6, side - 6, 2)]
        while len(pts) < 4:
            p = rng.uniform(6, side - 6, 2)
            if all(np.hypot(*(p - q)) >= 0.2 * side for q in pts):
                pts.append(p)
        target = int(rng.integers(4))
        ref, others = pts[0], pts[1:]
        cands = others[:target] + [ref] + others[target:]
        left, right = panel.copy(), panel.copy()
        D.draw_ring(ImageDraw.Draw(left), *ref, REFERENCE_RING, outline=(255, 255, 255))
        _rings(ImageDraw.Draw(right), cands)
        img, boxes = D.compose_panels([left, right], ["", ""], size)
        for (x0, y0, _, _), group in ((boxes[0], [ref]), (boxes[1], cands)):
            for p in group:
                evidence |= D.disc_mask(img.size, x0 + p[0], y0 + p[1], 6)
        question = (
            "The left panel marks a reference point. Which coloured point in the right panel shows the same place?"
        )
        return img, question, list(MARKER_WORDS), LETTERS[target], evidence, {}
    if kind == "marker_part":
        shape = str(rng.choice(("triangle", "diamond", "star", "cross", "square")))
        r = rng.uniform(0.28, 0.4) * size
        cx, cy = rng.uniform(r + 2, size - r - 2, 2)
        D.draw_shape(draw, shape, cx, cy, r, D.PALETTE[str(rng.choice(SCENE_COLOURS))])
        keypoints = _part_points(shape, cx, cy, r)
        parts = [str(p) for p in rng.choice(list(keypoints), size=4, replace=False)]
        target = int(rng.integers(4))
        _rings(draw, [keypoints[p] for p in parts])
        for p in parts:
            evidence |= D.disc_mask(img.size, *keypoints[p], 6)
        names = {"centre": "centre"}
        part = parts[target]
        return (
            img,
            f"Which coloured point marks the {names.get(part, part)} of the shape?",
            list(MARKER_WORDS),
            LETTERS[target],
            evidence,
            {"part": part},
        )
    # marker_on_shape / box_around: a few shapes in scene colours, options in marker colours
    n = 2 if kind == "box_around" else 4
    r = rng.uniform(0.1, 0.13) * size
    centres = D.place_disjoint(rng, n, img.size, r * (1.5 if n == 2 else 1.0), margin=3)
    shapes = [str(s) for s in rng.choice(D.SHAPES, size=n, replace=False)]
    colours = [str(c) for c in rng.choice(SCENE_COLOURS, size=n)]
    for (x, y), shape, colour in zip(centres, shapes, colours):
        D.draw_shape(draw, shape, x, y, r, D.PALETTE[colour])
    target = int(rng.integers(n))
    if kind == "box_around":
        for i, (x, y) in enumerate(centres):
            pad = r * rng.uniform(1.1, 1.4)
            draw.rectangle((x - pad, y - pad, x + pad, y + pad), outline=D.PALETTE[MARKER_WORDS[i]], width=2)
            evidence |= D.box_mask(img.size, (x - pad, y - pad, x + pad, y + pad))
        question = f"Which box contains the {colours[target]} {shapes[target]}?"
    else:
        _rings(draw, [(x + rng.uniform(-r / 3, r / 3), y + rng.uniform(-r / 3, r / 3)) for x, y in centres])
        for x, y in centres:
            evidence |= D.disc_mask(img.size, x, y, r)
        question = f"Which coloured point is on the {colours[target]} {shapes[target]}?"
    return img, question, list(MARKER_WORDS[:n]), LETTERS[target], evidence, {"shape": shapes[target]}


class PerceptionDataset:
    """Round-robin over the perception kinds (item i is kind ``i % len(kinds)``, index ``i // len(kinds)``)."""

    def __init__(self, split: str = "train", n: int = 100_000, seed: int = 0, size: int = 96, kinds=CURRICULUM):
        self.split, self.n, self.seed, self.size, self.kinds = split, n, seed, size, tuple(kinds)
        self.tasks = [f"perception_{k}" for k in self.kinds]

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return make_perception_sample(
            self.kinds[i % len(self.kinds)], self.split, self.seed, i // len(self.kinds), self.size
        )

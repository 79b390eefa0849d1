"""Nine procedural BLINK-style tasks with ground-truth evidence masks and concept labels.

A sample is a pure function of ``(task, split, seed, index)`` (plus difficulty knobs and the answer format):
the RNG is ``np.random.default_rng(SeedSequence([task_code, split_code, seed, index]))``,
so train / val / test are disjoint seed streams.  The correct option is balanced exactly:
within every block of ``n_choices`` consecutive indices each option is correct once.

Two answer formats, the same question and the same reasoning:

* ``word`` (the demo suite's default): options are told apart by what a small model sees without reading —
  marker or frame colour (``red`` / ``blue`` / ``green`` / ``yellow`` rings and boxes) or position (``left`` /
  ``right``, ``top`` / ``bottom``) — and the answer is that one word (counting: the number). No drawn letters;
  scene content avoids the marker hues.
* ``letter`` (BLINK's): options are drawn letters and the answer is the option's letter. For real VLMs and the
  BLINK loader.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace

import numpy as np
from PIL import Image, ImageDraw

from livr_viz.core.config import ANSWER_FORMATS, LETTERS, check_one_of  # noqa: F401 - part of the suite's API
from livr_viz.core.errors import LIVRError
from livr_viz.data import draw as D

SPLITS = {"train": 0, "val": 1, "test": 2}
DEFAULT_SIZE = 96
DEFAULT_ANSWER_FORMAT = "word"
MARKER_WORDS = ("red", "blue", "green", "yellow")  # word-format option markers, in option order
SCENE_COLOURS = tuple(c for c in D.COLOR_NAMES if c not in MARKER_WORDS)  # what scenes use beside markers
REFERENCE_RING = (0, 0, 0)  # the neutral reference marker of the correspondence tasks (word format)


class MultipleChoice:
    """What a multiple-choice item (a :class:`Sample`, a loaded record) derives from its ``question``,
    ``choices``, ``answer`` (the correct option's letter) and ``answer_format``."""

    question: str
    choices: list[str]
    answer: str
    answer_format: str

    @property
    def n_choices(self) -> int:
        return len(self.choices)

    @property
    def prompt(self) -> str:
        return format_prompt(self.question, self.choices, self.answer_format)

    @property
    def target(self) -> str:
        """The text the model is trained to produce: the letter, or the option word for ``word`` format."""
        return self.answer if self.answer_format == "letter" else self.choices[LETTERS.index(self.answer)]

    @property
    def options(self) -> list[str]:
        """What is scored at evaluation: the letters, or the option words."""
        return self.letters if self.answer_format == "letter" else list(self.choices)

    @property
    def letters(self) -> list[str]:
        return list(LETTERS[: self.n_choices])


@dataclass
class Sample(MultipleChoice):
    """One multiple-choice question with its truth."""

    id: str
    task: str
    image: Image.Image  # RGB, size x size
    question: str  # the question without choices
    choices: list[str]  # choice texts, in letter order
    answer: str  # correct letter
    evidence: np.ndarray  # bool [H, W]: the pixels needed to answer
    concepts: dict  # flat dict of ground-truth concepts (JSON-serialisable scalars)
    panels: dict[str, Image.Image] = field(default_factory=dict)  # per-panel images of multi-panel tasks
    answer_format: str = "letter"  # letter: answer "(A)…" choices by letter | word: answer with the option itself


def format_prompt(question: str, choices: list[str], answer_format: str = "letter") -> str:
    """BLINK-style prompt: question, ``Choices: (A) … (B) …``, instruction (or word options for ``word``)."""
    if answer_format == "word":
        return f"{question}\nOptions: {', '.join(choices)}.\nAnswer with one word."
    opts = " ".join(f"({LETTERS[i]}) {c}" for i, c in enumerate(choices))
    return f"{question}\nChoices: {opts}\nAnswer with the option's letter."


# ----------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class TaskSpec:
    name: str
    n_choices: int
    generate: Callable  # (rng, answer_index, size, knobs, answer_format) -> Sample fields
    knobs: type  # dataclass of difficulty settings with defaults
    description: str

    @property
    def code(self) -> int:
        return int(hashlib.sha256(self.name.encode()).hexdigest()[:8], 16)


TASKS: dict[str, TaskSpec] = {}


def register(name: str, n_choices: int, knobs: type, description: str | None = None):
    """Add the generator it decorates to :data:`TASKS`; ``description`` (one line) defaults to its docstring."""

    def wrap(fn):
        if not (description or fn.__doc__):
            raise ValueError(f"task {name!r} needs a description or a docstring")
        TASKS[name] = TaskSpec(name, n_choices, fn, knobs, description or fn.__doc__)
        return fn

    return wrap


def task_names() -> list[str]:
    return list(TASKS)


def resolve_tasks(spec: str | list[str]) -> list[str]:
    """``"all"``, ``"a,b"`` or a list → validated task names."""
    names = task_names() if spec in ("all", ["all"]) else (spec.split(",") if isinstance(spec, str) else list(spec))
    names = [n.strip() for n in names if n.strip()]
    unknown = [n for n in names if n not in TASKS]
    if unknown or not names:
        raise LIVRError(f"unknown task(s) {unknown or spec!r}; known: {', '.join(TASKS)} or 'all'")
    return names


def sample_rng(task: str, split: str, seed: int, index: int, salt: int = 0) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([TASKS[task].code, SPLITS[split], seed, index, salt]))


def answer_index(task: str, split: str, seed: int, index: int) -> int:
    """Exactly balanced correct position: a fresh permutation of the letters per block of n indices."""
    n = TASKS[task].n_choices
    perm = sample_rng(task, split, seed, index // n, salt=0xB10C).permutation(n)
    return int(perm[index % n])


def make_sample(
    task: str,
    split: str = "train",
    seed: int = 0,
    index: int = 0,
    size: int = DEFAULT_SIZE,
    answer_format: str = DEFAULT_ANSWER_FORMAT,
    **knobs,
) -> Sample:
    """The sample ``(task, split, seed, index)`` in ``answer_format`` (``word`` | ``letter``); ``knobs`` override
    the task's difficulty defaults."""
    if task not in TASKS:
        resolve_tasks([task])
    check_one_of("split", split, SPLITS)
    if size < 64:
        raise LIVRError(f"size must be >= 64 pixels; got {size}")
    check_one_of("answer_format", answer_format, ANSWER_FORMATS)
    spec = TASKS[task]
    known = {f.name for f in fields(spec.knobs)}
    bad = set(knobs) - known
    if bad:
        raise LIVRError(f"unknown knob(s) {sorted(bad)} for task {task}; known: {sorted(known)}")
    settings = replace(spec.knobs(), **knobs)
    rng = sample_rng(task, split, seed, index)
    target = answer_index(task, split, seed, index)
    out = spec.generate(rng, target, size, settings, answer_format)
    suffix = "" if answer_format == "letter" else f"-{answer_format}"
    sample = Sample(
        id=f"{task}-{split}-{seed}-{index}{suffix}",
        task=task,
        answer=LETTERS[target],
        answer_format=answer_format,
        **out,
    )
    assert sample.evidence.any(), f"{sample.id}: empty evidence"
    sample.concepts = {"task": task, **sample.concepts}
    return sample


def _scene_mask(size: tuple[int, int]) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    m = Image.new("L", size, 0)
    return m, ImageDraw.Draw(m)


def _quadrant(x: float, y: float, w: int, h: int) -> str:
    return ("upper" if y < h / 2 else "lower") + "-" + ("left" if x < w / 2 else "right")


def _shuffle_into(rng, correct, others: list, target: int) -> list:
    """Place ``correct`` at position ``target`` and the shuffled ``others`` around it."""
    others = list(others)
    rng.shuffle(others)
    return others[:target] + [correct] + others[target:]


# ----------------------------------------------------------------------------- counting
@dataclass
class CountingKnobs:
    min_count: int = 1  # fewest target objects
    max_count: int = 6  # most target objects
    max_distractors: int = 6  # distractors share the colour or the shape of the target
    radius: float = 0.055  # object circumradius, fraction of the image side


@register("counting", 4, CountingKnobs, "How many objects of a colour and shape are there, among distractors?")
def _counting(rng, target, size, k: CountingKnobs, fmt):
    shape, colour = rng.choice(D.SHAPES), rng.choice(D.COLOR_NAMES)
    count = int(rng.integers(k.min_count, k.max_count + 1))
    n_dis = int(rng.integers(0, k.max_distractors + 1))
    other_shapes = [s for s in D.SHAPES if abs(D.FILL_RATIO[s] - D.FILL_RATIO[shape]) > 0.15]
    other_colours = [c for c in D.COLOR_NAMES if c != colour]
    r = k.radius * size
    img = Image.new("RGB", (size, size), D.BACKGROUND)
    draw = ImageDraw.Draw(img)
    mask, mdraw = _scene_mask(img.size)
    centres = D.place_disjoint(rng, count + n_dis, img.size, r, margin=3)
    quadrants = {q: 0 for q in ("upper-left", "upper-right", "lower-left", "lower-right")}
    for i, (x, y) in enumerate(centres):
        if i < count:
            s, c = shape, colour
            quadrants[_quadrant(x, y, size, size)] += 1
        elif rng.random() < 0.5:
            s, c = shape, rng.choice(other_colours)
        else:
            s, c = rng.choice(other_shapes), rng.choice(D.COLOR_NAMES)
        angle = 0.0
        D.draw_shape(draw, s, x, y, r, D.PALETTE[c], angle)
        if i < count:
            D.draw_shape(mdraw, s, x, y, r, 255, angle)
    wrong = [n for n in range(max(0, k.min_count - 1), k.max_count + 3) if n != count]
    options = rng.choice(wrong, size=3, replace=False).tolist()
    choices = [str(v) for v in _shuffle_into(rng, count, options, target)]
    concepts = {
        "count": count,
        "target_color": str(colour),
        "target_shape": str(shape),
        "n_distractors": n_dis,
        **{f"count_{q.replace('-', '_')}": v for q, v in quadrants.items()},
    }
    return dict(
        image=img,
        question=f"How many {colour} {D.plural(shape)} are in the image?",
        choices=choices,
        evidence=np.asarray(mask) > 0,
        concepts=concepts,
    )


# ----------------------------------------------------------------------------- object localization
@dataclass
class LocalizationKnobs:
    n_boxes: int = 2  # 2–4 candidate boxes (the paper uses 2)
    min_iou: float = 0.2  # distractor boxes overlap the true box this much …
    max_iou: float = 0.5  # … at most this much
    n_clutter: int = 2  # small unrelated shapes


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@register("object_localization", 2, LocalizationKnobs, "Which drawn box fits the named object best?")
def _localization(rng, target, size, k: LocalizationKnobs, fmt):
    n = k.n_boxes
    if not 2 <= n <= 4:
        raise LIVRError("n_boxes must be 2..4")
    img = Image.new("RGB", (size, size), D.BACKGROUND)
    draw = ImageDraw.Draw(img)
    palette = D.COLOR_NAMES if fmt == "letter" else SCENE_COLOURS
    shape, colour = rng.choice(D.SHAPES), rng.choice(palette)
    r = rng.uniform(0.1, 0.16) * size
    (cx, cy), *clutter = D.place_disjoint(rng, 1 + k.n_clutter, img.size, r, margin=2)
    mask, mdraw = _scene_mask(img.size)
    D.draw_shape(draw, shape, cx, cy, r, D.PALETTE[colour])
    D.draw_shape(mdraw, shape, cx, cy, r, 255)
    for x, y in clutter:
        D.draw_shape(
            draw, rng.choice(D.SHAPES), x, y, r * 0.45, D.PALETTE[rng.choice([c for c in palette if c != colour])]
        )
    ys, xs = np.nonzero(np.asarray(mask))
    true_box = (float(xs.min() - 1), float(ys.min() - 1), float(xs.max() + 1), float(ys.max() + 1))
    bw, bh = true_box[2] - true_box[0], true_box[3] - true_box[1]
    boxes = []
    for _ in range(n - 1):
        for _ in range(500):
            s = rng.uniform(0.6, 1.6)
            w2, h2 = bw * s * rng.uniform(0.8, 1.25), bh * s * rng.uniform(0.8, 1.25)
            x0 = true_box[0] + rng.uniform(-0.7, 0.7) * bw
            y0 = true_box[1] + rng.uniform(-0.7, 0.7) * bh
            box = (x0, y0, x0 + w2, y0 + h2)
            if (
                box[0] >= 1
                and box[1] >= 1
                and box[2] <= size - 2
                and box[3] <= size - 2
                and k.min_iou <= iou(box, true_box) <= k.max_iou
                and all(iou(box, b) < 0.8 for b in boxes)
            ):
                boxes.append(box)
                break
        else:
            raise RuntimeError("could not place a distractor box")
    ordered = _shuffle_into(rng, true_box, boxes, target)
    box_colours = [(0, 0, 0), (90, 90, 90), (0, 0, 140), (120, 0, 0)]
    evidence = np.asarray(mask) > 0
    for i, box in enumerate(ordered):
        if fmt == "letter":
            draw.rectangle(box, outline=box_colours[i], width=1)
            draw.text((max(0, box[0] + 1), max(0, box[1] + 1)), LETTERS[i], font=D.font(8), fill=box_colours[i])
        else:  # the box's colour names it; its evidence is exactly the drawn outline
            draw.rectangle(box, outline=D.PALETTE[MARKER_WORDS[i]], width=2)
            drawn, ddraw = _scene_mask(img.size)
            ddraw.rectangle(box, outline=255, width=2)
            evidence |= np.asarray(drawn) > 0
        outline = D.box_mask(img.size, box) & ~D.box_mask(img.size, (box[0] + 2, box[1] + 2, box[2] - 2, box[3] - 2))
        evidence |= outline
    concepts = {
        "object_shape": str(shape),
        "object_color": str(colour),
        "object_quadrant": _quadrant(cx, cy, size, size),
        "object_size": float(2 * r / size),
        "boxes": [[round(v, 2) for v in b] for b in ordered],
        "box_iou": [round(iou(b, true_box), 3) for b in ordered],
    }
    choices = [f"box {LETTERS[i]}" for i in range(n)] if fmt == "letter" else list(MARKER_WORDS[:n])
    return dict(
        image=img,
        question=f"Which box fits the {colour} {shape} best?",
        choices=choices,
        evidence=evidence,
        concepts=concepts,
    )


# ----------------------------------------------------------------------------- relative reflectance
@dataclass
class ReflectanceKnobs:
    min_delta: float = 0.12  # smallest luminance difference (0..1) for a "darker" answer
    same_tolerance: float = 0.0  # luminance difference of "about the same" pairs
    n_rects: int = 7  # background surfaces


def luminance(rgb) -> float:
    r, g, b = (v / 255.0 for v in rgb)
    return 0.299 * r + 0.587 * g + 0.114 * b


@register("relative_reflectance", 3, ReflectanceKnobs, "Which of two marked points is on the darker surface?")
def _reflectance(rng, target, size, k: ReflectanceKnobs, fmt):
    img = Image.new("RGB", (size, size), (128, 128, 128))
    draw = ImageDraw.Draw(img)
    tints = [(1.0, 1.0, 1.0), (1.0, 0.95, 0.85), (0.85, 0.95, 1.0), (0.95, 1.0, 0.9)]

    def grey(level):
        t = tints[int(rng.integers(len(tints)))]
        rgb = [int(np.clip(level * 255 * c, 0, 255)) for c in t]
        lum = luminance(rgb)  # rescale so luminance equals level exactly-ish
        scale = level / lum if lum > 0 else 1.0
        return tuple(int(np.clip(round(v * scale), 0, 255)) for v in rgb)

    for _ in range(k.n_rects):
        x0, y0 = rng.uniform(0, size * 0.8, 2)
        w, h = rng.uniform(size * 0.2, size * 0.6, 2)
        draw.rectangle((x0, y0, x0 + w, y0 + h), fill=grey(rng.uniform(0.15, 0.9)))
    # the two surfaces that carry the marked points, drawn last, side by side or stacked
    half = size // 2
    boxes = []
    horizontal = rng.random() < 0.5
    for j in range(2):
        w, h = rng.uniform(0.25, 0.4) * size, rng.uniform(0.25, 0.4) * size
        if horizontal:
            x0 = rng.uniform(2 + j * half, (j + 1) * half - w - 2)
            y0 = rng.uniform(2, size - h - 2)
        else:
            x0 = rng.uniform(2, size - w - 2)
            y0 = rng.uniform(2 + j * half, (j + 1) * half - h - 2)
        boxes.append((x0, y0, x0 + w, y0 + h))
    kind = ["A", "B", "same"][target]
    base = rng.uniform(0.25, 0.75)
    if kind == "same":
        la, lb = base, base + rng.uniform(-k.same_tolerance, k.same_tolerance)
    else:
        delta = rng.uniform(k.min_delta, 0.45)
        dark, light = max(0.08, base - delta / 2), min(0.95, base + delta / 2)
        la, lb = (dark, light) if kind == "A" else (light, dark)
    colours = [grey(la), grey(lb)]
    if kind == "same":
        colours[1] = colours[0]  # identical surfaces, so pixels agree exactly
    points, evidence = [], np.zeros((size, size), dtype=bool)
    for j, box in enumerate(boxes):
        draw.rectangle(box, fill=colours[j])
        px = rng.uniform(box[0] + 5, box[2] - 5)
        py = rng.uniform(box[1] + 5, box[3] - 5)
        points.append((px, py))
    for j, (px, py) in enumerate(points):
        contrast = (255, 255, 255) if luminance(colours[j]) < 0.45 else (0, 0, 0)
        if fmt == "letter":
            D.draw_marker(draw, px, py, "AB"[j], colour=contrast)
        else:
            D.draw_ring(draw, px, py, D.PALETTE[MARKER_WORDS[j]], outline=contrast)
        evidence |= D.disc_mask(img.size, px, py, 5 if fmt == "letter" else 6)
    lum = [luminance(c) for c in colours]
    concepts = {
        "brightness_a": round(lum[0], 4),
        "brightness_b": round(lum[1], 4),
        "brightness_order": kind,
        "point_a": [round(points[0][0], 1), round(points[0][1], 1)],
        "point_b": [round(points[1][0], 1), round(points[1][1], 1)],
    }
    choices = ["A is darker", "B is darker", "about the same"] if fmt == "letter" else [*MARKER_WORDS[:2], "same"]
    return dict(
        image=img,
        question="Which marked point is on the darker surface?",
        choices=choices,
        evidence=evidence,
        concepts=concepts,
    )


# ----------------------------------------------------------------------------- visual correspondence
@dataclass
class VisualCorrespondenceKnobs:
    n_shapes: int = 7  # shapes in the scene
    max_shift: float = 0.2  # fraction of the panel
    max_rotation: float = 35.0  # degrees
    scale_range: tuple = (0.75, 1.3)
    min_separation: float = 0.2  # candidate points at least this far apart (fraction of the panel)


def _random_scene(rng, side: int, n_shapes: int, background=None, palette=D.COLOR_NAMES) -> Image.Image:
    bg = background or tuple(int(v) for v in rng.integers(200, 250, 3))
    scene = Image.new("RGB", (side, side), bg)
    draw = ImageDraw.Draw(scene)
    for _ in range(n_shapes):
        r = rng.uniform(0.08, 0.2) * side
        x, y = rng.uniform(0, side, 2)
        D.draw_shape(draw, rng.choice(D.SHAPES), x, y, r, D.PALETTE[rng.choice(palette)], angle=rng.uniform(0, math.pi))
    return scene


def _affine(kind: str, rng, side: int, k: VisualCorrespondenceKnobs):
    """Forward 2x3 matrix (panel A coords → panel B coords) and the parameters."""
    c = side / 2
    if kind == "shift":
        tx, ty = rng.uniform(-k.max_shift, k.max_shift, 2) * side
        return np.array([[1, 0, tx], [0, 1, ty]], float), {"shift_x": float(tx / side), "shift_y": float(ty / side)}
    if kind == "rotation":
        deg = float(rng.uniform(12, k.max_rotation) * rng.choice([-1, 1]))
        a = math.radians(deg)
        m = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        return np.hstack([m, (np.array([c, c]) - m @ [c, c])[:, None]]), {"rotation_deg": deg}
    s = float(rng.uniform(*k.scale_range))
    if abs(s - 1) < 0.1:
        s = 1.2
    m = np.eye(2) * s
    return np.hstack([m, (np.array([c, c]) - m @ [c, c])[:, None]]), {"scale": s}


def _warp(scene: Image.Image, forward: np.ndarray, fill) -> Image.Image:
    full = np.vstack([forward, [0, 0, 1]])
    inv = np.linalg.inv(full)
    return scene.transform(
        scene.size, Image.AFFINE, data=tuple(inv[:2].ravel()), resample=Image.NEAREST, fillcolor=fill
    )


def _far_points(rng, n, side, avoid, min_dist, margin=5, tries=500):
    pts = []
    for _ in range(tries):
        if len(pts) == n:
            return pts
        p = rng.uniform(margin, side - margin, 2)
        if all(np.hypot(*(p - q)) >= min_dist for q in list(avoid) + pts):
            pts.append(p)
    raise RuntimeError("could not place candidate points")


def _panel_side(size: int, n_panels: int = 2, gap: int = 2) -> int:
    return (size - gap * (n_panels + 1)) // n_panels


def _mark_points(fmt: str, reference: Image.Image, ref_point, candidates: Image.Image, points) -> None:
    """Mark the reference point and the candidate points: rings with drawn letters (letter format) or a neutral
    black ring and rings in the option colours (word format)."""
    if fmt == "letter":
        D.draw_marker(ImageDraw.Draw(reference), ref_point[0], ref_point[1], "")
        db = ImageDraw.Draw(candidates)
        for i, p in enumerate(points):
            D.draw_marker(db, p[0], p[1], LETTERS[i])
        return
    D.draw_ring(ImageDraw.Draw(reference), ref_point[0], ref_point[1], REFERENCE_RING, outline=(255, 255, 255))
    db = ImageDraw.Draw(candidates)
    for i, p in enumerate(points):
        D.draw_ring(db, p[0], p[1], D.PALETTE[MARKER_WORDS[i]])


def _point_choices(fmt: str, n: int = 4) -> list[str]:
    return [f"point {LETTERS[i]}" for i in range(n)] if fmt == "letter" else list(MARKER_WORDS[:n])


def _panel_labels(fmt: str, labels: list[str]) -> list[str]:
    """Drawn panel titles: only in the letter format (the word format draws no text)."""
    return labels if fmt == "letter" else [""] * len(labels)


def _point_question(fmt: str, size: int, reference, candidates, ref_point, points, question: str, concepts) -> dict:
    """What the three correspondence tasks share: the reference point and the candidates marked on their panels, the
    panels side by side, and the evidence as discs around every marked point. ``question`` has a ``{which}`` slot
    for how the candidates are told apart (labelled or coloured)."""
    _mark_points(fmt, reference, ref_point, candidates, points)
    canvas, boxes = D.compose_panels([reference, candidates], _panel_labels(fmt, ["REF", "Cands"]), size)
    evidence = np.zeros((size, size), bool)
    for (x0, y0, _, _), pts in ((boxes[0], [ref_point]), (boxes[1], points)):
        for p in pts:
            evidence |= D.disc_mask((size, size), x0 + p[0], y0 + p[1], 6)
    return dict(
        image=canvas,
        question=question.format(which="labelled" if fmt == "letter" else "coloured"),
        choices=_point_choices(fmt),
        evidence=evidence,
        concepts=concepts,
        panels={"reference": reference, "candidates": candidates},
    )


@register("visual_correspondence", 4, VisualCorrespondenceKnobs)
def _visual_corr(rng, target, size, k: VisualCorrespondenceKnobs, fmt):
    """A reference point in the left panel; which labelled point in the right panel is the same physical point?"""
    side = _panel_side(size)
    bg = tuple(int(v) for v in rng.integers(200, 250, 3))
    scene = _random_scene(rng, side, k.n_shapes, bg, D.COLOR_NAMES if fmt == "letter" else SCENE_COLOURS)
    kind = str(rng.choice(["shift", "rotation", "scale"]))
    forward, params = _affine(kind, rng, side, k)
    warped = _warp(scene, forward, bg)
    margin = 6
    for _ in range(200):  # reference point whose image stays well inside panel B
        ref = rng.uniform(margin, side - margin, 2)
        mapped = forward @ np.append(ref, 1.0)
        if np.all(mapped >= margin) and np.all(mapped <= side - margin):
            break
    others = _far_points(rng, 3, side, [mapped], k.min_separation * side, margin)
    points = _shuffle_into(rng, mapped, others, target)
    concepts = {
        "transform": kind,
        **params,
        "ref_quadrant": _quadrant(ref[0], ref[1], side, side),
        "answer_quadrant": _quadrant(mapped[0], mapped[1], side, side),
    }
    question = (
        "The left panel marks a reference point. Which {which} point in the right panel shows the same physical point?"
    )
    return _point_question(fmt, size, scene.copy(), warped.copy(), ref, points, question, concepts)


# ----------------------------------------------------------------------------- semantic correspondence
PART_SHAPES = ("triangle", "diamond", "star", "cross", "square", "house")
PARTS = ("top", "bottom", "left", "right", "centre")


def _part_points(shape: str, cx: float, cy: float, r: float) -> dict[str, tuple[float, float]]:
    """Named keypoints of a shape: its top / bottom / left / right extreme and its centre."""
    poly = _house(cx, cy, r) if shape == "house" else D.shape_polygon(shape, cx, cy, r)
    xs, ys = np.array([p[0] for p in poly]), np.array([p[1] for p in poly])
    inset = 0.18 * r  # keypoints sit just inside the outline so they are on the shape

    def toward_centre(x, y):
        v = np.array([cx - x, cy - y])
        n = np.hypot(*v) or 1.0
        return (float(x + v[0] / n * inset), float(y + v[1] / n * inset))

    def extreme(values, pick):
        i = int(pick(values))
        tie = np.isclose(values, values[i])
        return toward_centre(float(xs[tie].mean()), float(ys[tie].mean()))

    return {
        "top": extreme(ys, np.argmin),
        "bottom": extreme(ys, np.argmax),
        "left": extreme(xs, np.argmin),
        "right": extreme(xs, np.argmax),
        "centre": (float(cx), float(cy)),
    }


def _house(cx, cy, r):
    return [
        (cx, cy - r),
        (cx + 0.8 * r, cy - 0.2 * r),
        (cx + 0.8 * r, cy + 0.9 * r),
        (cx - 0.8 * r, cy + 0.9 * r),
        (cx - 0.8 * r, cy - 0.2 * r),
    ]


def _draw_part_shape(draw, shape, cx, cy, r, colour):
    if shape == "house":
        draw.polygon(_house(cx, cy, r), fill=colour)
    else:
        D.draw_shape(draw, shape, cx, cy, r, colour)


@dataclass
class SemanticCorrespondenceKnobs:
    min_radius: float = 0.3  # shape circumradius range, fraction of the panel
    max_radius: float = 0.42


@register("semantic_correspondence", 4, SemanticCorrespondenceKnobs)
def _semantic_corr(rng, target, size, k: SemanticCorrespondenceKnobs, fmt):
    """The same part (top, bottom, left, right, centre) across two different shapes."""
    side = _panel_side(size)
    shape_a, shape_b = rng.choice(PART_SHAPES, size=2, replace=False)
    panels, keypoints = [], []
    for shape in (shape_a, shape_b):
        panel = Image.new("RGB", (side, side), D.BACKGROUND)
        r = rng.uniform(k.min_radius, k.max_radius) * side
        cx = rng.uniform(r + 1, side - r - 1)
        cy = rng.uniform(r + 1, side - r - 1)
        _draw_part_shape(
            ImageDraw.Draw(panel),
            shape,
            cx,
            cy,
            r,
            D.PALETTE[rng.choice(D.COLOR_NAMES if fmt == "letter" else SCENE_COLOURS)],
        )
        panels.append(panel)
        keypoints.append(_part_points(shape, cx, cy, r))
    part = str(rng.choice(PARTS))
    other_parts = [p for p in PARTS if p != part]
    rng.shuffle(other_parts)
    chosen = _shuffle_into(rng, part, other_parts[:3], target)
    concepts = {
        "part": part,
        "shape_reference": str(shape_a),
        "shape_candidates": str(shape_b),
        "candidate_parts": list(chosen),
    }
    question = (
        "The marked point is on one part of the left shape. Which {which} point marks the same part of the right shape?"
    )
    points = [keypoints[1][p] for p in chosen]
    return _point_question(fmt, size, panels[0], panels[1], keypoints[0][part], points, question, concepts)


# ----------------------------------------------------------------------------- functional correspondence
TOOLS = ("hammer", "spoon", "key", "brush", "axe", "pan")
ROLES = ("grip", "working end")


def _draw_tool(draw, mdraw, tool, cx, cy, length, angle, handle_colour, head_colour):
    """Draw a two-part tool along ``angle``; ``mdraw`` gets 1 on the grip and 2 on the working end."""
    ca, sa = math.cos(angle), math.sin(angle)

    def tr(points):
        return [(cx + x * ca - y * sa, cy + x * sa + y * ca) for x, y in points]

    L, w = length, length * 0.09
    handle = tr([(-L / 2, -w), (L * 0.15, -w), (L * 0.15, w), (-L / 2, w)])
    if tool == "key":
        handle = None
    head: list
    if tool == "hammer":
        head = tr([(L * 0.15, -L * 0.22), (L * 0.38, -L * 0.22), (L * 0.38, L * 0.22), (L * 0.15, L * 0.22)])
    elif tool == "spoon":
        head = tr(
            [(L * 0.15 + L * 0.17 * (1 + math.cos(t)), L * 0.14 * math.sin(t)) for t in np.linspace(0, 2 * math.pi, 24)]
        )
    elif tool == "brush":
        head = tr([(L * 0.15, -L * 0.13), (L * 0.45, -L * 0.16), (L * 0.45, L * 0.16), (L * 0.15, L * 0.13)])
    elif tool == "axe":
        head = tr([(L * 0.05, -w), (L * 0.4, -L * 0.3), (L * 0.45, 0), (L * 0.4, L * 0.3), (L * 0.05, w)])
    elif tool == "pan":
        head = tr(
            [(L * 0.15 + L * 0.22 * (1 + math.cos(t)), L * 0.22 * math.sin(t)) for t in np.linspace(0, 2 * math.pi, 28)]
        )
    elif tool == "key":
        head = tr(
            [
                (-L * 0.05, -w),
                (L * 0.45, -w),
                (L * 0.45, w * 2.2),
                (L * 0.35, w * 2.2),
                (L * 0.35, w),
                (L * 0.25, w),
                (L * 0.25, w * 2.2),
                (L * 0.15, w * 2.2),
                (L * 0.15, w),
                (-L * 0.05, w),
            ]
        )
        handle = tr(
            [(-L * 0.05 - L * 0.2 * (1 + math.cos(t)), L * 0.2 * math.sin(t)) for t in np.linspace(0, 2 * math.pi, 24)]
        )
    else:
        raise LIVRError(tool)
    draw.polygon(handle, fill=handle_colour)
    draw.polygon(head, fill=head_colour)
    mdraw.polygon(handle, fill=1)
    mdraw.polygon(head, fill=2)


@dataclass
class FunctionalCorrespondenceKnobs:
    length: float = 0.8  # tool length, fraction of the panel
    max_tilt: float = 180.0  # degrees of random orientation


@register("functional_correspondence", 4, FunctionalCorrespondenceKnobs)
def _functional_corr(rng, target, size, k: FunctionalCorrespondenceKnobs, fmt):
    """The part with the same function (grip or working end) across two different tools."""
    side = _panel_side(size)
    tools = rng.choice(TOOLS, size=2, replace=False)
    role = int(rng.integers(2))  # 0 = grip, 1 = working end
    panels, part_maps = [], []
    for tool in tools:
        panel = Image.new("RGB", (side, side), D.BACKGROUND)
        pmask = Image.new("L", (side, side), 0)
        colours = rng.choice(D.COLOR_NAMES if fmt == "letter" else SCENE_COLOURS, size=2, replace=False)
        angle = math.radians(rng.uniform(-k.max_tilt, k.max_tilt))
        L = k.length * side
        _draw_tool(
            ImageDraw.Draw(panel),
            ImageDraw.Draw(pmask),
            str(tool),
            side / 2,
            side / 2,
            L * 0.85,
            angle,
            D.PALETTE[colours[0]],
            D.PALETTE[colours[1]],
        )
        panels.append(panel)
        part_maps.append(np.asarray(pmask))

    def point_on(part_map, value, avoid, min_dist=7.0):
        ys, xs = np.nonzero(part_map == value)
        order = rng.permutation(len(xs))
        for i in order:
            p = np.array([xs[i], ys[i]], float)
            if all(np.hypot(*(p - q)) >= min_dist for q in avoid):
                return p
        return np.array([xs[order[0]], ys[order[0]]], float)

    ref = point_on(part_maps[0], role + 1, [])
    correct = point_on(part_maps[1], role + 1, [])
    others: list = []
    for j in range(3):  # two on the other part, one on the background or the other part
        value = 2 - role if j < 2 else (0 if rng.random() < 0.5 else 2 - role)
        others.append(point_on(part_maps[1], value, [correct, *others]))
    points = _shuffle_into(rng, correct, others, target)
    concepts = {"role": ROLES[role], "tool_reference": str(tools[0]), "tool_candidates": str(tools[1])}
    question = (
        "The marked point is on one part of the left tool. Which {which} point is on the part of the right tool that "
        "has the same function?"
    )
    return _point_question(fmt, size, panels[0], panels[1], ref, points, question, concepts)


# ----------------------------------------------------------------------------- jigsaw
@dataclass
class JigsawKnobs:
    distractor: str = "other_scene"  # other_scene (easier) | same_scene (a patch from elsewhere in the image)
    n_shapes: int = 5


def _jigsaw_scene(rng, side):
    """Smooth gradient + long stripes + large shapes: content continues across the missing quadrant."""
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / side
    c0, c1 = rng.integers(60, 230, 3), rng.integers(60, 230, 3)
    a = rng.uniform(0, 2 * math.pi)
    t = (xx * math.cos(a) + yy * math.sin(a) + 1.5) / 3
    arr = (c0[None, None] * (1 - t[..., None]) + c1[None, None] * t[..., None]).astype(np.uint8)
    scene = Image.fromarray(arr)
    draw = ImageDraw.Draw(scene)
    for _ in range(2):
        y = rng.uniform(0, side)
        draw.line([(0, y), (side, y + rng.uniform(-side, side))], fill=D.PALETTE[rng.choice(D.COLOR_NAMES)], width=3)
    for _ in range(3):
        D.draw_shape(
            draw,
            rng.choice(D.SHAPES),
            *rng.uniform(side * 0.3, side, 2),
            rng.uniform(0.15, 0.3) * side,
            D.PALETTE[rng.choice(D.COLOR_NAMES)],
            angle=rng.uniform(0, math.pi),
        )
    return scene


@register("jigsaw", 2, JigsawKnobs, "Which candidate patch fills the blacked-out bottom-right quadrant?")
def _jigsaw(rng, target, size, k: JigsawKnobs, fmt):
    side = int(size * 0.66) // 2 * 2
    half = side // 2
    scene = _jigsaw_scene(rng, side)
    true_patch = scene.crop((half, half, side, side))
    if k.distractor == "same_scene":
        x0, y0 = int(rng.integers(0, half // 2)), int(rng.integers(0, half // 2))
        wrong = scene.crop((x0, y0, x0 + half, y0 + half))
    else:
        wrong = _jigsaw_scene(rng, side).crop((half, half, side, side))
    holed = scene.copy()
    ImageDraw.Draw(holed).rectangle((half, half, side - 1, side - 1), fill=(0, 0, 0))
    cands = _shuffle_into(rng, true_patch, [wrong], target)
    canvas = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    top = (size - side) // 2
    canvas.paste(holed, (1, top))
    cx = side + 4
    cw = size - cx - 2
    cand_boxes = []
    for i, patch in enumerate(cands):
        y = 10 + i * (cw + 12)
        canvas.paste(patch.resize((cw, cw), Image.NEAREST), (cx, y))
        if fmt == "letter":
            draw.text((cx, y - 10), LETTERS[i], font=D.font(9), fill=(0, 0, 0))
        cand_boxes.append((cx, y, cx + cw - 1, y + cw - 1))
    evidence = D.box_mask((size, size), (1 + half - 6, top + half - 6, 1 + side + 1, top + side + 1))
    evidence &= ~D.box_mask((size, size), (1 + half + 1, top + half + 1, 1 + side - 2, top + side - 2))
    for box in cand_boxes:
        evidence |= D.box_mask((size, size), box)
    choices = [f"patch {LETTERS[i]}" for i in range(2)] if fmt == "letter" else ["top", "bottom"]
    return dict(
        image=canvas,
        question="The bottom-right quadrant of the image on the left is missing. Which patch fills it?",
        choices=choices,
        evidence=evidence,
        concepts={"distractor": k.distractor},
        panels={"image": holed, "patch_A": cands[0], "patch_B": cands[1]},
    )


# ----------------------------------------------------------------------------- reference + two candidates
def _side_choices(fmt: str) -> list[str]:
    return ["candidate A", "candidate B"] if fmt == "letter" else ["left", "right"]


def _reference_pair_question(rng, target: int, fmt: str, size: int, ref, same, diff, relation: str, concepts) -> dict:
    """What visual similarity and art style share: the reference panel above two candidates, ``same`` placed at
    ``target`` and ``diff`` at the other; the evidence is all three panels (the comparison needs each)."""
    panels = [ref, *_shuffle_into(rng, same, [diff], target)]
    canvas, boxes = D.compose_panels(panels, _panel_labels(fmt, ["REF", "A", "B"]), size, layout="ref_top")
    evidence = np.zeros((size, size), bool)
    for box in boxes:
        evidence |= D.box_mask((size, size), box)
    return dict(
        image=canvas,
        question=_candidates_question(fmt, relation),
        choices=_side_choices(fmt),
        evidence=evidence,
        concepts=concepts,
        panels={"reference": panels[0], "A": panels[1], "B": panels[2]},
    )


def _candidates_question(fmt: str, relation: str) -> str:
    """The question of the reference-above-two-candidates layout (visual similarity, art style)."""
    if fmt == "letter":
        return f"Which candidate {relation} the reference?"
    return f"The reference is on top. Which candidate below {relation} the reference?"


# ----------------------------------------------------------------------------- visual similarity
@dataclass
class SimilarityKnobs:
    differ_in: str = "any"  # which attribute the distractor changes: kind | frequency | angle | any


@register("visual_similarity", 2, SimilarityKnobs, "Which candidate shares the reference's texture?")
def _similarity(rng, target, size, k: SimilarityKnobs, fmt):
    side = (size - 24) // 2
    kind = str(rng.choice(D.TEXTURES))
    freq = float(rng.uniform(2.5, 5))
    angle = float(rng.uniform(0, math.pi))
    colours = [D.PALETTE[c] for c in rng.choice(D.COLOR_NAMES, size=2, replace=False)]
    attr = str(rng.choice(["kind", "frequency", "angle"])) if k.differ_in == "any" else k.differ_in
    ref = D.texture(rng, side, kind, freq, angle, colours, phase=float(rng.uniform()))
    same = D.texture(rng, side, kind, freq, angle, colours, phase=float(rng.uniform()))
    if attr == "kind":
        d_kind = str(rng.choice([t for t in D.TEXTURES if t != kind]))
        diff = D.texture(rng, side, d_kind, freq, angle, colours, phase=float(rng.uniform()))
    elif attr == "frequency":
        diff = D.texture(
            rng, side, kind, freq * float(rng.choice([0.45, 2.1])), angle, colours, phase=float(rng.uniform())
        )
    else:
        diff = D.texture(
            rng,
            side,
            kind,
            freq,
            angle + math.pi / 2 * float(rng.choice([-1, 1])) * 0.6 + 0.3,
            colours,
            phase=float(rng.uniform()),
        )
    concepts = {
        "texture": kind,
        "frequency": round(freq, 3),
        "angle_deg": round(math.degrees(angle), 1),
        "distractor_differs_in": attr,
    }
    ref, same, diff = (Image.fromarray(a) for a in (ref, same, diff))
    return _reference_pair_question(rng, target, fmt, size, ref, same, diff, "has the same texture as", concepts)


# ----------------------------------------------------------------------------- art style
PALETTES = {
    "warm": [(200, 60, 40), (240, 150, 40), (250, 210, 90), (160, 40, 60)],
    "cool": [(40, 80, 200), (40, 160, 190), (90, 60, 170), (60, 170, 120)],
    "pastel": [(250, 190, 200), (190, 220, 250), (200, 240, 200), (250, 240, 180)],
    "mono": [(30, 30, 30), (90, 90, 90), (150, 150, 150), (210, 210, 210)],
}
RENDERINGS = ("filled", "outline", "dithered")
STYLES = [(p, r, w) for p in PALETTES for r in RENDERINGS for w in (1, 3)]  # 24 styles


def _render_style(rng, side, style, n_shapes=4):
    palette, rendering, width = style
    colours = PALETTES[palette]
    bg = (250, 250, 245) if palette != "mono" else (235, 235, 225)
    img = Image.new("RGB", (side, side), bg)
    draw = ImageDraw.Draw(img)
    for _ in range(n_shapes):
        c = colours[int(rng.integers(len(colours)))]
        x, y = rng.uniform(side * 0.15, side * 0.85, 2)
        r = rng.uniform(0.15, 0.3) * side
        shape = rng.choice(D.SHAPES)
        if rendering == "outline":
            draw.polygon(D.shape_polygon(shape, x, y, r, rng.uniform(0, math.pi)), outline=c, width=width)
        else:
            draw.polygon(
                D.shape_polygon(shape, x, y, r, rng.uniform(0, math.pi)),
                fill=c,
                outline=(20, 20, 20),
                width=width if width > 1 else 0,
            )
    for _ in range(3):  # strokes
        pts = [tuple(rng.uniform(0, side, 2)) for _ in range(3)]
        draw.line(pts, fill=colours[int(rng.integers(len(colours)))], width=width)
    if rendering == "dithered":
        arr = np.asarray(img).copy()
        yy, xx = np.mgrid[0:side, 0:side]
        arr[((xx + yy) % 2 == 0) & (arr.sum(-1) < sum(bg) - 30)] = bg
        img = Image.fromarray(arr)
    return img


@dataclass
class ArtStyleKnobs:
    min_differences: int = 1  # the distractor's style differs from the reference in at least this many attributes


@register("art_style", 2, ArtStyleKnobs, "Which candidate was drawn in the reference's procedural style?")
def _art_style(rng, target, size, k: ArtStyleKnobs, fmt):
    side = (size - 24) // 2
    sid = int(rng.integers(len(STYLES)))
    style = STYLES[sid]
    pool = [i for i, s in enumerate(STYLES) if sum(a != b for a, b in zip(s, style)) >= k.min_differences]
    other = int(rng.choice(pool))
    ref = _render_style(rng, side, style)
    same = _render_style(rng, side, style)
    diff = _render_style(rng, side, STYLES[other])
    concepts = {
        "style_id": sid,
        "palette": style[0],
        "rendering": style[1],
        "stroke_width": style[2],
        "distractor_style_id": other,
    }
    return _reference_pair_question(rng, target, fmt, size, ref, same, diff, "was drawn in the same style as", concepts)

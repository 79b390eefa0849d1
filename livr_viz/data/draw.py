"""Drawing helpers shared by every task generator: shapes, palettes, textures, panels, markers.

All drawing is aliasing-free (no anti-aliasing in PIL's ``ImageDraw`` polygons), so
colours in the pixels are exactly the palette colours — tests count objects by colour.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from livr_viz.core.errors import LIVRError

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 200, 30),
    "purple": (140, 60, 180),
    "orange": (245, 130, 20),
    "cyan": (30, 190, 200),
    "pink": (240, 120, 180),
}
COLOR_NAMES = tuple(PALETTE)
SHAPES = ("circle", "square", "triangle", "diamond", "star", "cross")


def plural(noun: str) -> str:
    """English plural of a shape name: "crosses", "circles"."""
    return noun + "es" if noun.endswith(("s", "x", "z", "ch", "sh")) else noun + "s"


# bounding-box fill ratio of each shape (used to tell shapes apart from pixels)
FILL_RATIO = {"circle": math.pi / 4, "square": 1.0, "triangle": 0.5, "diamond": 0.5, "star": 0.38, "cross": 5 / 9}
BACKGROUND = (245, 245, 240)
MARKER = (0, 0, 0)
LETTER_COLOURS = ((0, 0, 0), (255, 255, 255), (255, 0, 0), *PALETTE.values())  # drawn letters across the tasks


@lru_cache(maxsize=8)
def font(size: int = 9) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def shape_polygon(shape: str, cx: float, cy: float, r: float, angle: float = 0.0) -> list[tuple[float, float]]:
    """Vertices of ``shape`` centred at (cx, cy) with circumradius ``r`` (circle: 32-gon)."""
    if shape == "circle":
        pts = [(math.cos(t), math.sin(t)) for t in np.linspace(0, 2 * math.pi, 32, endpoint=False)]
    elif shape == "square":
        pts = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
        pts = [(x * 0.75, y * 0.75) for x, y in pts]
    elif shape == "triangle":
        pts = [(0, -1), (0.87, 0.5), (-0.87, 0.5)]
    elif shape == "diamond":
        pts = [(0, -1), (0.75, 0), (0, 1), (-0.75, 0)]
    elif shape == "star":
        pts = []
        for i in range(10):
            rad = 1.0 if i % 2 == 0 else 0.42
            t = -math.pi / 2 + i * math.pi / 5
            pts.append((rad * math.cos(t), rad * math.sin(t)))
    elif shape == "cross":
        a, b = 0.25, 0.75
        pts = [
            (-a, -b),
            (a, -b),
            (a, -a),
            (b, -a),
            (b, a),
            (a, a),
            (a, b),
            (-a, b),
            (-a, a),
            (-b, a),
            (-b, -a),
            (-a, -a),
        ]
    else:
        raise LIVRError(f"unknown shape {shape!r}; known: {SHAPES}")
    ca, sa = math.cos(angle), math.sin(angle)
    return [(cx + r * (x * ca - y * sa), cy + r * (x * sa + y * ca)) for x, y in pts]


def draw_shape(
    draw: ImageDraw.ImageDraw,
    shape: str,
    cx: float,
    cy: float,
    r: float,
    fill,
    angle: float = 0.0,
    outline=None,
    width: int = 1,
) -> None:
    if shape == "circle" and angle == 0.0:
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill, outline=outline, width=width)
    else:
        draw.polygon(shape_polygon(shape, cx, cy, r, angle), fill=fill, outline=outline, width=width)


def place_disjoint(
    rng: np.random.Generator,
    n: int,
    size: tuple[int, int],
    radius: float,
    margin: float = 2.0,
    avoid: list[tuple[float, float, float]] | None = None,
    tries: int = 400,
    restarts: int = 20,
):
    """``n`` centres inside ``size`` (w, h) whose discs of ``radius`` + margin do not touch (rejection sampling).

    Greedy placement can paint itself into a corner (a first disc near the centre of a small image leaves no room
    for the second), so a failed attempt starts over, up to ``restarts`` times; an attempt that succeeds first
    time draws exactly what it always drew."""
    w, h = size
    for _ in range(restarts):
        placed: list[tuple[float, float, float]] = list(avoid or [])
        out = []
        for _ in range(tries):
            if len(out) == n:
                break
            x = rng.uniform(radius + 1, w - radius - 1)
            y = rng.uniform(radius + 1, h - radius - 1)
            if all((x - px) ** 2 + (y - py) ** 2 > (radius + pr + margin) ** 2 for px, py, pr in placed):
                placed.append((x, y, radius))
                out.append((x, y))
        if len(out) == n:
            return out
    raise RuntimeError(f"could not place {n} objects of radius {radius} in {size}")


def disc_mask(size: tuple[int, int], cx: float, cy: float, r: float) -> np.ndarray:
    """Boolean ``[h, w]`` disc."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


def box_mask(size: tuple[int, int], box) -> np.ndarray:
    w, h = size
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    m = np.zeros((h, w), dtype=bool)
    m[max(0, y0) : min(h, y1 + 1), max(0, x0) : min(w, x1 + 1)] = True
    return m


def letter_tile(x: float, y: float) -> tuple[float, float, float, float]:
    """The box of a tile behind a letter drawn at (x, y) with :func:`font` sizes 8–9 (white letters sit on one)."""
    return (x - 2, y - 1, x + 9, y + 11)


def draw_marker(
    draw: ImageDraw.ImageDraw, x: float, y: float, label: str, colour=MARKER, r: float = 3.0, label_offset=(4, -11)
) -> None:
    """A ring around (x, y) (the centre pixel stays visible) and a text label next to it."""
    draw.ellipse([x - r, y - r, x + r, y + r], outline=colour, width=1)
    if label:
        lx = min(max(0, x + label_offset[0]), draw.im.size[0] - 7)
        ly = min(max(-2, y + label_offset[1]), draw.im.size[1] - 11)
        draw.text((lx, ly), label, font=font(9), fill=colour)


def draw_ring(
    draw: ImageDraw.ImageDraw, x: float, y: float, colour, r: float = 4.0, width: int = 2, outline=(0, 0, 0)
) -> None:
    """A bold option marker for the word answer format: a ``width``-px ring of ``colour`` with a 1-px ``outline``
    around it. About 10 px across, so it owns its 12-px patch; the centre pixels stay visible."""
    draw.ellipse([x - r - 1, y - r - 1, x + r + 1, y + r + 1], outline=outline, width=1)
    draw.ellipse([x - r, y - r, x + r, y + r], outline=colour, width=width)


def texture(rng: np.random.Generator, size: int, kind: str, freq: float, angle: float, colours, phase: float = 0.0):
    """Procedural texture ``[size, size, 3]`` uint8: stripes, checks, dots, waves or rings."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    u = xx * math.cos(angle) + yy * math.sin(angle)
    v = -xx * math.sin(angle) + yy * math.cos(angle)
    if kind == "stripes":
        t = np.sin(2 * math.pi * (freq * u + phase)) > 0
    elif kind == "checks":
        t = (np.floor(freq * u + phase) + np.floor(freq * v + phase)) % 2 == 0
    elif kind == "dots":
        t = (np.sin(2 * math.pi * (freq * u + phase)) * np.sin(2 * math.pi * (freq * v + phase))) > 0.45
    elif kind == "waves":
        t = np.sin(2 * math.pi * (freq * u + 0.15 * np.sin(2 * math.pi * 2 * v) + phase)) > 0
    elif kind == "rings":
        r = np.sqrt((xx - 0.5) ** 2 + (yy - 0.5) ** 2)
        t = np.sin(2 * math.pi * (freq * r + phase)) > 0
    else:
        raise LIVRError(f"unknown texture {kind!r}")
    a, b = np.array(colours[0], np.uint8), np.array(colours[1], np.uint8)
    return np.where(t[..., None], a, b).astype(np.uint8)


TEXTURES = ("stripes", "checks", "dots", "waves", "rings")


def compose_panels(
    panels: list[Image.Image], labels: list[str], size: int, layout: str = "row", gap: int = 2
) -> tuple[Image.Image, list[tuple[int, int, int, int]]]:
    """Paste panels on one ``size`` x ``size`` canvas with a drawn label each.

    Returns the canvas and each panel's box (x0, y0, x1, y1) on it.  Layouts: ``row`` (side by side),
    ``ref_top`` (first panel top centre, the rest in a row beneath).
    """
    canvas = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    n = len(panels)
    boxes = []
    label_h = 10
    if layout == "row":
        pw = (size - gap * (n + 1)) // n
        for i in range(n):
            x0 = gap + i * (pw + gap)
            y0 = label_h + (size - label_h - pw) // 2
            boxes.append((x0, y0, x0 + pw, y0 + pw))
    elif layout == "ref_top":
        top = (size - label_h * 2) // 2
        boxes.append(((size - top) // 2, label_h, (size - top) // 2 + top, label_h + top))
        m = n - 1
        pw = min(top, (size - gap * (m + 1)) // m)
        for i in range(m):
            x0 = gap + i * (pw + gap) + ((size - gap * (m + 1)) - m * pw) // 2
            y0 = size - pw - 1
            boxes.append((x0, y0, x0 + pw, y0 + pw))
    else:
        raise LIVRError(f"unknown layout {layout!r}")
    for p, (x0, y0, x1, y1), label in zip(panels, boxes, labels):
        canvas.paste(p.resize((x1 - x0, y1 - y0), Image.NEAREST), (x0, y0))
        draw.text((x0 + 1, y0 - label_h), label, font=font(9), fill=(0, 0, 0))
    return canvas, boxes

"""Stage 0 of the demo backbone: dense supervised pretraining of the vision tower.

LLaVA starts from a CLIP vision tower trained on 400 M image-text pairs; ours starts from random weights, and the
language model then needs thousands of answers per skill before the image tokens say anything it can use
(RESULTS.md).  Our images are synthetic, so every patch of every image has labels we can compute from its pixels,
and one image gives 64 supervised targets instead of one answer.  Per patch, linear heads on the tower's selected
layer (the features LLaVA's projector reads) predict:

* ``colour``: background, other (markers, grey decoys, text, textures), or one of the 8 palette colours — the majority
  among the patch's non-background pixels (exact: the generators draw without anti-aliasing);
* ``luminance``: the mean grey level of a 4 x 4 grid of sub-cells (fine layout: edges, seams, reflectance);
* ``row`` / ``col``: where the patch is (so position is linearly readable from each image token);
* ``shape``: the shape class on patches covered by the one coloured shape of the perception questions about a
  single object (ignored elsewhere);
* ``present`` (with ``markers=True``): every palette colour that covers at least :data:`MIN_PIXELS` of the patch,
  not only the majority one, so a small coloured ring on a larger shape is seen along with the shape;
* ``glyph`` (with ``letters=True``): which letter (none, A, B, C, D) is drawn in the patch.  The nine tasks name
  points, boxes and candidates with small drawn letters, so the tower must tell them apart.  Perception images
  without letters of their own get 0–6 letters drawn at random places, in the tasks' fonts and colours; the ink
  of each letter is drawn into a mask too, so the label is exact: the patch holding most of a letter's ink is
  labelled with it, patches with only fragments of a letter are ignored.  (Images that bring their own letters are
  ignored too.)

Images alternate between the perception curriculum and the nine tasks' train split (with ``letters``, a third are
letter sheets; with ``markers``, the word curriculum, whose read-outs put coloured rings on shapes, and the tasks in
the word format, with their coloured rings, boxes and frames).  The heads are thrown away; the tower's weights are
saved with the rest of the (untouched) backbone.  Only LLaVA-family backbones with a square patch grid are supported.
The phase is short (a few minutes) and restarts from scratch when killed.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from tqdm.auto import tqdm

from livr_viz.core.errors import LIVRError
from livr_viz.core.families import family_for
from livr_viz.core.fsutil import fresh_tmp_dir, replace_dir, save_backbone
from livr_viz.core.model import load_backbone
from livr_viz.data import draw as D
from livr_viz.data import make_sample, task_names
from livr_viz.data.perception import CURRICULUM, LETTER_FREE, WORD_CURRICULUM, make_perception_sample
from livr_viz.training.trainer import warmup_cosine

N_COLOUR_CLASSES = 10  # background, other, 8 palette colours
SUBGRID = 4  # luminance sub-cells per patch side
SINGLE_OBJECT_KINDS = ("colour", "shape", "quadrant")
MIN_PIXELS = 1 / 12  # share of a patch's pixels a colour needs to count as present
GLYPHS = "ABCD"  # the letters the glyph head tells apart (class 0: no letter)
MIN_INK = 4  # ink pixels of a letter that make it the patch's glyph label
LETTER_WEIGHT = 3.0  # letter identity is learnt late and from few patches (unweighted: at chance for 1,050 steps)


@dataclass
class VisionPretrainConfig:
    # the shape head needs ~1,200 (37.8 % after 600, 97.6 % after 1,800: docs/experiments/stage0-long/), but the
    # pipeline's later phases overwrite it unless the tower is frozen, and frozen it gave a worse trio (frozen-tower/)
    steps: int = 600
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 50
    max_grad_norm: float = 1.0
    seed: int = 0  # head initialisation
    data_seed: int = 0  # train split seed of the synthetic images
    log_every: int = 25
    # a resumable checkpoint (tower, heads, optimizer, data position) every this many steps in OUT/checkpoint;
    # a run started again on the same OUT with the same settings continues from it, bit for bit
    checkpoint_every: int = 100
    letters: bool = False  # also learn to read drawn letters (glyph head, letter sheets; more steps: ~1200)
    # also see the word format's images (coloured option rings on shapes, coloured boxes and frames) and learn every
    # palette colour each patch holds (the ``present`` head)
    markers: bool = False
    # also learn the comparisons the panel and marker tasks need (which candidate has the reference's texture or
    # style, which piece continues the edges, which ring sits on the corresponding point, how many targets): a
    # linear read-out per task of the tower's flattened tokens names the answer (CompareHeads); the task images are then
    # drawn in the word format (coloured rings, boxes and frames)
    compare: bool = False
    compare_weight: float = 1.0

    def __post_init__(self):
        for name in ("steps", "batch_size", "log_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise LIVRError(f"invalid vision pretraining setting {name}={getattr(self, name)!r}")
        if self.lr <= 0:
            raise LIVRError(f"invalid vision pretraining setting lr={self.lr!r}")
        if self.letters and self.markers:
            raise LIVRError(
                "vision pretraining: letters (the letter format's images) and markers (the word format's) are exclusive"
            )


VISION_PRESETS = {"quick": dict(steps=6, batch_size=8, warmup_steps=2, log_every=2), "demo": dict()}


def draw_glyphs(image, rng: np.random.Generator, n: int) -> tuple[np.ndarray, list[int]]:
    """Draw ``n`` random letters of :data:`GLYPHS` onto ``image`` (in place).  Returns the ink map ``[H, W]``
    (0 where no letter is visible, else 1 + the index of the letter drawn there, a later one covering an earlier
    one) and each drawn letter's index into :data:`GLYPHS`."""
    w, h = image.size
    ink = np.zeros((h, w), dtype=np.int64)
    letters = []
    draw = ImageDraw.Draw(image)
    for i in range(n):
        k = int(rng.integers(len(GLYPHS)))
        x, y = float(rng.uniform(-1, w - 7)), float(rng.uniform(-3, h - 9))
        fill = D.LETTER_COLOURS[int(rng.integers(len(D.LETTER_COLOURS)))]
        if fill == (255, 255, 255) or rng.random() < 0.15:  # on a dark / coloured tile, as on the tasks' surfaces
            tile = (40, 40, 40) if fill == (255, 255, 255) else tuple(int(v) for v in rng.integers(0, 256, 3))
            draw.rectangle(D.letter_tile(x, y), fill=tile)
            ink[D.box_mask((w, h), D.letter_tile(x, y))] = 0
        f = D.font(int(rng.choice([8, 9])))
        draw.text((x, y), GLYPHS[k], font=f, fill=fill)
        mask = Image.new("L", (w, h), 0)
        ImageDraw.Draw(mask).text((x, y), GLYPHS[k], font=f, fill=255)
        ink[np.asarray(mask) > 0] = 1 + i
        letters.append(k)
    return ink, letters


def glyph_labels(ink: np.ndarray, letters: list[int], grid: int) -> np.ndarray:
    """Per patch: 1 + the letter index on the patch that holds most of a drawn letter's visible ink (at least
    :data:`MIN_INK` pixels), 0 on patches without ink, -100 (ignored) on patches with only fragments."""
    side = ink.shape[0]
    p = side // grid
    per_patch = ink.reshape(grid, p, grid, p).transpose(0, 2, 1, 3).reshape(grid * grid, p * p)
    counts = np.stack([np.bincount(row, minlength=1 + len(letters)) for row in per_patch])[:, 1:]  # [N, n]
    labels = np.where(counts.sum(1) > 0, -100, 0)
    for i, k in enumerate(letters):
        best = int(counts[:, i].argmax())
        if counts[best, i] >= MIN_INK:
            labels[best] = 1 + k
    return labels


def patch_targets(image, grid: int, concepts: dict | None = None, glyphs: tuple | None = None) -> dict[str, np.ndarray]:
    """Per-patch labels of a square RGB image whose side is a multiple of ``grid``: see the module docstring.
    ``glyphs`` is what :func:`draw_glyphs` returned for the image; without it the glyph labels are unknown (-100)."""
    a = np.asarray(image.convert("RGB"), dtype=np.int32)
    side = a.shape[0]
    if a.shape[0] != a.shape[1] or side % (grid * SUBGRID):
        raise LIVRError(
            f"patch targets need a square image whose side divides into {grid}x{SUBGRID} cells; "
            f"got {a.shape[1]}x{a.shape[0]}"
        )
    p = side // grid
    palette = np.array(list(D.PALETTE.values()), dtype=np.int32)
    cls = np.ones(a.shape[:2], dtype=np.int64)  # other: anything off the palette
    exact = (a[:, :, None, :] == palette[None, None]).all(-1)  # [H, W, 8]
    cls[exact.any(-1)] = 2 + exact.argmax(-1)[exact.any(-1)]
    cls[(a == np.array(D.BACKGROUND)).all(-1)] = 0
    per_patch = cls.reshape(grid, p, grid, p).transpose(0, 2, 1, 3).reshape(grid * grid, p * p)
    counts = np.stack([np.bincount(row, minlength=N_COLOUR_CLASSES) for row in per_patch])  # [N, 10]
    need = max(1, round(MIN_PIXELS * p * p))
    colour = np.where(
        counts[:, 2:].max(1) >= need, 2 + counts[:, 2:].argmax(1), np.where(counts[:, 1:].sum(1) >= need, 1, 0)
    )
    lum = a.mean(-1) / 255.0
    c = p // SUBGRID
    sub = lum.reshape(grid, SUBGRID, c, grid, SUBGRID, c).mean((2, 5)).transpose(0, 2, 1, 3)
    shape = np.full(grid * grid, -100, dtype=np.int64)
    concepts = concepts or {}
    if concepts.get("kind") in SINGLE_OBJECT_KINDS and concepts.get("shape") in D.SHAPES:
        ci = 2 + list(D.PALETTE).index(concepts["colour"])
        shape[counts[:, ci] >= need] = D.SHAPES.index(concepts["shape"])
    glyph = np.full(grid * grid, -100, dtype=np.int64) if glyphs is None else glyph_labels(*glyphs, grid)
    present = (counts[:, 2:] >= need).astype(np.float32)  # [N, 8]: every palette colour the patch holds
    return {
        "colour": colour,
        "luminance": sub.reshape(grid * grid, SUBGRID * SUBGRID).astype(np.float32),
        "shape": shape,
        "glyph": glyph,
        "present": present,
    }


def glyph_losses(logits: torch.Tensor, glyph: torch.Tensor, letter_weight: float = LETTER_WEIGHT) -> dict:
    """Losses of a glyph head (``logits [..., 1 + len(GLYPHS)]`` against :func:`glyph_labels`): letter or not on
    every labelled patch, and which letter on the few patches that hold one (else "none" swamps it)."""
    parts = {}
    seen, letter = glyph >= 0, glyph > 0
    if seen.any():
        parts["glyph"] = F.cross_entropy(logits[seen], glyph[seen])
    if letter.any():
        parts["letter"] = letter_weight * F.cross_entropy(logits[letter][:, 1:], glyph[letter] - 1)
    return parts


def letter_accuracy(logits: torch.Tensor, glyph: torch.Tensor) -> float | None:
    """Which-letter accuracy on the patches that hold a letter (None if none does)."""
    letter = glyph > 0
    if not letter.any():
        return None
    return float((logits[letter][:, 1:].argmax(-1) == glyph[letter] - 1).float().mean())


COMPARE_CLASSES = 9  # counting: the count 0..8; every other task: the index of the right option


def compare_class(concepts: dict, answer_index: int) -> int:
    """What the compare head predicts for a task image: the count for counting (its options come shuffled), else
    the right option's index (every other task lists its options in one fixed order: sides, pieces, ring colours)."""
    if concepts.get("task") == "counting":
        return int(concepts["count"])
    return int(answer_index)


class CompareHeads(torch.nn.Module):
    """Per task, a *linear* read-out of the tower's flattened tokens names the answer. A linear map cannot compare
    two panels itself, so the comparison has to happen inside the tower, where the language model later reads it;
    it knows where each token sits (a read-out through one attention query does not at initialisation, and stayed
    at chance: docs/experiments/spatial-reader/)."""

    def __init__(self, dim: int, n_tokens: int, tasks: list[str], n_options: dict[str, int]):
        super().__init__()
        self.tasks = list(tasks)
        self.norm = torch.nn.LayerNorm(dim)
        self.out = torch.nn.Parameter(torch.zeros(len(tasks), n_tokens * dim, COMPARE_CLASSES))
        torch.nn.init.normal_(self.out, std=(n_tokens * dim) ** -0.5)
        self.bias = torch.nn.Parameter(torch.zeros(len(tasks), COMPARE_CLASSES))
        valid = torch.full((len(tasks), COMPARE_CLASSES), float("-inf"))
        for i, t in enumerate(tasks):
            valid[i, : (COMPARE_CLASSES if t == "counting" else n_options[t])] = 0.0
        self.register_buffer("valid", valid, persistent=False)

    def forward(self, h: torch.Tensor, task: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, float]:
        flat = self.norm(h).flatten(1)  # [B, N * D]
        logits = torch.einsum("bf,bfc->bc", flat, self.out[task]) + self.bias[task] + self.valid[task]
        return F.cross_entropy(logits, target), float((logits.argmax(-1) == target).float().mean())


class PatchHeads(torch.nn.Module):
    def __init__(self, dim: int, grid: int):
        super().__init__()
        self.colour = torch.nn.Linear(dim, N_COLOUR_CLASSES)
        self.luminance = torch.nn.Linear(dim, SUBGRID * SUBGRID)
        self.shape = torch.nn.Linear(dim, len(D.SHAPES))
        self.row = torch.nn.Linear(dim, grid)
        self.col = torch.nn.Linear(dim, grid)
        self.glyph = torch.nn.Linear(dim, 1 + len(GLYPHS))  # created after the others: their init is unchanged
        self.present = torch.nn.Linear(dim, len(D.PALETTE))  # likewise
        self.register_buffer("rows", torch.arange(grid).repeat_interleave(grid), persistent=False)
        self.register_buffer("cols", torch.arange(grid).repeat(grid), persistent=False)

    def forward(
        self, h: torch.Tensor, targets: dict[str, torch.Tensor], markers: bool = False
    ) -> tuple[torch.Tensor, dict[str, float]]:
        b = h.shape[0]
        parts = {
            "colour": F.cross_entropy(self.colour(h).flatten(0, 1), targets["colour"].flatten()),
            "luminance": 10 * F.mse_loss(self.luminance(h), targets["luminance"]),
            "position": F.cross_entropy(self.row(h).flatten(0, 1), self.rows.repeat(b))
            + F.cross_entropy(self.col(h).flatten(0, 1), self.cols.repeat(b)),
        }
        known = targets["shape"] >= 0
        if known.any():
            parts["shape"] = F.cross_entropy(self.shape(h)[known], targets["shape"][known])
        glyph = self.glyph(h) if (targets["glyph"] >= 0).any() else None
        if glyph is not None:
            parts.update(glyph_losses(glyph, targets["glyph"]))
        if markers:
            parts["present"] = F.binary_cross_entropy_with_logits(self.present(h), targets["present"])
        with torch.no_grad():
            metrics = {f"loss_{k}": float(v) for k, v in parts.items()}
            hit = self.colour(h).argmax(-1) == targets["colour"]
            metrics["acc_colour"] = float(hit.float().mean())
            hit = (self.row(h).argmax(-1) == self.rows) & (self.col(h).argmax(-1) == self.cols)
            metrics["acc_position"] = float(hit.float().mean())
            if known.any():
                hit = self.shape(h)[known].argmax(-1) == targets["shape"][known]
                metrics["acc_shape"] = float(hit.float().mean())
            if glyph is not None and (acc := letter_accuracy(glyph, targets["glyph"])) is not None:
                metrics["acc_glyph"] = acc
            if markers:  # on patches that hold two or more colours (a ring on a shape): all of them right
                mixed = targets["present"].sum(-1) >= 2
                if mixed.any():
                    hit = ((self.present(h) > 0) == (targets["present"] > 0.5)).all(-1)
                    metrics["acc_present_mixed"] = float(hit[mixed].float().mean())
        return sum(parts.values()), metrics


def glyph_sheet(rng: np.random.Generator, size: int) -> tuple:
    """A letter-reading image: 0–2 small coloured shapes and 4–8 letters on the background."""
    image = Image.new("RGB", (size, size), D.BACKGROUND)
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(0, 3))):
        r = float(rng.uniform(0.05, 0.12)) * size
        ((x, y),) = D.place_disjoint(rng, 1, image.size, r, margin=2)
        D.draw_shape(draw, str(rng.choice(D.SHAPES)), x, y, r, D.PALETTE[str(rng.choice(D.COLOR_NAMES))])
    return image, draw_glyphs(image, rng, int(rng.integers(4, 9)))


def stream_rng(data_seed: int) -> np.random.Generator:
    """The generator of :func:`image_stream`'s random letters (its state goes into stage 0's checkpoints)."""
    return np.random.default_rng(np.random.SeedSequence([data_seed, 0x61F]))


def image_stream(
    data_seed: int,
    image_size: int,
    letters: bool = False,
    markers: bool = False,
    compare: bool = False,
    start: int = 0,
    rng: np.random.Generator | None = None,
):
    """Endless deterministic stream of (image, concepts, glyphs).  Without ``letters``: perception questions and
    the nine tasks' train split, alternating (with ``markers``: the word curriculum's questions and the tasks in
    the word format, with their coloured rings, instead of the curriculum's and the letter format's).  With
    ``letters``: in thirds, perception questions (those without letters of their own get 0–6 random letters),
    tasks, and letter sheets (:func:`glyph_sheet`).  ``glyphs`` is
    what :func:`draw_glyphs` returned, None for images whose letters are unknown.  With ``compare`` the task images
    are drawn in the word format and their concepts carry ``compare_class`` (:func:`compare_class`).
    ``start`` and ``rng`` continue a stream: the item index to start at and the generator's state at that point
    (every item but the random letters is a function of its index)."""
    tasks = task_names()
    rng = stream_rng(data_seed) if rng is None else rng
    parts = 3 if letters else 2
    i = start
    while True:
        k, part = divmod(i, parts)
        if part == 0:
            kinds = WORD_CURRICULUM if markers else CURRICULUM
            kind = kinds[k % len(kinds)]
            s = make_perception_sample(kind, "train", data_seed, k // len(kinds), image_size)
            glyphs = draw_glyphs(s.image, rng, int(rng.integers(0, 7))) if letters and kind in LETTER_FREE else None
            yield s.image, s.concepts, glyphs
        elif part == 1:
            # the letter-format images the shipped tower was trained on (drawn letters included, see --letters)
            s = make_sample(
                tasks[k % len(tasks)],
                "train",
                data_seed,
                k // len(tasks),
                image_size,
                answer_format="word" if markers or compare else "letter",
            )
            if compare:
                concepts = {**s.concepts, "compare_class": compare_class(s.concepts, s.letters.index(s.answer))}
                yield s.image, concepts, None
            else:
                yield s.image, s.concepts, None
        else:
            image, glyphs = glyph_sheet(rng, image_size)
            yield image, {"kind": "glyphs"}, glyphs
        i += 1


def _vision_geometry(model) -> tuple[int, int]:
    try:
        size, patch = family_for(model.config).square_tower(model)
    except LIVRError:
        raise LIVRError(
            f"vision pretraining supports LLaVA-family backbones only; got {model.config.model_type!r}"
        ) from None
    if size % patch or patch % SUBGRID:
        raise LIVRError(
            f"vision pretraining needs image_size % patch_size == 0 and patch_size % {SUBGRID} == 0; "
            f"got {size} / {patch}"
        )
    return size, size // patch


def _checkpoint(out: Path, step: int, modules: dict, opt, rng: np.random.Generator) -> None:
    """Everything stage 0 needs to continue after ``step`` steps, written atomically to ``out/checkpoint``."""
    tmp = fresh_tmp_dir(out / "checkpoint")
    state = {
        "step": step,
        "modules": {k: m.state_dict() for k, m in modules.items()},
        "optimizer": opt.state_dict(),
        "data_rng": rng.bit_generator.state,
        "torch_rng": torch.get_rng_state(),
    }
    torch.save(state, tmp / "state.pt")
    replace_dir(tmp, out / "checkpoint")


def _resume(out: Path, cfg: VisionPretrainConfig, modules: dict, opt, rng: np.random.Generator, log) -> int:
    """Load ``out/checkpoint`` when there is one (same settings only); return the step to continue from."""
    path = out / "checkpoint" / "state.pt"
    if not path.is_file():
        return 0
    saved = json.loads((out / "vision_config.json").read_text()) if (out / "vision_config.json").is_file() else None
    if saved != json.loads(json.dumps(asdict(cfg))):
        raise LIVRError(
            f"{out}: a stage-0 checkpoint from other settings is there; remove {out / 'checkpoint'} to start again"
        )
    state = torch.load(path, weights_only=True)
    for k, m in modules.items():
        m.load_state_dict(state["modules"][k])
    opt.load_state_dict(state["optimizer"])
    rng.bit_generator.state = state["data_rng"]
    torch.set_rng_state(state["torch_rng"])
    step = int(state["step"])
    log_path = out / "log.jsonl"
    if log_path.is_file():  # drop the lines written after the checkpoint
        lines = [ln for ln in log_path.read_text().splitlines() if ln and json.loads(ln)["step"] <= step]
        log_path.write_text("".join(ln + "\n" for ln in lines))
    log(f"vision pretraining: resuming from step {step} of {cfg.steps}")
    return step


def pretrain_vision(
    backbone: str | Path, cfg: VisionPretrainConfig, out_dir: str | Path, progress: bool = True, log=print
) -> dict:
    """Train ``backbone``'s vision tower on dense patch targets; save the whole backbone to ``out_dir/model``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model, processor = load_backbone(str(backbone))
    size, grid = _vision_geometry(model)
    tower = model.model.vision_tower
    layer = model.config.vision_feature_layer
    if not isinstance(layer, int):
        raise LIVRError("vision pretraining needs a single vision_feature_layer")
    drop_cls = model.config.vision_feature_select_strategy == "default"
    with torch.random.fork_rng():
        torch.manual_seed(cfg.seed)
        heads = PatchHeads(tower.config.hidden_size, grid)
        compare = None
        if cfg.compare:
            tasks = task_names()
            n_options = {t: len(make_sample(t, "train", 0, 0).choices) for t in tasks}
            compare = CompareHeads(tower.config.hidden_size, grid * grid, tasks, n_options)
    params = [p for p in tower.parameters()] + list(heads.parameters())
    if compare is not None:
        params += list(compare.parameters())
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    modules = {"tower": tower, "heads": heads} | ({"compare": compare} if compare is not None else {})
    rng = stream_rng(cfg.data_seed)
    log_path = out / "log.jsonl"
    first = _resume(out, cfg, modules, opt, rng, log)
    if first == 0:
        log_path.write_text("")
        (out / "vision_config.json").write_text(json.dumps(asdict(cfg), indent=2))
    stream = image_stream(cfg.data_seed, size, cfg.letters, cfg.markers, cfg.compare, first * cfg.batch_size, rng)
    bar = None
    if progress:
        bar = tqdm(total=cfg.steps, initial=first, desc="pretrain vision", dynamic_ncols=True)
    tower.train()
    t0 = time.perf_counter()
    metrics: dict = {}
    for step in range(first, cfg.steps):
        lr = warmup_cosine(step, cfg.steps, max(1, cfg.warmup_steps), cfg.lr)
        for g in opt.param_groups:
            g["lr"] = lr
        images, labels, glyphs = zip(*(next(stream) for _ in range(cfg.batch_size)))
        t = [patch_targets(im, grid, c, g) for im, c, g in zip(images, labels, glyphs)]
        targets = {k: torch.from_numpy(np.stack([x[k] for x in t])) for k in t[0]}
        pixels = processor.image_processor(list(images), return_tensors="pt")["pixel_values"]
        hidden = tower(pixels, output_hidden_states=True).hidden_states[layer]
        hidden = hidden[:, 1:] if drop_cls else hidden
        loss, metrics = heads(hidden, targets, cfg.markers)
        if compare is not None:
            rows = [i for i, c in enumerate(labels) if "compare_class" in c]
            task = torch.tensor([compare.tasks.index(labels[i]["task"]) for i in rows])
            target = torch.tensor([labels[i]["compare_class"] for i in rows])
            compare_loss, metrics["acc_compare"] = compare(hidden[rows], task, target)
            metrics["loss_compare"] = float(compare_loss.detach())
            loss = loss + cfg.compare_weight * compare_loss
        loss.backward()
        loss = float(loss.detach())
        torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}")
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            with open(log_path, "a") as fh:
                fh.write(
                    json.dumps(
                        {"step": step + 1, "loss": loss, "lr": lr, **metrics, "seconds": time.perf_counter() - t0}
                    )
                    + "\n"
                )
        if (step + 1) % cfg.checkpoint_every == 0 and step + 1 < cfg.steps:
            _checkpoint(out, step + 1, modules, opt, rng)
    if bar is not None:
        bar.close()
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    save_backbone(model, processor, out / "model")
    if (out / "checkpoint").is_dir():
        shutil.rmtree(out / "checkpoint")
    log(f"vision pretraining: {cfg.steps} steps in {time.perf_counter() - t0:.0f} s; last batch {metrics}")
    return metrics

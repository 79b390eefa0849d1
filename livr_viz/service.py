"""UI-free service layer the app composes: a shared model pool, a per-input cache and view builders.

Models are loaded once per process and shared read-only.  Every function here takes plain values (paths,
strings, numbers) and returns plain values (PIL images, dicts, figures), so it is testable without Gradio and
the app stays a thin layout.  Results are cached per (model, image bytes, prompt, stage).
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import re
import tempfile
import threading
import time
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from livr_viz.core.errors import LIVRError
from livr_viz.core.images import load_image
from livr_viz.demo.bundled import DEMO_MODELS, DEMO_SETS  # noqa: F401 - DEMO_MODELS is part of the service API
from livr_viz.methods.heatmaps import display_image, overlay

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "assets" / "examples"
VIEW_MAX_SIDE = 768  # uploads are downscaled once to this (the model's processor resizes again for the model)
_SAMPLE_ID = re.compile(r"^([a-z_]+)-(train|val|test)-(\d+)-(\d+)(?:-(word))?$")  # no suffix: letter format


def compare_set(model: str | None) -> tuple[str, ...]:
    """The bundled LIVR / latents-only / SFT trio that ``model`` belongs to (the multi-task trio otherwise)."""
    name = (model or "").strip()
    return next((names for names in DEMO_SETS.values() if name in names), DEMO_SETS["demo"])


class ModelPool:
    """Load each model once per process; afterwards shared read-only by every session."""

    def __init__(self):
        self._models: dict[str, object] = {}
        self._lock = threading.Lock()

    def get(self, name: str):
        name = (name or "demo-livr").strip()
        with self._lock:
            if name not in self._models:
                from livr_viz.core.model import load_model

                self._models[name] = load_model(name)
            return self._models[name]

    def loaded(self) -> list[str]:
        return list(self._models)


class LRU:
    def __init__(self, size: int = 64):
        self.size, self._data, self._lock = size, OrderedDict(), threading.Lock()

    def get(self, key):
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
        return None

    def put(self, key, value):
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)
        return value


POOL = ModelPool()
ANALYSES = LRU(64)


def image_digest(path: str | Path) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


def synthetic_sample_for(path: str | Path | None, prompt: str | None = None):
    """The synthetic sample this input *is*, or None.

    The file name (``<task>-<split>-<seed>-<index>[-word].png``, as examples and *new sample* write them) only
    says which sample to regenerate; the sample counts only when the uploaded pixels equal it exactly and, when
    ``prompt`` is given, the prompt is the sample's own question. So a photo renamed like a sample, or a sample
    asked another question, never gets a ground truth or an evidence mask that is not its own."""
    if not path:
        return None
    match = _SAMPLE_ID.match(Path(path).stem)
    if not match:
        return None
    from livr_viz.data import TASKS, make_sample

    task, split, seed, index, fmt = match.groups()
    if task not in TASKS:
        return None
    sample = make_sample(task, split, int(seed), int(index), answer_format=fmt or "letter")
    if prompt is not None and prompt.strip() != sample.prompt.strip():
        return None
    try:
        pixels = np.asarray(load_image(path))
    except LIVRError:
        return None
    return sample if pixels.shape == np.asarray(sample.image).shape and np.array_equal(
        pixels, np.asarray(sample.image)) else None


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]#|~])")


def escape_markdown(text) -> str:
    """User-typed or model-made text made inert for a Markdown panel: HTML escaped (``<s>`` stays visible text
    instead of striking through the rest) and Markdown's active characters backslash-escaped."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(str(text), quote=False)).replace("\n", " ")


def attribution_target(target: str | None, analysis) -> str:
    """The option to attribute: the typed one (matched to the prompt's options, case ignored) or the answer.
    A prompt with options accepts only those options."""
    text = (target or "").strip()
    if not text:
        return analysis.answer
    options = list(analysis.choice_probs)
    if not options:
        return text
    for option in options:
        if option.lower() == text.lower():
            return option
    raise LIVRError(f"target {text!r} is not one of this prompt's options ({', '.join(options)}); leave it empty "
                    "to explain the model's answer")


def ablation_view(lm, analysis, latents: list[int], mode: str, layer: int, n_layers: int) -> dict:
    """Switch ``latents`` off for the analysed input (none given: the one whose removal alone moves the predicted
    option most) and report the option probabilities before / after and every latent's own effect."""
    from livr_viz.methods.interventions import LatentAblation, per_latent_effects

    choices = list(analysis.choice_probs)
    if not choices:
        raise LIVRError("ablation needs a prompt with options (an 'Options: …' line or '(A) … (B) …' choices)")
    if not -1 <= layer < n_layers:
        raise LIVRError(f"layer must be -1 (embeddings) .. {n_layers - 1}")
    batch = lm.build_inputs([analysis.image], [analysis.prompt])
    effects = per_latent_effects(lm, batch, choices, mode, layer, analysis.stage)
    auto = not latents
    if auto:
        latents = [int(np.argmax(np.abs(effects)))]
    result = LatentAblation(lm, mode, layer).run(batch, latents, choices, analysis.stage)
    before, after = result.before[0].tolist(), result.after[0].tolist()
    return {"choices": choices, "before": before, "after": after, "effects": effects, "latents": latents,
            "auto": auto, "answer_before": choices[int(np.argmax(before))],
            "answer_after": choices[int(np.argmax(after))], "largest_change": float(result.delta.abs().max())}


def default_concept(model_name: str) -> str:
    """The first bundled probe concept that belongs to a task the model was fine-tuned on (``count`` otherwise)."""
    from livr_viz.data import resolve_tasks
    from livr_viz.methods.probes import ConceptSpec, builtin_specs

    trained = POOL.get(model_name).config.training.get("tasks", "all")
    try:
        tasks = set(resolve_tasks(trained))
    except LIVRError:  # e.g. a perception-pretrained backbone
        tasks = set()
    for name in builtin_specs():
        if set(ConceptSpec.load(name).tasks or ()) & tasks:
            return name
    return "count"


PROBE_MARGIN = 0.02  # a probe must beat its baselines by this much accuracy for its reading to mean anything


def probe_caveat(best_layer: dict, majority: float) -> str:
    """A warning (Markdown) when the best probe is no better than guessing the majority class or than the same
    probe on a random-weight model: its reading of an image then says nothing about what the model learnt."""
    accuracy = best_layer["latent_pooled"]["accuracy"]
    baselines = {"the majority class": majority}
    if "random_model" in best_layer:
        baselines["the same probe on a random-weight model"] = best_layer["random_model"]["accuracy"]
    failed = [f"{name} ({value:.3f})" for name, value in baselines.items() if accuracy <= value + PROBE_MARGIN]
    if not failed:
        return ""
    return (f"\n\n> ⚠ This probe ({accuracy:.3f}) is no better than {' or '.join(failed)}: its reading below says "
            "nothing about what the model encodes.")


def load_upload(path: str | Path) -> Image.Image:
    """An uploaded image, decoded once and downscaled to :data:`VIEW_MAX_SIDE` (errors name its base name)."""
    return load_image(path, max_side=VIEW_MAX_SIDE)


def analysis_for(model_name: str, image_path: str | None, prompt: str, stage: str = "full"):
    """Cached :func:`~livr_viz.analysis.run_analysis` for this input."""
    from livr_viz.methods.analysis import run_analysis

    if not image_path:
        raise LIVRError("upload an image (or pick an example / press 'new sample') first")
    if prompt is None or not prompt.strip():
        raise LIVRError("the prompt is empty: type a question (task templates are in the menu)")
    key = (model_name, image_digest(image_path), prompt, stage)
    cached = ANALYSES.get(key)
    if cached is not None:
        return cached
    lm = POOL.get(model_name)
    return ANALYSES.put(key, run_analysis(lm, load_upload(image_path), prompt, stage))


def parse_selection(text: str | None, size: int, name: str) -> list[int] | None:
    """'all' / '' → None; '0,2-4' → [0, 2, 3, 4] with range checks."""
    if text is None or str(text).strip().lower() in ("", "all", "mean"):
        return None
    picks: list[int] = []
    for part in str(text).replace(" ", "").split(","):
        try:
            if "-" in part:
                lo, hi = (int(v) for v in part.split("-", 1))
                picks += list(range(lo, hi + 1))
            else:
                picks.append(int(part))
        except ValueError:
            raise LIVRError(f"{name}: {text!r} is not 'all' or a list like 0,2-3") from None
    bad = [p for p in picks if not 0 <= p < size]
    if bad:
        raise LIVRError(f"{name} must be in 0..{size - 1}; got {bad}")
    return sorted(set(picks))


def heatmap_tiles(analysis, layers=None, heads=None, aggregation="mean", normalisation="per_latent",
                  opacity: float = 0.55) -> list[tuple[Image.Image, str]]:
    """(overlay image, caption) per latent (or the answer row for sft)."""
    maps = analysis.latent_maps(layers, heads, aggregation, normalisation)
    base = display_image(analysis.image)
    label = "latent" if analysis.n_latents else "answer row"
    return [(Image.fromarray(overlay(base, m, opacity)), f"{label} {i}") for i, m in enumerate(maps)]


def montage(tiles: list[tuple[Image.Image, str]], columns: int = 8, tile: int = 96, title: str = "") -> Image.Image:
    """One image of labelled tiles (for side-by-side comparison and export)."""
    rows = -(-len(tiles) // columns)
    head = 14 if title else 0
    sheet = Image.new("RGB", (columns * tile, head + rows * (tile + 12)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((3, 1), title, fill=(0, 0, 0))
    for i, (img, caption) in enumerate(tiles):
        x, y = (i % columns) * tile, head + (i // columns) * (tile + 12)
        sheet.paste(img.resize((tile - 2, tile - 2)), (x + 1, y + 12))
        draw.text((x + 2, y), caption, fill=(0, 0, 0))
    return sheet


def stack(sheets: list[Image.Image], gap: int = 6, top: int = 0) -> Image.Image:
    """Sheets one under another on a white page (left-aligned), so variants are compared at the same scale;
    ``top`` leaves a margin (the app's image label covers the page's top-left corner)."""
    width = max(s.width for s in sheets)
    page = Image.new("RGB", (width, top + sum(s.height for s in sheets) + gap * (len(sheets) - 1)), (255, 255, 255))
    y = top
    for s in sheets:
        page.paste(s, (0, y))
        y += s.height + gap
    return page


def evidence_overlay(image: Image.Image, evidence: np.ndarray) -> Image.Image:
    base = display_image(image)
    return Image.fromarray(overlay(base, evidence.astype(float), 0.45, cmap="Greens"))


def answer_format_of(model_name: str) -> str:
    """The answer format (``word`` | ``letter``) the model was trained in: the app's questions follow it."""
    return POOL.get(model_name).config.answer_format


def new_sample(task: str, out_dir: str | Path, index: int | None = None, answer_format: str = "word"):
    """A fresh synthetic sample saved as ``<id>.png`` (so its evidence can be found again); returns (path, prompt)."""
    from livr_viz.data import make_sample, resolve_tasks

    resolve_tasks([task])
    index = int(time.time_ns() % 1_000_000) if index is None else index
    sample = make_sample(task, "test", 777, index, answer_format=answer_format)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{sample.id}.png"
    sample.image.save(path)
    return str(path), sample.prompt


def task_templates(answer_format: str = "word") -> dict[str, str]:
    """A prompt template per task (the question of its first test sample, with its options in ``answer_format``)."""
    from livr_viz.data import make_sample, task_names

    return {t: make_sample(t, "test", 0, 0, answer_format=answer_format).prompt for t in task_names()}


def photo_prompt(answer_format: str = "word") -> str:
    """The question asked of the bundled photos, in the model's answer format."""
    from livr_viz.data.tasks import format_prompt

    return format_prompt("Is there a person in the image?", ["yes", "no"], answer_format)


def ensure_examples() -> list[str]:
    """Example gallery files: one word-format synthetic sample per task (the demo models' format) plus the bundled
    photos. The task samples ship in ``assets/examples``; one that is missing there is drawn into the scratch
    directory instead (the package never writes into its own folder at run time)."""
    from livr_viz.data import make_sample, task_names

    paths = []
    for task in task_names():
        s = make_sample(task, "test", 0, 0, answer_format="word")
        path = EXAMPLES_DIR / f"{s.id}.png"
        if not path.is_file():
            path = scratch_dir() / "examples" / f"{s.id}.png"
            if not path.is_file():
                path.parent.mkdir(parents=True, exist_ok=True)
                s.image.save(path)
        paths.append(str(path))
    paths += [str(p) for p in sorted(EXAMPLES_DIR.glob("photo-*.jpg"))]
    return paths


def export_zip(files: dict[str, Image.Image | str | bytes], report: dict, settings: dict, out_dir: str | Path) -> str:
    """Zip of figures, ``report.json`` and ``settings.json``; returns its path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"livr-viz-export-{int(time.time() * 1000)}.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, value in files.items():
            if isinstance(value, Image.Image):
                buf = io.BytesIO()
                value.save(buf, format="PNG")
                zf.writestr(name, buf.getvalue())
            elif isinstance(value, bytes):
                zf.writestr(name, value)
            else:
                zf.write(value, name)
        zf.writestr("report.json", json.dumps(report, indent=2, default=str))
        zf.writestr("settings.json", json.dumps(settings, indent=2, default=str))
    return str(path)


def scratch_dir() -> Path:
    path = Path(tempfile.gettempdir()) / "livr-viz"
    path.mkdir(parents=True, exist_ok=True)
    return path

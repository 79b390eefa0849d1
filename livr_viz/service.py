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
import os
import re
import threading
import time
import zipfile
from collections import OrderedDict
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from livr_viz.core.capture import LatentAttention, base_attn_implementation
from livr_viz.core.config import (  # noqa: F401 - the app's menus: part of the service API
    AGGREGATIONS,
    ATTRIBUTION_METHODS,
    NORMALISATIONS,
    PROJECTIONS,
    STAGES,
)
from livr_viz.core.errors import LIVRError
from livr_viz.core.fsutil import cache_dir
from livr_viz.core.images import load_image
from livr_viz.core.model import load_model
from livr_viz.data import TASKS, make_sample, resolve_tasks, task_names
from livr_viz.data.dataset import SyntheticTaskDataset
from livr_viz.data.tasks import format_prompt
from livr_viz.demo.bundled import DEMO_MODELS, DEMO_NAMES, DEMO_SETS, EXAMPLES_DIR
from livr_viz.methods.analysis import run_analysis
from livr_viz.methods.attribution import LatentAttribution
from livr_viz.methods.faithfulness import evidence_on_grid, evidence_scores, heatmaps_for
from livr_viz.methods.heatmaps import top_regions
from livr_viz.methods.interventions import (
    ABLATIONS,  # noqa: F401 - part of the service API
    LatentAblation,
    per_latent_effects,
)
from livr_viz.methods.probes import (
    PROBES_DIR,
    ConceptSpec,
    ProbeReport,
    builtin_specs,
    probe_baselines,
    probe_margin,
    read_with_probe,
    run_probes,
    weak_baselines,
)
from livr_viz.methods.tokenmap import dataset_points, points_from_capture, project, warm_up_umap
from livr_viz.views.analysis import answer_latent_figure, save_figure
from livr_viz.views.heatmaps import (
    attention_tile,
    display_image,
    evidence_overlay,
    grid_overlay,
    latent_grid_figure,
    montage,
    overlay,
    stack,
)
from livr_viz.views.masks import mask_figure
from livr_viz.views.probes import probe_curves_figure, save_probe_curves
from livr_viz.views.tokenmap import tokenmap_figure, tokenmap_figure_plotly

VIEW_MAX_SIDE = 768  # uploads are downscaled once to this (the model's processor resizes again for the model)
_SAMPLE_ID = re.compile(r"^([a-z_]+)-(train|val|test)-(\d+)-(\d+)(?:-(word))?$")  # no suffix: letter format


def compare_set(model: str | None) -> tuple[str, ...]:
    """The bundled LIVR / latents-only / SFT trio that ``model`` belongs to (the multi-task trio otherwise)."""
    name = (model or "").strip()
    return next((names for names in DEMO_SETS.values() if name in names), DEMO_SETS["demo"])


MODEL_REFUSED = (
    "unknown model: this server loads only the models in its menu and folders under the roots its "
    "operator named (--model-root); other names and paths are not looked up"
)


class ModelAccess:
    """Which models a served app may load. Unrestricted in the library and the CLI (the user's own machine); the app
    (:func:`restrict_models`) admits the bundled names, the models the operator started it with, and paths that lie
    under the roots the operator named. Anything else gets :data:`MODEL_REFUSED` — one text whether the path exists
    or not, decided before the file system is touched — so a client can neither load nor probe other folders."""

    def __init__(self):
        self.restricted = False
        self.names: set[str] = set()
        self.roots: list[str] = []

    def restrict(self, names=(), roots=()) -> None:
        self.names = {str(n).strip() for n in names if n}
        self.roots = [os.path.realpath(os.path.expanduser(str(r))) for r in roots]
        self.restricted = True

    def allows(self, name: str) -> bool:
        if not self.restricted or name in DEMO_NAMES or name in self.names:
            return True
        real = os.path.realpath(os.path.expanduser(name))
        return any(real == root or real.startswith(root.rstrip(os.sep) + os.sep) for root in self.roots)

    def check(self, name: str) -> None:
        if not self.allows(name):
            raise LIVRError(MODEL_REFUSED)


ACCESS = ModelAccess()


def restrict_models(names=(), roots=()) -> None:
    """Serve only the bundled models, ``names`` (the app's ``--model``) and folders under ``roots``
    (``--model-root``, repeatable): see :class:`ModelAccess`."""
    ACCESS.restrict(names, roots)


def model_choices(default_model: str | None = None) -> list[str]:
    """The model menu of every tab that takes a model: the bundled models, then the one the app started with."""
    choices = list(DEMO_MODELS)
    if default_model and default_model.strip() and default_model.strip() not in choices:
        choices.append(default_model.strip())
    return choices


def display_name(model: str | None) -> str:
    """How a model is named to the user: a bundled name or hub id as it is, a local folder by its last component
    (never a server path)."""
    name = (model or "demo-livr").strip()
    if name in DEMO_NAMES:
        return name
    local = name.startswith(("/", ".", "~")) or ("/" in name and Path(name).is_dir())  # else a hub id: org/name
    return (Path(name.rstrip("/")).name or name) if local else name


def _cache_key(model: str) -> str:
    """A folder name for this model's cached files (a path's base name and a hash of the full path, so a model
    given as an absolute path never writes beside itself)."""
    name = (model or "demo-livr").strip()
    if name in DEMO_NAMES:
        return name
    digest = hashlib.sha1(os.path.realpath(os.path.expanduser(name)).encode()).hexdigest()[:12]
    return f"{re.sub(r'[^A-Za-z0-9_.-]', '_', Path(name.rstrip('/')).name)}-{digest}"


class ModelPool:
    """Load each model once per process; afterwards shared read-only by every session."""

    def __init__(self):
        self._models: dict[str, object] = {}
        self._lock = threading.Lock()

    def get(self, name: str):
        name = (name or "demo-livr").strip()
        ACCESS.check(name)  # before anything touches the file system
        with self._lock:
            if name not in self._models:
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
VIEWS = LRU(64)  # rendered attention views (tiles, bars, text) of the analyses above, per view setting


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
    return (
        sample
        if pixels.shape == np.asarray(sample.image).shape and np.array_equal(pixels, np.asarray(sample.image))
        else None
    )


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
    raise LIVRError(
        f"target {text!r} is not one of this prompt's options ({', '.join(options)}); leave it empty "
        "to explain the model's answer"
    )


def ablation_view(lm, analysis, latents: list[int], mode: str, layer: int, n_layers: int) -> dict:
    """Switch ``latents`` off for the analysed input (none given: the one whose removal alone moves the predicted
    option most) and report the option probabilities before / after and every latent's own effect."""
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
    return {
        "choices": choices,
        "before": before,
        "after": after,
        "effects": effects,
        "latents": latents,
        "auto": auto,
        "answer_before": choices[int(np.argmax(before))],
        "answer_after": choices[int(np.argmax(after))],
        "largest_change": float(result.delta.abs().max()),
    }


def default_concept(model_name: str, image: str | None = None) -> str:
    """The probe concept the Probes tab opens on: one that belongs to the loaded sample's task (``image`` a synthetic
    sample: :func:`synthetic_sample_for`), else the first that belongs to a task the model was fine-tuned on
    (``count`` otherwise)."""
    sample = synthetic_sample_for(image) if image else None
    if sample is not None:
        for name in builtin_specs():
            spec = ConceptSpec.load(name)
            if sample.task in (spec.tasks or ()) and concept_value(spec, sample) is not None:
                return name
    trained = POOL.get(model_name).config.training.get("tasks", "all")
    try:
        tasks = set(resolve_tasks(trained))
    except LIVRError:  # e.g. a perception-pretrained backbone
        tasks = set()
    for name in builtin_specs():
        if set(ConceptSpec.load(name).tasks or ()) & tasks:
            return name
    return "count"


def concept_value(spec: ConceptSpec, sample) -> str | None:
    """The sample's own value of the concept (None: the concept does not apply to it, e.g. a CSV concept or a key
    its task does not carry)."""
    if sample is None or not spec.source.startswith("concept:"):
        return None
    value = sample.concepts.get(spec.source.split(":", 1)[1])
    return None if value is None or value == "" else str(value)


def probe_baseline_line(report: ProbeReport) -> str:
    """The best probe's accuracy beside every baseline (:func:`~livr_viz.methods.probes.probe_baselines`), Markdown."""
    best = report.layers[report.best_layer]
    parts = [f"{name} {value:.3f}" for name, value in probe_baselines(report).items()]
    return f"latents **{best['latent_pooled']['accuracy']:.3f}** (margin {probe_margin(best):.3f}) vs " + " · ".join(
        parts
    )


def probe_caveat(report: ProbeReport) -> str:
    """A warning (Markdown) when the latents' best probe does not beat the best of its baselines (majority class,
    control task, image tokens, text tokens, random-weight model) by the documented margin
    (:func:`~livr_viz.methods.probes.probe_margin`: 2 points or one standard error, whichever is larger): its
    reading then says nothing about what the latents themselves encode."""
    weak = weak_baselines(report)
    if not weak:
        return ""
    best = report.layers[report.best_layer]
    failed = " or ".join(f"the {name} ({value:.3f})" for name, value in weak.items())
    return (
        f"\n\n> ⚠ The latents' probe ({best['latent_pooled']['accuracy']:.3f}) does not beat {failed} by more than "
        f"{probe_margin(best):.3f}: its reading says nothing about what the latents themselves encode."
    )


def load_upload(path: str | Path) -> Image.Image:
    """An uploaded image, decoded once and downscaled to :data:`VIEW_MAX_SIDE` (errors name its base name)."""
    return load_image(path, max_side=VIEW_MAX_SIDE)


def analysis_for(model_name: str, image_path: str | None, prompt: str, stage: str = "full"):
    """Cached :func:`~livr_viz.methods.analysis.run_analysis` for this input."""
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


def heatmap_tiles(
    analysis,
    layers=None,
    heads=None,
    aggregation="mean",
    normalisation="per_latent",
    opacity: float = 0.55,
    evidence: np.ndarray | None = None,
    size: int = 192,
    font_size: int | None = None,
) -> list[tuple[Image.Image, str]]:
    """(tile, caption) per latent (or the answer row for sft): crisp patch grid, colour bar with the scale, the
    row's image / text / latent split, and with ``evidence`` its outline, the row's attention mass inside it beside
    its chance level (the evidence's share of the image) and the lift (mass / area: 1.0 = chance); ``size`` px
    wide, labels at ``font_size`` (:func:`attention_tile`)."""
    maps = analysis.latent_maps(layers, heads, aggregation, normalisation)
    raw = analysis.latent_maps(layers, heads, aggregation, "none")
    split = analysis.row_split(layers, heads)
    label = "latent" if analysis.n_latents else "answer row"
    scores = evidence_scores(maps, evidence, raw) if evidence is not None else None
    tiles = []
    for i, m in enumerate(maps):
        scale = float(raw[i].max()) if normalisation == "per_latent" else float(raw.max())
        caption = f"{label} {i} · image {100 * split[i][0]:.0f}%"
        if scores is not None:
            caption += (
                f" · in evidence {100 * scores['mass_in_evidence'][i]:.0f}% of "
                f"{100 * scores['evidence_area_fraction']:.0f}% area · lift {scores['lift'][i]:.2f}"
            )
        tiles.append(
            (
                attention_tile(
                    analysis.image, m, scale, normalisation, split[i], evidence, opacity, size, font_size=font_size
                ),
                caption,
            )
        )
    return tiles


def pointing_chance(evidence: np.ndarray, grid: tuple[int, int]) -> float:
    """The pointing game's chance level: the share of patches at least half covered by the evidence (a peak put on a
    random patch hits that often), beside every pointing-game number."""
    return float((evidence_on_grid(evidence, grid) >= 0.5).mean())


def answer_format_of(model_name: str) -> str:
    """The answer format (``word`` | ``letter``) the model was trained in: the app's questions follow it."""
    return POOL.get(model_name).config.answer_format


def new_sample(task: str, out_dir: str | Path, index: int | None = None, answer_format: str = "word", seed: int = 777):
    """A fresh synthetic sample saved as ``<id>.png`` (so its evidence can be found again); returns (path, prompt)."""
    resolve_tasks([task])
    index = int(time.time_ns() % 1_000_000) if index is None else index
    sample = make_sample(task, "test", seed, index, answer_format=answer_format)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{sample.id}.png"
    sample.image.save(path)
    return str(path), sample.prompt


def task_templates(answer_format: str = "word") -> dict[str, str]:
    """A prompt template per task (the question of its first test sample, with its options in ``answer_format``)."""
    return {t: make_sample(t, "test", 0, 0, answer_format=answer_format).prompt for t in task_names()}


def photo_prompt(answer_format: str = "word") -> str:
    """The question asked of the bundled photos, in the model's answer format."""
    return format_prompt("Is there a person in the image?", ["yes", "no"], answer_format)


# the app's first example and default task: the task the shipped nine-task models answer best (RESULTS.md: LIVR
# 78.2 % on 500 test questions, and blinding its latents costs it 21 points), so the first thing a user runs is a
# trained read-out, not one at chance; the sample itself is the task's first test sample, like every other example
LEAD_TASK = "art_style"


def example_tasks() -> list[str]:
    """The tasks in the example gallery's order: ``LEAD_TASK`` first, then the suite's order."""
    return [LEAD_TASK] + [t for t in task_names() if t != LEAD_TASK]


def ensure_examples() -> list[str]:
    """Example gallery files: one word-format synthetic sample per task (the demo models' format; ``LEAD_TASK``
    first) plus the bundled photos. The task samples ship in ``assets/examples``; one that is missing there is drawn
    into the scratch directory instead (the package never writes into its own folder at run time)."""
    paths = []
    for task in example_tasks():
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
    """The app's working folder (exports, drawn samples, retrained probes, projection caches): the user's cache."""
    return cache_dir("app")


def analyze(
    lm,
    image,
    prompt: str,
    out_dir: Path,
    stage: str = "full",
    evidence: np.ndarray | None = None,
    layers=None,
    heads=None,
    aggregation: str = "mean",
    tokenmap: bool = True,
) -> dict:
    """Write the default figures + ``report.json`` for one input; returns the report dict."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LIVRError(f"cannot create output directory {out_dir}: {exc.strerror}") from None
    a = run_analysis(lm, image, prompt, stage)
    report: dict = {
        "model_variant": a.variant,
        "n_latents": a.n_latents,
        "stage": stage,
        "prompt": a.prompt,
        "notes": a.notes,
        "attention_implementation": base_attn_implementation(lm.base_model),
        "answer": a.answer,
        "choice_probs": a.choice_probs,
        "input_notes": input_notes(lm, a.image),  # a tiny image, a photo: said beside the answer
        "segment_attention": a.segment_attention("latent"),
        "answer_segment_attention": a.segment_attention("answer"),
        "latent_image_attention_shape": None,
        "figures": {},
    }
    shown = display_image(a.image)
    if a.grid is not None:
        maps = a.latent_maps(layers, heads, aggregation)
        report["latent_image_attention_shape"] = list(maps.shape)
        report["top_regions"] = top_regions(maps)
        label = "latent" if a.n_latents else "answer row"
        fig = latent_grid_figure(
            shown,
            maps,
            title=f"{a.variant}: {label}→image attention ({aggregation}, {stage})",
            labels=[f"{label} {i}" for i in range(len(maps))],
            columns=9,
        )
        report["figures"]["latent_heatmaps"] = save_figure(fig, out_dir / "latent_heatmaps.png")
        if evidence is not None:
            report["faithfulness"] = evidence_scores(maps, evidence, a.latent_maps(layers, heads, aggregation, "none"))
    else:
        report["heatmap_error"] = a.grid_error
    if a.n_latents:
        values = a.answer_latent_attention(layers, heads)
        report["answer_latent_attention"] = [float(v) for v in values]
        report["figures"]["answer_latents"] = save_figure(answer_latent_figure(values), out_dir / "answer_latents.png")
    elif a.grid is not None:
        answer_map = a.answer_image_map(layers, heads, aggregation)
        Image.fromarray(overlay(shown, answer_map)).save(out_dir / "answer_image.png")
        report["figures"]["answer_image"] = str(out_dir / "answer_image.png")
    report["figures"]["mask"] = save_figure(mask_figure(a.segments, stage), out_dir / "mask.png")
    if tokenmap:
        layer = a.capture.hidden_states.shape[0] - 1
        points = points_from_capture(a.capture, layer, 0)
        xy = project(points.vectors, "tsne")
        figure = tokenmap_figure(points, xy, title=f"t-SNE of layer {layer} tokens")
        report["figures"]["token_map"] = save_figure(figure, out_dir / "token_map.png")
    with open(out_dir / "report.json", "w") as fh:
        json.dump(report, fh, indent=2)
    return report


# ----------------------------------------------------------------------------------------------- app actions
# Every action of the app as a plain function (the UI only maps their results onto components); all take model
# names and file paths, so they are callable from Python and tests exactly as the app calls them.
#
# Progress: every action that reports progress takes ONE kind of callback, ``progress(fraction, desc=None)`` — the
# fraction done in [0, 1] and, optionally, a line saying what runs now (keyword ``desc``). That is Gradio's
# ``gr.Progress`` call signature, so the app passes its ``gr.Progress`` object as it is; None reports nothing. The
# engine's own callbacks differ (``collect_features``: fraction only; ``methods.diagnostics.Progress``: (fraction,
# message); token maps and deletion curves: an iterable wrapper) and are adapted here, never in the UI.


def progress_callback(progress):
    """``progress`` (see above) as a callable that always takes ``(fraction, desc=None)``; None: a no-op."""
    if progress is None:
        return lambda fraction, desc=None: None
    return lambda fraction, desc=None: progress(float(fraction), desc=desc)


def progress_iterable(progress, desc: str):
    """The engine's iterable-wrapper kind of progress, driven by a service progress callback."""
    tick = progress_callback(progress)

    def wrap(iterable):
        items = list(iterable)
        for i, item in enumerate(items):
            tick(i / max(1, len(items)), desc=desc)
            yield item
        tick(1.0, desc=desc)

    return wrap


def lm_dims(model_name: str) -> tuple[int, int]:
    """(layers, heads) of the model's language model: the app's selector ranges."""
    cfg = POOL.get(model_name).base_model.config.get_text_config()
    return cfg.num_hidden_layers, cfg.num_attention_heads


def selection(model_name: str, layers: str | None, heads: str | None) -> tuple[list[int] | None, list[int] | None]:
    n_layers, n_heads = lm_dims(model_name)
    return parse_selection(layers, n_layers, "layers"), parse_selection(heads, n_heads, "heads")


def probs_frame(probs: dict) -> pd.DataFrame:
    return pd.DataFrame({"choice": list(probs), "probability": [round(v, 4) for v in probs.values()]})


def attention_view(model, image, prompt, stage, layers, heads, aggregation, normalisation, opacity) -> dict:
    """The Attention tab: answer, choice probabilities, one heatmap tile per latent, answer → latent bars. Cached
    with the analysis: the same input and view settings again cost a lookup, not a re-render."""
    key = (
        model,
        image_digest(image) if image else None,
        prompt,
        stage,
        layers,
        heads,
        aggregation,
        normalisation,
        float(opacity),
    )
    cached = VIEWS.get(key)
    return (
        cached
        if cached is not None
        else VIEWS.put(
            key, _attention_view(model, image, prompt, stage, layers, heads, aggregation, normalisation, opacity)
        )
    )


def _attention_view(model, image, prompt, stage, layers, heads, aggregation, normalisation, opacity) -> dict:
    a = analysis_for(model, image, prompt, stage)
    lay, hd = selection(model, layers, heads)
    sample = synthetic_sample_for(image, prompt)
    tiles = heatmap_tiles(
        a, lay, hd, aggregation, normalisation, opacity, evidence=sample.evidence if sample is not None else None
    )
    bars = a.answer_latent_attention(lay, hd)
    frame = pd.DataFrame({"latent": [f"{i:02d}" for i in range(len(bars))], "attention": bars.astype(float)})
    notes = "".join(f"\n\n> note: {escape_markdown(n)}" for n in a.notes)
    shown = escape_markdown(a.answer) if a.answer else "(no answer: the model ended at once)"
    kind = "" if a.choice_probs else " (free-form, greedy)"
    md = (
        f"### Answer: **{shown}**{kind}  \n{escape_markdown(display_name(model))} · stage `{stage}` · "
        f"K = {a.n_latents}{notes}"
    )
    if sample is not None:
        md += f"  \nsynthetic `{sample.task}` sample — ground truth **{sample.target}**"
    tiny = tiny_image_note(POOL.get(model), a.image)
    if tiny:
        md += f"\n\n> ⚠ tiny image: {escape_markdown(tiny)}"
    ood = ood_note(model, a)
    if ood:
        md += f"\n\n> ⚠ out of distribution: {escape_markdown(ood)}"
    md += backend_badge(model, a)
    return {
        "markdown": md,
        "choice_probs": a.choice_probs,
        "tiles": tiles,
        "answer_latent": frame,
        "image": display_image(a.image, 256),
    }


COMPARE_FONT = (
    22  # px: the Compare sheet (8 tiles of 192 px a row) is shown about half size, so its labels stay ≥ 11 px
)


def compare_view(selected, image, prompt, stage, aggregation, opacity) -> tuple[pd.DataFrame, Image.Image]:
    """The Compare tab: the model's trio side by side (answers, probabilities, evidence scores on a synthetic
    sample) and one sheet of their latent heatmaps (plus the ground-truth evidence)."""
    sample = synthetic_sample_for(image, prompt)
    rows, sheets = [], []
    for model in compare_set(selected):
        a = analysis_for(model, image, prompt, stage)
        tiles = heatmap_tiles(
            a,
            None,
            None,
            aggregation,
            "per_latent",
            opacity,
            evidence=sample.evidence if sample is not None else None,
            font_size=COMPARE_FONT,
        )
        sheets.append(
            montage(
                tiles,
                columns=8,
                tile=192,
                title=f"{display_name(model)} (per-latent scale: each tile 0 … its own maximum)",
                font_size=COMPARE_FONT,
            )
        )
        row = {"model": model, "answer": a.answer}
        if sample is not None:  # the evidence columns first: they are what the comparison is about
            maps = a.latent_maps(None, None, aggregation)
            raw = a.latent_maps(None, None, aggregation, "none")
            f = evidence_scores(maps, sample.evidence, raw)
            row.update(
                {
                    "truth": sample.target,
                    "mass in evidence": round(f["mean_mass_in_evidence"], 3),
                    "evidence area (chance)": round(f["evidence_area_fraction"], 3),
                    "lift": round(f["mean_lift"], 2),
                    "pointing game": round(f["pointing_game"], 2),
                    "pointing chance": round(pointing_chance(sample.evidence, maps.shape[1:]), 2),
                }
            )
        row.update({f"p({k})": round(v, 3) for k, v in a.choice_probs.items()})
        rows.append(row)
    if sample is not None:
        sheets.append(
            montage(
                [(evidence_overlay(sample.image, sample.evidence), "evidence")],
                columns=8,
                tile=192,
                title="ground-truth evidence",
                font_size=COMPARE_FONT,
            )
        )
    return pd.DataFrame(rows), stack(sheets, top=24)


TOKEN_MAP_SAMPLES = (2, 60)  # dataset scope: samples per map (each adds ~100 tokens to project)


def token_map_view(model, image, prompt, stage, method, layer, scope, n_samples, color_by, progress=None):
    """The Token map tab: a projection of one layer's hidden states, for this image or for N synthetic samples."""
    n_layers, _ = lm_dims(model)
    layer = int(layer)
    if not 0 <= layer <= n_layers:
        raise LIVRError(f"layer must be in 0..{n_layers}")
    if scope == "this image":  # with the model's answer appended: its answer tokens are points too
        a = analysis_for(model, image, prompt, stage)
        lm = POOL.get(model)
        batch = lm.build_inputs([a.image], [prompt], [a.answer] if a.answer else None)
        rows = (batch.answer_start - 1).unsqueeze(1)
        points = points_from_capture(LatentAttention(lm, rows=rows, hidden_states=True).run(batch, stage), layer, 0)
        color_by = "segment"
    else:
        items = token_map_items(model, n_samples)
        points = dataset_points(
            POOL.get(model),
            items,
            layer,
            stage,
            answers=True,
            progress=progress_iterable(progress, "capturing hidden states"),
        )
        if color_by != "segment" and color_by not in points.labels:
            keys = sorted(k for k in points.labels if k not in ("sample", "position", "task"))
            raise LIVRError(f"colour by {color_by!r} is not available; try segment, task or {', '.join(keys[:6])}")
    xy = project(points.vectors, method, cache_dir=scratch_dir() / "projections")
    return tokenmap_figure_plotly(points, xy, color_by, f"{method} of layer {layer} hidden states ({scope})")


def token_map_item(index: int) -> tuple[str, str, int, int]:
    """(task, split, seed, index) of the dataset token map's ``index``-th sample: the tasks in turn."""
    tasks = task_names()
    return tasks[index % len(tasks)], "test", 0, index // len(tasks)


def token_map_items(model: str, n_samples) -> list:
    """The dataset token map's first ``n_samples`` samples, in the model's answer format."""
    n = int(n_samples)
    if not TOKEN_MAP_SAMPLES[0] <= n <= TOKEN_MAP_SAMPLES[1]:
        raise LIVRError(f"dataset size must be between {TOKEN_MAP_SAMPLES[0]} and {TOKEN_MAP_SAMPLES[1]} samples")
    return [make_sample(*token_map_item(i), answer_format=answer_format_of(model)) for i in range(n)]


def token_map_sample(model: str, index) -> tuple[str, str]:
    """Linked views: the dataset token map's sample ``index`` (or ``"index:nonce"`` from a click) as the app's input
    (path, prompt)."""
    try:
        index = int(str(index).split(":")[0])
    except ValueError:
        raise LIVRError(f"not a sample index: {index!r}") from None
    if not 0 <= index < TOKEN_MAP_SAMPLES[1]:
        raise LIVRError(f"sample index must be in 0..{TOKEN_MAP_SAMPLES[1] - 1}")
    task, _, seed, i = token_map_item(index)
    return new_sample(task, scratch_dir() / "samples", i, answer_format_of(model), seed=seed)


PROBE_TRAIN_SAMPLES = 120  # per task, when the app trains a probe that is not bundled
PROBE_TIMING_ITEMS = 8
PROBE_COST_FACTOR = 5.0


def probe_training_estimate(lm, items, stage: str = "full") -> float:
    """Seconds to train a concept's probes on ``items``, from one timed forward of a few of them, scaled by
    ``PROBE_COST_FACTOR``: the hidden states are collected twice (the model and the random-weight baseline) and the
    cross-validated fits of the concept, its control task and the baselines at every layer cost about as much
    again (measured on demo-latents-only: 41 s for a forward-time extrapolation of 7.7 s)."""
    few = [items[i] for i in range(min(PROBE_TIMING_ITEMS, len(items)))]
    start = time.perf_counter()
    LatentAttention(lm, rows="latent" if lm.config.n_latents else "answer").run(
        lm.build_inputs([it.image for it in few], [it.prompt for it in few]), stage
    )
    return PROBE_COST_FACTOR * (time.perf_counter() - start) * len(items) / len(few)


def probe_view(model, concept, image, prompt, stage, retrain, progress=None) -> dict:
    """The Probes tab: the concept's probes for this model (bundled, else trained now and cached), the accuracy per
    layer beside every baseline (majority, control task, image tokens, text tokens, random-weight model), a warning
    when the latents do not beat the best of them (:func:`probe_caveat`), and the best layer's reading of this
    image — only when the image is a synthetic sample that carries the concept (otherwise the Markdown says why).
    ``progress``: the service's one progress callback, ``progress(fraction, desc=None)``."""
    spec = ConceptSpec.load(concept)
    tick = progress_callback(progress)
    ACCESS.check(model)  # before any file is looked for under its name
    bundled = PROBES_DIR / model if model in DEMO_NAMES else None  # probes ship for bundled names only
    cache = scratch_dir() / "probes" / _cache_key(model)
    found = [
        d / f"{spec.name}_report.json"
        for d in (bundled, cache)
        if d is not None and (d / f"{spec.name}_report.json").is_file()
    ]
    report_path = max(found, key=lambda p: p.stat().st_mtime) if found else None  # the newest: bundled or retrained
    if retrain or report_path is None:
        if not POOL.get(model).config.n_latents:
            raise LIVRError(f"{display_name(model)} has no latents to probe (variant sft); pick a model with latents")
        items = SyntheticTaskDataset(
            spec.tasks or "all", "train", PROBE_TRAIN_SAMPLES, 0, answer_format=answer_format_of(model)
        )
        estimate = probe_training_estimate(POOL.get(model), items, stage)
        tick(0.0, desc=f"training probes on {len(items)} samples: about {estimate:.0f} s")
        start = time.perf_counter()
        report = run_probes(
            POOL.get(model),
            spec,
            items,
            cache,
            stage=stage,
            per_latent=True,
            progress=lambda fraction: tick(fraction, desc="collecting hidden states"),
        )
        save_probe_curves(report, cache)
        source = (
            f"trained now on {report.n} samples in {time.perf_counter() - start:.0f} s (estimated {estimate:.0f} s)"
        )
        folder = cache
    else:
        report = ProbeReport(**json.loads(report_path.read_text()))
        folder = report_path.parent
        source = (
            "bundled with livr-viz" if folder == bundled else "trained earlier on this server (cached)"
        ) + f", {report.n} samples"
    best = report.layers[report.best_layer]
    table = pd.DataFrame(
        [
            {
                "layer": r["layer"],
                "latents": round(r["latent_pooled"]["accuracy"], 3),
                "control": round(r["control"]["accuracy"], 3),
                "selectivity": round(r["selectivity"], 3),
                "image tokens": round(r["image_pooled"]["accuracy"], 3),
                "text tokens": round(r["text_pooled"]["accuracy"], 3),
                "random model": round(r.get("random_model", {}).get("accuracy", float("nan")), 3),
                "majority": round(report.majority, 3),
            }
            for r in report.layers
        ]
    )
    md = (
        f"**{spec.name}** — {escape_markdown(spec.description)}. Probes {source}. Best layer {report.best_layer}: "
        f"{probe_baseline_line(report)} (selectivity {best['selectivity']:+.3f})."
    )
    md += probe_caveat(report)
    reading = {}
    if image and prompt:
        sample = synthetic_sample_for(image)
        truth = concept_value(spec, sample)
        if truth is None:
            md += "\n\n" + _probe_not_read(spec, sample)
        else:
            reading = read_with_probe(
                POOL.get(model),
                Path(folder) / f"{spec.name}_layer{report.best_layer}",
                load_upload(image),
                prompt,
                stage,
            )
            md += (
                f"\n\nThis sample's true {spec.name}: **{escape_markdown(truth)}** (the probe's reading is in the "
                "panel beside this text)."
            )
    return {"markdown": md, "figure": probe_curves_figure(report), "table": table, "reading": reading}


def _probe_not_read(spec: ConceptSpec, sample) -> str:
    """Why a probe's reading of this image is not shown: the concept does not apply to it (a confident-looking
    class from a probe that was never trained on such an input would mislead)."""
    tasks = ", ".join(f"`{t}`" for t in spec.tasks) or "its data's"
    if sample is None:
        return (
            f"Not read out: this image is not one of the synthetic samples (a photo or an upload), and "
            f"**{spec.name}** is defined only on the {tasks} samples, so the probe's class would be a guess."
        )
    return (
        f"Not read out: this `{sample.task}` sample has no **{spec.name}** (it belongs to the {tasks} samples); "
        "pick a concept of this task or a sample of that task."
    )


def attribution_view(model, image, prompt, stage, target, method) -> tuple[Image.Image, pd.DataFrame, str]:
    """The Attribution tab: which pixels and which latents raise the target option's logit (Saliency or IG)."""
    a = analysis_for(model, image, prompt, stage)
    lm = POOL.get(model)
    target = attribution_target(target, a)
    attr = LatentAttribution(lm, method).run(lm.build_inputs([a.image], [prompt]), target, stage, grid=a.grid)
    pix = attr.pixels / (attr.pixels.max() or 1.0)
    shown = display_image(a.image, 256)
    heat = np.asarray(Image.fromarray((pix * 255).astype(np.uint8)).resize(shown.size)) / 255.0
    latents = attr.latents if attr.latents is not None else []
    frame = pd.DataFrame(
        {"latent": [f"{i:02d}" for i in range(len(latents))], "attribution": [float(v) for v in latents]}
    )
    md = f"Attribution of the logit of **{escape_markdown(target)}** ({method}). {attr.completeness_text}."
    if attr.warning:
        md += f"\n\n> ⚠ {attr.warning}"
    return Image.fromarray(overlay(shown, heat, 0.6)), frame, md


def ablation_panel(model, image, prompt, stage, latents, mode, layer) -> dict:
    """The Ablation tab: :func:`ablation_view` for the analysed input, with its bars and its Markdown."""
    lm = POOL.get(model)
    if not lm.config.n_latents:
        raise LIVRError(
            f"{display_name(model)} has no latents to ablate (variant sft); pick demo-livr or demo-latents-only"
        )
    a = analysis_for(model, image, prompt, stage)
    r = ablation_view(lm, a, [int(v) for v in (latents or [])], mode, int(layer), lm_dims(model)[0])
    labels = [f"{c} · {when}" for c in r["choices"] for when in ("before", "after")]
    bars = pd.DataFrame(
        {
            "choice": labels,
            "probability": [p for pair in zip(r["before"], r["after"]) for p in pair],
            "when": ["before", "after"] * len(r["choices"]),
        }
    )
    effects = pd.DataFrame({"latent": [f"{i:02d}" for i in range(len(r["effects"]))], "change": r["effects"]})
    how = " (none ticked: the latent whose removal moves the answer most)" if r["auto"] else ""
    md = (
        f"Switching off latents {r['latents']}{how} ({mode}, layer {layer}): answer "
        f"**{escape_markdown(r['answer_before'])} → {escape_markdown(r['answer_after'])}**; largest probability "
        f"change {r['largest_change']:.3f}."
    )
    return {"markdown": md, "bars": bars, "order": labels, "effects": effects}


def mask_view(model, image, prompt, stage):
    """The How-it-works tab: the attention mask of this very input at ``stage``, its answer tokens included."""
    return mask_figure(answered_segments(model, image, prompt, stage), stage)


def record_view(
    views: dict | None, tab: str, settings: dict, figures: dict | None = None, numbers: dict | None = None
) -> dict:
    """A session's record of a tab it ran (what Export writes): a new dict, ``views`` untouched. ``figures``: name →
    PIL image, matplotlib or plotly figure; ``numbers``: name → anything JSON-able or a DataFrame."""
    return {**(views or {}), tab: {"settings": settings, "figures": figures or {}, "numbers": numbers or {}}}


def _export_files(prefix: str, figures: dict) -> dict:
    files = {}
    for name, fig in figures.items():
        if isinstance(fig, Image.Image):
            files[f"{prefix}{name}.png"] = fig
        elif hasattr(fig, "to_html"):  # plotly: interactive, plotly.js inside (opens offline)
            files[f"{prefix}{name}.html"] = fig.to_html(include_plotlyjs=True).encode()
        elif hasattr(fig, "savefig"):
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=110)
            files[f"{prefix}{name}.png"] = buf.getvalue()
    return files


def _jsonable(value):
    if isinstance(value, pd.DataFrame):
        return value.to_dict(orient="records")
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def export_view(
    model, image, prompt, stage, layers, heads, aggregation, normalisation, opacity, views: dict | None = None
) -> str:
    """A zip of the attention view (figures, report.json with the numbers, settings.json) and of every other tab
    this session ran (``views`` from :func:`record_view`: ``TAB/…`` figures, ``report.json["tabs"][TAB]`` numbers,
    ``settings.json["tabs"][TAB]`` settings); returns its path."""
    a = analysis_for(model, image, prompt, stage)
    lay, hd = selection(model, layers, heads)
    sample = synthetic_sample_for(image, prompt)
    tiles = attention_view(model, image, prompt, stage, layers, heads, aggregation, normalisation, opacity)["tiles"]
    files = {
        "image.png": a.image,
        "latent_heatmaps.png": montage(tiles, title=f"{display_name(model)} {stage} {aggregation}"),
    }
    files.update({f"latents/{caption.split(' · ')[0].replace(' ', '_')}.png": img for img, caption in tiles})
    report = {
        "answer": a.answer,
        "choice_probs": a.choice_probs,
        "segment_attention": a.segment_attention("latent"),
        "answer_latent_attention": a.answer_latent_attention(lay, hd).tolist(),
        "latent_image_attention_shape": list(a.latent_maps(lay, hd, aggregation).shape),
        "notes": a.notes,
        "tile_captions": [caption for _, caption in tiles],
        "tabs": {},
    }
    if sample is not None:
        report["sample"] = {"id": sample.id, "truth": sample.target, "concepts": sample.concepts}
    settings = {
        "model": model,
        "prompt": prompt,
        "stage": stage,
        "layers": layers,
        "heads": heads,
        "aggregation": aggregation,
        "normalisation": normalisation,
        "opacity": opacity,
        "image_sha1": image_digest(image),
        "reproduce": f"livr-viz analyze --model {display_name(model)} --image IMAGE "
        f"--prompt '...' --stage {stage} --aggregation {aggregation} --out DIR",
        "tabs": {},
    }
    for tab, view in (views or {}).items():
        files.update(_export_files(f"{tab}/", view["figures"]))
        report["tabs"][tab] = _jsonable(view["numbers"])
        settings["tabs"][tab] = view["settings"]
    return export_zip(files, report, settings, scratch_dir() / "exports")


def example_pick(model: str, index: int) -> tuple[str, str]:
    """The gallery's ``index``-th example and its question in the model's answer format."""
    path = ensure_examples()[index]
    sample = synthetic_sample_for(path)
    return path, (sample.prompt if sample is not None else photo_prompt(answer_format_of(model)))


_VERDICTS: dict[str, list[bool | None]] = {}


def example_verdicts(model: str) -> list[bool | None]:
    """Per gallery example: does ``model`` answer it right (True), wrong (False), or has it no ground truth (None,
    the photos)? The question is the one a click on the example loads (:func:`example_pick`), at stage ``full``;
    computed once per model (each example's analysis is cached too, so a click then Run costs nothing more)."""
    name = (model or "demo-livr").strip()
    if name not in _VERDICTS:
        verdicts = []
        for i, path in enumerate(ensure_examples()):
            sample = synthetic_sample_for(path)
            if sample is None:
                verdicts.append(None)
                continue
            _, prompt = example_pick(name, i)
            verdicts.append(analysis_for(name, path, prompt, "full").answer.strip() == str(sample.target))
        _VERDICTS[name] = verdicts
    return _VERDICTS[name]


ENLARGED_TILE = 576  # px: an enlarged tile is drawn again at this width (three times the gallery's 192-px tiles)


def enlarged_tile(
    model,
    image,
    prompt,
    stage,
    layers,
    heads,
    aggregation,
    normalisation,
    opacity,
    index: int,
    size: int = ENLARGED_TILE,
) -> tuple[Image.Image, str]:
    """The Attention tab's ``index``-th tile redrawn at ``size`` px (patch grid, evidence outline, colour bar and
    split bar at that resolution, labels in a matching font), not the gallery's 192-px tile upscaled; with its
    caption."""
    a = analysis_for(model, image, prompt, stage)
    lay, hd = selection(model, layers, heads)
    sample = synthetic_sample_for(image, prompt)
    tiles = heatmap_tiles(
        a,
        lay,
        hd,
        aggregation,
        normalisation,
        float(opacity),
        evidence=sample.evidence if sample is not None else None,
        size=size,
        font_size=max(12, size // 32),
    )
    if not 0 <= int(index) < len(tiles):
        raise LIVRError(f"no tile {index}: this view has {len(tiles)}")
    return tiles[int(index)]


def answered_segments(model, image, prompt, stage):
    """The input's segments with the model's answer appended (image · prompt · latents · answer tokens), so the
    mask and the token map show the answer rows the legend names — as training and scoring see them."""
    a = analysis_for(model, image, prompt, stage)
    return POOL.get(model).build_inputs([a.image], [prompt], [a.answer] if a.answer else None).segments[0]


def warm_up() -> None:
    """Compile UMAP once (numba), off the request path."""
    warm_up_umap()


DATASET_VIEW_SAMPLES = (2, 64)


def dataset_view(model, task, n, stage="full", aggregation="mean", seed: int = 0) -> dict:
    """The Attention tab's dataset view: one example can mislead, so each latent's map averaged over ``n`` fresh
    samples of ``task`` (drawn over the mean evidence of those samples, its ≥ 50 % region outlined), and per
    latent its mean attention mass inside the evidence, lift (mass / evidence area; 1.0 = no better than
    uniform) and pointing-game hit rate."""
    n = int(n)
    if not DATASET_VIEW_SAMPLES[0] <= n <= DATASET_VIEW_SAMPLES[1]:
        raise LIVRError(f"samples must be between {DATASET_VIEW_SAMPLES[0]} and {DATASET_VIEW_SAMPLES[1]}")
    resolve_tasks([task])
    lm = POOL.get(model)
    items = [make_sample(task, "test", seed, i, answer_format=lm.config.answer_format) for i in range(n)]
    maps = heatmaps_for(lm, items, stage, aggregation)
    scores = [evidence_scores(m, it.evidence, raw) for it, (m, raw) in zip(items, maps)]
    k = len(maps[0][0])
    mean_raw = np.mean([raw for _, raw in maps], axis=0)  # [K, rows, cols]
    density = np.mean([it.evidence for it in items], axis=0)  # [H, W]: how often each pixel is evidence
    background = Image.fromarray((255 - 120 * density).astype(np.uint8)).convert("RGB")
    label = "latent" if lm.config.n_latents else "answer row"

    def mean_of(key: str, i: int, digits: int) -> float:
        return round(float(np.mean([s[key][i] for s in scores])), digits)

    area = round(float(np.mean([s["evidence_area_fraction"] for s in scores])), 3)
    chance = round(float(np.mean([pointing_chance(it.evidence, maps[0][0].shape[1:]) for it in items])), 2)
    rows = [
        {
            label: f"{i:02d}",
            "mass in evidence": mean_of("mass_in_evidence", i, 3),
            "evidence area (chance)": area,
            "lift": mean_of("lift", i, 2),
            "pointing game": mean_of("pointing_hit", i, 2),
            "pointing chance": chance,
        }
        for i in range(k)
    ]
    top = float(mean_raw.max()) or 1.0
    tiles = [
        (
            attention_tile(background, mean_raw[i] / top, top, "global", None, density >= 0.5),
            f"{label} {i} · in evidence {100 * rows[i]['mass in evidence']:.0f}% of {100 * area:.0f}% area · "
            f"lift {rows[i]['lift']:.2f}",
        )
        for i in range(k)
    ]
    lift = float(np.mean([r["lift"] for r in rows]))
    md = (
        f"**{n} fresh `{task}` samples** (test split, seed {seed}), {escape_markdown(display_name(model))}, "
        f"stage `{stage}`: mean lift **{lift:.2f}** (1.0 = attention no more on the evidence than its area), mass "
        f"in evidence {np.mean([r['mass in evidence'] for r in rows]):.3f} over an evidence area of "
        f"{area:.3f} (its chance level); pointing game chance {chance:.2f}. Tiles: mean maps on one shared scale, "
        "over how often each pixel is evidence (darker = more often; outline: evidence in ≥ half the samples)."
    )
    return {"markdown": md, "tiles": tiles, "table": pd.DataFrame(rows)}


OOD_REFERENCE_SAMPLES = 54  # synthetic training images per model that define "like its training data"
OOD_MARGIN = 2.0  # more than this many times the most colourful reference image is out of distribution
_OOD_REFERENCES: dict[str, int] = {}


def distinct_colours(image: Image.Image, size: int = 96) -> int:
    """Distinct RGB values at ``size`` px: the synthetic suite draws flat colours (at most ~160 in a textured
    jigsaw, 2–15 elsewhere); photographs and JPEG-compressed copies have thousands."""
    pixels = np.asarray(image.convert("RGB").resize((size, size), Image.NEAREST)).reshape(-1, 3)
    return len(np.unique(pixels, axis=0))


def ood_note(model_name: str, analysis) -> str | None:
    """A warning beside the answer when the input is unlike the images the model was fine-tuned on (only for
    models trained on the synthetic suite): :func:`out_of_distribution_note` for a model of the pool."""
    return out_of_distribution_note(POOL.get(model_name), analysis.image, display_name(model_name))


def out_of_distribution_note(lm, image: Image.Image, name: str = "the model") -> str | None:
    """The test behind :func:`ood_note`: distinct colours, against the most colourful of ``OOD_REFERENCE_SAMPLES``
    training samples of the model's tasks times ``OOD_MARGIN``. (Pooled vision features did not separate photos from
    the suite for the demo models: their tiny tower maps both to similar tokens.) None for models not trained on
    the synthetic suite."""
    trained = lm.config.training.get("tasks")
    if not trained:
        return None
    try:
        tasks = resolve_tasks(trained)
    except LIVRError:  # perception-pretrained backbones and the like: no suite to compare with
        return None
    key = ",".join(tasks)  # the reference depends only on the tasks
    if key not in _OOD_REFERENCES:
        _OOD_REFERENCES[key] = max(
            distinct_colours(make_sample(tasks[i % len(tasks)], "train", 1, i // len(tasks)).image)
            for i in range(OOD_REFERENCE_SAMPLES)
        )
    reference, colours = _OOD_REFERENCES[key], distinct_colours(image)
    if colours <= OOD_MARGIN * reference:
        return None
    return (
        f"this image is unlike the synthetic images {name} was trained on ({colours:,} distinct colours at "
        f"96 px; its training images have at most {reference}): the answer and the maps say little about how "
        "the model reasons on its tasks"
    )


def patch_size_of(lm) -> int | None:
    """The vision tower's patch side in pixels (None when the config does not say)."""
    vision = getattr(lm.base_model.config, "vision_config", None)
    size = getattr(vision, "patch_size", None)
    return int(size) if isinstance(size, int) and size > 0 else None


def tiny_image_note(lm, image: Image.Image) -> str | None:
    """A warning when the input is smaller than one of the model's patches: the processor blows it up to the model's
    input size, so the answer and every map read interpolated pixels, not content (a 1 × 1 image is one colour)."""
    patch = patch_size_of(lm)
    if patch is None or min(image.size) >= patch:
        return None
    return (
        f"this image is {image.width} × {image.height} px, smaller than one {patch} × {patch} px patch of the "
        "model: it is stretched to the model's input size, so the answer and the maps read interpolated pixels, "
        "not picture content"
    )


def input_notes(lm, image: Image.Image, name: str = "the model") -> list[str]:
    """Every warning about the input itself (too small for a patch, unlike the training images), for the app's answer
    and the CLI's ``analyze`` alike."""
    return [note for note in (tiny_image_note(lm, image), out_of_distribution_note(lm, image, name)) if note]


# ------------------------------------------------------------------------------------------------ diagnosis
def stage1_checkpoint(name: str) -> Path | None:
    """The Stage-1 checkpoint saved beside a LIVR model (``tools/reproduce.py`` writes ``<run>/livr/stage1_model`` next
    to ``<run>/livr/model``), or inside it; None when there is none."""
    from livr_viz.core.refs import resolve_reference

    path = Path(resolve_reference(name)).expanduser()
    for candidate in (path.parent / "stage1_model", path / "stage1_model"):
        if (candidate / "livr_config.json").is_file() and candidate.resolve() != path.resolve():
            return candidate
    return None


def _named_models(names, verb: str, label=str) -> list[str]:
    """The model names a diagnosis or mediation call was given (one string or a list), stripped; none, an empty one or
    one named twice is a :class:`LIVRError` (``verb``: what the call does to them, ``label``: how a name is shown)."""
    names = [names] if isinstance(names, str) else [str(v).strip() for v in names or []]
    if not names or not all(names):
        raise LIVRError(f"name at least one model to {verb}")
    if len(set(names)) != len(names):
        raise LIVRError(f"a model is named twice: {', '.join(map(label, names))}")
    return names


def diagnose_models(
    names,
    tasks="all",
    n: int = 50,
    seed: int = 2026,
    out_json=None,
    out_html=None,
    progress=None,
    batch_size: int = 32,
    check_backends: bool = False,
    effect_per_task: int | None = 10,
    short_names: bool = False,
):
    """ "Is the model really using its latents?" for each named model on the same ``n`` test questions per task
    (:func:`~livr_viz.methods.diagnostics.diagnose`; ``effect_per_task`` of them per task for the per-latent
    effects, None = all); resumes from ``out_json`` when it exists, writes the HTML page to ``out_html``. A LIVR
    model's Stage-1 checkpoint (:func:`stage1_checkpoint`) is diagnosed with it. ``short_names``: the report names
    each model as :func:`display_name` does (the app: no server path). Returns the ``DiagnosticReport``."""
    from livr_viz.methods.diagnostics import diagnose
    from livr_viz.views.diagnostics import diagnostics_html

    names = _named_models(names, "diagnose", display_name)
    task_list = resolve_tasks(tasks)
    if int(n) < 1:
        raise LIVRError(f"n (test questions per task) must be at least 1; got {n}")
    if int(batch_size) < 1:
        raise LIVRError(f"batch size must be at least 1; got {batch_size}")
    label = display_name if short_names else (lambda name: name)
    if len({label(name) for name in names}) != len(names):
        raise LIVRError(f"two models share a name: {', '.join(map(label, names))}")
    models = {label(name): POOL.get(name) for name in names}
    formats = {name: lm.config.answer_format for name, lm in models.items()}
    if len(set(formats.values())) > 1:
        shown = ", ".join(f"{display_name(k)}: {v}" for k, v in formats.items())
        raise LIVRError(f"the models answer in different formats ({shown}): compare models trained in one format")
    items = SyntheticTaskDataset(task_list, "test", int(n), int(seed), answer_format=next(iter(formats.values())))
    stage1 = {
        label(name): POOL.get(str(path))
        for name in names
        if models[label(name)].config.variant == "livr"
        and (path := stage1_checkpoint(name)) is not None
        and ACCESS.allows(str(path))
    }
    report = diagnose(
        models,
        items,
        stage1,
        progress,
        out=out_json,
        batch_size=int(batch_size),
        effect_per_task=effect_per_task,
        backends=check_backends,
    )
    if out_html:
        Path(out_html).parent.mkdir(parents=True, exist_ok=True)
        Path(out_html).write_text(diagnostics_html(report))
    return report


GRID_CELL = 64  # px per thumbnail of the layer × head grid
GRID_LABEL = 14  # px above each thumbnail for its label


def layer_head_grid(model, image, prompt, stage="full", aggregation_rows: str = "latent") -> Image.Image:
    """BertViz-style thumbnails, one per (layer, head): the latents' mean map over the image in that layer and
    head (crisp patch grid, each on its own scale), labelled with the head's share of attention on the image.
    Click a thumbnail (:func:`layer_head_at`) to show that layer and head in the tiles."""
    a = analysis_for(model, image, prompt, stage)
    n_layers, n_heads = lm_dims(model)
    sheet = Image.new("RGB", (n_heads * GRID_CELL, n_layers * (GRID_CELL + GRID_LABEL)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for layer in range(n_layers):
        for head in range(n_heads):
            maps = a.latent_maps([layer], [head], "mean", "none").mean(0)
            share = float(a.row_split([layer], [head])[:, 0].mean())
            cell = grid_overlay(a.image, maps / (maps.max() or 1.0), size=GRID_CELL)
            x, y = head * GRID_CELL, layer * (GRID_CELL + GRID_LABEL)
            sheet.paste(cell, (x, y + GRID_LABEL))
            draw.text((x + 2, y + 1), f"L{layer} H{head} {100 * share:.0f}%", fill=(0, 0, 0))
    return sheet


def layer_head_at(model, x: float, y: float) -> tuple[str, str]:
    """The (layers, heads) selection text of the thumbnail at pixel (x, y) of :func:`layer_head_grid`."""
    n_layers, n_heads = lm_dims(model)
    layer, head = int(y // (GRID_CELL + GRID_LABEL)), int(x // GRID_CELL)
    if not (0 <= layer < n_layers and 0 <= head < n_heads):
        raise LIVRError("click inside the grid of thumbnails")
    return str(layer), str(head)


def patch_readers(model, image, prompt, stage, x: float, y: float, layers=None, heads=None) -> dict:
    """Reverse lookup (LVLM-Interpret's patch selector): the image patch under pixel (x, y) of the input as the
    app shows it (:func:`display_image` at 256 px), and how much each latent and the answer row attend to it
    (mean over the chosen layers and heads), strongest first, with the patch outlined on the image."""
    a = analysis_for(model, image, prompt, stage)
    if a.grid is None:
        raise LIVRError(a.grid_error or "no patch grid for this model")
    rows, cols = a.grid
    shown = display_image(a.image, 256).convert("RGB")
    r, c = int(y * rows // shown.height), int(x * cols // shown.width)
    if not (0 <= r < rows and 0 <= c < cols):
        raise LIVRError("click on the image")
    lay, hd = selection(model, layers, heads)
    maps = {f"latent {i:02d}": m for i, m in enumerate(a.latent_maps(lay, hd, "mean", "none"))} if a.n_latents else {}
    maps["answer row"] = a.answer_image_map(lay, hd, "mean", "none")
    readers = {name: float(m[r, c]) for name, m in maps.items()}
    frame = pd.DataFrame({"reader": list(readers), "attention": list(readers.values())})
    frame = frame.sort_values("attention", ascending=False, kind="stable").reset_index(drop=True)
    cell_w, cell_h = shown.width / cols, shown.height / rows
    ImageDraw.Draw(shown).rectangle(
        [c * cell_w, r * cell_h, (c + 1) * cell_w - 1, (r + 1) * cell_h - 1], outline=(0, 255, 255), width=2
    )
    top = frame.iloc[0]
    typical = float(maps[top["reader"]].mean()) or 1.0
    md = (
        f"Patch (row {r}, column {c}) of the {rows}×{cols} grid: read most by **{top['reader']}**, "
        f"{top['attention']:.4f} of its attention ({top['attention'] / typical:.1f}× its mean over the patches)."
    )
    return {"markdown": md, "readers": frame, "image": shown, "patch": (r, c)}


DIAGNOSTIC_SAMPLES = (2, 100)  # per task, in the app (the CLI takes any N)
DELETION_ITEMS = 3  # questions per model for the deletion / insertion curves in the app
DELETION_METHODS = ("latent_mean", "answer", "saliency", "random")  # IG costs ~20x more forwards: CLI only


def diagnostics_view(names, tasks="all", n=10, seed: int = 2026, progress=None) -> dict:
    """The Diagnostics tab: :func:`diagnose_models` on the chosen models, then the table (one row per model:
    the verdict, accuracy under each condition of the paper's table, answer → latent attention), the flow per
    layer, the per-latent effect-vs-attention scatter, deletion / insertion AUCs of each explanation on a few
    questions, and the redundancy of the first latent model's maps."""
    from livr_viz.views.deletion import deletion_summary_figure, summary_markdown
    from livr_viz.views.diagnostics import effect_attention_figure, flow_figure

    names = [names] if isinstance(names, str) else list(names or [])
    if not DIAGNOSTIC_SAMPLES[0] <= int(n) <= DIAGNOSTIC_SAMPLES[1]:
        raise LIVRError(
            f"questions per task must be between {DIAGNOSTIC_SAMPLES[0]} and {DIAGNOSTIC_SAMPLES[1]} "
            "in the app (`livr-viz diagnose` takes any number)"
        )
    tick = progress_callback(progress)
    report = diagnose_models(
        names,
        tasks,
        int(n),
        seed,
        progress=lambda f, m="": tick(0.8 * f, desc=m),
        effect_per_task=min(int(n), 10),
        short_names=True,
    )
    rows = []
    for name in map(display_name, names):
        table = report.section(name, "table")
        row = {"model": name, "uses its latents": table.get("verdict", {}).get("answer", "n/a")}
        for condition, value in table.get("conditions", {}).items():
            row[f"{condition} %"] = round(100 * value["average"]["mean"], 1)
        attention = table.get("answer_latent_attention")
        row["answer → latents"] = round(attention["average"]["mean"], 3) if attention else None
        rows.append(row)
    explanations = explanation_diagnostics(
        names, tasks, DELETION_ITEMS, seed, progress=lambda f, m="": tick(0.8 + 0.2 * f, desc=m)
    )
    redundancy, note = explanations["redundancy_figure"], explanations["redundancy_note"]
    summaries, picked = explanations["summaries"], explanations["items"]
    tick(1.0, desc="done")
    md = (
        "```\n" + "\n".join(report.summary_lines()) + "\n```\n\n" + f"Redundancy: {note}.\n\n"
        f"Deletion / insertion on {len(picked)} questions (occluded with the suite's mean colour; lower deletion "
        f"AUC / higher insertion AUC = more faithful):\n\n" + summary_markdown(summaries)
    )
    return {
        "markdown": md,
        "table": pd.DataFrame(rows),
        "flow": flow_figure(report),
        "effects": effect_attention_figure(report),
        "deletion": deletion_summary_figure(summaries),
        "redundancy": redundancy,
        "report": _without_paths(report.to_dict()),
    }


_SERVER_PATH = re.compile(r"(?<![\w.:/~])~?/(?:[\w.@+-]+/)*[\w.@+-]+/?")
_OBJECT_REPR = re.compile(r"<([\w.]+) object at 0x[0-9a-fA-F]+>")


def public_text(text: str) -> str:
    """A message fit to show a client: every absolute path shortened to its last component and object reprs
    (``<… object at 0x…>``) to their class name (the app's error toasts pass through here)."""
    text = _SERVER_PATH.sub(lambda m: Path(m.group(0).rstrip("/")).name or m.group(0), str(text))
    return _OBJECT_REPR.sub(lambda m: m.group(1).rsplit(".", 1)[-1], text)


def _without_paths(value):
    """``value`` (JSON-like) with every absolute path string shortened to its last component (a model's backbone
    folder, say): what the app hands the user names no server path."""
    if isinstance(value, str):
        return Path(value.rstrip("/")).name if value.startswith(("/", "~")) and "\n" not in value else value
    if isinstance(value, dict):
        return {k: _without_paths(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_without_paths(v) for v in value]
    return value


def backend_badge(model: str, analysis) -> str:
    """The attention kernel that produced this view, and a warning badge when the other available kernels
    (eager / sdpa) disagree on this very input above :data:`~livr_viz.methods.diagnostics.BACKEND_KL_TOLERANCE`
    / ``BACKEND_ATTENTION_TOLERANCE`` (real VLMs can: transformers issue 35749)."""
    from types import SimpleNamespace

    from livr_viz.methods.diagnostics import check_backends

    lm = POOL.get(model)
    check = check_backends(lm, [SimpleNamespace(image=analysis.image, prompt=analysis.prompt)])
    text = f"  \nattention kernel `{base_attn_implementation(lm.base_model)}`"
    if check.get("status") == "done" and check["warnings"]:
        text += "\n\n> ⚠ **attention kernels disagree on this input**: " + escape_markdown("; ".join(check["warnings"]))
    return text


def explanation_diagnostics(names, tasks="all", n_items: int = DELETION_ITEMS, seed: int = 2026, progress=None) -> dict:
    """How faithful each explanation is and how redundant the latents are, for ``diagnose`` and the Diagnostics
    tab: deletion / insertion AUCs of the latents' maps, the answer row's map, Saliency and a random order on
    ``n_items`` questions per model (IG costs ~20x more: ``methods.deletion.deletion_report`` has it), and the
    redundancy of the first latent model's maps on the first question. ``to_json`` is the JSON-able part."""
    from livr_viz.methods.deletion import deletion_report
    from livr_viz.methods.geometry import latent_redundancy
    from livr_viz.views.geometry import redundancy_figure

    names = [names] if isinstance(names, str) else list(names)
    if int(n_items) < 1:
        raise LIVRError(f"explanation questions must be at least 1; got {n_items}")
    tick = progress or (lambda fraction, message="": None)
    task_list = resolve_tasks(tasks)
    items = SyntheticTaskDataset(
        task_list,
        "test",
        -(-int(n_items) // len(task_list)),
        seed + 1,
        answer_format=POOL.get(names[0]).config.answer_format,
    )
    picked = [items[i] for i in range(min(int(n_items), len(items)))]
    summaries = []
    for k, name in enumerate(names):
        tick(k / (len(names) + 1), f"deletion curves: {display_name(name)}")
        summaries.append(
            deletion_report(
                POOL.get(name), picked, methods=DELETION_METHODS, n_steps=8, model=display_name(name)
            ).summary
        )
    latent_models = [name for name in names if POOL.get(name).config.n_latents]
    figure, note, numbers = None, "no model with latents: no redundancy matrix", None
    if latent_models:
        a = run_analysis(POOL.get(latent_models[0]), picked[0].image, picked[0].prompt)
        result = latent_redundancy(a.latent_maps(None, None, "mean", "none"))
        figure = redundancy_figure(result)
        note = (
            f"{display_name(latent_models[0])} on `{picked[0].id}`: effective number of distinct latents "
            f"{result.effective_number:.1f} of {len(result.iou)}, mean pairwise IoU {result.mean_pairwise_iou:.2f}"
        )
        numbers = {
            "model": latent_models[0],
            "item": picked[0].id,
            "effective_number": result.effective_number,
            "mean_pairwise_iou": result.mean_pairwise_iou,
            "clusters": result.clusters,
        }
    tick(1.0, "explanations done")
    return {
        "items": picked,
        "summaries": summaries,
        "redundancy_figure": figure,
        "redundancy_note": note,
        "to_json": _jsonable(
            {
                "items": [it.id for it in picked],
                "methods": list(DELETION_METHODS),
                "deletion": [asdict(s) for s in summaries],
                "redundancy": numbers,
            }
        ),
    }


def filmstrip_view(model, image, prompt, stage="full"):
    """Each latent's map across the layers (rows: latents, columns: layers), per-latent scale."""
    from livr_viz.methods.geometry import latent_maps_by_layer
    from livr_viz.views.geometry import filmstrip_figure

    a = analysis_for(model, image, prompt, stage)
    if not a.n_latents:
        raise LIVRError(f"{display_name(model)} has no latents (variant sft): no filmstrip")
    return filmstrip_figure(latent_maps_by_layer(a), display_image(a.image, 96))


def aligned_token_map(model, stage="full", method="pca", layer=None, n_samples=12, color_by="segment"):
    """The model's set (LIVR / latents-only / SFT) in ONE embedding of layer ``layer`` over ``n_samples`` synthetic
    samples, fitted once on the union, each panel printing its trustworthiness and seed-to-seed stability, so a
    difference between the variants is not an artefact of separate runs."""
    from livr_viz.methods.geometry import shared_projection
    from livr_viz.views.geometry import shared_projection_figure

    names = compare_set(model)
    items = token_map_items(names[0], n_samples)
    n_layers = lm_dims(names[0])[0]
    layer = n_layers if layer is None else int(layer)
    if not 0 <= layer <= n_layers:
        raise LIVRError(f"layer must be in 0..{n_layers}")
    points = {name: dataset_points(POOL.get(name), items, layer, stage) for name in names}
    projection = shared_projection(points, method, "joint")
    return shared_projection_figure(
        projection,
        color_by if color_by in ("segment", "task") else "segment",
        f"{method} of layer {layer}, one embedding for {', '.join(names)}",
    )


# ------------------------------------------------------------------------------------------- mediation (issue 43)
MEDIATION_SAMPLES = (2, 100)  # questions per task in the app (the CLI takes any N)
MEDIATION_CONTROL_SEED_OFFSET = 1  # control questions (latents of an unrelated task) come from seed + this


def mediate_models(
    names,
    tasks="all",
    n: int = 50,
    seed: int = 2026,
    out=None,
    progress=None,
    batch_size: int = 64,
    condition: str = "standard",
    latents=None,
):
    """Causal mediation X → Z → Y (:func:`~livr_viz.methods.mediation.mediate`) for each named model on the same
    ``n`` test questions per task; the ``control`` patch takes latents of one test question per suite task (another
    seed). ``out``: a directory for ``mediation.json``, ``parts/`` (resumable) and ``mediation.html``. Models without
    latents get an n/a entry; when no named model has latents the call fails with a clear message."""
    from livr_viz.methods.mediation import mediate
    from livr_viz.views.mediation import mediation_html

    names = _named_models(names, "measure")
    task_list = resolve_tasks(tasks)
    if int(n) < 2:
        raise LIVRError(f"n (test questions per task) must be at least 2 (a question needs a partner); got {n}")
    models = {name: POOL.get(name) for name in names}
    if not any(lm.config.n_latents for lm in models.values()):
        raise LIVRError(
            f"{', '.join(names)} {'has' if len(names) == 1 else 'have'} no latents (variant sft): there "
            "is no X → Z → Y to mediate; choose demo-livr or demo-latents-only"
        )
    formats = {name: lm.config.answer_format for name, lm in models.items()}
    if len(set(formats.values())) > 1:
        raise LIVRError(f"the models answer in different formats ({formats}): compare models trained in one format")
    fmt = next(iter(formats.values()))
    items = SyntheticTaskDataset(task_list, "test", int(n), int(seed), answer_format=fmt)
    controls = SyntheticTaskDataset(
        task_names(), "test", 1, int(seed) + MEDIATION_CONTROL_SEED_OFFSET, answer_format=fmt
    )
    report = mediate(
        models,
        [items[i] for i in range(len(items))],
        [controls[i] for i in range(len(controls))],
        progress,
        out=out,
        batch_size=int(batch_size),
        condition=condition,
        latents=latents,
    )
    if out is not None:
        Path(out, "mediation.html").write_text(mediation_html(report))
    return report


def mediation_view(names, task="all", n=10, seed: int = 2026, progress=None) -> dict:
    """The Diagnostics tab's Mediation section: :func:`mediate_models`, then per panel a figure and its numbers
    (input → latents, latents → answer, collapse), the verdicts and an export folder (JSON, HTML, PNGs, CSVs)."""
    from livr_viz.views.mediation import (
        collapse_figure,
        collapse_table,
        interchange_figure,
        interchange_table,
        mediation_html,
        sensitivity_figure,
        sensitivity_table,
    )

    if not MEDIATION_SAMPLES[0] <= int(n) <= MEDIATION_SAMPLES[1]:
        raise LIVRError(
            f"questions per task must be between {MEDIATION_SAMPLES[0]} and {MEDIATION_SAMPLES[1]} in the "
            "app (`livr-viz mediate` takes any number)"
        )
    tick = progress or (lambda fraction, desc=None: None)
    out = scratch_dir() / f"mediation-{int(time.time() * 1000)}"
    report = mediate_models(
        names, task or "all", int(n), seed, out=out, progress=lambda f, m="": tick(0.95 * f, desc=m)
    )
    # what the app hands the user names no server path: models by their display names, paths shortened
    report.models = {display_name(k): _without_paths(v) for k, v in report.models.items()}
    report.save(out / "mediation.json")
    (out / "mediation.html").write_text(mediation_html(report))
    md = "\n".join(
        f"- **{escape_markdown(display_name(name))}**: "
        + (
            "; ".join(escape_markdown(v) for v in report.result(name)["verdict"])
            if report.result(name)["status"] == "done"
            else "n/a — " + escape_markdown(report.result(name)["reason"])
        )
        for name in report.models
    )
    figures = {
        "sensitivity": sensitivity_figure(report),
        "interchange": interchange_figure(report),
        "collapse": collapse_figure(report),
    }
    tables = {
        "sensitivity": sensitivity_table(report),
        "interchange": interchange_table(report),
        "collapse": collapse_table(report),
    }
    for key, fig in figures.items():
        fig.savefig(out / f"{key}.png", dpi=100)
        tables[key].to_csv(out / f"{key}.csv", index=False)
    tick(1.0, desc="done")
    return {
        "markdown": md,
        "figures": figures,
        "tables": tables,
        "report": report.to_dict(),
        "files": {key: str(out / f"{key}.png") for key in figures}
        | {f"{key}_csv": str(out / f"{key}.csv") for key in tables}
        | {"json": str(out / "mediation.json"), "html": str(out / "mediation.html")},
    }


def swap_latents_view(model, image, prompt, stage="full", seed: int = 777) -> dict:
    """The Latent attention tab's one-click swap: this question run with the latents (every layer) of another
    sample's — of the same task with another correct answer when the input is a synthetic sample, else the lead
    task's first test sample — and the answer before and after."""
    from types import SimpleNamespace

    from livr_viz.methods.analysis import parse_choices
    from livr_viz.methods.mediation import interchange

    lm = POOL.get(model)
    if not lm.config.n_latents:
        raise LIVRError(f"{model} has no latents (variant sft): there are no latents to swap")
    if not image:
        raise LIVRError("choose an image first")
    options = parse_choices(prompt or "")
    if not options:
        raise LIVRError(
            "the swap compares the answer's options: ask a question with options (e.g. 'Options: red, blue.')"
        )
    fmt = lm.config.answer_format
    own = synthetic_sample_for(image, prompt)
    task = own.task if own is not None else LEAD_TASK
    candidates = (make_sample(task, "test", seed, i, answer_format=fmt) for i in range(1, 50))
    source = next(s for s in candidates if own is None or s.answer != own.answer)
    target = SimpleNamespace(
        id="input", task=task, image=load_upload(image), prompt=prompt, options=options, answer="A"
    )
    out = interchange(
        lm, [target], [source], "latents", condition="bottleneck" if stage == "bottleneck" else "standard"
    )
    before, after = out["before"][0], out["after"][0]
    source_answer = source.options[int(out["source_before"][0].argmax())]
    frame = pd.DataFrame(
        {
            "option": options,
            "before %": [round(100 * float(p), 1) for p in before],
            "after %": [round(100 * float(p), 1) for p in after],
        }
    )
    answer_before, answer_after = options[int(before.argmax())], options[int(after.argmax())]
    md = (
        f"**Answer before: {escape_markdown(answer_before)} → after the swap: {escape_markdown(answer_after)}** "
        f"({'changed' if answer_before != answer_after else 'unchanged'}). The latents (all {lm.config.n_latents}, "
        f"every layer) came from `{source.id}` (task {task}), which the model answers "
        f"**{escape_markdown(source_answer)}** (correct: {escape_markdown(source.target)})."
    )
    return {
        "markdown": md,
        "table": frame,
        "source_image": source.image,
        "source_id": source.id,
        "before": answer_before,
        "after": answer_after,
    }


def model_has_latents(name: str) -> bool:
    """Whether ``name`` has latents, read from its ``livr_config.json`` without loading it (a plain VLM is wrapped
    with latents by default)."""
    from livr_viz.core.config import LIVRConfig
    from livr_viz.core.model import CONFIG_NAME
    from livr_viz.core.refs import resolve_reference

    try:
        path = Path(resolve_reference(name)) / CONFIG_NAME
    except LIVRError:
        return False
    return LIVRConfig.from_json(path.read_text()).n_latents > 0 if path.is_file() else True

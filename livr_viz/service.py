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
from livr_viz.core.config import STAGES  # noqa: F401 - part of the service API
from livr_viz.core.errors import LIVRError
from livr_viz.core.fsutil import cache_dir
from livr_viz.core.images import load_image
from livr_viz.core.model import load_model
from livr_viz.data import TASKS, make_sample, resolve_tasks, task_names
from livr_viz.data.dataset import SyntheticTaskDataset
from livr_viz.data.tasks import format_prompt
from livr_viz.demo.bundled import DEMO_MODELS, DEMO_SETS, EXAMPLES_DIR  # noqa: F401 - part of the service API
from livr_viz.methods.analysis import run_analysis
from livr_viz.methods.attribution import LatentAttribution
from livr_viz.methods.faithfulness import evidence_scores, heatmaps_for
from livr_viz.methods.heatmaps import top_regions
from livr_viz.methods.interventions import (
    ABLATIONS,  # noqa: F401 - part of the service API
    LatentAblation,
    per_latent_effects,
)
from livr_viz.methods.probes import PROBES_DIR, ConceptSpec, ProbeReport, builtin_specs, read_with_probe, run_probes
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


class ModelPool:
    """Load each model once per process; afterwards shared read-only by every session."""

    def __init__(self):
        self._models: dict[str, object] = {}
        self._lock = threading.Lock()

    def get(self, name: str):
        name = (name or "demo-livr").strip()
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


def heatmap_tiles(analysis, layers=None, heads=None, aggregation="mean", normalisation="per_latent",
                  opacity: float = 0.55, evidence: np.ndarray | None = None) -> list[tuple[Image.Image, str]]:
    """(tile, caption) per latent (or the answer row for sft): crisp patch grid, colour bar with the scale, the
    row's image / text / latent split, and with ``evidence`` its outline and the row's attention mass inside it."""
    maps = analysis.latent_maps(layers, heads, aggregation, normalisation)
    raw = analysis.latent_maps(layers, heads, aggregation, "none")
    split = analysis.row_split(layers, heads)
    label = "latent" if analysis.n_latents else "answer row"
    inside = evidence_scores(maps, evidence, raw)["mass_in_evidence"] if evidence is not None else None
    tiles = []
    for i, m in enumerate(maps):
        scale = float(raw[i].max()) if normalisation == "per_latent" else float(raw.max())
        caption = f"{label} {i} · image {100 * split[i][0]:.0f}%"
        if inside is not None:
            caption += f" · in evidence {100 * inside[i]:.0f}%"
        tiles.append((attention_tile(analysis.image, m, scale, normalisation, split[i], evidence, opacity), caption))
    return tiles


def answer_format_of(model_name: str) -> str:
    """The answer format (``word`` | ``letter``) the model was trained in: the app's questions follow it."""
    return POOL.get(model_name).config.answer_format


def new_sample(task: str, out_dir: str | Path, index: int | None = None, answer_format: str = "word",
               seed: int = 777):
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
def analyze(lm, image, prompt: str, out_dir: Path, stage: str = "full", evidence: np.ndarray | None = None,
            layers=None, heads=None, aggregation: str = "mean", tokenmap: bool = True) -> dict:
    """Write the default figures + ``report.json`` for one input; returns the report dict."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LIVRError(f"cannot create output directory {out_dir}: {exc.strerror}") from None
    a = run_analysis(lm, image, prompt, stage)
    report: dict = {
        "model_variant": a.variant, "n_latents": a.n_latents, "stage": stage, "prompt": a.prompt, "notes": a.notes,
        "attention_implementation": base_attn_implementation(lm.base_model),
        "answer": a.answer, "choice_probs": a.choice_probs,
        "segment_attention": a.segment_attention("latent"),
        "answer_segment_attention": a.segment_attention("answer"),
        "latent_image_attention_shape": None, "figures": {},
    }
    shown = display_image(a.image)
    if a.grid is not None:
        maps = a.latent_maps(layers, heads, aggregation)
        report["latent_image_attention_shape"] = list(maps.shape)
        report["top_regions"] = top_regions(maps)
        label = "latent" if a.n_latents else "answer row"
        fig = latent_grid_figure(shown, maps, title=f"{a.variant}: {label}→image attention ({aggregation}, {stage})",
                                 labels=[f"{label} {i}" for i in range(len(maps))], columns=9)
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
    key = (model, image_digest(image) if image else None, prompt, stage, layers, heads, aggregation, normalisation,
           float(opacity))
    cached = VIEWS.get(key)
    return cached if cached is not None else VIEWS.put(key, _attention_view(model, image, prompt, stage, layers, heads,
                                                                            aggregation, normalisation, opacity))


def _attention_view(model, image, prompt, stage, layers, heads, aggregation, normalisation, opacity) -> dict:
    a = analysis_for(model, image, prompt, stage)
    lay, hd = selection(model, layers, heads)
    sample = synthetic_sample_for(image, prompt)
    tiles = heatmap_tiles(a, lay, hd, aggregation, normalisation, opacity,
                          evidence=sample.evidence if sample is not None else None)
    bars = a.answer_latent_attention(lay, hd)
    frame = pd.DataFrame({"latent": [f"{i:02d}" for i in range(len(bars))], "attention": bars.astype(float)})
    notes = "".join(f"\n\n> note: {escape_markdown(n)}" for n in a.notes)
    shown = escape_markdown(a.answer) if a.answer else "(no answer: the model ended at once)"
    kind = "" if a.choice_probs else " (free-form, greedy)"
    md = (f"### Answer: **{shown}**{kind}  \n{escape_markdown(model)} · stage `{stage}` · K = {a.n_latents}"
          f"{notes}")
    if sample is not None:
        md += f"  \nsynthetic `{sample.task}` sample — ground truth **{sample.target}**"
    ood = ood_note(model, a)
    if ood:
        md += f"\n\n> ⚠ out of distribution: {escape_markdown(ood)}"
    md += backend_badge(model, a)
    return {"markdown": md, "choice_probs": a.choice_probs, "tiles": tiles, "answer_latent": frame,
            "image": display_image(a.image, 256)}


def compare_view(selected, image, prompt, stage, aggregation, opacity) -> tuple[pd.DataFrame, Image.Image]:
    """The Compare tab: the model's trio side by side (answers, probabilities, evidence scores on a synthetic
    sample) and one sheet of their latent heatmaps (plus the ground-truth evidence)."""
    sample = synthetic_sample_for(image, prompt)
    rows, sheets = [], []
    for model in compare_set(selected):
        a = analysis_for(model, image, prompt, stage)
        tiles = heatmap_tiles(a, None, None, aggregation, "per_latent", opacity,
                              evidence=sample.evidence if sample is not None else None)
        sheets.append(montage(tiles, columns=8, title=model))
        row = {"model": model, "answer": a.answer}
        if sample is not None:  # the evidence columns first: they are what the comparison is about
            maps = a.latent_maps(None, None, aggregation)
            raw = a.latent_maps(None, None, aggregation, "none")
            f = evidence_scores(maps, sample.evidence, raw)
            row.update({"truth": sample.target, "mass in evidence": round(f["mean_mass_in_evidence"], 3),
                        "lift": round(f["mean_lift"], 2), "pointing game": round(f["pointing_game"], 2)})
        row.update({f"p({k})": round(v, 3) for k, v in a.choice_probs.items()})
        rows.append(row)
    if sample is not None:
        sheets.append(montage([(evidence_overlay(sample.image, sample.evidence), "evidence")], columns=8,
                              title="ground-truth evidence"))
    return pd.DataFrame(rows), stack(sheets, top=24)


TOKEN_MAP_SAMPLES = (2, 60)  # dataset scope: samples per map (each adds ~100 tokens to project)


def token_map_view(model, image, prompt, stage, method, layer, scope, n_samples, color_by, progress=None):
    """The Token map tab: a projection of one layer's hidden states, for this image or for N synthetic samples."""
    n_layers, _ = lm_dims(model)
    layer = int(layer)
    if not 0 <= layer <= n_layers:
        raise LIVRError(f"layer must be in 0..{n_layers}")
    if scope == "this image":
        a = analysis_for(model, image, prompt, stage)
        points = points_from_capture(a.capture, layer, 0)
        color_by = "segment"
    else:
        items = token_map_items(model, n_samples)
        points = dataset_points(POOL.get(model), items, layer, stage, progress=progress)
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
        lm.build_inputs([it.image for it in few], [it.prompt for it in few]), stage)
    return PROBE_COST_FACTOR * (time.perf_counter() - start) * len(items) / len(few)


def probe_view(model, concept, image, prompt, stage, retrain, progress=None) -> dict:
    """The Probes tab: the concept's probes for this model (bundled, else trained now and cached), the accuracy per
    layer against the control task and a random model, a caveat when they say nothing, and the reading of this
    image by the best layer's probe."""
    spec = ConceptSpec.load(concept)
    bundled = PROBES_DIR / model
    cache = scratch_dir() / "probes" / model
    found = [d / f"{spec.name}_report.json" for d in (bundled, cache) if (d / f"{spec.name}_report.json").is_file()]
    report_path = max(found, key=lambda p: p.stat().st_mtime) if found else None  # the newest: bundled or retrained
    if retrain or report_path is None:
        items = SyntheticTaskDataset(spec.tasks or "all", "train", PROBE_TRAIN_SAMPLES, 0,
                                     answer_format=answer_format_of(model))
        if not POOL.get(model).config.n_latents:
            raise LIVRError(f"{model} has no latents to probe (variant sft); pick a model with latents")
        estimate = probe_training_estimate(POOL.get(model), items, stage)
        if progress is not None:
            progress(0.0, desc=f"training probes on {len(items)} samples: about {estimate:.0f} s")
        start = time.perf_counter()
        report = run_probes(POOL.get(model), spec, items, cache, stage=stage, per_latent=True, progress=progress)
        save_probe_curves(report, cache)
        source = (f"trained now on {report.n} samples in {time.perf_counter() - start:.0f} s (estimated "
                  f"{estimate:.0f} s)")
        folder = cache
    else:
        report = ProbeReport(**json.loads(report_path.read_text()))
        source, folder = f"loaded from {report_path.parent}", report_path.parent
    best = report.layers[report.best_layer]
    table = pd.DataFrame([{"layer": r["layer"], "latents": round(r["latent_pooled"]["accuracy"], 3),
                           "control": round(r["control"]["accuracy"], 3), "selectivity": round(r["selectivity"], 3),
                           "image tokens": round(r["image_pooled"]["accuracy"], 3),
                           "text tokens": round(r["text_pooled"]["accuracy"], 3),
                           "random model": round(r.get("random_model", {}).get("accuracy", float("nan")), 3)}
                          for r in report.layers])
    md = (f"**{spec.name}** — {spec.description}. Probes {source}. Best layer {report.best_layer}: "
          f"accuracy {best['latent_pooled']['accuracy']:.3f} vs control {best['control']['accuracy']:.3f} "
          f"(selectivity {best['selectivity']:+.3f}); majority baseline {report.majority:.3f}.")
    md += probe_caveat(best, report.majority)
    reading = {}
    if image and prompt:
        reading = read_with_probe(POOL.get(model), Path(folder) / f"{spec.name}_layer{report.best_layer}",
                                  load_upload(image), prompt, stage)
    return {"markdown": md, "figure": probe_curves_figure(report), "table": table, "reading": reading}


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
    frame = pd.DataFrame({"latent": [f"{i:02d}" for i in range(len(latents))],
                          "attribution": [float(v) for v in latents]})
    delta = "n/a (saliency)" if attr.convergence_delta is None else f"{attr.convergence_delta:.4f}"
    md = f"Attribution of the logit of **{escape_markdown(target)}** ({method}); IG convergence delta: {delta}"
    if attr.warning:
        md += f"\n\n> ⚠ {attr.warning}"
    return Image.fromarray(overlay(shown, heat, 0.6)), frame, md


def ablation_panel(model, image, prompt, stage, latents, mode, layer) -> dict:
    """The Ablation tab: :func:`ablation_view` for the analysed input, with its bars and its Markdown."""
    lm = POOL.get(model)
    if not lm.config.n_latents:
        raise LIVRError(f"{model} has no latents to ablate (variant sft); pick demo-livr or demo-latents-only")
    a = analysis_for(model, image, prompt, stage)
    r = ablation_view(lm, a, [int(v) for v in (latents or [])], mode, int(layer), lm_dims(model)[0])
    labels = [f"{c} · {when}" for c in r["choices"] for when in ("before", "after")]
    bars = pd.DataFrame({"choice": labels, "probability": [p for pair in zip(r["before"], r["after"]) for p in pair],
                         "when": ["before", "after"] * len(r["choices"])})
    effects = pd.DataFrame({"latent": [f"{i:02d}" for i in range(len(r["effects"]))], "change": r["effects"]})
    how = " (none ticked: the latent whose removal moves the answer most)" if r["auto"] else ""
    md = (f"Switching off latents {r['latents']}{how} ({mode}, layer {layer}): answer "
          f"**{escape_markdown(r['answer_before'])} → {escape_markdown(r['answer_after'])}**; largest probability "
          f"change {r['largest_change']:.3f}.")
    return {"markdown": md, "bars": bars, "order": labels, "effects": effects}


def mask_view(model, image, prompt, stage):
    """The How-it-works tab: the attention mask of this very input at ``stage``."""
    return mask_figure(analysis_for(model, image, prompt, stage).segments, stage)


def record_view(views: dict | None, tab: str, settings: dict, figures: dict | None = None,
                numbers: dict | None = None) -> dict:
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


def export_view(model, image, prompt, stage, layers, heads, aggregation, normalisation, opacity,
                views: dict | None = None) -> str:
    """A zip of the attention view (figures, report.json with the numbers, settings.json) and of every other tab
    this session ran (``views`` from :func:`record_view`: ``TAB/…`` figures, ``report.json["tabs"][TAB]`` numbers,
    ``settings.json["tabs"][TAB]`` settings); returns its path."""
    a = analysis_for(model, image, prompt, stage)
    lay, hd = selection(model, layers, heads)
    sample = synthetic_sample_for(image, prompt)
    tiles = attention_view(model, image, prompt, stage, layers, heads, aggregation, normalisation, opacity)["tiles"]
    files = {"image.png": a.image, "latent_heatmaps.png": montage(tiles, title=f"{model} {stage} {aggregation}")}
    files.update({f"latents/{caption.split(' · ')[0].replace(' ', '_')}.png": img for img, caption in tiles})
    report = {"answer": a.answer, "choice_probs": a.choice_probs, "segment_attention": a.segment_attention("latent"),
              "answer_latent_attention": a.answer_latent_attention(lay, hd).tolist(),
              "latent_image_attention_shape": list(a.latent_maps(lay, hd, aggregation).shape), "notes": a.notes,
              "tile_captions": [caption for _, caption in tiles], "tabs": {}}
    if sample is not None:
        report["sample"] = {"id": sample.id, "truth": sample.target, "concepts": sample.concepts}
    settings = {"model": model, "prompt": prompt, "stage": stage, "layers": layers, "heads": heads,
                "aggregation": aggregation, "normalisation": normalisation, "opacity": opacity,
                "image_sha1": image_digest(image), "reproduce": f"livr-viz analyze --model {model} --image IMAGE "
                f"--prompt '...' --stage {stage} --aggregation {aggregation} --out DIR", "tabs": {}}
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

    rows = [{label: f"{i:02d}", "mass in evidence": mean_of("mass_in_evidence", i, 3), "lift": mean_of("lift", i, 2),
             "pointing game": mean_of("pointing_hit", i, 2)} for i in range(k)]
    top = float(mean_raw.max()) or 1.0
    tiles = [(attention_tile(background, mean_raw[i] / top, top, "global", None, density >= 0.5),
              f"{label} {i} · lift {rows[i]['lift']:.2f}") for i in range(k)]
    lift = float(np.mean([r["lift"] for r in rows]))
    md = (f"**{n} fresh `{task}` samples** (test split, seed {seed}), {escape_markdown(model)}, stage `{stage}`: "
          f"mean lift **{lift:.2f}** (1.0 = attention no more on the evidence than its area), mass in evidence "
          f"{np.mean([r['mass in evidence'] for r in rows]):.3f} over an evidence area of "
          f"{np.mean([s['evidence_area_fraction'] for s in scores]):.3f}. Tiles: mean maps on one shared scale, "
          "over how often each pixel is evidence (darker = more often; outline: evidence in ≥ half the samples).")
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
    models trained on the synthetic suite). The test: distinct colours, against the most colourful of
    ``OOD_REFERENCE_SAMPLES`` training samples of the model's tasks times ``OOD_MARGIN``. (Pooled vision features
    did not separate photos from the suite for the demo models: their tiny tower maps both to similar tokens.)"""
    lm = POOL.get(model_name)
    trained = lm.config.training.get("tasks")
    if not trained:
        return None
    try:
        tasks = resolve_tasks(trained)
    except LIVRError:  # perception-pretrained backbones and the like: no suite to compare with
        return None
    if model_name not in _OOD_REFERENCES:
        _OOD_REFERENCES[model_name] = max(
            distinct_colours(make_sample(tasks[i % len(tasks)], "train", 1, i // len(tasks)).image)
            for i in range(OOD_REFERENCE_SAMPLES))
    reference, colours = _OOD_REFERENCES[model_name], distinct_colours(analysis.image)
    if colours <= OOD_MARGIN * reference:
        return None
    return (f"this image is unlike the synthetic images {model_name} was trained on ({colours:,} distinct colours "
            f"at 96 px; its training images have at most {reference}): the answer and the maps say little about "
            "how the model reasons on its tasks")


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


def diagnose_models(names, tasks="all", n: int = 50, seed: int = 2026, out_json=None, out_html=None, progress=None,
                    batch_size: int = 32, check_backends: bool = False, effect_per_task: int | None = 10):
    """"Is the model really using its latents?" for each named model on the same ``n`` test questions per task
    (:func:`~livr_viz.methods.diagnostics.diagnose`; ``effect_per_task`` of them per task for the per-latent
    effects, None = all); resumes from ``out_json`` when it exists, writes the HTML page to ``out_html``. A LIVR
    model's Stage-1 checkpoint (:func:`stage1_checkpoint`) is diagnosed with it. Returns the ``DiagnosticReport``."""
    from livr_viz.methods.diagnostics import diagnose
    from livr_viz.views.diagnostics import diagnostics_html

    names = [names] if isinstance(names, str) else [str(v).strip() for v in names]
    if not names or not all(names):
        raise LIVRError("name at least one model to diagnose")
    if len(set(names)) != len(names):
        raise LIVRError(f"a model is named twice: {', '.join(names)}")
    task_list = resolve_tasks(tasks)
    if int(n) < 1:
        raise LIVRError(f"n (test questions per task) must be at least 1; got {n}")
    if int(batch_size) < 1:
        raise LIVRError(f"batch size must be at least 1; got {batch_size}")
    models = {name: POOL.get(name) for name in names}
    formats = {name: lm.config.answer_format for name, lm in models.items()}
    if len(set(formats.values())) > 1:
        raise LIVRError(f"the models answer in different formats ({formats}): compare models trained in one format")
    items = SyntheticTaskDataset(task_list, "test", int(n), int(seed), answer_format=next(iter(formats.values())))
    stage1 = {name: POOL.get(str(path)) for name in names if models[name].config.variant == "livr"
              and (path := stage1_checkpoint(name)) is not None}
    report = diagnose(models, items, stage1, progress, out=out_json, batch_size=int(batch_size),
                      effect_per_task=effect_per_task, backends=check_backends)
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
    ImageDraw.Draw(shown).rectangle([c * cell_w, r * cell_h, (c + 1) * cell_w - 1, (r + 1) * cell_h - 1],
                                    outline=(0, 255, 255), width=2)
    top = frame.iloc[0]
    typical = float(maps[top["reader"]].mean()) or 1.0
    md = (f"Patch (row {r}, column {c}) of the {rows}×{cols} grid: read most by **{top['reader']}**, "
          f"{top['attention']:.4f} of its attention ({top['attention'] / typical:.1f}× its mean over the patches).")
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
        raise LIVRError(f"questions per task must be between {DIAGNOSTIC_SAMPLES[0]} and {DIAGNOSTIC_SAMPLES[1]} "
                        "in the app (`livr-viz diagnose` takes any number)")
    tick = progress or (lambda fraction, desc=None: None)
    report = diagnose_models(names, tasks, int(n), seed, progress=lambda f, m="": tick(0.8 * f, desc=m),
                             effect_per_task=min(int(n), 10))
    rows = []
    for name in names:
        table = report.section(name, "table")
        row = {"model": name, "uses its latents": table.get("verdict", {}).get("answer", "n/a")}
        for condition, value in table.get("conditions", {}).items():
            row[f"{condition} %"] = round(100 * value["average"]["mean"], 1)
        attention = table.get("answer_latent_attention")
        row["answer → latents"] = round(attention["average"]["mean"], 3) if attention else None
        rows.append(row)
    explanations = explanation_diagnostics(names, tasks, DELETION_ITEMS, seed, progress=lambda f, m="": tick(
        0.8 + 0.2 * f, desc=m))
    redundancy, note = explanations["redundancy_figure"], explanations["redundancy_note"]
    summaries, picked = explanations["summaries"], explanations["items"]
    tick(1.0, desc="done")
    md = ("```\n" + "\n".join(report.summary_lines()) + "\n```\n\n" + f"Redundancy: {note}.\n\n"
          f"Deletion / insertion on {len(picked)} questions (occluded with the suite's mean colour; lower deletion "
          f"AUC / higher insertion AUC = more faithful):\n\n" + summary_markdown(summaries))
    return {"markdown": md, "table": pd.DataFrame(rows), "flow": flow_figure(report),
            "effects": effect_attention_figure(report), "deletion": deletion_summary_figure(summaries),
            "redundancy": redundancy, "report": report.to_dict()}


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
    items = SyntheticTaskDataset(task_list, "test", -(-int(n_items) // len(task_list)), seed + 1,
                                 answer_format=POOL.get(names[0]).config.answer_format)
    picked = [items[i] for i in range(min(int(n_items), len(items)))]
    summaries = []
    for k, name in enumerate(names):
        tick(k / (len(names) + 1), f"deletion curves: {name}")
        summaries.append(deletion_report(POOL.get(name), picked, methods=DELETION_METHODS, n_steps=8,
                                         model=name).summary)
    latent_models = [name for name in names if POOL.get(name).config.n_latents]
    figure, note, numbers = None, "no model with latents: no redundancy matrix", None
    if latent_models:
        a = run_analysis(POOL.get(latent_models[0]), picked[0].image, picked[0].prompt)
        result = latent_redundancy(a.latent_maps(None, None, "mean", "none"))
        figure = redundancy_figure(result)
        note = (f"{latent_models[0]} on `{picked[0].id}`: effective number of distinct latents "
                f"{result.effective_number:.1f} of {len(result.iou)}, mean pairwise IoU {result.mean_pairwise_iou:.2f}")
        numbers = {"model": latent_models[0], "item": picked[0].id, "effective_number": result.effective_number,
                   "mean_pairwise_iou": result.mean_pairwise_iou, "clusters": result.clusters}
    tick(1.0, "explanations done")
    return {"items": picked, "summaries": summaries, "redundancy_figure": figure, "redundancy_note": note,
            "to_json": _jsonable({"items": [it.id for it in picked], "methods": list(DELETION_METHODS),
                                  "deletion": [asdict(s) for s in summaries], "redundancy": numbers})}


def filmstrip_view(model, image, prompt, stage="full"):
    """Each latent's map across the layers (rows: latents, columns: layers), per-latent scale."""
    from livr_viz.methods.geometry import latent_maps_by_layer
    from livr_viz.views.geometry import filmstrip_figure

    a = analysis_for(model, image, prompt, stage)
    if not a.n_latents:
        raise LIVRError(f"{model} has no latents (variant sft): no filmstrip")
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
    return shared_projection_figure(projection, color_by if color_by in ("segment", "task") else "segment",
                                    f"{method} of layer {layer}, one embedding for {', '.join(names)}")

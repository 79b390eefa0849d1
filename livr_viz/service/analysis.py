"""One input's analysis and the views drawn from it: the cached analysis, the Attention and Compare tabs, the
heatmap tiles, the gallery's verdicts and the CLI's ``analyze`` report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from livr_viz.core.capture import base_attn_implementation
from livr_viz.core.errors import LIVRError
from livr_viz.core.images import load_image
from livr_viz.core.lru import LRU
from livr_viz.methods.analysis import run_analysis
from livr_viz.methods.faithfulness import evidence_on_grid, evidence_scores
from livr_viz.methods.heatmaps import top_regions
from livr_viz.methods.tokenmap import points_from_capture, project
from livr_viz.service.common import escape_markdown
from livr_viz.service.models import ANALYSES, POOL, VIEWS, compare_set, display_name, lm_dims
from livr_viz.service.notes import backend_badge, input_notes, ood_note, tiny_image_note
from livr_viz.service.samples import example_pick, gallery_examples, image_digest, load_upload, synthetic_sample_for
from livr_viz.service.teaching import teaching_note
from livr_viz.views.analysis import answer_latent_figure, save_figure
from livr_viz.views.heatmaps import (
    attention_tile,
    display_image,
    evidence_overlay,
    latent_grid_figure,
    montage,
    overlay,
    stack,
)
from livr_viz.views.masks import mask_figure
from livr_viz.views.tokenmap import tokenmap_figure


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


def selection(model_name: str, layers: str | None, heads: str | None) -> tuple[list[int] | None, list[int] | None]:
    n_layers, n_heads = lm_dims(model_name)
    return parse_selection(layers, n_layers, "layers"), parse_selection(heads, n_heads, "heads")


def probs_frame(probs: dict) -> pd.DataFrame:
    return pd.DataFrame({"choice": list(probs), "probability": [round(v, 4) for v in probs.values()]})


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


def attention_view(model, image, prompt, stage, layers, heads, aggregation, normalisation, opacity) -> dict:
    """The Attention tab: answer, choice probabilities, one heatmap tile per latent, answer → latent bars. Cached
    with the analysis: the same input and view settings again cost a lookup, not a re-render."""
    settings = (layers, heads, aggregation, normalisation, float(opacity))
    key = (model, image_digest(image) if image else None, prompt, stage, *settings)
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
    md += teaching_note(model, sample, stage)  # the example picked for teaching this model: said so, and why
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


def mask_view(model, image, prompt, stage):
    """The How-it-works tab: the attention mask of this very input at ``stage``, its answer tokens included."""
    return mask_figure(answered_segments(model, image, prompt, stage), stage)


_VERDICTS = LRU(32)  # (model, gallery) -> verdicts; thread-safe and bounded (a second compute is harmless)


def example_verdicts(model: str) -> list[bool | None]:
    """Per gallery example: does ``model`` answer it right (True), wrong (False), or has it no ground truth (None,
    the photos)? The question is the one a click on the example loads (:func:`example_pick`), at stage ``full``;
    computed once per model (each example's analysis is cached too, so a click then Run costs nothing more)."""
    name = (model or "demo-livr").strip()
    examples = gallery_examples()
    key = (name, tuple(examples))  # a record picked for teaching added or gone: another gallery
    cached = _VERDICTS.get(key)
    if cached is None:
        verdicts: list[bool | None] = []
        for i, path in enumerate(examples):
            sample = synthetic_sample_for(path)
            if sample is None:
                verdicts.append(None)
                continue
            _, prompt = example_pick(name, i)
            verdicts.append(analysis_for(name, path, prompt, "full").answer.strip() == str(sample.target))
        cached = _VERDICTS.put(key, verdicts)
    return cached


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


def analyze_command(
    lm,
    image: str,
    prompt: str,
    out: str,
    stage: str = "full",
    aggregation: str = "mean",
    no_tokenmap: bool = False,
    check_backends: bool = False,
) -> dict:
    """``livr-viz analyze``: :func:`analyze` on an image file, and the lines that say what it found (the app shows the
    same notes beside its answer); ``check_backends``: the same input under the other attention kernels too, added
    to ``report.json``."""
    report = analyze(
        lm, load_image(image), prompt, Path(out), stage=stage, aggregation=aggregation, tokenmap=not no_tokenmap
    )
    lines = [f"answer: {report['answer']}"]
    if report["choice_probs"]:
        lines.append("choice probabilities: " + ", ".join(f"{k} {v:.3f}" for k, v in report["choice_probs"].items()))
    # the prompt's notes (special tokens removed, no options recognised: a free-form answer), then the input's
    lines += [f"note: {note}" for note in report["notes"] + report["input_notes"]]
    if check_backends:
        from types import SimpleNamespace

        from livr_viz.methods.diagnostics import backend_lines
        from livr_viz.methods.diagnostics import check_backends as compare_backends

        report["backends"] = compare_backends(lm, [SimpleNamespace(image=load_image(image), prompt=prompt)])
        (Path(out) / "report.json").write_text(json.dumps(report, indent=2))
        lines += backend_lines(report["backends"])
    lines.append(f"wrote {Path(out) / 'report.json'}")
    return {"text": lines, "report": report}

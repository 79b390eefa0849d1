"""Which pixels, latents, layers and heads an answer rests on: attribution, ablation, the mask, the
filmstrip, the layer × head grid and the patch readers."""

from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from livr_viz.core.errors import LIVRError
from livr_viz.methods.attribution import LatentAttribution
from livr_viz.methods.interventions import (
    LatentAblation,
    ablation_accuracy,
    per_latent_effects,
)
from livr_viz.service.analysis import analysis_for, selection
from livr_viz.service.common import escape_markdown
from livr_viz.service.models import POOL, display_name, lm_dims
from livr_viz.service.samples import suite_items
from livr_viz.views.heatmaps import (
    display_image,
    grid_overlay,
    overlay,
)


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


def filmstrip_view(model, image, prompt, stage="full"):
    """Each latent's map across the layers (rows: latents, columns: layers), per-latent scale."""
    from livr_viz.methods.geometry import latent_maps_by_layer
    from livr_viz.views.geometry import filmstrip_figure

    a = analysis_for(model, image, prompt, stage)
    if not a.n_latents:
        raise LIVRError(f"{display_name(model)} has no latents (variant sft): no filmstrip")
    return filmstrip_figure(latent_maps_by_layer(a), display_image(a.image, 96))


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


def ablation_command(
    lm, tasks="all", n: int = 100, seed: int = 2026, mode: str = "remove", layer: int = -1, stage: str = "full"
) -> dict:
    """``livr-viz ablate``: test accuracy with the latents ablated, all at once and each alone, per stage of the comma
    list ``stage``."""
    items = suite_items(lm, tasks, n, seed)
    out, lines = {}, []
    for one in stage.split(","):
        r = ablation_accuracy(lm, [items[i] for i in range(len(items))], mode, layer, one.strip())
        out[one] = r
        drops = ", ".join(f"{i}: {100 * d:+.1f}" for i, d in enumerate(r["per_latent_change"]))
        lines.append(
            f"stage {one}: accuracy {100 * r['accuracy_intact']:.1f} % intact, "
            f"{100 * r['accuracy_all_ablated']:.1f} % with all {lm.config.n_latents} latents ablated ({mode}); "
            f"n = {r['n']}\n  each latent alone (points): {drops}"
        )
    return {"text": lines, "json": out}

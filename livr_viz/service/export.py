"""What a session takes home: the record of the tabs it ran and the zip of their figures, numbers and
settings."""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path

from PIL import Image

from livr_viz.service.analysis import analysis_for, attention_view, selection
from livr_viz.service.common import jsonable, scratch_dir
from livr_viz.service.models import display_name
from livr_viz.service.samples import image_digest, synthetic_sample_for
from livr_viz.views.heatmaps import (
    montage,
)


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
        report["tabs"][tab] = jsonable(view["numbers"])
        settings["tabs"][tab] = view["settings"]
    return export_zip(files, report, settings, scratch_dir() / "exports")


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

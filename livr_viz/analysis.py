"""One-call analysis of an (image, prompt): answer, choice probabilities, captured attention, figures.

Used by ``livr-viz demo`` / ``livr-viz analyze`` and by the app; it composes capture and views.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import torch

from .capture import CaptureResult, LatentAttention
from .errors import LIVRError
from .heatmaps import image_attention_maps, latent_grid_figure, top_regions
from .images import load_image
from .segments import Segment

_CHOICE = re.compile(r"\(([A-Z])\)")


def parse_choices(prompt: str) -> list[str]:
    """Letters of BLINK-style choices ``(A) … (B) …`` in order of first appearance."""
    letters: list[str] = []
    for letter in _CHOICE.findall(prompt or ""):
        if letter not in letters:
            letters.append(letter)
    return letters if len(letters) >= 2 else []


def run_capture(lm, image, prompt: str, stage: str = "full"):
    """Build the batch for one image and capture latent rows (or the answer row for ``sft``)."""
    batch = lm.build_inputs([load_image(image)], [prompt])
    rows = "latent" if lm.config.n_latents else "answer"
    return batch, LatentAttention(lm, rows=rows).run(batch, stage)


def answer_from_capture(lm, result: CaptureResult, prompt: str) -> tuple[str, dict[str, float]]:
    choices = parse_choices(prompt)
    if choices:
        ids = lm.choice_token_ids(choices)
        probs = result.answer_logits[0, ids].softmax(-1)
        return choices[int(probs.argmax())], {c: float(p) for c, p in zip(choices, probs)}
    token = int(result.answer_logits[0].argmax())
    return lm.tokenizer.decode([token]).strip(), {}


def analyze(lm, image, prompt: str, out_dir: Path, stage: str = "full", evidence: np.ndarray | None = None,
            layers=None, heads=None, aggregation: str = "mean") -> dict:
    """Write figures + ``report.json`` for one input; returns the report dict."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LIVRError(f"cannot create output directory {out_dir}: {exc.strerror}") from None
    pil = load_image(image)
    batch, result = run_capture(lm, pil, prompt, stage)
    answer, probs = answer_from_capture(lm, result, prompt)
    report: dict = {
        "model_variant": lm.config.variant,
        "n_latents": lm.config.n_latents,
        "stage": stage,
        "prompt": batch.prompts[0],
        "notes": batch.notes,
        "answer": answer,
        "choice_probs": probs,
        "captured_rows": result.row_segment,
        "segment_attention": result.segment_attention(0),
        "figures": {},
    }
    try:
        grid = lm.family.patch_grid(lm.base_model, batch.inputs, 0)
    except LIVRError as exc:
        report["latent_image_attention_shape"] = None
        report["heatmap_error"] = str(exc)
        grid = None
    if grid is not None:
        maps = image_attention_maps(result, grid, layers=layers, heads=heads, aggregation=aggregation)
        report["latent_image_attention_shape"] = list(maps.shape)
        report["top_regions"] = top_regions(maps)
        shown = pil.resize((max(96, pil.width), max(96, pil.height))) if min(pil.size) < 96 else pil
        label = "latent" if result.row_segment == "latent" else "answer row"
        fig = latent_grid_figure(shown, maps, title=f"{lm.config.variant}: {label}→image attention ({aggregation}, "
                                 f"{stage})", labels=[f"{label} {i}" for i in range(len(maps))])
        path = out_dir / "latent_heatmaps.png"
        fig.savefig(path, dpi=110)
        import matplotlib.pyplot as plt

        plt.close(fig)
        report["figures"]["latent_heatmaps"] = str(path)
        if evidence is not None:
            from .faithfulness import evidence_scores

            report["faithfulness"] = evidence_scores(maps, evidence, raw=image_attention_maps(
                result, grid, layers=layers, heads=heads, aggregation=aggregation, normalisation="none"))
    with open(out_dir / "report.json", "w") as fh:
        json.dump(report, fh, indent=2)
    return report

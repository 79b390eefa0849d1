"""One-call analysis of an (image, prompt): one captured forward, then every default view.

:func:`run_analysis` does the model work (a single forward with the latent rows *and* the answer row
captured, hidden states included); :class:`Analysis` turns it into maps, bars and numbers; :func:`analyze`
writes the figures and ``report.json`` (``livr-viz analyze`` / ``livr-viz demo``).  The app composes the same
pieces.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from livr_viz.core.capture import CaptureResult, LatentAttention, rows_of_segment
from livr_viz.core.errors import LIVRError
from livr_viz.core.images import load_image
from livr_viz.core.segments import Segment
from livr_viz.methods.heatmaps import display_image, image_attention_maps, latent_grid_figure, overlay, top_regions

_CHOICE = re.compile(r"\(([A-Z])\)")
FREE_FORM_TOKENS = 8  # greedy tokens generated for a question without options


_OPTIONS = re.compile(r"^Options:\s*(.+?)\.?\s*$", re.MULTILINE)


def parse_choices(prompt: str) -> list[str]:
    """The options a prompt offers: the words of a word-format ``Options: red, blue.`` line, else the letters of
    BLINK-style choices ``(A) … (B) …`` in order of first appearance; [] for a free-form question."""
    words = _OPTIONS.search(prompt or "")
    if words:
        options = [w.strip() for w in words.group(1).split(",") if w.strip()]
        if len(options) >= 2 and len(set(options)) == len(options):
            return options
    letters: list[str] = []
    for letter in _CHOICE.findall(prompt or ""):
        if letter not in letters:
            letters.append(letter)
    return letters if len(letters) >= 2 else []


@dataclass
class Analysis:
    """A captured forward of one input. Rows: the K latents (if any) followed by the answer row."""

    image: Image.Image
    prompt: str
    stage: str
    variant: str
    n_latents: int
    capture: CaptureResult
    grid: tuple[int, int] | None
    grid_error: str | None
    answer: str
    choice_probs: dict[str, float]
    notes: list[str]
    segments: torch.Tensor  # [T]

    def _rows(self, which: str) -> CaptureResult:
        att = self.capture.attention
        part = att[..., : self.n_latents, :] if which == "latent" else att[..., self.n_latents:, :]
        return CaptureResult(part, self.capture.rows[:, : self.n_latents] if which == "latent" else
                             self.capture.rows[:, self.n_latents:], which, self.capture.segments,
                             self.capture.answer_logits, self.stage, self.capture.hidden_states)

    def latent_maps(self, layers=None, heads=None, aggregation="mean", normalisation="per_latent") -> np.ndarray:
        """``[K, rows, cols]`` latent→image attention (for sft: the answer row, ``[1, rows, cols]``)."""
        if self.grid is None:
            raise LIVRError(self.grid_error or "no patch grid for this model")
        rows = self._rows("latent") if self.n_latents else self._rows("answer")
        return image_attention_maps(rows, self.grid, 0, layers, heads, aggregation, normalisation)

    def answer_image_map(self, layers=None, heads=None, aggregation="mean", normalisation="per_latent") -> np.ndarray:
        if self.grid is None:
            raise LIVRError(self.grid_error or "no patch grid for this model")
        return image_attention_maps(self._rows("answer"), self.grid, 0, layers, heads, aggregation, normalisation)[0]

    def answer_latent_attention(self, layers=None, heads=None) -> np.ndarray:
        """``[K]`` mean attention of the answer row to each latent (over the chosen layers and heads)."""
        if not self.n_latents:
            return np.zeros(0)
        att = self._rows("answer").attention[:, 0, :, 0]  # [L, H, T]
        if layers is not None:
            att = att[list(layers)]
        if heads is not None:
            att = att[:, list(heads)]
        latent_keys = self.capture.key_positions(Segment.LATENT, 0)
        return att[..., latent_keys].mean(dim=(0, 1)).numpy()

    def segment_attention(self, which: str = "latent") -> dict[str, list[float]]:
        return self._rows(which if self.n_latents else "answer").segment_attention(0)


@torch.no_grad()
def run_analysis(lm, image, prompt: str, stage: str = "full", hidden_states: bool = True) -> Analysis:
    pil = load_image(image)
    batch = lm.build_inputs([pil], [prompt])
    answer_row = (batch.answer_start - 1).unsqueeze(1)  # [1, 1]
    if lm.config.n_latents:
        rows = torch.cat([rows_of_segment(batch.segments, Segment.LATENT), answer_row], 1)
    else:
        rows = answer_row
    capture = LatentAttention(lm, rows=rows, hidden_states=hidden_states).run(batch, stage)
    capture.row_segment = "latent+answer" if lm.config.n_latents else "answer"
    grid, grid_error = None, None
    try:
        grid = lm.family.patch_grid(lm.base_model, batch.inputs, 0)
    except LIVRError as exc:
        grid_error = str(exc)
    notes_extra: list[str] = []
    choices = parse_choices(batch.prompts[0])
    if choices:
        ids = lm.choice_token_ids(choices)
        probs = capture.answer_logits[0, ids].softmax(-1)
        answer, choice_probs = choices[int(probs.argmax())], {c: float(p) for c, p in zip(choices, probs)}
    else:  # a free-form question: a short greedy answer under the same mask, special tokens hidden
        answer, choice_probs = lm.generate([pil], [prompt], max_new_tokens=FREE_FORM_TOKENS, stage=stage)[0], {}
        if not answer:
            notes_extra.append("the model ended its answer at once (it predicted the end-of-answer token first)")
    return Analysis(pil, batch.prompts[0], stage, lm.config.variant, lm.config.n_latents, capture, grid, grid_error,
                    answer, choice_probs, batch.notes + notes_extra, batch.segments[0])


def answer_latent_figure(values: np.ndarray, title: str = "answer → latent attention"):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 2.6))
    ax.bar(range(len(values)), values, color="#e8a33c")
    ax.set_xticks(range(len(values)))
    ax.set_xlabel("latent")
    ax.set_ylabel("attention")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def _save(fig, path: Path) -> str:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def analyze(lm, image, prompt: str, out_dir: Path, stage: str = "full", evidence: np.ndarray | None = None,
            layers=None, heads=None, aggregation: str = "mean", tokenmap: bool = True) -> dict:
    """Write the default figures + ``report.json`` for one input; returns the report dict."""
    from livr_viz.views.masks import mask_figure

    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LIVRError(f"cannot create output directory {out_dir}: {exc.strerror}") from None
    a = run_analysis(lm, image, prompt, stage)
    report: dict = {
        "model_variant": a.variant, "n_latents": a.n_latents, "stage": stage, "prompt": a.prompt, "notes": a.notes,
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
        report["figures"]["latent_heatmaps"] = _save(fig, out_dir / "latent_heatmaps.png")
        if evidence is not None:
            from livr_viz.methods.faithfulness import evidence_scores

            report["faithfulness"] = evidence_scores(maps, evidence, a.latent_maps(layers, heads, aggregation, "none"))
    else:
        report["heatmap_error"] = a.grid_error
    if a.n_latents:
        values = a.answer_latent_attention(layers, heads)
        report["answer_latent_attention"] = [float(v) for v in values]
        report["figures"]["answer_latents"] = _save(answer_latent_figure(values), out_dir / "answer_latents.png")
    elif a.grid is not None:
        Image.fromarray(overlay(shown, a.answer_image_map(layers, heads, aggregation))).save(out_dir / "answer_image.png")
        report["figures"]["answer_image"] = str(out_dir / "answer_image.png")
    report["figures"]["mask"] = _save(mask_figure(a.segments, stage), out_dir / "mask.png")
    if tokenmap:
        from livr_viz.methods.tokenmap import points_from_capture, project, tokenmap_figure

        layer = a.capture.hidden_states.shape[0] - 1
        points = points_from_capture(a.capture, layer, 0)
        xy = project(points.vectors, "tsne")
        report["figures"]["token_map"] = _save(tokenmap_figure(points, xy, title=f"t-SNE of layer {layer} tokens"),
                                               out_dir / "token_map.png")
    with open(out_dir / "report.json", "w") as fh:
        json.dump(report, fh, indent=2)
    return report

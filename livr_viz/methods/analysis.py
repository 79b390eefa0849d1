"""One-call analysis of an (image, prompt): one captured forward, then every default view.

:func:`run_analysis` does the model work (a single forward with the latent rows *and* the answer row
captured, hidden states included); :class:`Analysis` turns it into maps, bars and numbers; :func:`analyze`
writes the figures and ``report.json`` (``livr-viz analyze`` / ``livr-viz demo``).  The app composes the same
pieces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from livr_viz.core.capture import CaptureResult, LatentAttention, rows_of_segment
from livr_viz.core.errors import LIVRError
from livr_viz.core.images import load_image
from livr_viz.core.refs import known_names
from livr_viz.core.segments import Segment
from livr_viz.methods.heatmaps import image_attention_maps

_CHOICE = re.compile(r"\(([A-Z])\)")
FREE_FORM_TOKENS = 8  # greedy tokens generated for a question without options


# ``Options: a, b, c.`` anywhere in the prompt (after a question on the same line too, as in README's CLI example
# "How many cups? Options: 1, 2."): the list runs to the end of its line or to a full stop followed by a space / the
# end, so "Options: 1.5, 2.5." keeps its decimals and "Options: red, blue. Answer with one word." ends at "blue".
_OPTIONS = re.compile(r"\boptions:[ \t]*([^\n]+?)[ \t]*(?:\.(?=\s|$)|\n|$)", re.IGNORECASE)
FREE_FORM_NOTE = "no options recognised: free-form greedy answer"
WORD_VOCABULARY_NOTE = (
    "this demo model was trained to answer its tasks' multiple-choice questions with one word; "
    "a free-form answer comes only from that training vocabulary"
)


def parse_choices(prompt: str) -> list[str]:
    """The options a prompt offers: the words of an ``Options: red, blue.`` list (at a line start or after the
    question), else the letters of BLINK-style choices ``(A) … (B) …`` in order of first appearance; [] for a
    free-form question. A list needs two or more distinct options."""
    for words in _OPTIONS.finditer(prompt or ""):
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
        part = att[..., : self.n_latents, :] if which == "latent" else att[..., self.n_latents :, :]
        return CaptureResult(
            part,
            self.capture.rows[:, : self.n_latents] if which == "latent" else self.capture.rows[:, self.n_latents :],
            which,
            self.capture.segments,
            self.capture.answer_logits,
            self.stage,
            self.capture.hidden_states,
        )

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

    def row_split(self, layers=None, heads=None) -> np.ndarray:
        """``[R, 3]``: how each latent row's attention (the answer row's for sft) splits between image, text and
        latent keys, mean over the chosen layers and heads; rows sum to 1 (up to the answer / pad keys)."""
        rows = self._rows("latent") if self.n_latents else self._rows("answer")
        att = rows.attention[:, 0]  # [L, H, R, T]
        if layers is not None:
            att = att[list(layers)]
        if heads is not None:
            att = att[:, list(heads)]
        keys = [self.capture.key_positions(s, 0) for s in (Segment.IMAGE, Segment.TEXT, Segment.LATENT)]
        return torch.stack([att[..., k].sum(-1).mean(dim=(0, 1)) for k in keys], -1).numpy()

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
    if choices:  # each option scored in context; one-token options straight off the captured answer row
        probs = lm.score_options(batch, [choices], stage, answer_logits=capture.answer_logits)[0]
        answer, choice_probs = choices[int(probs.argmax())], {c: float(p) for c, p in zip(choices, probs)}
    else:  # a free-form question: a short greedy answer under the same mask, special tokens hidden
        answer, choice_probs = lm.generate([pil], [prompt], max_new_tokens=FREE_FORM_TOKENS, stage=stage)[0], {}
        notes_extra.append(FREE_FORM_NOTE)
        if lm.config.answer_format == "word" and lm.config.backbone in known_names():  # a demo model (or on one)
            notes_extra.append(WORD_VOCABULARY_NOTE)
        if not answer:
            notes_extra.append("the model ended its answer at once (it predicted the end-of-answer token first)")
    return Analysis(
        pil,
        batch.prompts[0],
        stage,
        lm.config.variant,
        lm.config.n_latents,
        capture,
        grid,
        grid_error,
        answer,
        choice_probs,
        batch.notes + notes_extra,
        batch.segments[0],
    )

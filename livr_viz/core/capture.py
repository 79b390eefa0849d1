"""Capture attention of selected query rows without materialising T x T maps.

A registered attention function (``livr_capture_sdpa`` / ``livr_capture_eager``)
computes the normal output with the stock sdpa / eager kernel and, only while a
:func:`record` block is active in the current thread, recomputes
``softmax(q[rows] @ k^T * scaling + mask[rows])`` for the selected rows.  Memory is
O(layers · heads · rows · T) instead of O(layers · heads · T²), and the forward
itself is untouched (no ``output_attentions``, no forced eager).

A :class:`CaptureResult` is indexed by TransformerLens-style names (``result["layers.2.attn.rows"]``,
:meth:`CaptureResult.names`): ``embed`` (``[batch, pos, d_model]``, the input embeddings),
``layers.{i}.attn.rows`` (``[batch, head, row, key]``: the captured rows' attention in layer ``i``) and
``layers.{i}.resid_post`` (``[batch, pos, d_model]``: the residual stream after layer ``i``).

The recorder lives in a ``contextvars.ContextVar``: concurrent requests in
different threads never see each other's rows, and the hook disappears when the
``with`` block ends, also when the forward raises. So does the kernel of
:func:`attention_kernel` (backend comparisons switch it for their own forwards only).
"""

from __future__ import annotations

import contextvars
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.models.llama.modeling_llama import eager_attention_forward

from livr_viz.core.errors import LIVRError
from livr_viz.core.segments import SEGMENT_NAMES, Segment

_ACTIVE: contextvars.ContextVar[_Recorder | None] = contextvars.ContextVar("livr_capture", default=None)
_KERNEL: contextvars.ContextVar[str | None] = contextvars.ContextVar("livr_attention_kernel", default=None)
CAPTURE_PREFIX = "livr_capture_"


class _Recorder:
    def __init__(self, rows: torch.Tensor):
        self.rows = rows  # [B, R] query positions to record
        self.attention: dict[int, torch.Tensor] = {}  # layer -> [B, H, R, T]


def _row_attention(module, query, key, attention_mask, scaling, rows) -> torch.Tensor:
    """``[B, H, R, T]`` softmax attention of the selected query rows, in float32."""
    B, H, T, d = query.shape
    n_rep = H // key.shape[1]
    if n_rep > 1:
        key = key.repeat_interleave(n_rep, dim=1)  # GQA: [B, H, T, d]
    index = rows[:, None, :, None].expand(B, H, rows.shape[1], d)
    q_rows = query.gather(2, index).float()  # [B, H, R, d]
    scores = q_rows @ key.float().transpose(-1, -2) * scaling  # [B, H, R, T]
    if attention_mask is not None:
        mask = attention_mask[:, :, :, : key.shape[-2]]
        mask_rows = mask.expand(B, mask.shape[1], T, mask.shape[-1]).gather(
            2, rows[:, None, :, None].expand(B, mask.shape[1], rows.shape[1], mask.shape[-1])
        )
        if mask_rows.dtype == torch.bool:
            scores = scores.masked_fill(~mask_rows, float("-inf"))
        else:
            scores = scores + mask_rows.float()
    else:  # sdpa got no mask and relies on is_causal: re-apply causality ourselves
        keys = torch.arange(key.shape[-2], device=query.device)
        scores = scores.masked_fill(keys[None, None, None, :] > rows[:, None, :, None], float("-inf"))
    return scores.softmax(-1)


def _make_capture_fn(kernel: str, base):
    def attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
        other = _KERNEL.get()
        if other is not None and other != kernel:  # attention_kernel(other) in this context: its registered function
            function = ALL_ATTENTION_FUNCTIONS[CAPTURE_PREFIX + other]
            return function(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs)
        output = base(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs)
        recorder = _ACTIVE.get()
        if recorder is not None and getattr(module, "layer_idx", None) is not None:
            scale = scaling if scaling is not None else query.shape[-1] ** -0.5
            with torch.no_grad():
                recorder.attention[module.layer_idx] = _row_attention(
                    module, query.detach(), key.detach(), attention_mask, scale, recorder.rows.to(query.device)
                )
        return output

    return attention


KERNELS = ("sdpa", "eager")  # the kernels the capture function wraps
AttentionInterface.register(CAPTURE_PREFIX + "sdpa", _make_capture_fn("sdpa", sdpa_attention_forward))
AttentionInterface.register(CAPTURE_PREFIX + "eager", _make_capture_fn("eager", eager_attention_forward))


def install_capture(model, base: str | None = None) -> None:
    """Route the language model's attention through the capture-capable function (same numerics).

    ``base`` is the kernel that computes the output (``sdpa`` or ``eager``); by default the model's
    current one.  Only the text model is switched; the vision tower keeps its own implementation.
    """
    text_cfg = model.config.get_text_config()
    current = base or base_attn_implementation(model)
    if current not in ("sdpa", "eager"):
        current = "sdpa"
    if text_cfg._attn_implementation == CAPTURE_PREFIX + current:
        return
    impl = {}
    for name in model.config.sub_configs:
        sub = getattr(model.config, name, None)
        if sub is None:
            continue
        impl[name] = CAPTURE_PREFIX + current if sub is text_cfg else (sub._attn_implementation or "sdpa")
    impl[""] = current
    model.set_attn_implementation(impl)


def base_attn_implementation(model) -> str:
    impl = model.config.get_text_config()._attn_implementation or "sdpa"
    return impl.removeprefix(CAPTURE_PREFIX)


@contextmanager
def attention_kernel(model, kernel: str) -> Iterator[None]:
    """Run the language model's attention on ``kernel`` (sdpa | eager) for the forwards of this context only.

    The model is not touched: its capture function (installed at load, :func:`install_capture`) hands each attention
    call of this context to the registered capture function of ``kernel`` (the function transformers would call after
    ``set_attn_implementation``; masks are always passed as float 4D, so no mask differs), while forwards of other
    threads on the same model keep its own kernel."""
    if kernel not in KERNELS:
        raise LIVRError(f"attention kernel must be one of {', '.join(KERNELS)}; got {kernel!r}")
    current = model.config.get_text_config()._attn_implementation or ""
    if not current.startswith(CAPTURE_PREFIX):
        raise LIVRError(
            f"this model's attention ({current or 'default'}) is not the capture function: load it with "
            "livr_viz.core.model.load_model (or call install_capture once) before switching kernels per request"
        )
    token = _KERNEL.set(kernel)
    try:
        yield
    finally:
        _KERNEL.reset(token)


@contextmanager
def record(rows: torch.Tensor) -> Iterator[_Recorder]:
    """Record attention of query positions ``rows`` ([B, R]) for every LM layer inside the block."""
    recorder = _Recorder(rows.long())
    token = _ACTIVE.set(recorder)
    try:
        yield recorder
    finally:
        _ACTIVE.reset(token)


def rows_of_segment(segments: torch.Tensor, segment: Segment) -> torch.Tensor:
    """``[B, R]`` positions of ``segment`` in each row (every row must hold the same count)."""
    picks = [(row == int(segment)).nonzero(as_tuple=True)[0] for row in segments]
    counts = {len(p) for p in picks}
    if len(counts) != 1:
        raise ValueError(f"rows hold different numbers of {segment.name} tokens: {[len(p) for p in picks]}")
    return torch.stack(picks)


@dataclass
class CaptureResult:
    """What one captured forward saw.

    ``attention``: ``[L, B, H, R, T]`` float32, attention of the captured rows over all keys.
    ``rows``: ``[B, R]`` positions of those rows; ``row_segment``: which segment they are.
    ``segments``: ``[B, T]``; ``hidden_states``: ``[L+1, B, T, D]`` (embeddings + each layer) or None.
    ``answer_logits``: ``[B, V]`` logits predicting the first answer token.
    """

    attention: torch.Tensor
    rows: torch.Tensor
    row_segment: str
    segments: torch.Tensor
    answer_logits: torch.Tensor
    stage: str
    hidden_states: torch.Tensor | None = None
    meta: dict = field(default_factory=dict)

    @property
    def n_layers(self) -> int:
        return self.attention.shape[0]

    @property
    def n_heads(self) -> int:
        return self.attention.shape[2]

    def names(self) -> list[str]:
        """The capture points this result holds, by name (see the module docstring)."""
        out = [f"layers.{i}.attn.rows" for i in range(self.n_layers)]
        if self.hidden_states is not None:
            out = ["embed"] + out + [f"layers.{i}.resid_post" for i in range(self.hidden_states.shape[0] - 1)]
        return out

    def __getitem__(self, name: str) -> torch.Tensor:
        parts = name.split(".")
        if name in self.names():
            if parts[-1] == "rows":
                return self.attention[int(parts[1])]
            assert self.hidden_states is not None  # names() lists the residual points only when they were captured
            return self.hidden_states[0] if name == "embed" else self.hidden_states[int(parts[1]) + 1]
        raise KeyError(
            f"no capture point {name!r}; this result holds {', '.join(self.names()[:3])}, … "
            f"({len(self.names())} in all)"
        )

    def key_positions(self, segment: Segment, index: int = 0) -> torch.Tensor:
        return (self.segments[index] == int(segment)).nonzero(as_tuple=True)[0]

    def attention_to(self, segment: Segment, index: int = 0) -> torch.Tensor:
        """``[L, H, R, n_keys]`` attention of sample ``index``'s rows to the keys of ``segment``."""
        return self.attention[:, index][..., self.key_positions(segment, index)]

    def segment_attention(self, index: int = 0) -> dict[str, list[float]]:
        """Per layer, the mean attention mass (over heads and rows) that the rows put on each segment."""
        out = {}
        for seg in (Segment.IMAGE, Segment.TEXT, Segment.LATENT, Segment.ANSWER):
            mass = self.attention_to(seg, index).sum(-1).mean(dim=(1, 2))  # [L]
            out[SEGMENT_NAMES[seg]] = [float(v) for v in mass]
        return out

    def save(self, path: str | Path) -> Path:
        """Write ``path.npz`` (tensors) and ``path.json`` (metadata)."""
        path = Path(path)
        arrays: dict[str, Any] = {
            "attention": self.attention.numpy(),
            "rows": self.rows.numpy(),
            "segments": self.segments.numpy(),
            "answer_logits": self.answer_logits.float().numpy(),
        }
        if self.hidden_states is not None:
            arrays["hidden_states"] = self.hidden_states.float().numpy()
        np.savez_compressed(path.with_suffix(".npz"), **arrays)
        path.with_suffix(".json").write_text(
            json.dumps({"row_segment": self.row_segment, "stage": self.stage, "meta": self.meta}, indent=2)
        )
        return path.with_suffix(".npz")

    @classmethod
    def load(cls, path: str | Path) -> CaptureResult:
        path = Path(path)
        arrays = np.load(path.with_suffix(".npz"), allow_pickle=False)
        info = json.loads(path.with_suffix(".json").read_text())
        hidden = torch.from_numpy(arrays["hidden_states"]) if "hidden_states" in arrays else None
        return cls(
            torch.from_numpy(arrays["attention"]),
            torch.from_numpy(arrays["rows"]),
            info["row_segment"],
            torch.from_numpy(arrays["segments"]),
            torch.from_numpy(arrays["answer_logits"]),
            info["stage"],
            hidden,
            info.get("meta", {}),
        )


class LatentAttention:
    """Captum-style analysis object: bind the model and settings, then ``run(batch)``.

    ``rows="latent"`` (default), ``"answer"`` (the position predicting the answer, plus any answer tokens)
    or an explicit ``[B, R]`` tensor of positions.
    """

    def __init__(self, livr_model, rows: str | torch.Tensor = "latent", hidden_states: bool = True):
        self.model = livr_model
        self.rows = rows
        self.hidden_states = hidden_states

    def _rows(self, batch) -> tuple[torch.Tensor, str]:
        if isinstance(self.rows, torch.Tensor):
            return self.rows, "custom"
        if self.rows == "latent":
            if not self.model.config.n_latents:
                raise LIVRError("this model has no latent tokens (variant sft); capture rows='answer' instead")
            return rows_of_segment(batch.segments, Segment.LATENT), "latent"
        if self.rows == "answer":
            return (batch.answer_start - 1).unsqueeze(1), "answer"
        raise ValueError(f"rows must be 'latent', 'answer' or a [B, R] tensor; got {self.rows!r}")

    @torch.no_grad()
    def run(self, batch, stage: str = "full", block_latent_image: bool = False) -> CaptureResult:
        rows, name = self._rows(batch)
        lm = self.model
        with record(rows) as rec:
            out = lm.hidden_states(batch, stage, block_latent_image, output_hidden_states=self.hidden_states)
        logits = lm.logits_at_answer(out.last_hidden_state, batch.answer_start).float()
        layers = sorted(rec.attention)
        if not layers:
            raise RuntimeError("no attention was captured: is the capture attention function installed?")
        attention = torch.stack([rec.attention[i].cpu() for i in layers])  # [L, B, H, R, T]
        states = torch.stack([h.cpu() for h in out.hidden_states]) if self.hidden_states else None
        return CaptureResult(attention, rows.cpu(), name, batch.segments.cpu(), logits.cpu(), stage, states)

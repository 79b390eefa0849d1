"""captum attributions from the chosen answer logit to image pixels / patches and to the latent embeddings.

Integrated Gradients reports its convergence delta (sum of attributions minus the logit difference to the
baseline); Saliency is the plain gradient magnitude.  The image path goes through ``pixel_values`` (what the
processor produced); the latent path through the input embeddings of the latent positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from livr_viz.core.errors import LIVRError
from livr_viz.core.segments import Segment

METHODS = ("integrated_gradients", "saliency")
# Integrated Gradients' completeness check: attributions should sum to the logit's change from the baseline. A
# convergence delta above this many logits means the path integral is too coarse to trust the map (more steps).
IG_DELTA_WARNING = 0.5


@dataclass
class Attribution:
    method: str
    pixels: np.ndarray  # [H, W] attribution magnitude on the processed image, summed over channels
    patches: np.ndarray | None  # [rows, cols] summed per vision patch (LLaVA-style layouts)
    latents: np.ndarray | None  # [K] attribution per latent embedding (L2 over dims)
    convergence_delta: float | None
    target: str

    @property
    def warning(self) -> str | None:
        """A user-facing warning when Integrated Gradients did not converge (delta above :data:`IG_DELTA_WARNING`)."""
        if self.convergence_delta is None or self.convergence_delta <= IG_DELTA_WARNING:
            return None
        return (f"Integrated Gradients did not converge: its attributions miss the logit change by "
                f"{self.convergence_delta:.2f} logits (above {IG_DELTA_WARNING}); treat this map as rough")


def _answer_logit_fn(lm, batch, stage, target_id):
    """``f(pixel_values=…)`` or ``f(inputs_embeds=…)`` → the target logit; accepts captum's expanded batches."""
    B = batch.input_ids.shape[0]

    def logit(pixel_values=None, inputs_embeds=None):
        kwargs = lm.model_kwargs(batch, stage)
        if inputs_embeds is not None:
            kwargs.pop("input_ids")
        override = {"pixel_values": pixel_values} if pixel_values is not None else {"inputs_embeds": inputs_embeds}
        n = next(iter(override.values())).shape[0] // B  # captum stacks n integration steps along the batch
        if n > 1:  # repeat every other per-sample tensor to match
            kwargs = {k: (v.repeat_interleave(n, 0) if isinstance(v, torch.Tensor) and v.dim() >= 1
                          and v.shape[0] == B else v) for k, v in kwargs.items()}
        kwargs.update(override)
        hidden = lm.base_model.model(**kwargs).last_hidden_state
        return lm.logits_at_answer(hidden, batch.answer_start.repeat_interleave(n))[:, target_id]

    return logit


class LatentAttribution:
    """Captum-style like its siblings (:class:`~livr_viz.core.capture.LatentAttention`,
    :class:`~livr_viz.methods.interventions.LatentAblation`): bind the model and the method, then
    ``run(batch, target)`` attributes the logit of choice ``target`` (e.g. "A" or "red") for batch row 0 to the
    pixels and to the latent embeddings. ``method``: ``integrated_gradients`` (zero-image / zero-latent baseline,
    ``n_steps`` points, convergence delta reported) or ``saliency`` (|gradient|)."""

    def __init__(self, lm, method: str = "integrated_gradients", n_steps: int = 16):
        if method not in METHODS:
            raise LIVRError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
        self.lm, self.method, self.n_steps = lm, method, n_steps

    def run(self, batch, target: str, stage: str = "full", grid: tuple[int, int] | None = None) -> Attribution:
        from captum.attr import IntegratedGradients, Saliency  # ~2 s to import: only when attributing

        lm, method, n_steps = self.lm, self.method, self.n_steps
        if batch.input_ids.shape[0] != 1:
            raise LIVRError("attribution runs on one input at a time")
        if "pixel_values" not in batch.inputs:
            raise LIVRError("this model's inputs have no pixel_values to attribute to")
        target_id = lm.choice_token_ids([target])[0]
        fn = _answer_logit_fn(lm, batch, stage, target_id)
        pixels = batch.inputs["pixel_values"].detach().clone().requires_grad_(True)
        delta = None
        was_training = lm.model.training
        lm.model.eval()
        try:
            if method == "integrated_gradients":
                ig = IntegratedGradients(lambda pv: fn(pixel_values=pv))
                attr, d = ig.attribute(pixels, baselines=torch.zeros_like(pixels), n_steps=n_steps,
                                       internal_batch_size=n_steps, return_convergence_delta=True)
                delta = float(d.abs().max())
            else:
                attr = Saliency(lambda pv: fn(pixel_values=pv)).attribute(pixels, abs=True)
            grads = attr.detach().abs()
            pixel_map = (grads[0].sum(0) if attr.dim() == 4 else grads.sum(-1)).numpy()
            patches = None
            if grid is not None and pixel_map.ndim == 2:
                rows, cols = grid
                h, w = pixel_map.shape
                cropped = pixel_map[: h - h % rows, : w - w % cols]
                patches = cropped.reshape(rows, h // rows, cols, w // cols).sum((1, 3))
            latents = None
            if lm.config.n_latents:
                embeds = lm.model.get_input_embeddings()(batch.input_ids).detach().requires_grad_(True)
                pos = (batch.segments[0] == int(Segment.LATENT)).nonzero().flatten()
                if method == "integrated_gradients":
                    baseline = embeds.detach().clone()
                    baseline[0, pos] = 0.0  # only the latent rows move along the path
                    ig = IntegratedGradients(lambda e: fn(inputs_embeds=e))
                    la, d2 = ig.attribute(embeds, baselines=baseline, n_steps=n_steps, internal_batch_size=n_steps,
                                          return_convergence_delta=True)
                    delta = max(delta or 0.0, float(d2.abs().max()))
                else:
                    la = Saliency(lambda e: fn(inputs_embeds=e)).attribute(embeds, abs=True)
                latents = la.detach()[0, pos].norm(dim=-1).numpy()
        finally:
            lm.model.train(was_training)
        return Attribution(method, pixel_map, patches, latents, delta, target)


def attribute(lm, batch, target: str, method: str = "integrated_gradients", stage: str = "full", n_steps: int = 16,
              grid: tuple[int, int] | None = None) -> Attribution:
    """One call: ``LatentAttribution(lm, method, n_steps).run(batch, target, stage, grid)``."""
    return LatentAttribution(lm, method, n_steps).run(batch, target, stage, grid)

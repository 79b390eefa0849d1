"""Interventions on latents: ablation (zero / mean / noise / remove) and activation patching.

All hooks live inside ``with`` blocks and are removed in ``finally`` (also when the forward raises).
Hook points are the outputs of decoder layers (``layers.{i}.resid_post``, ``[batch, pos, d_model]``);
``layer=-1`` means the input embeddings (``embed``), i.e. before the first layer.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from livr_viz.core.capture import rows_of_segment
from livr_viz.core.config import ABLATIONS, LETTERS, check_one_of
from livr_viz.core.errors import LIVRError
from livr_viz.core.hooks import local_hook
from livr_viz.core.segments import Segment


def _layers(lm) -> torch.nn.ModuleList:
    return lm.family.language_model(lm.base_model).layers


def _check_layer(lm, layer: int) -> None:
    """-1 is the embedding output, 0..L-1 a decoder layer's; other negatives would not mean the same residual in the
    hook (``layers[-2]``) and in ``hidden_states`` (``[-1]`` is after the final norm), so they are refused."""
    n_layers = len(_layers(lm))
    if not -1 <= layer < n_layers:
        raise LIVRError(f"layer must be -1 (embeddings) or 0..{n_layers - 1}; got {layer}")


@contextmanager
def replace_positions(lm, layer: int, positions: torch.Tensor, values: torch.Tensor) -> Iterator[None]:
    """Overwrite the residual stream at ``positions`` ([B, R]) after ``layer`` with ``values`` ([B, R, D])."""
    _check_layer(lm, layer)
    module = lm.family.language_model(lm.base_model).embed_tokens if layer == -1 else _layers(lm)[layer]

    def hook(_module, _inputs, output):
        hidden = output[0] if isinstance(output, tuple) else output
        hidden = hidden.clone()
        index = positions.to(hidden.device)
        rows = torch.arange(hidden.shape[0], device=hidden.device)[:, None]
        hidden[rows, index] = values.to(hidden.dtype).to(hidden.device)
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    with local_hook(module, hook):  # this request's forwards only: the model may serve others meanwhile
        yield


@torch.no_grad()
def residual_at(lm, batch, layer: int, positions: torch.Tensor, stage: str = "full") -> torch.Tensor:
    """``[B, R, D]`` residual stream after ``layer`` (-1 = embeddings) at ``positions``."""
    _check_layer(lm, layer)
    out = lm.hidden_states(batch, stage, output_hidden_states=True)
    hidden = out.hidden_states[layer + 1]  # hidden_states[0] is the embedding output
    rows = torch.arange(hidden.shape[0])[:, None]
    return hidden[rows, positions]


@dataclass
class InterventionResult:
    """Answer probabilities before / after an intervention, for one batch."""

    choices: list[str]
    before: torch.Tensor  # [B, n_choices]
    after: torch.Tensor  # [B, n_choices]
    description: dict = field(default_factory=dict)

    @property
    def delta(self) -> torch.Tensor:
        return self.after - self.before

    def to_dict(self) -> dict:
        return {
            "choices": self.choices,
            "before": self.before.tolist(),
            "after": self.after.tolist(),
            "delta": self.delta.tolist(),
            **self.description,
        }


class LatentAblation:
    """Switch latents off and watch the answer move.

    ``mode``: ``zero`` / ``mean`` / ``noise`` replace the latents' residual stream after ``layer`` (mean: the
    mean over the K latents of this input; noise: Gaussian with the latents' per-dimension std, seeded);
    ``remove`` blocks every later query from attending to the chosen latents (as if they were not there);
    ``blind`` keeps them readable but blocks *their* attention to the image tokens (what they still carry came
    from the text and the other latents). ``remove`` and ``blind`` edit the attention mask; ``layer`` is unused.
    """

    def __init__(self, lm, mode: str = "zero", layer: int = -1, seed: int = 0):
        check_one_of("ablation mode", mode, ABLATIONS)
        if not lm.config.n_latents:
            raise LIVRError("this model has no latents to ablate (variant sft)")
        _check_layer(lm, layer)  # for remove / blind too: a layer the model does not have is a mistake either way
        self.lm, self.mode, self.layer, self.seed = lm, mode, layer, seed

    @torch.no_grad()
    def run(self, batch, latents: Sequence[int], choices: Sequence[str], stage: str = "full") -> InterventionResult:
        latents = self._check(latents)
        before = self.lm.answer_logits(batch, stage)[:, self.lm.choice_token_ids(choices)].float().softmax(-1)
        return InterventionResult(
            list(choices),
            before,
            self.after(batch, latents, choices, stage),
            {"mode": self.mode, "layer": self.layer, "latents": latents, "stage": stage},
        )

    def _check(self, latents: Sequence[int]) -> list[int]:
        k = self.lm.config.n_latents
        latents = sorted(set(int(i) for i in latents))
        if not latents or any(not 0 <= i < k for i in latents):
            raise LIVRError(f"latent indices must be in 0..{k - 1}; got {list(latents)}")
        return latents

    @torch.no_grad()
    def after(self, batch, latents: Sequence[int], choices: Sequence[str], stage: str = "full") -> torch.Tensor:
        """``[B, n_choices]`` answer probabilities with ``latents`` ablated (no intact pass)."""
        lm = self.lm
        latents = self._check(latents)
        positions = rows_of_segment(batch.segments, Segment.LATENT)[:, latents]  # [B, R]
        if self.mode == "remove":
            after_logits = _answer_logits_without(lm, batch, positions, stage)
        elif self.mode == "blind":
            after_logits = _answer_logits_blind(lm, batch, positions, stage)
        else:
            all_latents = rows_of_segment(batch.segments, Segment.LATENT)
            current = residual_at(lm, batch, self.layer, all_latents, stage)  # [B, K, D]
            chosen = current[:, latents]
            if self.mode == "zero":
                values = torch.zeros_like(chosen)
            elif self.mode == "mean":
                values = current.mean(1, keepdim=True).expand_as(chosen)
            else:
                gen = torch.Generator().manual_seed(self.seed)
                std = current.float().std(dim=(0, 1), keepdim=True)
                values = torch.randn(chosen.shape, generator=gen) * std
            with replace_positions(lm, self.layer, positions, values):
                after_logits = lm.answer_logits(batch, stage)
        return after_logits[:, lm.choice_token_ids(choices)].float().softmax(-1)


def _answer_logits_masked(lm, batch, stage: str, block) -> torch.Tensor:
    """Answer logits under the stage mask with ``block(mask_row [T, T], b)`` further blocking entries in place."""
    kwargs = lm.model_kwargs(batch, stage)
    mask = kwargs["attention_mask"].clone()  # [B, 1, T, T]
    for b in range(mask.shape[0]):
        block(mask[b, 0], b, torch.finfo(mask.dtype).min)
    kwargs["attention_mask"] = mask
    return lm.logits_at_answer(lm.base_model.model(**kwargs).last_hidden_state, batch.answer_start)


def _answer_logits_without(lm, batch, positions: torch.Tensor, stage: str) -> torch.Tensor:
    """No later position may read the latents at ``positions`` [B, R]."""

    def block(mask, b, minimum):
        for p in positions[b].tolist():
            mask[p + 1 :, p] = minimum

    return _answer_logits_masked(lm, batch, stage, block)


def _answer_logits_blind(lm, batch, positions: torch.Tensor, stage: str) -> torch.Tensor:
    """The latents at ``positions`` [B, R] may not read the image tokens."""
    image = batch.segments == int(Segment.IMAGE)  # [B, T]

    def block(mask, b, minimum):
        mask[positions[b][:, None], image[b].nonzero()[:, 0][None, :]] = minimum

    return _answer_logits_masked(lm, batch, stage, block)


class LatentPatching:
    """Activation patching: put the latents computed on a *source* input into the *target* run."""

    def __init__(self, lm, layer: int = 0):
        if not lm.config.n_latents:
            raise LIVRError("this model has no latents to patch (variant sft)")
        self.lm, self.layer = lm, layer

    @torch.no_grad()
    def run(
        self,
        target_batch,
        source_batch,
        choices: Sequence[str],
        latents: Sequence[int] | None = None,
        stage: str = "full",
    ) -> InterventionResult:
        lm = self.lm
        if target_batch.input_ids.shape[0] != source_batch.input_ids.shape[0]:
            raise LIVRError("source and target batches must have the same size")
        k = lm.config.n_latents
        latents = list(range(k)) if latents is None else sorted(set(int(i) for i in latents))
        ids = lm.choice_token_ids(choices)
        before = lm.answer_logits(target_batch, stage)[:, ids].float().softmax(-1)
        src_pos = rows_of_segment(source_batch.segments, Segment.LATENT)[:, latents]
        values = residual_at(lm, source_batch, self.layer, src_pos, stage)
        tgt_pos = rows_of_segment(target_batch.segments, Segment.LATENT)[:, latents]
        with replace_positions(lm, self.layer, tgt_pos, values):
            after = lm.answer_logits(target_batch, stage)[:, ids].float().softmax(-1)
        return InterventionResult(
            list(choices), before, after, {"mode": "patch", "layer": self.layer, "latents": latents, "stage": stage}
        )


@torch.no_grad()
def per_latent_effects(
    lm, batch, choices: Sequence[str], mode: str = "zero", layer: int = -1, stage: str = "full"
) -> list[float]:
    """Change of the predicted choice's probability when each latent alone is ablated (batch row 0)."""
    ablation = LatentAblation(lm, mode, layer)
    before = lm.answer_logits(batch, stage)[:, lm.choice_token_ids(choices)].float().softmax(-1)[0]  # one intact pass
    base = int(before.argmax())
    return [
        float(ablation.after(batch, [i], choices, stage)[0, base] - before[base]) for i in range(lm.config.n_latents)
    ]


@torch.no_grad()
def ablation_accuracy(
    lm,
    items: Sequence,
    mode: str = "remove",
    layer: int = -1,
    stage: str = "full",
    batch_size: int = 50,
    each: bool = True,
) -> dict:
    """Accuracy over multiple-choice ``items`` with the latents intact, with all of them ablated, and (``each``)
    with every latent alone ablated: which latents does the model's *accuracy* rely on, not one answer's?

    Under the ``before_answer`` placement the last latent's row is also the row that predicts the first answer
    token, so ``remove`` (nobody may read the latents) never removes that row's own attention to the image: there
    "all ablated" is not "no latents". Under ``end_of_prompt`` (the default) the answer is predicted by template
    text rows, so "all ablated" with ``remove`` is "no latents".
    Items are batched by their option list (the letters, or a word-format task's option words).
    """
    k = lm.config.n_latents
    if not k:
        raise LIVRError("this model has no latents to ablate (variant sft)")
    if not len(items):
        raise LIVRError("no items to evaluate")
    ablation = LatentAblation(lm, mode, layer)
    conditions = {"intact": None, "all": list(range(k)), **({f"latent {i}": [i] for i in range(k)} if each else {})}
    correct = dict.fromkeys(conditions, 0)
    by_choices: dict[tuple, list] = {}
    for it in items:  # one option list per batch: letters, or a word-format task's option words
        options = tuple(getattr(it, "options", LETTERS[: len(it.choices)]))
        by_choices.setdefault(options, []).append(it)
    for options, group in by_choices.items():
        letters = list(LETTERS[: len(options)])
        for start in range(0, len(group), batch_size):
            chunk = group[start : start + batch_size]
            batch = lm.build_inputs([it.image for it in chunk], [it.prompt for it in chunk])
            truth = torch.tensor([letters.index(it.answer) for it in chunk])
            for name, latents in conditions.items():
                if latents is None:
                    probs = lm.answer_logits(batch, stage)[:, lm.choice_token_ids(list(options))]
                else:
                    probs = ablation.after(batch, latents, list(options), stage)
                correct[name] += int((probs.argmax(-1) == truth).sum())
    n = sum(len(g) for g in by_choices.values())
    accuracy = {name: c / n for name, c in correct.items()}
    return {
        "n": n,
        "mode": mode,
        "layer": layer,
        "stage": stage,
        "accuracy_intact": accuracy["intact"],
        "accuracy_all_ablated": accuracy["all"],
        "per_latent_change": [accuracy[f"latent {i}"] - accuracy["intact"] for i in range(k)] if each else [],
    }

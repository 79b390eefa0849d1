"""Is X → Z → Y real? Causal mediation of the latents (issue 43), after "Imagination Helps Visual Reasoning, But Not
Yet in Latent Space" (arXiv 2602.22766), which reports an input–latent disconnect, a latent–answer disconnect and
latent collapse for three latent-reasoning methods. Three measurements per model, per task and macro-averaged, with
95 % bootstrap intervals over questions:

* **Input → latents** (``sensitivity``). Perturb X and measure, per layer, how far each latent's hidden state moves
  (cosine distance ``1 - cos`` and relative L2 ``‖h' - h‖ / ‖h‖``) beside the image tokens and the answer row. The
  perturbations: ``other_image`` (the same question with the image of another question of the task), ``occluded``
  (the evidence pixels painted the suite's mean colour), ``blank`` (a uniform mean-colour image) and ``noise_<s>``
  (Gaussian pixel noise of std ``s`` × 255). ``ratio``: latent movement / image-token movement.
* **Latents → answer** (``interchange``). Interchange interventions: question A runs with the latents' hidden states
  taken from question B of the same task (B's correct answer is another of A's options). ``latents`` patches the
  latents' input to every layer, ``latents@l`` their output of layer ``l`` only; ``image`` patches the image tokens at
  every layer instead (= A's question on B's image); ``control`` patches latents of a question of an unrelated
  task; ``reverse`` swaps the image tokens to B's but holds the latents at A's own states (does the answer follow X
  without Z?). Per pair: ``changed`` (A's answer changed), ``follows`` (the patched answer is the model's own answer
  to B, over pairs where the two answers differ: the mediated fraction), ``shift`` (probability of B's answer after −
  before) and ``drop`` (probability of A's own answer before − after).
* **Collapse** (``collapse``). Cosine similarity of the latents across inputs, per layer and latent index: the mean
  off-diagonal similarity (within a task, across tasks, all), the effective rank (exp of the entropy of the singular
  values of the unit-normalised states; 1 = every input gives the same state) and the similarity of the K latents of
  one input with each other; the same for image tokens at K evenly spaced positions.

Every forward runs under one ``condition`` of :mod:`~livr_viz.methods.latent_use` (``standard`` by default; the
tests use ``bottleneck``, ``bottleneck_blind`` and ``removed`` for known answers). Passes are shared: one intact
pass per question (its states feed the patches, the sensitivity baseline and the collapse), the vision tower runs
once per batch for every interchange, and ``other_image`` is read off the ``image`` interchange's forward.
:func:`mediate` runs several models on the same questions and, given a directory, writes each finished (model,
task) at once and resumes from it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from livr_viz.core.capture import rows_of_segment
from livr_viz.core.config import LETTERS
from livr_viz.core.errors import LIVRError
from livr_viz.core.fsutil import JsonReport
from livr_viz.core.hooks import local_hooks
from livr_viz.core.segments import Segment
from livr_viz.methods.deletion import DATASET_MEAN_RGB
from livr_viz.methods.diagnostics import _check_same, _digest, _environment, _model_info, reuse_image_features
from livr_viz.methods.latent_use import CONDITIONS, _options

NOISE_LEVELS = (0.05, 0.2)  # pixel noise std, as a fraction of 0..255
N_BOOT = 2000  # bootstrap replicates of every interval
FIGURE_PER_TASK = 12  # inputs per task in the similarity matrices kept for the figure
REPORT_VERSION = 1
Progress = Callable[[float, str], None]


def perturbation_names(noise_levels: Sequence[float] = NOISE_LEVELS) -> list[str]:
    return ["other_image", "occluded", "blank", *[f"noise_{s:g}" for s in noise_levels]]


def intervention_names(n_layers: int) -> list[str]:
    """The latents' output of the last layer is read by no later position, so ``latents@l`` stops at L - 2."""
    return ["latents", *[f"latents@{layer}" for layer in range(n_layers - 1)], "image", "control", "reverse"]


# -------------------------------------------------------------------------------------------------- forwards
def _condition_kwargs(lm, batch, condition: str) -> dict:
    """HF keyword arguments with the float mask of ``condition`` (``removed``: no later row may read a latent)."""
    if condition not in CONDITIONS:
        raise LIVRError(f"condition must be one of {', '.join(CONDITIONS)}; got {condition!r}")
    stage = "bottleneck" if condition.startswith("bottleneck") else "full"
    kwargs = lm.model_kwargs(batch, stage, block_latent_image=condition in ("blind", "bottleneck_blind"))
    if condition == "removed":
        T = batch.segments.shape[1]
        latent_keys = (batch.segments == int(Segment.LATENT))[:, None, :]  # [B, 1, T]
        later = torch.arange(T)[:, None] > torch.arange(T)[None, :]  # [T, T]: query after key
        mask = kwargs["attention_mask"].clone()
        mask[:, 0].masked_fill_(latent_keys & later[None], torch.finfo(mask.dtype).min)
        kwargs["attention_mask"] = mask
    return kwargs


@contextmanager
def _patched_layer_inputs(lm, patches: Mapping[int, list[tuple[torch.Tensor, torch.Tensor]]]):
    """Overwrite the residual stream entering decoder layer ``l`` at ``positions`` [B, R] with ``values`` [B, R, D]
    for every ``(positions, values)`` in ``patches[l]``. Input 0 is the embeddings with the image features merged
    in, so image tokens can be patched there too. The hooks act only on forwards of this context
    (:func:`~livr_viz.core.hooks.local_hooks`) and are removed when the block ends."""
    layers = lm.family.language_model(lm.base_model).layers

    def make(entries):
        def hook(_module, args, kwargs):
            from_args = bool(args)
            hidden = (args[0] if from_args else kwargs["hidden_states"]).clone()
            rows = torch.arange(hidden.shape[0])[:, None]
            for positions, values in entries:
                hidden[rows, positions] = values.to(hidden.dtype)
            if from_args:
                return (hidden, *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": hidden}

        return hook

    for layer in patches:
        if not 0 <= layer < len(layers):
            raise LIVRError(f"layer must be in 0..{len(layers) - 1}; got {layer}")
    hooks = [(layers[layer], make(entries)) for layer, entries in patches.items()]
    with local_hooks(hooks, pre=True, with_kwargs=True):  # this request's forwards only, on a shared model
        yield


@dataclass
class _Pass:
    """One forward: ``states`` [L+1, B, T, D] (input embeddings, then each layer's output) and option probs."""

    states: torch.Tensor  # empty when the states were not asked for
    probs: torch.Tensor  # [B, n_options]


@torch.no_grad()
def _forward(lm, batch, condition: str, option_ids: torch.Tensor, patches=None, states: bool = True) -> _Pass:
    kwargs = _condition_kwargs(lm, batch, condition)
    with _patched_layer_inputs(lm, patches or {}):
        out = lm.base_model.model(**kwargs, output_hidden_states=states)
    logits = lm.logits_at_answer(out.last_hidden_state, batch.answer_start)
    probs = logits.gather(1, option_ids).float().softmax(-1)
    return _Pass(torch.stack(out.hidden_states) if states else torch.empty(0), probs)


# ---------------------------------------------------------------------------------------------- small helpers
def _distances(a: torch.Tensor, b: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Cosine distance and relative L2 of ``b`` from ``a`` along the last axis."""
    a, b = a.double(), b.double()
    cos = torch.nn.functional.cosine_similarity(a, b, dim=-1)
    rel = (b - a).norm(dim=-1) / a.norm(dim=-1).clamp_min(1e-12)
    return (1 - cos).clamp_min(0).numpy(), rel.numpy()


def _target_text(item) -> str:
    return _options(item)[LETTERS.index(item.answer)]


def occluded_image(image: Image.Image, evidence: np.ndarray, fill=DATASET_MEAN_RGB) -> Image.Image:
    """``image`` with the evidence pixels (bool ``[H, W]``) painted ``fill``."""
    pixels = np.array(image.convert("RGB"))
    if evidence.shape != pixels.shape[:2]:
        raise LIVRError(f"evidence mask {evidence.shape} does not match the image {pixels.shape[:2]}")
    pixels[evidence] = fill
    return Image.fromarray(pixels)


def noisy_image(image: Image.Image, level: float, rng: np.random.Generator) -> Image.Image:
    pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    noisy = pixels + rng.normal(0.0, level * 255.0, pixels.shape)
    return Image.fromarray(np.clip(np.rint(noisy), 0, 255).astype(np.uint8))


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "model"


# ------------------------------------------------------------------------------------------------ the engine
class Mediation:
    """Captum-style: bind the model and settings, then ``run(items)``. See the module docstring.

    ``latents``: the latent indices every latent patch touches (default all); ``condition``: the mask every forward
    runs under; ``image_positions``: image tokens (evenly spaced) kept for the collapse comparison.
    """

    def __init__(
        self,
        lm,
        condition: str = "standard",
        latents: Sequence[int] | None = None,
        noise_levels: Sequence[float] = NOISE_LEVELS,
        batch_size: int = 64,
        seed: int = 0,
        n_boot: int = N_BOOT,
        image_positions: int | None = None,
    ):
        k = lm.config.n_latents
        if not k:
            raise LIVRError(
                f"this model has no latents (variant {lm.config.variant}): there is no X → Z → Y to "
                "mediate; diagnose it with a latent model (livr or latents_only)"
            )
        if condition not in CONDITIONS:
            raise LIVRError(f"condition must be one of {', '.join(CONDITIONS)}; got {condition!r}")
        chosen = list(range(k)) if latents is None else sorted({int(i) for i in latents})
        if not chosen or any(not 0 <= i < k for i in chosen):
            raise LIVRError(f"latent indices must be in 0..{k - 1}; got {list(latents or [])}")
        if batch_size < 1:
            raise LIVRError(f"batch size must be at least 1; got {batch_size}")
        if any(not 0 < s <= 1 for s in noise_levels):
            raise LIVRError(f"noise levels are fractions of the pixel range, in (0, 1]; got {list(noise_levels)}")
        self.lm, self.condition, self.latents = lm, condition, chosen
        self.noise_levels, self.batch_size, self.seed, self.n_boot = tuple(noise_levels), batch_size, seed, n_boot
        self.image_positions = image_positions or k
        self.n_layers = len(lm.family.language_model(lm.base_model).layers)

    def settings(self) -> dict:
        return {
            "condition": self.condition,
            "latents": self.latents,
            "noise_levels": list(self.noise_levels),
            "seed": self.seed,
            "image_positions": self.image_positions,
            "n_boot": self.n_boot,
        }

    # ------------------------------------------------------------------ public calls
    def run(self, items: Sequence, control_items: Sequence | None = None, progress: Progress | None = None) -> dict:
        """Every measurement on ``items`` (``.id``, ``.task``, ``.image``, ``.prompt``, ``.answer`` letter,
        ``.options`` / ``.choices``, optionally ``.evidence``); ``control_items``: questions of other tasks whose
        latents the ``control`` patch uses (default: the first question of every other task in ``items``)."""
        items = _check_items(items)
        bank = self.control_bank(control_items if control_items is not None else _first_per_task(items))
        tasks = sorted({it.task for it in items})
        parts = {}
        for j, task in enumerate(tasks):
            tick = (lambda f, j=j, t=task: progress((j + f) / len(tasks), t)) if progress else None
            parts[task] = self.run_task([it for it in items if it.task == task], bank, tick)
        return self.summarise(parts)

    @torch.no_grad()
    def control_bank(self, items: Sequence) -> dict:
        """Latent states of unrelated questions (``[n, L+1, K', D]``) and their tasks, for the ``control`` patch."""
        items = list(items)
        if not items:
            return {"tasks": [], "states": None}
        states, tasks = [], []
        groups: dict[int, list] = {}
        for it in items:  # one number of options per batch
            groups.setdefault(len(_options(it)), []).append(it)
        with reuse_image_features(self.lm):
            for group in groups.values():
                for start in range(0, len(group), self.batch_size):
                    chunk = group[start : start + self.batch_size]
                    batch, option_ids = self._batch(chunk)
                    p = _forward(self.lm, batch, self.condition, option_ids)
                    states.append(self._at(p.states, self._latent_positions(batch)))
                    tasks += [it.task for it in chunk]
        return {"tasks": tasks, "states": torch.cat(states)}

    # ------------------------------------------------------------------ one task
    def _batch(self, chunk, images=None):
        lm = self.lm
        batch = lm.build_inputs(images or [it.image for it in chunk], [it.prompt for it in chunk])
        option_ids = torch.tensor([lm.choice_token_ids(list(_options(it))) for it in chunk])
        return batch, option_ids

    def _latent_positions(self, batch) -> torch.Tensor:
        """``[B, K']`` positions of the chosen latents; under ``before_answer`` the last latent's row predicts the
        answer, so it is left out (patching it would set the answer row itself)."""
        positions = rows_of_segment(batch.segments, Segment.LATENT)[:, self.latents]
        answer_row = (batch.answer_start - 1)[:, None]
        keep = ~(positions == answer_row).any(0)
        return positions[:, keep]

    @staticmethod
    def _at(states: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """``[B, L+1, R, D]`` states at per-row ``positions`` [B, R] from ``states`` [L+1, B, T, D]."""
        rows = torch.arange(positions.shape[0])[:, None]
        return states.permute(1, 0, 2, 3)[rows, :, positions].permute(0, 2, 1, 3)

    @torch.no_grad()
    def run_task(self, items: Sequence, bank: dict, tick: Callable[[float], None] | None = None) -> dict:
        """Raw per-question arrays for the questions of one task (see :meth:`summarise`)."""
        lm, n = self.lm, len(items)
        tick = tick or (lambda f: None)
        task = items[0].task
        if any(it.task != task for it in items):
            raise LIVRError("run_task takes the questions of one task")
        rng = np.random.default_rng([self.seed, sum(map(ord, task))])
        chunks = [list(range(s, min(n, s + self.batch_size))) for s in range(0, n, self.batch_size)]
        intact: list[dict] = []
        with reuse_image_features(lm):
            for idx in chunks:  # 1. the intact pass: every later step reuses its states
                batch, option_ids = self._batch([items[i] for i in idx])
                p = _forward(lm, batch, self.condition, option_ids)
                image_pos = rows_of_segment(batch.segments, Segment.IMAGE)
                intact.append(
                    {
                        "batch": batch,
                        "option_ids": option_ids,
                        "probs": p.probs,
                        "latent": self._at(p.states, self._latent_positions(batch)),
                        "image": self._at(p.states, image_pos),
                        "answer": self._at(p.states, (batch.answer_start - 1)[:, None])[:, :, 0],
                    }
                )
        tick(0.15)
        cat = lambda key: torch.cat([c[key] for c in intact])  # noqa: E731
        probs, latent, image, answer = cat("probs"), cat("latent"), cat("image"), cat("answer")
        pred = probs.argmax(-1).numpy()
        pred_text = [_options(it)[p] for it, p in zip(items, pred)]
        pair = _pairs(items, pred_text, rng)
        control = _controls(task, bank, n, rng)
        names = intervention_names(self.n_layers)
        metrics = {name: {m: np.full(n, np.nan) for m in ("changed", "follows", "shift", "drop")} for name in names}
        perts = perturbation_names(self.noise_levels)
        L1 = latent.shape[1]
        sens = {
            who: {
                d: np.full((len(perts), n, L1 - 1) + ((latent.shape[2],) if who == "latent" else ()), np.nan)
                for d in ("cos", "l2")
            }
            for who in ("latent", "image", "answer")
        }
        answer_changed = np.full((len(perts), n), np.nan)
        steps = len(chunks) * (len(names) + len(perts) - 1)
        done = 0
        with reuse_image_features(lm):
            for c, idx in enumerate(chunks):  # 2. interchange interventions, vision run once per chunk
                batch, option_ids = intact[c]["batch"], intact[c]["option_ids"]
                before = intact[c]["probs"]
                src = [pair[i] if pair[i] >= 0 else i for i in idx]  # a question without partner patches itself
                lat_pos, img_pos = self._latent_positions(batch), rows_of_segment(batch.segments, Segment.IMAGE)
                if img_pos.shape[1] != image.shape[2]:
                    raise LIVRError(
                        "the questions of one task have different numbers of image tokens; the image "
                        "interchange needs equal counts (resize the images to one size)"
                    )
                for name in names:
                    patches = self._patches(name, lat_pos, img_pos, latent, image, idx, src, control)
                    if patches is None:  # no question of another task to take control latents from
                        done += 1
                        continue
                    p = _forward(lm, batch, self.condition, option_ids, patches, states=name == "image")
                    src_answer = None if name == "control" else [pred_text[s] for s in src]
                    self._score(metrics[name], idx, items, before, p.probs, pred, src_answer, pair)
                    if name == "image":  # = A's question on B's image: the other_image perturbation
                        for b, i in enumerate(idx):
                            if pair[i] < 0:
                                continue
                            self._movement(
                                sens,
                                0,
                                i,
                                latent[i],
                                p.states[:, b][:, lat_pos[b]],
                                image[i],
                                image[pair[i]],
                                answer[i],
                                p.states[:, b, batch.answer_start[b] - 1],
                            )
                            answer_changed[0, i] = float(int(p.probs[b].argmax()) != pred[i])
                    done += 1
                    tick(0.15 + 0.85 * done / steps)
                for j, pert in enumerate(perts[1:], start=1):  # 3. perturbed inputs (the vision tower runs again)
                    images, valid = self._perturbed([items[i] for i in idx], pert, rng)
                    pbatch, _ = self._batch([items[i] for i in idx], images)
                    p = _forward(lm, pbatch, self.condition, option_ids)
                    moved_lat = self._at(p.states, self._latent_positions(pbatch))
                    moved_img = self._at(p.states, rows_of_segment(pbatch.segments, Segment.IMAGE))
                    moved_ans = self._at(p.states, (pbatch.answer_start - 1)[:, None])[:, :, 0]
                    for b, i in enumerate(idx):
                        if valid[b]:
                            self._movement(
                                sens, j, i, latent[i], moved_lat[b], image[i], moved_img[b], answer[i], moved_ans[b]
                            )
                            answer_changed[j, i] = float(int(p.probs[b].argmax()) != pred[i])
                    done += 1
                    tick(0.15 + 0.85 * done / steps)
        spots = np.linspace(0, image.shape[2] - 1, min(self.image_positions, image.shape[2])).round().astype(int)
        out = {
            "ids": np.array([str(it.id) for it in items]),
            "pred": pred,
            "pair": np.asarray(pair),
            "correct": np.array([p == _target_text(it) for p, it in zip(pred_text, items)]),
            "states_latent": latent[:, 1:].numpy().astype(np.float16),
            "states_image": image[:, 1:, spots].numpy().astype(np.float16),
            "answer_changed": answer_changed,
        }
        for who, ds in sens.items():
            for d, values in ds.items():
                out[f"sens_{who}_{d}"] = values
        for name, ms in metrics.items():
            for m, values in ms.items():
                out[f"int_{name}_{m}"] = values
        tick(1.0)
        return out

    def _patches(self, name, lat_pos, img_pos, latent, image, idx, src, control) -> dict | None:
        """``{layer: [(positions [B, R], values [B, R, D])]}`` for intervention ``name`` on the chunk ``idx``."""
        L = self.n_layers
        take = lambda states, who: torch.stack([states[s] for s in who])  # [B, L+1, R, D]  # noqa: E731
        if name == "latents":
            values = take(latent, src)
            return {layer: [(lat_pos, values[:, layer])] for layer in range(L)}
        if name.startswith("latents@"):
            layer = int(name.split("@")[1])
            return {layer + 1: [(lat_pos, take(latent, src)[:, layer + 1])]}  # layer l's output = layer l+1's input
        if name == "image":
            values = take(image, src)
            return {layer: [(img_pos, values[:, layer])] for layer in range(L)}
        if name == "reverse":  # B's image, A's own latents held fixed
            img, own = take(image, src), take(latent, idx)
            return {layer: [(img_pos, img[:, layer]), (lat_pos, own[:, layer])] for layer in range(L)}
        if name == "control":
            if control is None:
                return None
            values = control[idx]  # [B, L+1, R, D]
            return {layer: [(lat_pos, values[:, layer])] for layer in range(L)}
        raise LIVRError(f"unknown intervention {name!r}")

    @staticmethod
    def _score(out, idx, items, before, after, pred, src_answer, pair) -> None:
        if after is None:
            return
        new = after.argmax(-1).numpy()
        for b, i in enumerate(idx):
            if src_answer is not None and pair[i] < 0:
                continue  # no partner in the task: the pair is not counted
            out["changed"][i] = float(new[b] != pred[i])
            out["drop"][i] = float(before[b, pred[i]] - after[b, pred[i]])
            if src_answer is None:
                continue
            options = list(_options(items[i]))
            if src_answer[b] in options and options.index(src_answer[b]) != pred[i]:
                s = options.index(src_answer[b])
                out["follows"][i] = float(new[b] == s)
                out["shift"][i] = float(after[b, s] - before[b, s])

    @staticmethod
    def _movement(sens, j, i, lat0, lat1, img0, img1, ans0, ans1) -> None:
        """Per layer (outputs of layers 0..L-1) the movement of the latents [K'], image tokens and answer row."""
        cos, l2 = _distances(lat0[1:], lat1[1:])  # [L, K']
        sens["latent"]["cos"][j, i], sens["latent"]["l2"][j, i] = cos, l2
        cos, l2 = _distances(img0[1:], img1[1:])  # [L, P]
        sens["image"]["cos"][j, i], sens["image"]["l2"][j, i] = cos.mean(-1), l2.mean(-1)
        cos, l2 = _distances(ans0[1:], ans1[1:])  # [L]
        sens["answer"]["cos"][j, i], sens["answer"]["l2"][j, i] = cos, l2

    def _perturbed(self, chunk, pert: str, rng) -> tuple[list[Image.Image], list[bool]]:
        images, valid = [], []
        for it in chunk:
            image = it.image.convert("RGB")
            if pert == "occluded":
                evidence = getattr(it, "evidence", None)
                ok = evidence is not None and np.asarray(evidence).shape == image.size[::-1] and np.any(evidence)
                images.append(occluded_image(image, np.asarray(evidence, bool)) if ok else image)
                valid.append(bool(ok))
            elif pert == "blank":
                images.append(Image.new("RGB", image.size, DATASET_MEAN_RGB))
                valid.append(True)
            else:
                images.append(noisy_image(image, float(pert.split("_")[1]), rng))
                valid.append(True)
        return images, valid

    # ------------------------------------------------------------------ the summary
    def summarise(self, parts: Mapping[str, dict]) -> dict:
        """Per task and macro-averaged summaries, the collapse and the plain-words verdict from raw ``parts``."""
        tasks = sorted(parts)
        if not tasks:
            raise LIVRError("no questions were measured")
        boot = lambda key, **kw: _bootstrap({t: parts[t][key] for t in tasks}, self.n_boot, self.seed, **kw)  # noqa
        perts = perturbation_names(self.noise_levels)
        sensitivity = {}
        for j, pert in enumerate(perts):
            entry: dict[str, Any] = {}
            for who in ("latent", "image", "answer"):
                for d in ("cos", "l2"):
                    values = {t: _mean_latents(parts[t][f"sens_{who}_{d}"][j]) for t in tasks}
                    entry[f"{who}_{d}"] = _bootstrap(values, self.n_boot, self.seed)
            for d in ("cos", "l2"):
                num = {t: _mean_latents(parts[t][f"sens_latent_{d}"][j]) for t in tasks}
                den = {t: parts[t][f"sens_image_{d}"][j] for t in tasks}
                entry[f"ratio_{d}"] = _bootstrap(num, self.n_boot, self.seed, denominator=den)
            entry["answer_changed"] = _bootstrap(
                {t: parts[t]["answer_changed"][j] for t in tasks}, self.n_boot, self.seed
            )
            per_latent = np.concatenate([parts[t]["sens_latent_cos"][j] for t in tasks])  # [n, L, K']
            entry["per_latent_cos"] = _plain(np.nanmean(per_latent, 0)) if np.isfinite(per_latent).any() else None
            sensitivity[pert] = entry
        interchange = {}
        for name in intervention_names(self.n_layers):
            interchange[name] = {m: boot(f"int_{name}_{m}") for m in ("changed", "follows", "shift", "drop")}
        n_items = sum(len(parts[t]["ids"]) for t in tasks)
        result = {
            "status": "done",
            "n_items": n_items,
            "tasks": tasks,
            "n_layers": self.n_layers,
            "n_latents": self.lm.config.n_latents,
            "settings": self.settings(),
            "accuracy": boot("correct"),
            "sensitivity": sensitivity,
            "interchange": interchange,
            "collapse": collapse(
                {t: parts[t]["states_latent"] for t in tasks},
                {t: parts[t]["states_image"] for t in tasks},
                self.n_boot,
                self.seed,
            ),
        }
        result["verdict"] = verdict(result)
        return result


@torch.no_grad()
def interchange(
    lm,
    targets: Sequence,
    sources: Sequence,
    what: str = "latents",
    layers: Sequence[int] | None = None,
    latents: Sequence[int] | None = None,
    condition: str = "standard",
) -> dict:
    """Run each target question with the hidden states of its source question (one source per target) at the
    inputs of ``layers`` (default every layer): ``what`` = ``latents`` (the chosen latents), ``image`` (the image
    tokens) or ``reverse`` (the source's image tokens, the target's own latents). Returns ``before`` / ``after``
    option probabilities ``[B, n_options]`` and the options of each target. The app's "swap these latents" button and
    the tests call this; :class:`Mediation` runs the same patches batched over a task."""
    targets, sources = list(targets), list(sources)
    if len(targets) != len(sources) or not targets:
        raise LIVRError(f"give one source question per target question; got {len(targets)} and {len(sources)}")
    if what not in ("latents", "image", "reverse"):
        raise LIVRError(f"what must be latents, image or reverse; got {what!r}")
    engine = Mediation(lm, condition, latents)
    n_layers = engine.n_layers
    chosen = list(range(n_layers)) if layers is None else sorted({int(layer) for layer in layers})
    if not chosen or any(not 0 <= layer < n_layers for layer in chosen):
        raise LIVRError(f"layers must be in 0..{n_layers - 1} (the input of each layer); got {list(layers or [])}")
    with reuse_image_features(lm):
        src_batch, src_ids = engine._batch(sources)
        src = _forward(lm, src_batch, condition, src_ids)
        batch, option_ids = engine._batch(targets)
        before = _forward(lm, batch, condition, option_ids)
        lat_pos, img_pos = engine._latent_positions(batch), rows_of_segment(batch.segments, Segment.IMAGE)
        src_img = rows_of_segment(src_batch.segments, Segment.IMAGE)
        if src_img.shape[1] != img_pos.shape[1]:
            raise LIVRError("source and target images give different numbers of image tokens; resize them to one size")
        src_lat = engine._at(src.states, engine._latent_positions(src_batch))
        own_lat = engine._at(before.states, lat_pos)
        src_image = engine._at(src.states, src_img)
        patches = {}
        for layer in chosen:
            entries = []
            if what in ("image", "reverse"):
                entries.append((img_pos, src_image[:, layer]))
            entries.append((lat_pos, (own_lat if what == "reverse" else src_lat)[:, layer]))
            if what == "image":
                entries = entries[:1]
            patches[layer] = entries
        after = _forward(lm, batch, condition, option_ids, patches)
    return {
        "before": before.probs,
        "after": after.probs,
        "options": [list(_options(t)) for t in targets],
        "source_before": src.probs,
        "source_options": [list(_options(s)) for s in sources],
    }


def _check_items(items) -> list:
    items = list(items)
    if not items:
        raise LIVRError("no questions to measure the mediation on")
    for it in items:
        if it.answer not in LETTERS[: len(_options(it))]:
            raise LIVRError(f"question {it.id}: answer {it.answer!r} is not one of its option letters")
    return items


def _first_per_task(items: Sequence) -> list:
    seen, out = set(), []
    for it in items:
        if it.task not in seen:
            seen.add(it.task)
            out.append(it)
    return out


def _pairs(items: Sequence, pred_text: list[str], rng: np.random.Generator) -> list[int]:
    """B for each A, within the task: B's correct answer is another of A's options; among those, one whose answer
    by the model differs from A's and is one of A's options where there is one (so "follows" can be read). -1: none."""
    pair = []
    for a, item in enumerate(items):
        options = list(_options(item))
        ok = [
            b
            for b, other in enumerate(items)
            if b != a and _target_text(other) in options and _target_text(other) != _target_text(item)
        ]
        best = [b for b in ok if pred_text[b] in options and pred_text[b] != pred_text[a]]
        pool = best or ok
        pair.append(int(rng.choice(pool)) if pool else -1)
    return pair


def _controls(task: str, bank: dict, n: int, rng) -> torch.Tensor | None:
    """``[n, L+1, K', D]`` latent states of questions of other tasks (None when the bank has none)."""
    others = [i for i, t in enumerate(bank["tasks"]) if t != task]
    if not others:
        return None
    return bank["states"][torch.as_tensor(rng.choice(others, n))]


def _mean_latents(values: np.ndarray) -> np.ndarray:
    """``[n, L]`` from ``[n, L, K']`` (mean over latents); ``[n, L]`` unchanged."""
    return values.mean(-1) if values.ndim == 3 else values


# ------------------------------------------------------------------------------------------------ statistics
def _plain(value):
    """JSON-able floats (non-finite → None), lists for arrays."""
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value] if value.ndim else _plain(float(value))
    value = float(value)
    return value if np.isfinite(value) else None


def _bootstrap(
    by_task: Mapping[str, np.ndarray],
    n_boot: int = N_BOOT,
    seed: int = 0,
    denominator: Mapping[str, np.ndarray] | None = None,
) -> dict:
    """Per task and macro-averaged (tasks weigh equally) mean of per-question values ``[n, ...]`` (a NaN question is
    left out), or the ratio of two means, with 95 % percentile bootstrap intervals: questions resampled within each
    task, the average's replicates the mean of the tasks' replicates. Same shape as
    :func:`~livr_viz.methods.stats.task_summary`."""
    rng = np.random.default_rng(seed)
    tasks, stats, reps = {}, [], []
    with np.errstate(divide="ignore", invalid="ignore"):
        for task in sorted(by_task):
            x = np.asarray(by_task[task], np.float64)
            d = None if denominator is None else np.asarray(denominator[task], np.float64)
            keep = ~np.isnan(x.reshape(len(x), -1)).any(1)
            if d is not None:
                keep &= ~np.isnan(d.reshape(len(d), -1)).any(1)
                d = d[keep]
            x = x[keep]
            if not len(x):
                continue
            idx = rng.integers(0, len(x), (n_boot, len(x)))
            stat = x.mean(0) if d is None else x.mean(0) / d.mean(0)
            boots = x[idx].mean(1) if d is None else x[idx].mean(1) / d[idx].mean(1)
            ci = [_plain(q) for q in np.quantile(boots, [0.025, 0.975], axis=0)] if len(x) > 1 else None
            tasks[task] = {"n": int(len(x)), "mean": _plain(stat), "ci95": ci}
            stats.append(stat)
            reps.append(boots)
        if not tasks:
            return {"tasks": {}, "average": None}
        boots = np.mean(reps, 0)
        ci = [_plain(q) for q in np.quantile(boots, [0.025, 0.975], axis=0)]
    average = {"n": sum(t["n"] for t in tasks.values()), "mean": _plain(np.mean(stats, 0)), "ci95": ci}
    return {"tasks": tasks, "average": average}


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def effective_rank(x: np.ndarray) -> float:
    """exp(entropy of the normalised singular values) of ``x`` [n, D] with unit rows: 1 when every row is the same
    direction, up to min(n, D) when they are orthogonal (Roy & Vetterli 2007)."""
    s = np.linalg.svd(_unit(np.asarray(x, np.float64)), compute_uv=False)
    p = s / s.sum()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def collapse(
    latent: Mapping[str, np.ndarray], image: Mapping[str, np.ndarray], n_boot: int = N_BOOT, seed: int = 0
) -> dict:
    """Collapse of states ``[n, L, K, D]`` per task (latents; image tokens at K positions): per layer, the mean
    off-diagonal cosine similarity across inputs (each index compared with itself in other inputs, then averaged over
    indices) for all inputs, within a task and across tasks; each input's mean similarity to the others bootstrapped
    over questions; the effective rank of the inputs' states (mean over indices); the K × K similarity of one
    input's indices (mean over inputs). ``matrices``: input × input similarity (mean over indices) per layer, on up to
    :data:`FIGURE_PER_TASK` inputs per task, for the figure."""
    tasks = sorted(latent)
    out = {"n_inputs": int(sum(len(latent[t]) for t in tasks)), "tasks": tasks}
    for who, states in (("latent", latent), ("image", image)):
        x = _unit(np.concatenate([states[t] for t in tasks]).astype(np.float64))  # [N, L, K, D]
        task_of = np.concatenate([[t] * len(states[t]) for t in tasks])
        N, L, K, _ = x.shape
        sim = np.einsum("ilkd,jlkd->lij", x, x) / K  # [L, N, N]: mean over indices
        off = ~np.eye(N, dtype=bool)
        same = (task_of[:, None] == task_of[None, :]) & off
        across = task_of[:, None] != task_of[None, :]
        per_input = np.where(off[None], sim, 0).sum(-1) / max(N - 1, 1)  # [L, N]
        by_task = {t: per_input[:, task_of == t].T for t in tasks}  # [n, L]
        index_sim = np.einsum("ilkd,ilmd->lkm", x, x) / N  # [L, K, K]
        keep = np.concatenate([np.flatnonzero(task_of == t)[:FIGURE_PER_TASK] for t in tasks])
        out[who] = {
            "mean_similarity": _bootstrap(by_task, n_boot, seed),
            "all": _plain(np.array([sim[layer][off].mean() if N > 1 else 1.0 for layer in range(L)])),
            "within_task": _plain(np.array([sim[la][same].mean() if same.any() else np.nan for la in range(L)])),
            "across_tasks": _plain(np.array([sim[la][across].mean() if across.any() else np.nan for la in range(L)])),
            "effective_rank": [float(np.mean([effective_rank(x[:, la, k]) for k in range(K)])) for la in range(L)],
            "index_similarity": _plain(
                np.array([index_sim[layer][~np.eye(K, dtype=bool)].mean() if K > 1 else 1.0 for layer in range(L)])
            ),
            "index_matrix": _plain(np.round(index_sim, 4)),
            "matrices": _plain(np.round(sim[:, keep][:, :, keep], 4)),
            "matrix_tasks": [str(t) for t in task_of[keep]],
        }
    return out


# -------------------------------------------------------------------------------------------------- verdicts
def _pct(stat: dict | None) -> str:
    if not stat or stat.get("mean") is None:
        return "n/a"
    lo, hi = stat["ci95"] or (None, None)
    interval = f" [{100 * lo:.0f}, {100 * hi:.0f}]" if lo is not None and hi is not None else ""
    return f"{100 * stat['mean']:.0f} %{interval}"


def _num(stat: dict | None, layer: int = -1, digits: int = 3) -> str:
    if not stat or stat.get("mean") is None:
        return "n/a"
    mean = stat["mean"][layer] if isinstance(stat["mean"], list) else stat["mean"]
    text = "n/a" if mean is None else f"{mean:.{digits}f}"
    if stat.get("ci95"):
        lo, hi = (v[layer] if isinstance(v, list) else v for v in stat["ci95"])
        if lo is not None and hi is not None:
            text += f" [{lo:.{digits}f}, {hi:.{digits}f}]"
    return text


def verdict(result: dict) -> list[str]:
    """A few plain-words sentences from one model's :meth:`Mediation.summarise` result (last layer where per layer)."""
    inter, sens, col = result["interchange"], result["sensitivity"], result["collapse"]
    follows = inter["latents"]["follows"]["average"]
    lines = [
        f"latents → answer: the answer follows swapped latents in {_pct(follows)} of questions "
        f"({follows['n'] if follows else 0} pairs whose answers differ); swapped image tokens "
        f"{_pct(inter['image']['follows']['average'])}; latents of an unrelated task change the answer in "
        f"{_pct(inter['control']['changed']['average'])}",
        f"reverse: with the latents held at the question's own states, the answer follows a swapped image in "
        f"{_pct(inter['reverse']['follows']['average'])}",
    ]
    other = sens["other_image"]
    lines.append(
        f"input → latents: another image moves the latents by {_num(other['latent_cos']['average'])} "
        f"(cosine distance, last layer), the image tokens by {_num(other['image_cos']['average'])}: "
        f"ratio {_num(other['ratio_cos']['average'], digits=2)}; a blank image: ratio "
        f"{_num(sens['blank']['ratio_cos']['average'], digits=2)}"
    )
    lat, img = col["latent"], col["image"]
    lines.append(
        f"collapse: latents of different inputs have mean cosine similarity {lat['all'][-1]:.3f} at the last "
        f"layer (image tokens {img['all'][-1]:.3f}); effective rank {lat['effective_rank'][-1]:.1f} of "
        f"{col['n_inputs']} inputs (image tokens {img['effective_rank'][-1]:.1f})"
    )
    return lines


# ------------------------------------------------------------------------------------------- several models
@dataclass
class MediationReport(JsonReport):
    """:func:`mediate`'s result: ``settings``, ``models`` = ``{name: {"info", "result"}}`` (a model without latents:
    ``result = {"status": "n/a", "reason"}``), ``environment``. JSON-able."""

    KIND, RESUME_FROM, VERSION = "mediation", "directory", REPORT_VERSION
    KEYS = ("settings", "environment", "models")  # the JSON's order, after "version"

    settings: dict
    models: dict = field(default_factory=dict)
    environment: dict = field(default_factory=dict)
    version: int = REPORT_VERSION

    def result(self, name: str) -> dict:
        return self.models[name].get("result") or {"status": "n/a", "reason": "not run"}

    def summary_lines(self) -> list[str]:
        lines = []
        for name, entry in self.models.items():
            info, result = entry["info"], self.result(name)
            lines.append(f"{name} ({info['variant']}, K = {info['n_latents']})")
            if result["status"] != "done":
                lines.append(f"  n/a: {result['reason']}")
                continue
            lines.append(
                f"  {result['n_items']} questions, {len(result['tasks'])} tasks, condition "
                f"{result['settings']['condition']}"
            )
            lines += ["  " + line for line in result["verdict"]]
        return lines


REPORT_NAME = "mediation.json"
PARTS_DIR = "parts"


def mediate(
    models: Mapping[str, Any],
    items: Sequence,
    control_items: Sequence | None = None,
    progress: Progress | None = None,
    *,
    out: str | Path | None = None,
    **settings,
) -> MediationReport:
    """:class:`Mediation` for every model (name → :class:`~livr_viz.core.model.LIVRModel`) on the same ``items``.
    ``out``: a directory; ``mediation.json`` is rewritten after every model and each finished (model, task) is kept
    in ``parts/`` (the raw per-question arrays), so a killed run resumes where it stopped; a directory made with other
    questions, settings or weights of the same name is refused. ``settings``: :class:`Mediation`'s keywords."""
    if not models:
        raise LIVRError("name at least one model")
    items = _check_items(items)
    controls = list(control_items) if control_items is not None else _first_per_task(items)
    tasks = sorted({it.task for it in items})
    engines = {name: Mediation(lm, **settings) for name, lm in models.items() if lm.config.n_latents}
    shown = next(iter(engines.values())).settings() if engines else {}
    info_all = {
        "n_items": len(items),
        "tasks": tasks,
        "items_digest": _digest(items),
        "control_digest": _digest(controls) if controls else None,
        **shown,
    }
    report = MediationReport(info_all, environment=_environment())
    path = None if out is None else Path(out) / REPORT_NAME
    if path is not None and path.is_file():
        report = MediationReport.load(path)
        _check_same(report.settings, info_all, path, "questions or settings")
    plan = [(name, task) for name in engines for task in tasks]
    for name, lm in models.items():  # every model's weights are checked (and recorded) before any part is reused
        entry = report.models.setdefault(name, {"info": _model_info(lm, None)})
        _check_same(entry["info"], _model_info(lm, None), path, f"model {name!r}")
    if path is not None:  # settings on disk first: parts/ never outlive the settings that made them
        report.save(path)
    done = 0
    for name, lm in models.items():
        entry = report.models[name]
        if name not in engines:
            entry["result"] = {
                "status": "n/a",
                "reason": f"the model has no latents (variant {lm.config.variant}): there is no X → Z → Y to mediate",
            }
            continue
        if entry.get("result", {}).get("status") == "done":
            done += len(tasks)
            continue
        engine, parts, bank = engines[name], {}, None
        for task in tasks:
            part_path = None if out is None else Path(out) / PARTS_DIR / _slug(name) / f"{task}.npz"
            if part_path is not None and part_path.is_file():
                parts[task] = dict(np.load(part_path, allow_pickle=False))
            else:
                if bank is None:
                    bank = engine.control_bank(controls)
                tick = (lambda f, m=f"{name}: {task}", d=done: progress((d + f) / len(plan), m)) if progress else None
                parts[task] = engine.run_task([it for it in items if it.task == task], bank, tick)
                if part_path is not None:
                    _save_part(part_path, parts[task])
            done += 1
        entry["result"] = engine.summarise(parts)
        if path is not None:
            report.save(path)
    if path is not None:
        report.save(path)
    if progress:
        progress(1.0, "done")
    return report


def _save_part(path: Path, arrays: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)

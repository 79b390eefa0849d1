"""Causal faithfulness of explanations: deletion and insertion curves (RISE, Petsiuk et al. 2018), retrain-free.

An explanation is a ``[rows, cols]`` map over the model's patch grid. Ranking the patches by it, the *deletion*
curve occludes them most-important-first and tracks the probability of the model's chosen answer (the option it
predicts on the intact image, renormalised over the options); the *insertion* curve starts from a fully occluded
image and reveals them in the same order. Areas under the curves over the occluded / revealed fraction in [0, 1]:
deletion AUC lower = more faithful, insertion AUC higher. A seeded random order is the baseline every explanation
must beat.

Occlusion happens in PIL image space at the model's input resolution (the image is first resized to it, so each
grid cell is a pixel rectangle whatever the architecture), filled with a constant colour, and the inputs are rebuilt
with ``lm.build_inputs``. The model is reached only through a *scorer* ``f(images) -> [N, n_options]``
probabilities (:func:`choice_scorer`), so the engine runs as well on a toy scorer in tests.

Explanations compared (:data:`METHODS`): each latent's attention map (``latent_i``), the latents' mean
(``latent_mean``), the answer row's map (``answer``), captum ``saliency`` and ``integrated_gradients`` patch maps,
and ``random``. On synthetic items with a ground-truth evidence mask, :func:`evidence_vs_outside` compares occluding
the evidence with occluding an equal number of patches outside it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

from livr_viz.core.errors import LIVRError
from livr_viz.core.images import load_image
from livr_viz.methods.analysis import parse_choices, run_analysis
from livr_viz.methods.attribution import LatentAttribution
from livr_viz.methods.faithfulness import evidence_on_grid

# Mean RGB of the synthetic suite: all pixels of `livr_viz.data.make_sample(task, "train", 0, i)` for the nine
# tasks x i in 0..99 at the default 96 px (measured: 215.6, 211.6, 209.0), rounded. The scenes are mostly light
# backgrounds, hence a light grey. Pass your data's own mean as ``fill`` for other images.
DATASET_MEAN_RGB = (216, 212, 209)
METHODS = (
    "latents",
    "latent_mean",
    "answer",
    "saliency",
    "integrated_gradients",
    "random",
)  # "latents": one per latent
RANDOM = "random"
Scorer = Callable[[Sequence[Image.Image]], np.ndarray]  # images -> [N, n_options] probabilities


@dataclass
class DeletionCurve:
    """One explanation's curves on one image: ``fractions`` [S+1] of patches occluded (deletion) / revealed
    (insertion); ``deletion`` / ``insertion`` [S+1] probability of the chosen answer at each step."""

    method: str
    fractions: np.ndarray
    deletion: np.ndarray
    insertion: np.ndarray

    @property
    def deletion_auc(self) -> float:
        return _auc(self.fractions, self.deletion)

    @property
    def insertion_auc(self) -> float:
        return _auc(self.fractions, self.insertion)


@dataclass
class EvidenceOcclusion:
    """The chosen answer's probability with the evidence patches occluded vs as many random patches outside it."""

    evidence_patches: int  # patches the evidence touches (any coverage), all occluded
    prob_intact: float
    prob_evidence_occluded: float
    probs_outside_occluded: np.ndarray  # [n_draws], one per random equal-size set of patches outside the evidence
    changed_evidence: bool  # the predicted option differs once the evidence is occluded
    changed_outside: float  # fraction of the outside draws that change the predicted option

    @property
    def drop_evidence(self) -> float:
        return self.prob_intact - self.prob_evidence_occluded

    @property
    def drop_outside(self) -> float:
        return self.prob_intact - float(self.probs_outside_occluded.mean())


@dataclass
class DeletionResult:
    """Every explanation's curves on one (image, prompt); ``image`` is at the model's input resolution."""

    image: Image.Image
    prompt: str
    options: list[str]
    answer: str  # the option predicted on the intact image: its probability is what the curves track
    grid: tuple[int, int]
    maps: dict[str, np.ndarray]  # method -> [rows, cols]
    orders: dict[str, np.ndarray]  # method -> [rows * cols] flat patch indices, most important first
    curves: dict[str, DeletionCurve]
    evidence: EvidenceOcclusion | None = None
    notes: list[str] = field(default_factory=list)
    id: str = ""


@dataclass
class MethodScore:
    """Mean AUCs of one explanation over items, percentile-bootstrap 95 % intervals, and the paired difference to
    the random order (method minus random: below 0 is better for deletion, above 0 for insertion)."""

    method: str
    n: int
    deletion_auc: float
    deletion_ci95: tuple[float, float]
    insertion_auc: float
    insertion_ci95: tuple[float, float]
    deletion_vs_random: float | None = None
    deletion_vs_random_ci95: tuple[float, float] | None = None
    insertion_vs_random: float | None = None
    insertion_vs_random_ci95: tuple[float, float] | None = None


@dataclass
class DeletionSummary:
    """One model over many items: a :class:`MethodScore` per explanation, the most faithful one by each curve
    (random excluded) and the evidence test (``None`` where no item had usable evidence)."""

    model: str
    scores: list[MethodScore]
    most_faithful: dict[str, str]  # {"deletion": method, "insertion": method}
    evidence: dict | None
    n_items: int
    notes: list[str] = field(default_factory=list)

    def score(self, method: str) -> MethodScore:
        for s in self.scores:
            if s.method == method:
                return s
        raise LIVRError(f"no scores for {method!r}; have {', '.join(s.method for s in self.scores)}")


@dataclass
class DeletionReport:
    summary: DeletionSummary
    items: list[DeletionResult]


# ---------------------------------------------------------------------------------------------- pure engine
def _auc(x: np.ndarray, y: np.ndarray) -> float:
    return float(((y[1:] + y[:-1]) / 2 * np.diff(x)).sum())  # trapezoid rule


def _check_fill(fill) -> tuple[int, int, int]:
    values = tuple(int(v) for v in fill)
    if len(values) != 3 or not all(0 <= v <= 255 for v in values):
        raise LIVRError(f"fill must be an RGB triple of 0..255 values; got {fill!r}")
    return values


def rank_patches(patch_map: np.ndarray, grid: tuple[int, int] | None = None, seed: int = 0) -> np.ndarray:
    """``[rows * cols]`` flat patch indices, most important first; ties broken in a seeded random order (a stable
    sort would always start at the top-left corner)."""
    values = np.asarray(patch_map, dtype=np.float64)
    if values.ndim != 2 or (grid is not None and values.shape != tuple(grid)):
        raise LIVRError(
            f"an explanation map must be [rows, cols] = {tuple(grid) if grid else '2-D'}; got shape {values.shape}"
        )
    if not np.isfinite(values).all():
        raise LIVRError("the explanation map holds NaN or infinite values")
    flat = values.ravel()
    return np.lexsort((np.random.default_rng(seed).random(flat.size), -flat))


def occlude(image: Image.Image, grid: tuple[int, int], cells: np.ndarray, fill=DATASET_MEAN_RGB) -> Image.Image:
    """``image`` with the patches in ``cells`` (bool ``[rows, cols]`` or flat indices) painted ``fill``. Cell
    (r, c) covers pixel rows ``floor(r * H / rows)`` up to the next cell's start (likewise for columns)."""
    rows, cols = grid
    mask = np.zeros(rows * cols, bool)
    cells = np.asarray(cells)
    if cells.dtype == bool:
        if cells.size != rows * cols:
            raise LIVRError(f"the occlusion mask has {cells.size} cells but the grid is {rows}x{cols}")
        mask = cells.ravel()
    else:
        mask[cells.astype(int)] = True
    pixels = np.array(image.convert("RGB"))  # [H, W, 3]
    h, w = pixels.shape[:2]
    cell_of_pixel = mask.reshape(rows, cols)[(np.arange(h) * rows // h)[:, None], (np.arange(w) * cols // w)[None]]
    pixels[cell_of_pixel] = _check_fill(fill)
    return Image.fromarray(pixels)


def _steps(n_cells: int, n_steps: int) -> np.ndarray:
    if n_steps < 1:
        raise LIVRError(f"n_steps must be at least 1; got {n_steps}")
    return np.unique(np.round(np.linspace(0, n_cells, min(n_steps, n_cells) + 1)).astype(int))


def curves_for_orders(
    image: Image.Image,
    grid: tuple[int, int],
    orders: dict[str, np.ndarray],
    scorer: Scorer,
    target: int,
    n_steps: int = 16,
    fill=DATASET_MEAN_RGB,
) -> dict[str, DeletionCurve]:
    """Deletion and insertion curves of each patch order (flat indices, most important first) in one scorer call.

    ``n_steps`` points per curve besides the start (at most one patch per step); identical occlusion patterns
    (the intact and the fully occluded image every curve shares) are scored once."""
    n_cells = grid[0] * grid[1]
    counts = _steps(n_cells, n_steps)
    patterns: dict[bytes, int] = {}
    images: list[Image.Image] = []

    def slot(occluded: np.ndarray) -> int:
        mask = np.zeros(n_cells, bool)
        mask[occluded] = True
        key = mask.tobytes()
        if key not in patterns:
            patterns[key] = len(images)
            images.append(occlude(image, grid, mask, fill))
        return patterns[key]

    slots = {}
    for method, order in orders.items():
        order = np.asarray(order)
        if sorted(order.tolist()) != list(range(n_cells)):
            raise LIVRError(
                f"the order of {method!r} must be a permutation of the {n_cells} patches of the "
                f"{grid[0]}x{grid[1]} grid"
            )
        slots[method] = ([slot(order[:k]) for k in counts], [slot(order[k:]) for k in counts])
    probs = np.asarray(scorer(images), dtype=np.float64)[:, target]  # [n_images]
    return {m: DeletionCurve(m, counts / n_cells, probs[d], probs[i]) for m, (d, i) in slots.items()}


def evidence_patches(evidence: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """``[rows * cols]`` bool: the patches an evidence mask ``[H, W]`` touches at all (so occluding them hides it
    entirely)."""
    evidence = np.asarray(evidence)
    if evidence.ndim != 2:
        raise LIVRError(f"the evidence mask must be [H, W]; got shape {evidence.shape}")
    if not evidence.any():
        raise LIVRError("the evidence mask is empty: nothing to occlude")
    return (evidence_on_grid(evidence, grid) > 0).ravel()


def evidence_vs_outside(
    image: Image.Image,
    evidence: np.ndarray,
    grid: tuple[int, int],
    scorer: Scorer,
    target: int,
    fill=DATASET_MEAN_RGB,
    n_draws: int = 8,
    seed: int = 0,
) -> EvidenceOcclusion:
    """Occlude every patch the evidence mask ``[H, W]`` touches, and (``n_draws`` times, seeded) as many patches
    drawn among those it does not touch; one scorer call."""
    if n_draws < 1:
        raise LIVRError(f"n_draws must be at least 1; got {n_draws}")
    inside = evidence_patches(evidence, grid)
    outside = np.flatnonzero(~inside)
    n = int(inside.sum())
    if len(outside) < n:
        raise LIVRError(
            f"the evidence touches {n} of {inside.size} patches: no equal area outside it is left "
            "(the test needs evidence on at most half the image)"
        )
    rng = np.random.default_rng(seed)
    draws = [rng.choice(outside, n, replace=False) for _ in range(n_draws)]
    images = [image, occlude(image, grid, inside, fill)] + [occlude(image, grid, d, fill) for d in draws]
    probs = np.asarray(scorer(images), dtype=np.float64)  # [2 + n_draws, n_options]
    changed = probs.argmax(1) != target
    return EvidenceOcclusion(
        n,
        float(probs[0, target]),
        float(probs[1, target]),
        probs[2:, target],
        bool(changed[1]),
        float(changed[2:].mean()),
    )


# ------------------------------------------------------------------------------------------- the model's side
def choice_scorer(lm, prompt: str, options: Sequence[str], stage: str = "full", batch_size: int = 32) -> Scorer:
    """``f(images) -> [N, n_options]``: each option's probability scored in context (one-token options: their
    token's probability renormalised over the options; see :meth:`LIVRModel.score_options`), for ``prompt`` on every
    image; one forward per ``batch_size`` images (two where an option spans several tokens)."""
    lm.option_continuations(lm.clean_prompt(prompt), list(options))  # bad options fail here, before any forward

    @torch.no_grad()
    def score(images: Sequence[Image.Image]) -> np.ndarray:
        out = []
        for start in range(0, len(images), batch_size):
            chunk = list(images[start : start + batch_size])
            batch = lm.build_inputs(chunk, [prompt] * len(chunk))
            out.append(lm.choice_probs(batch, list(options), stage).numpy())
        return np.concatenate(out)

    return score


def model_input_image(lm, image, prompt: str) -> tuple[Image.Image, tuple[int, int]]:
    """``image`` resized to the model's input resolution (read from the processor's output by the model's family,
    ``Family.input_resolution``: ``pixel_values`` [B, 3, H, W], or Qwen-style ``image_grid_thw`` x patch size) and
    its patch grid. At that size the processor's own resize is the identity, so grid cell (r, c) is a fixed pixel
    rectangle."""
    pil = load_image(image)
    inputs = lm.build_inputs([pil], [prompt]).inputs
    size = lm.family.input_resolution(lm.base_model, inputs)
    if size is None:
        raise LIVRError(
            f"cannot tell the input resolution of model family {lm.family.name!r}; "
            "deletion curves need a single-image patch grid"
        )
    height, width = size
    if pil.size != (width, height):
        pil = pil.resize((int(width), int(height)), Image.Resampling.BICUBIC)
    grid = lm.family.patch_grid(lm.base_model, lm.build_inputs([pil], [prompt]).inputs, 0)
    return pil, tuple(grid)


def explanation_maps(
    lm,
    image: Image.Image,
    prompt: str,
    answer: str,
    grid: tuple[int, int],
    stage: str = "full",
    methods: Sequence[str] = METHODS,
    ig_steps: int = 16,
    seed: int = 0,
) -> tuple[dict[str, np.ndarray], list[str]]:
    """``{method: [rows, cols]}`` for ``image`` (already at input resolution) and notes on what was skipped.

    Attention maps are raw (mean over layers and heads, no normalisation): ``latent_mean`` is the latents' total
    attention to each patch. Saliency / Integrated Gradients attribute the logit of ``answer``."""
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise LIVRError(f"unknown explanation(s) {sorted(unknown)}; known: {', '.join(METHODS)}")
    maps: dict[str, np.ndarray] = {}
    notes: list[str] = []
    k = lm.config.n_latents
    if {"latents", "latent_mean", "answer"} & set(methods):
        analysis = run_analysis(lm, image, prompt, stage, hidden_states=False)
        if k and "latents" in methods:
            maps.update({f"latent_{i}": m for i, m in enumerate(analysis.latent_maps(normalisation="none"))})
        if k and "latent_mean" in methods:
            maps["latent_mean"] = analysis.latent_maps(normalisation="none").mean(0)
        if not k and {"latents", "latent_mean"} & set(methods):
            notes.append(f"{lm.config.variant} has no latents: latent explanations skipped")
        if "answer" in methods:
            maps["answer"] = analysis.answer_image_map(normalisation="none")
    batch = lm.build_inputs([image], [prompt])
    for method in ("saliency", "integrated_gradients"):
        if method in methods:
            patches = LatentAttribution(lm, method, ig_steps).run(batch, answer, stage, grid=grid).patches
            if patches is None or patches.shape != tuple(grid):
                notes.append(f"{method}: no patch map for model family {lm.family.name!r} (skipped)")
            else:
                maps[method] = patches
    if RANDOM in methods:
        maps[RANDOM] = np.random.default_rng(seed).random(grid)
    return maps, notes


def deletion_curves(
    lm,
    image,
    prompt: str,
    options: Sequence[str] | None = None,
    evidence: np.ndarray | None = None,
    stage: str = "full",
    methods: Sequence[str] = METHODS,
    n_steps: int = 16,
    fill=DATASET_MEAN_RGB,
    ig_steps: int = 16,
    n_draws: int = 8,
    batch_size: int = 32,
    seed: int = 0,
) -> DeletionResult:
    """Deletion / insertion curves of every explanation for one multiple-choice (image, prompt), plus the evidence
    test when an evidence mask ``[H, W]`` (of the image as given) is passed. ``options`` default to the prompt's."""
    options = list(options or parse_choices(prompt))
    if len(options) < 2:
        raise LIVRError(
            "deletion curves need a multiple-choice prompt (an 'Options: a, b.' line or (A) (B) choices) "
            "or options=[...]"
        )
    fill = _check_fill(fill)
    pil, grid = model_input_image(lm, image, prompt)
    scorer = choice_scorer(lm, prompt, options, stage, batch_size)
    target = int(scorer([pil])[0].argmax())
    maps, notes = explanation_maps(lm, pil, prompt, options[target], grid, stage, methods, ig_steps, seed)
    orders = {m: rank_patches(v, grid, seed) for m, v in maps.items()}
    curves = curves_for_orders(pil, grid, orders, scorer, target, n_steps, fill)
    test = None
    if evidence is not None:
        inside = evidence_patches(evidence, grid)
        if 2 * inside.sum() <= inside.size:
            test = evidence_vs_outside(pil, evidence, grid, scorer, target, fill, n_draws, seed)
        else:
            notes.append(
                f"evidence test skipped: the evidence touches {inside.sum()} of {inside.size} patches, "
                "leaving no equal area outside it"
            )
    return DeletionResult(pil, prompt, options, options[target], grid, maps, orders, curves, test, notes)


# ---------------------------------------------------------------------------------------------- many items
def _mean_ci(values: np.ndarray, rng: np.random.Generator, n_boot: int) -> tuple[float, tuple[float, float]]:
    boots = values[rng.integers(0, len(values), (n_boot, len(values)))].mean(1)
    lo, hi = np.quantile(boots, [0.025, 0.975])
    return float(values.mean()), (float(lo), float(hi))


def summarise_deletion(
    results: Sequence[DeletionResult], model: str = "", n_boot: int = 2000, seed: int = 0
) -> DeletionSummary:
    """Per explanation: mean deletion / insertion AUC over items with bootstrap 95 % intervals and the paired
    difference to ``random``; the most faithful explanation by each curve; the evidence test's mean drops."""
    if not results:
        raise LIVRError("no deletion results to summarise")
    rng = np.random.default_rng(seed)
    methods = list(dict.fromkeys(m for r in results for m in r.curves))
    scores = []
    for method in methods:
        have = [r for r in results if method in r.curves]
        dele = np.array([r.curves[method].deletion_auc for r in have])
        ins = np.array([r.curves[method].insertion_auc for r in have])
        score = MethodScore(method, len(have), *_mean_ci(dele, rng, n_boot), *_mean_ci(ins, rng, n_boot))
        paired = [r for r in have if RANDOM in r.curves]
        if method != RANDOM and paired:
            rand = {
                name: np.array([getattr(r.curves[RANDOM], name) for r in paired])
                for name in ("deletion_auc", "insertion_auc")
            }
            score.deletion_vs_random, score.deletion_vs_random_ci95 = _mean_ci(
                np.array([r.curves[method].deletion_auc for r in paired]) - rand["deletion_auc"], rng, n_boot
            )
            score.insertion_vs_random, score.insertion_vs_random_ci95 = _mean_ci(
                np.array([r.curves[method].insertion_auc for r in paired]) - rand["insertion_auc"], rng, n_boot
            )
        scores.append(score)
    explanations = [s for s in scores if s.method != RANDOM] or scores
    best = {
        "deletion": min(explanations, key=lambda s: s.deletion_auc).method,
        "insertion": max(explanations, key=lambda s: s.insertion_auc).method,
    }
    tests = [r.evidence for r in results if r.evidence is not None]
    evidence = None
    if tests:
        drop_in, ci_in = _mean_ci(np.array([t.drop_evidence for t in tests]), rng, n_boot)
        drop_out, ci_out = _mean_ci(np.array([t.drop_outside for t in tests]), rng, n_boot)
        evidence = {
            "n": len(tests),
            "drop_evidence": drop_in,
            "drop_evidence_ci95": ci_in,
            "drop_outside": drop_out,
            "drop_outside_ci95": ci_out,
            "changed_evidence": float(np.mean([t.changed_evidence for t in tests])),
            "changed_outside": float(np.mean([t.changed_outside for t in tests])),
        }
    notes = sorted({n for r in results for n in r.notes if not n.startswith("evidence test skipped")})
    skipped = sum(any(n.startswith("evidence test skipped") for n in r.notes) for r in results)
    if skipped:
        notes.append(f"evidence test skipped on {skipped} item(s) whose evidence covers over half the image")
    return DeletionSummary(model, scores, best, evidence, len(results), notes)


def deletion_report(
    lm,
    items: Sequence,
    stage: str = "full",
    seed: int = 0,
    n_boot: int = 2000,
    model: str | None = None,
    progress=None,
    **settings: Any,
) -> DeletionReport:
    """:func:`deletion_curves` on every item (``.image``, ``.prompt``; optional ``.options``, ``.evidence``,
    ``.id``) and their summary, labelled ``model`` (default: the variant, and the stage unless ``full``). The random
    order's seed differs per item (``seed + index``); ``settings``: the curves' own (``methods``, ``n_steps``,
    ``fill``, ``ig_steps``, ``n_draws``, ``batch_size``), with their defaults there."""
    if not len(items):
        raise LIVRError("no items to explain")
    indices = range(len(items))
    results = []
    for i in progress(indices) if progress else indices:
        item = items[i]
        options, evidence = getattr(item, "options", None), getattr(item, "evidence", None)
        result = deletion_curves(lm, item.image, item.prompt, options, evidence, stage, seed=seed + i, **settings)
        result.id = str(getattr(item, "id", i))
        results.append(result)
    model = model or lm.config.variant + (f" ({stage})" if stage != "full" else "")
    return DeletionReport(summarise_deletion(results, model, n_boot, seed), results)

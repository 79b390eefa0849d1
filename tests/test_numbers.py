"""The numbers a researcher cites, against answers known in advance (not only their type or their Markdown):
Integrated Gradients' completeness on both paths, attribution of a model that cannot see the image, saliency as the
gradient itself, probe selectivity of a planted and of a label-free concept, and ablation equal to the forward it
stands for (the latents physically gone, their embeddings zeroed) or to no change at all where nothing moves."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from livr_viz.core.masks import attention_mask_4d
from livr_viz.core.segments import Segment
from livr_viz.data import make_sample
from livr_viz.methods.attribution import (
    IG_STEPS,
    METHODS,
    LatentAttribution,
    attribute,
    ig_tolerance,
    integrated_gradients,
    target_token_id,
)
from livr_viz.methods.interventions import LatentAblation, ablation_accuracy, per_latent_effects
from livr_viz.methods.probes import ConceptSpec, run_probes


def _input(lm, task="counting", index=4):
    s = make_sample(task, "test", 0, index, answer_format=lm.config.answer_format)
    return s, lm.build_inputs([s.image], [s.prompt])


@pytest.fixture
def fresh_tiny(tiny_paths):
    """A private copy of the tiny LIVR checkpoint that a test may edit (the session's ``tiny_model`` stays intact)."""
    from livr_viz.core.model import load_model

    return load_model(tiny_paths["livr"])


# ------------------------------------------------------------------------------------------ Integrated Gradients
def test_ig_rule_is_exact_on_functions_with_known_integrals():
    """IG of a linear function is weights × (input − baseline) whatever the rule; of x³ from 0 it is x³ (Gauss–Legendre
    with two points per graded segment integrates the quadratic gradient exactly); the pieces add up to the path."""
    gen = torch.Generator().manual_seed(0)
    x, base, w = (torch.randn(1, 3, 4, 4, generator=gen) for _ in range(3))
    attr, total, change = integrated_gradients(lambda v: (v * w).flatten(1).sum(1), x, base, n_steps=4)
    assert torch.allclose(attr, w * (x - base), atol=1e-6) and total == pytest.approx(change, abs=1e-5)
    attr, total, change = integrated_gradients(lambda v: (v**3).flatten(1).sum(1), x, torch.zeros_like(x), n_steps=8)
    assert torch.allclose(attr, x**3, atol=1e-5) and total == pytest.approx(change, abs=1e-4)


def test_ig_completeness_at_the_default_steps_on_both_paths(tiny_model):
    """Attributions sum to f(input) − f(baseline) within the stated tolerance on the pixel and the latent path, where
    f(input) is the model's own answer logit (the function captum integrates is the one the app reports)."""
    for task, index in (("counting", 4),):
        s, b = _input(tiny_model, task, index)
        target = s.options[0]
        ig = attribute(tiny_model, b, target, "integrated_gradients", grid=(8, 8))
        assert set(ig.completeness) == {"pixels", "latents"} and ig.warning is None
        for path, (total, change) in ig.completeness.items():
            assert abs(total - change) <= ig_tolerance(change), (task, path, total, change)
            assert abs(change) > 1e-4, (task, path)  # a path that moves the logit: the check is not vacuous
        assert ig.convergence_delta == pytest.approx(max(abs(t - c) for t, c in ig.completeness.values()))
        with torch.no_grad():
            logit = float(tiny_model.answer_logits(b)[0, target_token_id(tiny_model, b.prompts[0], target)])
            zero = dict(b.inputs, pixel_values=torch.zeros_like(b.inputs["pixel_values"]))
            blank = float(
                tiny_model.answer_logits(type(b)(zero, b.padding_mask, b.segments, b.answer_start, prompts=b.prompts))[
                    0, target_token_id(tiny_model, b.prompts[0], target)
                ]
            )
        assert ig.completeness["pixels"][1] == pytest.approx(logit - blank, abs=1e-4)


@pytest.mark.slow
def test_ig_on_demo_livr_says_what_it_measured(demo_model):
    """The trained demo: the latent path meets the tolerance at the default steps on this sample (a miss of 0.005
    when measured); the pixel path from the zero image may not (its logit has near-steps close to the baseline), and
    then, and only then, the map carries the warning naming that path."""
    s, b = _input(demo_model)
    ig = attribute(demo_model, b, s.options[0], grid=(8, 8))
    total, change = ig.completeness["latents"]
    assert abs(total - change) <= ig_tolerance(change) and abs(change) > 0.1
    missed = [path for path, (t, c) in ig.completeness.items() if abs(t - c) > ig_tolerance(c)]
    assert (ig.warning is not None) == bool(missed)
    assert all(f"{path} path" in ig.warning for path in missed)


def test_the_old_uniform_rule_missed_what_the_graded_split_meets(tiny_model):
    """Why the rule changed: 8 uniform Gauss–Legendre points (the old test's steps) miss the tiny model's pixel-path
    logit change by far more than the tolerance; the graded split with the same 8 points per path comes closer, and
    the default steps meet the tolerance (previous test)."""
    s, b = _input(tiny_model)
    from livr_viz.methods.attribution import _answer_logit_fn

    fn = _answer_logit_fn(tiny_model, b, "full", target_token_id(tiny_model, b.prompts[0], s.options[0]))
    px = b.inputs["pixel_values"]
    _, total_u, change = integrated_gradients(lambda v: fn(pixel_values=v), px, torch.zeros_like(px), 8, (0.0, 1.0))
    _, total_g, _ = integrated_gradients(lambda v: fn(pixel_values=v), px, torch.zeros_like(px), 8)
    assert abs(total_u - change) > 10 * ig_tolerance(change) and abs(total_g - change) < abs(total_u - change) / 10
    assert IG_STEPS >= 32


def test_a_model_blind_to_the_image_gets_zero_pixel_attribution(fresh_tiny):
    """With the projector's output forced to zero the answer cannot depend on the pixels: every pixel attribution is
    exactly zero (IG and saliency), IG's pixel path changes the logit by 0, and the latents still get attribution."""
    projector = fresh_tiny.base_model.model.multi_modal_projector
    with torch.no_grad():
        for p in projector.linear_2.parameters():
            p.zero_()
    s, b = _input(fresh_tiny)
    ig, sal = (attribute(fresh_tiny, b, s.options[1], method, n_steps=8, grid=(8, 8)) for method in METHODS)
    for a in (ig, sal):
        assert np.all(a.pixels == 0) and np.all(a.patches == 0), a.method
        assert a.latents is not None and a.latents.sum() > 0, a.method
    assert ig.completeness["pixels"] == (0.0, 0.0) and sal.convergence_delta is None


def test_saliency_is_the_gradient_of_the_answer_logit(tiny_model):
    """Saliency's map is |∂ logit / ∂ pixel| summed over channels, computed here on the model's own forward; its
    patches are sums of that map over each 12 × 12 patch."""
    s, b = _input(tiny_model)
    target = s.options[2]
    sal = LatentAttribution(tiny_model, "saliency").run(b, target, grid=(8, 8))
    pixels = b.inputs["pixel_values"].detach().clone().requires_grad_(True)
    grad_batch = type(b)(
        dict(b.inputs, pixel_values=pixels), b.padding_mask, b.segments, b.answer_start, prompts=b.prompts
    )
    logit = tiny_model.answer_logits(grad_batch)[0, target_token_id(tiny_model, b.prompts[0], target)]
    (grad,) = torch.autograd.grad(logit, pixels)
    expected = grad[0].abs().sum(0).numpy()
    assert np.allclose(sal.pixels, expected, rtol=1e-4, atol=1e-7) and expected.max() > 0
    assert sal.patches[2, 5] == pytest.approx(expected[24:36, 60:72].sum(), rel=1e-5)


# -------------------------------------------------------------------------------------------------------- probes
def _noise_items(n: int, seed: int = 0) -> list:
    """``n`` noise images, alternately bright and dark (a concept every image carries in its pixels), with a label
    drawn at random as well (a concept that nothing in the input carries)."""
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        bright = i % 2 == 0
        low = 170 if bright else 0
        image = Image.fromarray(rng.integers(low, low + 86, (96, 96, 3), dtype=np.uint8))
        items.append(
            SimpleNamespace(
                id=f"n{i}",
                image=image,
                prompt="Is it bright? Options: yes, no.",
                concepts={"planted": "bright" if bright else "dark", "label_free": str(rng.integers(0, 2))},
            )
        )
    return items


def test_probe_selectivity_of_a_planted_and_of_a_label_free_concept(tiny_model):
    """Through ``run_probes``: a concept planted in the images (bright / dark) is read from the latents after the
    first layer well above its control task; at layer 0 (the latent token embeddings, the same for every input)
    nothing is; a label-free concept has selectivity about 0 at every layer."""
    items = _noise_items(48)
    planted = run_probes(
        tiny_model, ConceptSpec("planted", "concept:planted"), items, random_baseline=False, per_latent=False
    )
    sel = [row["selectivity"] for row in planted.layers]
    assert planted.majority == 0.5 and planted.best_layer >= 1
    assert max(sel) >= 0.35 and planted.layers[planted.best_layer]["latent_pooled"]["accuracy"] >= 0.9
    assert planted.layers[0]["latent_pooled"]["accuracy"] <= 0.6 and abs(sel[0]) <= 0.2
    free = run_probes(
        tiny_model, ConceptSpec("label_free", "concept:label_free"), items, random_baseline=False, per_latent=False
    )
    free_sel = np.array([row["selectivity"] for row in free.layers])
    assert np.abs(free_sel).max() <= 0.25 and abs(free_sel.mean()) <= 0.12, free_sel


# ------------------------------------------------------------------------------------------------------ ablation
def _without_positions(lm, batch, drop: list[int], choices) -> torch.Tensor:
    """Answer probabilities with the tokens at ``drop`` physically cut out of the sequence (every other token keeps
    its position id): what "remove" must equal."""
    keep = torch.tensor([t for t in range(batch.input_ids.shape[1]) if t not in set(drop)])
    segments = batch.segments[:, keep]
    kwargs = dict(
        batch.inputs,
        input_ids=batch.input_ids[:, keep],
        attention_mask=attention_mask_4d(segments, "full", dtype=lm.dtype),
        position_ids=lm.family.position_ids(lm.base_model, batch.inputs, batch.padding_mask)[:, keep],
    )
    start = batch.answer_start - sum(1 for t in drop if t < int(batch.answer_start[0]))
    with torch.no_grad():
        logits = lm.logits_at_answer(lm.base_model.model(**kwargs).last_hidden_state, start)
    return logits[:, lm.choice_token_ids(choices, batch.prompts[0])].float().softmax(-1)


def test_remove_equals_the_latents_cut_out_of_the_sequence(tiny_model):
    s, b = _input(tiny_model)
    choices = list(s.options)
    latent_pos = (b.segments[0] == int(Segment.LATENT)).nonzero().flatten().tolist()
    remove = LatentAblation(tiny_model, "remove")
    for chosen in ([3], list(range(tiny_model.config.n_latents))):
        result = remove.run(b, chosen, choices)
        expected = _without_positions(tiny_model, b, [latent_pos[i] for i in chosen], choices)
        assert torch.allclose(result.after, expected, atol=1e-5), (chosen, result.after, expected)
    assert (result.after - result.before).abs().max() > 1e-4  # all latents gone moves this answer: a real check


def test_zero_ablation_known_answers(fresh_tiny):
    """Zeroing latents at the embeddings equals the forward whose latent embeddings are zero; on a model whose
    latent embeddings already are zero it changes nothing, so every per-latent effect and accuracy change is 0."""
    lm = fresh_tiny
    s, b = _input(lm)
    choices = list(s.options)
    latent_pos = (b.segments[0] == int(Segment.LATENT)).nonzero().flatten()
    zero = LatentAblation(lm, "zero", layer=-1).run(b, [0, 5], choices)
    embeds = lm.model.get_input_embeddings()(b.input_ids).detach().clone()
    embeds[0, latent_pos[[0, 5]]] = 0.0
    kwargs = lm.model_kwargs(b)
    kwargs.pop("input_ids")
    with torch.no_grad():
        hidden = lm.base_model.model(**kwargs, inputs_embeds=embeds).last_hidden_state
    ids = lm.choice_token_ids(choices, b.prompts[0])
    expected = lm.logits_at_answer(hidden, b.answer_start)[:, ids].float().softmax(-1)
    assert torch.allclose(zero.after, expected, atol=1e-5) and (zero.after - zero.before).abs().max() > 1e-5

    with torch.no_grad():  # the latent rows live in PEFT's trainable-token delta, over the base embedding's rows
        for name, param in lm.model.named_parameters():
            if "trainable_tokens_delta" in name:
                param.zero_()
        lm.model.get_input_embeddings().weight[lm.latent_token_ids] = 0.0
    assert lm.latent_embeddings().abs().max() == 0
    again = LatentAblation(lm, "zero", layer=-1).run(b, list(range(lm.config.n_latents)), choices)
    assert torch.equal(again.after, again.before)
    assert per_latent_effects(lm, b, choices, "zero", -1) == [0.0] * lm.config.n_latents
    items = [make_sample("counting", "test", 0, i, answer_format=lm.config.answer_format) for i in range(2)]
    acc = ablation_accuracy(lm, items, mode="zero", layer=-1)
    assert acc["accuracy_all_ablated"] == acc["accuracy_intact"] and acc["per_latent_change"] == [0.0] * 16

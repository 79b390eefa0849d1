"""The Token map tab: projections of one layer's hidden states, for one input, a set of synthetic samples,
or the model's trio in one shared embedding."""

from __future__ import annotations

from pathlib import Path

from livr_viz.core.capture import LatentAttention
from livr_viz.core.errors import LIVRError
from livr_viz.data import make_sample, resolve_tasks, task_names
from livr_viz.methods.tokenmap import dataset_points, points_from_capture, project, warm_up_umap
from livr_viz.service.analysis import analysis_for
from livr_viz.service.common import progress_iterable, scratch_dir
from livr_viz.service.models import POOL, answer_format_of, compare_set, lm_dims
from livr_viz.service.samples import new_sample
from livr_viz.views.tokenmap import tokenmap_figure, tokenmap_figure_plotly

TOKEN_MAP_SAMPLES = (2, 60)  # dataset scope: samples per map (each adds ~100 tokens to project)


def token_map_view(model, image, prompt, stage, method, layer, scope, n_samples, color_by, progress=None):
    """The Token map tab: a projection of one layer's hidden states, for this image or for N synthetic samples."""
    n_layers, _ = lm_dims(model)
    layer = int(layer)
    if not 0 <= layer <= n_layers:
        raise LIVRError(f"layer must be in 0..{n_layers}")
    if scope == "this image":  # with the model's answer appended: its answer tokens are points too
        a = analysis_for(model, image, prompt, stage)
        lm = POOL.get(model)
        batch = lm.build_inputs([a.image], [prompt], [a.answer] if a.answer else None)
        rows = (batch.answer_start - 1).unsqueeze(1)
        points = points_from_capture(LatentAttention(lm, rows=rows, hidden_states=True).run(batch, stage), layer, 0)
        color_by = "segment"
    else:
        items = token_map_items(model, n_samples)
        points = dataset_points(
            POOL.get(model),
            items,
            layer,
            stage,
            answers=True,
            progress=progress_iterable(progress, "capturing hidden states"),
        )
        if color_by != "segment" and color_by not in points.labels:
            keys = sorted(k for k in points.labels if k not in ("sample", "position", "task"))
            raise LIVRError(f"colour by {color_by!r} is not available; try segment, task or {', '.join(keys[:6])}")
    xy = project(points.vectors, method, cache_dir=scratch_dir() / "projections")
    return tokenmap_figure_plotly(points, xy, color_by, f"{method} of layer {layer} hidden states ({scope})")


def token_map_item(index: int) -> tuple[str, str, int, int]:
    """(task, split, seed, index) of the dataset token map's ``index``-th sample: the tasks in turn."""
    tasks = task_names()
    return tasks[index % len(tasks)], "test", 0, index // len(tasks)


def token_map_items(model: str, n_samples) -> list:
    """The dataset token map's first ``n_samples`` samples, in the model's answer format."""
    n = int(n_samples)
    if not TOKEN_MAP_SAMPLES[0] <= n <= TOKEN_MAP_SAMPLES[1]:
        raise LIVRError(f"dataset size must be between {TOKEN_MAP_SAMPLES[0]} and {TOKEN_MAP_SAMPLES[1]} samples")
    return [make_sample(*token_map_item(i), answer_format=answer_format_of(model)) for i in range(n)]


def token_map_sample(model: str, index) -> tuple[str, str]:
    """Linked views: the dataset token map's sample ``index`` (or ``"index:nonce"`` from a click) as the app's input
    (path, prompt)."""
    try:
        index = int(str(index).split(":")[0])
    except ValueError:
        raise LIVRError(f"not a sample index: {index!r}") from None
    if not 0 <= index < TOKEN_MAP_SAMPLES[1]:
        raise LIVRError(f"sample index must be in 0..{TOKEN_MAP_SAMPLES[1] - 1}")
    task, _, seed, i = token_map_item(index)
    return new_sample(task, scratch_dir() / "samples", i, answer_format_of(model), seed=seed)


def aligned_token_map(model, stage="full", method="pca", layer=None, n_samples=12, color_by="segment"):
    """The model's set (LIVR / latents-only / SFT) in ONE embedding of layer ``layer`` over ``n_samples`` synthetic
    samples, fitted once on the union, each panel printing its trustworthiness and seed-to-seed stability, so a
    difference between the variants is not an artefact of separate runs."""
    from livr_viz.methods.geometry import shared_projection
    from livr_viz.views.geometry import shared_projection_figure

    names = compare_set(model)
    items = token_map_items(names[0], n_samples)
    n_layers = lm_dims(names[0])[0]
    layer = n_layers if layer is None else int(layer)
    if not 0 <= layer <= n_layers:
        raise LIVRError(f"layer must be in 0..{n_layers}")
    points = {name: dataset_points(POOL.get(name), items, layer, stage) for name in names}
    projection = shared_projection(points, method, "joint")
    return shared_projection_figure(
        projection,
        color_by if color_by in ("segment", "task") else "segment",
        f"{method} of layer {layer}, one embedding for {', '.join(names)}",
    )


def warm_up() -> None:
    """Compile UMAP once (numba), off the request path."""
    warm_up_umap()


def tokenmap_command(
    lm,
    tasks="all",
    n: int = 27,
    seed: int = 0,
    stage: str = "full",
    layer: int = 4,
    method: str = "tsne",
    color_by: str = "segment",
    out: str = "",
) -> dict:
    """``livr-viz tokenmap``: a projection of one layer's token hidden states over ``n`` synthetic samples (the tasks
    in turn), written as ``out`` with suffixes ``.png`` and ``.html``."""
    task_list = resolve_tasks(tasks)
    items = [
        make_sample(
            task_list[i % len(task_list)], "test", seed, i // len(task_list), answer_format=lm.config.answer_format
        )
        for i in range(n)
    ]
    keys = [] if color_by in ("segment", "task") else [color_by]
    points = dataset_points(lm, items, layer, stage, keys)
    xy = project(points.vectors, method, cache_dir=Path(out).parent / ".projection-cache")
    title = f"{method} of layer {layer} hidden states, {n} samples"
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tokenmap_figure(points, xy, color_by, title).savefig(path.with_suffix(".png"), dpi=110)
    tokenmap_figure_plotly(points, xy, color_by, title).write_html(path.with_suffix(".html"))
    return {"text": [f"wrote {path.with_suffix('.png')} and {path.with_suffix('.html')}"]}

"""Latent geometry as figures: redundancy matrices with the latents' dendrogram, a filmstrip of each latent's map
across layers, and several token maps in one frame with their trust numbers printed on the plot."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import numpy as np
from PIL import Image

from livr_viz.core.errors import LIVRError
from livr_viz.methods.geometry import LatentRedundancy, SharedProjection
from livr_viz.views.figures import subplots
from livr_viz.views.heatmaps import overlay
from livr_viz.views.tokenmap import SEGMENT_PLOT_COLOURS, color_values


def redundancy_figure(redundancy: LatentRedundancy, labels: Sequence[str] | None = None):
    """Cosine and top-q IoU matrices of the latents, and their dendrogram; N_eff in the title."""
    from scipy.cluster.hierarchy import dendrogram

    k = redundancy.n_latents
    labels = list(labels or [str(i) for i in range(k)])
    fig, axes = subplots(1, 3, figsize=(11, 3.4))
    for ax, matrix, title in (
        (axes[0], redundancy.cosine, "cosine"),
        (axes[1], redundancy.iou, f"IoU of top-{redundancy.q:g} mass regions"),
    ):
        image = ax.imshow(matrix, vmin=0, vmax=1, cmap="viridis")
        ax.set_xticks(range(k), labels, fontsize=7)
        ax.set_yticks(range(k), labels, fontsize=7)
        ax.set_title(title, fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.046)
    if k > 1:
        dendrogram(redundancy.linkage, labels=labels, ax=axes[2], color_threshold=redundancy.cluster_distance)
        axes[2].axhline(redundancy.cluster_distance, color="black", lw=0.6, ls=":")
    axes[2].set_ylabel("1 − cosine")
    axes[2].set_title(f"{len(set(redundancy.clusters))} cluster(s) below {redundancy.cluster_distance:g}", fontsize=9)
    fig.suptitle(
        f"latent redundancy: effective number {redundancy.effective_number:.2f} of K={k}; "
        f"mean pairwise IoU {redundancy.mean_pairwise_iou:.2f}",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def filmstrip_figure(
    maps_by_layer: np.ndarray,
    image: Image.Image | None = None,
    labels: Sequence[str] | None = None,
    opacity: float = 0.55,
):
    """One row per latent, one column per layer: ``maps_by_layer`` ``[L, K, rows, cols]`` (values in [0, 1],
    e.g. :func:`~livr_viz.methods.geometry.latent_maps_by_layer`), over ``image`` when given."""
    maps = np.asarray(maps_by_layer)
    if maps.ndim != 4:
        raise LIVRError(f"the filmstrip needs maps [layers, K, rows, cols]; got shape {maps.shape}")
    n_layers, k = maps.shape[:2]
    fig, axes = subplots(k, n_layers, figsize=(1.3 * n_layers + 0.6, 1.3 * k + 0.4), squeeze=False)
    for i in range(k):
        for layer in range(n_layers):
            ax = axes[i, layer]
            m = maps[layer, i]
            ax.imshow(
                overlay(image, m, opacity) if image is not None else m, cmap=None if image is not None else "inferno"
            )
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"layer {layer}", fontsize=8)
            if layer == 0:
                ax.set_ylabel(labels[i] if labels else f"latent {i}", fontsize=8)
    fig.tight_layout()
    return fig


def shared_projection_figure(projection: SharedProjection, color_by: str = "segment", title: str = ""):
    """One panel per point set, all in the same frame (shared axes); each panel prints its trustworthiness, its
    seed-to-seed Procrustes disparity and kNN overlap (and, aligned separately, its alignment disparity)."""
    names = list(projection.xy)
    fig, axes = subplots(1, len(names), figsize=(4.2 * len(names), 4.4), sharex=True, sharey=True, squeeze=False)
    for ax, name in zip(axes[0], names):
        xy, points, q = projection.xy[name], projection.points[name], projection.quality[name]
        colours = color_values(points, color_by)
        for value in sorted(set(colours), key=str):
            keep = np.array([c == value for c in colours])
            ax.scatter(xy[keep, 0], xy[keep, 1], s=8, alpha=0.8, label=value, color=SEGMENT_PLOT_COLOURS.get(value))
        text = (
            f"trustworthiness {q.trustworthiness:.3f} (k={q.n_neighbors})\n"
            f"seeds {projection.seeds[0]} vs {projection.seeds[1]}: disparity {q.seed_disparity:.3f}, "
            f"kNN overlap {q.seed_knn_overlap:.2f}"
        )
        if projection.mode == "procrustes":
            text += f"\naligned to {names[0]}: disparity {projection.alignment_disparity[name]:.3f}"
        ax.text(
            0.01,
            0.01,
            text,
            transform=ax.transAxes,
            fontsize=6.5,
            va="bottom",
            bbox={"facecolor": "white", "alpha": 0.8, "lw": 0},
        )
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, -1].legend(fontsize=7, markerscale=1.5, title=color_by, title_fontsize=8)
    fig.suptitle(title or f"{projection.method.upper()} token maps, {projection.mode} frame", fontsize=10)
    fig.tight_layout()
    return fig

"""Deletion / insertion results as figures and a table: the curves of one item, per-method AUCs with intervals
across models, the evidence-vs-outside test, and the occluded images themselves."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import numpy as np
from PIL import Image

from livr_viz.methods.deletion import DATASET_MEAN_RGB, RANDOM, DeletionResult, DeletionSummary, occlude
from livr_viz.views.figures import subplots
from livr_viz.views.heatmaps import display_image, montage

METHOD_COLOURS = {
    "latent_mean": "#e8a33c",
    "answer": "#3cb371",
    "saliency": "#4c9be8",
    "integrated_gradients": "#7b5ea7",
    RANDOM: "#888888",
}
LATENT_COLOUR = "#f3cf94"  # individual latents: thin, pale
MODEL_COLOURS = ("#e8a33c", "#4c9be8", "#3cb371", "#b04040", "#7b5ea7")


def _style(method: str) -> dict:
    if method.startswith("latent_") and method != "latent_mean":
        return {"color": LATENT_COLOUR, "lw": 0.9, "alpha": 0.9}
    return {"color": METHOD_COLOURS.get(method, "#333333"), "lw": 1.8, "ls": "--" if method == RANDOM else "-"}


def deletion_curves_figure(result: DeletionResult, methods: Sequence[str] | None = None):
    """Deletion (left) and insertion (right) curves of one item, AUC in the legend."""
    fig, axes = subplots(1, 2, figsize=(9, 3.4), sharey=True)
    for method in methods or result.curves:
        c = result.curves[method]
        axes[0].plot(c.fractions, c.deletion, label=f"{method} {c.deletion_auc:.2f}", **_style(method))
        axes[1].plot(c.fractions, c.insertion, label=f"{method} {c.insertion_auc:.2f}", **_style(method))
    for ax, title, xlabel in (
        (axes[0], "deletion (lower AUC = more faithful)", "share of patches occluded"),
        (axes[1], "insertion (higher AUC = more faithful)", "share of patches revealed"),
    ):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(xlabel)
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=6, ncol=2, title="method AUC", title_fontsize=7)
    axes[0].set_ylabel(f"p({result.answer})")
    fig.suptitle(
        f"{result.id or 'item'}: answer {result.answer!r}, grid {result.grid[0]}x{result.grid[1]}", fontsize=10
    )
    fig.tight_layout()
    return fig


def deletion_summary_figure(summaries: Sequence[DeletionSummary]):
    """Mean deletion and insertion AUC per method (95 % bootstrap intervals), one bar colour per model; the most
    faithful explanation of each model is starred."""
    methods = list(dict.fromkeys(s.method for summary in summaries for s in summary.scores))
    fig, axes = subplots(1, 2, figsize=(10, 0.9 + 0.32 * len(methods) * max(1, len(summaries))), sharey=True)
    height = 0.8 / len(summaries)
    y = np.arange(len(methods))
    for j, summary in enumerate(summaries):
        colour = MODEL_COLOURS[j % len(MODEL_COLOURS)]
        scores = {s.method: s for s in summary.scores}
        for ax, key in ((axes[0], "deletion"), (axes[1], "insertion")):
            rows = [i for i, m in enumerate(methods) if m in scores]
            mean = np.array([getattr(scores[methods[i]], f"{key}_auc") for i in rows])
            ci = np.array([getattr(scores[methods[i]], f"{key}_ci95") for i in rows]).reshape(-1, 2)
            pos = y[rows] + (j - (len(summaries) - 1) / 2) * height
            ax.barh(
                pos,
                mean,
                height,
                xerr=np.abs(ci.T - mean),
                color=colour,
                label=summary.model,
                error_kw={"lw": 0.8, "capsize": 2},
            )
            best = methods.index(summary.most_faithful[key])
            ax.text(
                getattr(scores[methods[best]], f"{key}_ci95")[1] + 0.01,
                y[best] + (j - (len(summaries) - 1) / 2) * height,
                "*",
                va="center",
                fontsize=11,
                color=colour,
            )
    axes[0].set_yticks(y, methods, fontsize=7)
    axes[0].invert_yaxis()
    axes[0].set_xlabel("deletion AUC (lower = more faithful)")
    axes[1].set_xlabel("insertion AUC (higher = more faithful)")
    for ax in axes:
        ax.set_xlim(0, 1.08)
    axes[1].legend(fontsize=7)
    n = ", ".join(f"{s.model} n={s.n_items}" for s in summaries)
    fig.suptitle(f"causal faithfulness of explanations (* most faithful; {n})", fontsize=10)
    fig.tight_layout()
    return fig


def evidence_figure(summaries: Sequence[DeletionSummary]):
    """Drop in the chosen answer's probability when the evidence is occluded vs as many patches outside it."""
    usable = [s for s in summaries if s.evidence]
    fig, ax = subplots(figsize=(2 + 1.4 * max(1, len(usable)), 3.2))
    for j, s in enumerate(usable):
        e = s.evidence
        for k, (key, colour) in enumerate((("drop_evidence", "#b04040"), ("drop_outside", "#888888"))):
            err = np.abs(np.array(e[f"{key}_ci95"]) - e[key])[:, None]
            ax.bar(
                j + (k - 0.5) * 0.38,
                e[key],
                0.36,
                yerr=err,
                color=colour,
                capsize=2,
                label=("evidence occluded", "same area outside")[k] if j == 0 else None,
            )
    ax.set_xticks(range(len(usable)), [f"{s.model}\n(n={s.evidence['n']})" for s in usable], fontsize=8)
    ax.axhline(0, color="black", lw=0.6)
    ax.set_ylabel("drop in p(answer)")
    ax.legend(fontsize=7)
    ax.set_title("evidence vs outside", fontsize=10)
    fig.tight_layout()
    return fig


def occlusion_strip(result: DeletionResult, method: str, n_frames: int = 6, fill=DATASET_MEAN_RGB) -> Image.Image:
    """The deletion sequence of one explanation as labelled tiles (what the model was shown)."""
    order = result.orders[method]
    curve = result.curves[method]
    picks = np.unique(np.linspace(0, len(curve.fractions) - 1, n_frames).round().astype(int))
    n_cells = result.grid[0] * result.grid[1]
    tiles = [
        (
            display_image(occlude(result.image, result.grid, order[: round(curve.fractions[i] * n_cells)], fill)),
            f"{curve.fractions[i]:.0%} p={curve.deletion[i]:.2f}",
        )
        for i in picks
    ]
    return montage(tiles, columns=len(tiles), title=f"deletion by {method}")


def summary_markdown(summaries: Sequence[DeletionSummary]) -> str:
    """One row per (model, method): mean AUCs [95 % CI] and the difference to random; ``*`` marks the most
    faithful explanation of each model."""
    fmt = lambda v, ci: f"{v:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"
    diff = lambda v, ci: "" if v is None else f"{v:+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}]"
    lines = [
        "| model | method | n | deletion AUC ↓ | insertion AUC ↑ | deletion − random | insertion − random |",
        "|---|---|---|---|---|---|---|",
    ]
    for summary in summaries:
        for s in summary.scores:
            star = {key: " *" if best == s.method else "" for key, best in summary.most_faithful.items()}
            lines.append(
                f"| {summary.model} | {s.method} | {s.n} | {fmt(s.deletion_auc, s.deletion_ci95)}"
                f"{star['deletion']} | {fmt(s.insertion_auc, s.insertion_ci95)}{star['insertion']} | "
                f"{diff(s.deletion_vs_random, s.deletion_vs_random_ci95)} | "
                f"{diff(s.insertion_vs_random, s.insertion_vs_random_ci95)} |"
            )
    for summary in summaries:
        best = summary.most_faithful
        lines.append(
            f"\n{summary.model}: most faithful by deletion **{best['deletion']}**, by insertion "
            f"**{best['insertion']}**."
        )
        if summary.evidence:
            e = summary.evidence
            lines.append(
                f"Evidence occluded: p(answer) drops {e['drop_evidence']:.3f} (answer changes in "
                f"{e['changed_evidence']:.0%}); same area outside: {e['drop_outside']:.3f} "
                f"({e['changed_outside']:.0%}); n={e['n']}."
            )
    return "\n".join(lines)

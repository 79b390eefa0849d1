"""Figures of one analysis: answer → latent attention bars, and saving any figure to a PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from livr_viz.views.figures import subplots


def answer_latent_figure(values: np.ndarray, title: str = "answer → latent attention"):
    fig, ax = subplots(figsize=(6, 2.6))
    ax.bar(range(len(values)), values, color="#e8a33c")
    ax.set_xticks(range(len(values)))
    ax.set_xlabel("latent")
    ax.set_ylabel("attention")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def save_figure(fig, path: Path) -> str:
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)

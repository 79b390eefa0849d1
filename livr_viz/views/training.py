"""Training curves: loss, its running mean and validation accuracy vs step, the stage switch marked."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from livr_viz.views.figures import subplots


def plot_training(log_path: Path, out_png: Path, stage1_steps: int = 0) -> Path:
    """Loss (and its running mean) and validation accuracy vs step (for latent variants also under the bottleneck
    mask), with the stage switch marked."""
    rows = [json.loads(line) for line in Path(log_path).read_text().splitlines() if line.strip()]
    train = [r for r in rows if "loss" in r]
    evals = [r for r in rows if "eval_average" in r]
    fig, ax = subplots(figsize=(7, 3.6))
    if train:
        steps = [r["step"] for r in train]
        losses = [r["loss"] for r in train]
        ax.plot(steps, losses, color="#bbbbbb", lw=0.8, label="loss")
        window = max(1, len(losses) // 20)
        smooth = [
            sum(losses[max(0, i - window + 1) : i + 1]) / len(losses[max(0, i - window + 1) : i + 1])
            for i in range(len(losses))
        ]
        ax.plot(steps, smooth, color="#333333", lw=1.5, label="loss (running mean)")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("answer NLL")
    if stage1_steps:
        ax.axvline(stage1_steps, color="#e8a33c", ls="--", label="stage 1 → stage 2")
    if evals:
        ax2 = ax.twinx()
        ax2.plot(
            [r["step"] for r in evals], [r["eval_average"] for r in evals], "o-", color="#3c7be8", label="val accuracy"
        )
        blocked = [r for r in evals if "eval_bottleneck_average" in r]
        if blocked:  # latent variants: the same questions with the answer rows cut off from the image
            ax2.plot(
                [r["step"] for r in blocked],
                [r["eval_bottleneck_average"] for r in blocked],
                "s--",
                color="#8a3ce8",
                label="val accuracy, bottleneck mask",
            )
        ax2.set_ylabel("val accuracy (macro)")
        ax2.set_ylim(0, 1)
        ax2.legend(loc="upper center", fontsize=8)
    if ax.get_legend_handles_labels()[0]:  # an empty log (resumed at its end, nothing trained) has none
        ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return out_png

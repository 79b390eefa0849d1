"""The ablation plot of ``livr-viz sweep``: test accuracy (mean ± sd over seeds) per value of one LIVR setting, with
the SFT baseline as a horizontal line and its sd band."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from livr_viz.views.figures import subplots


def plot_sweep(summary: dict, param: str, out_png: str | Path, log_x: bool = False, title: str = "") -> Path:
    """``summary``: the ``summary`` of ``sweep.json`` (``livr``: one entry per value with ``value`` and ``average``
    ``{"mean", "sd"}``; ``sft``: the baseline's ``average``; ``chance``). Values with no finished run yet are left
    out; an sd of one seed (None) is drawn as 0."""
    fig, ax = subplots(figsize=(6, 3.6))
    done = [row for row in summary["livr"] if row["n_seeds"]]
    if done:
        xs = [row["value"] for row in done]
        means = [row["average"]["mean"] for row in done]
        sds = [row["average"]["sd"] or 0.0 for row in done]
        ax.errorbar(xs, means, yerr=sds, fmt="o-", color="#3c7be8", capsize=4, label="LIVR (mean ± sd)")
        if log_x:
            ax.set_xscale("log", base=2)
            ax.minorticks_off()
        ax.set_xticks(xs, [f"{x:g}" for x in xs])
    sft = summary["sft"]
    if sft["n_seeds"]:
        mean, sd = sft["average"]["mean"], sft["average"]["sd"] or 0.0
        ax.axhline(mean, color="#333333", lw=1.2, label="SFT (mean ± sd)")
        ax.axhspan(mean - sd, mean + sd, color="#333333", alpha=0.12, lw=0)
    if summary.get("chance") is not None:
        ax.axhline(summary["chance"], color="#999999", ls=":", lw=1, label="chance")
    ax.set_xlabel(param)
    ax.set_ylabel("test accuracy (macro over tasks)")
    if title:
        ax.set_title(title, fontsize=9)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return Path(out_png)

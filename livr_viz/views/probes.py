"""Probe results as figures: accuracy per layer of the latent probe beside its control task and baselines."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from livr_viz.methods.probes import ProbeReport  # noqa: E402
from livr_viz.views.figures import subplots


def probe_curves_figure(report: ProbeReport):
    """Per-layer accuracy of the latent probe, its control, selectivity and the baselines."""
    layers = [r["layer"] for r in report.layers]
    fig, ax = subplots(figsize=(6, 3.6))

    def curve(key, label, style, colour):
        acc = [r[key]["accuracy"] for r in report.layers if key in r]
        if len(acc) == len(layers):
            ax.plot(layers, acc, style, label=label, color=colour)
            lo = [r[key]["ci95"][0] for r in report.layers]
            hi = [r[key]["ci95"][1] for r in report.layers]
            if key == "latent_pooled":
                ax.fill_between(layers, lo, hi, color=colour, alpha=0.2)

    curve("latent_pooled", "latents (pooled)", "o-", "#e8a33c")
    curve("control", "control task", "x--", "#999999")
    curve("image_pooled", "image tokens", "s-", "#4c9be8")
    curve("text_pooled", "text tokens", "^-", "#555555")
    curve("random_model", "random model latents", "d:", "#b04040")
    ax.plot(layers, [r["selectivity"] for r in report.layers], "o:", color="#3cb371", label="selectivity")
    ax.axhline(report.majority, color="black", lw=0.8, ls=":", label="majority")
    ax.set_xlabel("layer (0 = embeddings)")
    ax.set_ylabel("5-fold accuracy")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title(f"probe: {report.concept} (n={report.n})", fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def save_probe_curves(report: ProbeReport, out_dir: str | Path) -> Path:
    """``CONCEPT_curves.png`` beside the probes that :func:`~livr_viz.methods.probes.run_probes` saved."""
    path = Path(out_dir) / f"{report.concept}_curves.png"
    fig = probe_curves_figure(report)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

"""Token maps as figures: a 2-D projection of hidden states, one point per token, interactive (plotly) or static
(matplotlib)."""

from __future__ import annotations

import numpy as np

from livr_viz.core.errors import LIVRError
from livr_viz.core.segments import SEGMENT_NAMES, Segment
from livr_viz.methods.tokenmap import TokenPoints
from livr_viz.views.figures import subplots

SEGMENT_PLOT_COLOURS = {"image": "#4c9be8", "text": "#8c8c8c", "latent": "#e8a33c", "answer": "#3cb371"}


def color_values(points: TokenPoints, color_by: str) -> list:
    if color_by == "segment":
        return [SEGMENT_NAMES[Segment(int(s))] for s in points.segment]
    if color_by not in points.labels:
        raise LIVRError(f"cannot colour by {color_by!r}; available: segment, {', '.join(points.labels)}")
    return [str(v) for v in points.labels[color_by]]


SVG_POINTS = 4000  # up to this many points the map is drawn in SVG, beyond in WebGL
SEGMENT_SYMBOLS = {"image": "circle", "text": "square", "latent": "diamond", "answer": "x"}
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


def tokenmap_figure_plotly(points: TokenPoints, xy: np.ndarray, color_by: str = "segment", title: str = ""):
    """Interactive scatter (plotly): the marker's shape says the token type (image ● / text ■ / latent ◆ /
    answer ✕), its colour the chosen label (``segment``, ``task`` or a concept key); hover shows type, sample,
    position and that label; each point carries its sample index (``customdata``) so a click can load it."""
    import plotly.graph_objects as go

    colours = color_values(points, color_by)
    kinds = [SEGMENT_NAMES[Segment(int(s))] for s in points.segment]
    samples = np.array(points.labels.get("sample", [0] * len(kinds)))
    positions = np.array(points.labels.get("position", [0] * len(kinds)))
    values = sorted(set(colours), key=str)
    scatter = go.Scatter if len(kinds) <= SVG_POINTS else go.Scattergl  # SVG: exact hover and click picking
    fig = go.Figure()
    for v_index, value in enumerate(values):
        for kind, symbol in SEGMENT_SYMBOLS.items():
            keep = np.array([c == value and k == kind for c, k in zip(colours, kinds)])
            if not keep.any():
                continue
            hover = [
                f"{kind} · sample {smp} · pos {pos} · {color_by} {value}"
                for smp, pos in zip(samples[keep], positions[keep])
            ]
            colour = SEGMENT_PLOT_COLOURS.get(value) or PALETTE[v_index % len(PALETTE)]
            name = f"{value} · {kind}" if color_by != "segment" else value
            fig.add_trace(
                scatter(
                    x=xy[keep, 0],
                    y=xy[keep, 1],
                    mode="markers",
                    text=hover,
                    hoverinfo="text",
                    customdata=samples[keep].tolist(),
                    name=name,
                    marker=dict(size=7, color=colour, symbol=symbol, opacity=0.8),
                )
            )
    fig.update_layout(
        title=title,
        height=480,
        margin=dict(l=10, r=10, t=40, b=10),
        legend_title=color_by,
        xaxis=dict(showticklabels=False),
        yaxis=dict(showticklabels=False),
    )
    return fig


def tokenmap_figure(points: TokenPoints, xy: np.ndarray, color_by: str = "segment", title: str = ""):
    """Static matplotlib version (PNG/SVG export)."""
    import matplotlib

    matplotlib.use("Agg")

    colours = color_values(points, color_by)
    fig, ax = subplots(figsize=(5.5, 4.8))
    for value in sorted(set(colours), key=str):
        keep = np.array([c == value for c in colours])
        ax.scatter(xy[keep, 0], xy[keep, 1], s=10, alpha=0.8, label=value, color=SEGMENT_PLOT_COLOURS.get(value))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=7, markerscale=1.5, title=color_by, title_fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig

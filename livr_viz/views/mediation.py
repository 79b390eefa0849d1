"""A :class:`~livr_viz.methods.mediation.MediationReport` as figures, tables and one self-contained HTML page.

:func:`sensitivity_figure` (input → latents: how far each perturbation moves the latents, the image tokens and the
answer row, per layer), :func:`interchange_figure` (latents → answer: how often the answer follows swapped latents,
swapped image tokens, the reverse swap and the unrelated-task control, and per patched layer) and
:func:`collapse_figure` (the reference paper's picture: cosine similarity of the latents across inputs, beside the
image tokens', and of the K latents with each other). Views never run the model.
"""

from __future__ import annotations

import html

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from livr_viz.methods.mediation import MediationReport
from livr_viz.views.diagnostics import STYLE, png_base64
from livr_viz.views.figures import subplots

WHO_STYLES = {"latent": "-", "image": "--", "answer": ":"}
PERTURBATION_COLOURS = ["#e8a33c", "#c0392b", "#555555", "#3b7dd8", "#1b4f9c", "#7b4fb0"]
INTERVENTION_COLOURS = {"latents": "#e8a33c", "image": "#3b7dd8", "reverse": "#7b4fb0", "control": "#888888"}


def _done(report: MediationReport) -> list[str]:
    return [n for n in report.models if report.result(n)["status"] == "done"]


def _empty(fig, ax, report: MediationReport):
    reasons = "; ".join(f"{n}: {report.result(n).get('reason', 'not run')}" for n in report.models)
    ax.text(0.5, 0.5, "no model with latents\n" + reasons, ha="center", va="center", wrap=True, fontsize=9)
    ax.set_axis_off()
    return fig


def _model_rows(report: MediationReport, columns: int, width: float, row_height: float):
    """A figure with a row of ``columns`` panels per model with latents, and those models' names; with none, one row
    whose first panel says why (the caller then returns the figure as it is)."""
    names = _done(report)
    rows = max(1, len(names))
    fig, axes = subplots(rows, columns, figsize=(width, row_height * rows), squeeze=False)
    if not names:
        _empty(fig, axes[0, 0], report)
    return fig, axes, names


def sensitivity_figure(report: MediationReport, distance: str = "cos"):
    """One panel per model: per layer, the movement (``cos`` distance or relative ``l2``) of the latents (solid), the
    image tokens (dashed) and the answer row (dotted) under each perturbation of the input, with 95 % bands."""
    names = _done(report)
    fig, axes = subplots(1, max(1, len(names)), figsize=(4.8 * max(1, len(names)), 3.8), squeeze=False)
    if not names:
        return _empty(fig, axes[0, 0], report)
    perts = list(report.result(names[0])["sensitivity"])
    for ax, name in zip(axes[0], names):
        sens = report.result(name)["sensitivity"]
        for colour, pert in zip(PERTURBATION_COLOURS, perts):
            for who, style in WHO_STYLES.items():
                stat = sens[pert][f"{who}_{distance}"]["average"]
                if not stat or stat["mean"] is None:
                    continue
                mean = np.asarray(stat["mean"], float)
                layers = np.arange(len(mean))
                ax.plot(layers, mean, style, color=colour, lw=1.5, marker="o" if who == "latent" else None, ms=3)
                if stat["ci95"] and who == "latent":
                    ax.fill_between(
                        layers,
                        np.asarray(stat["ci95"][0], float),
                        np.asarray(stat["ci95"][1], float),
                        color=colour,
                        alpha=0.15,
                        lw=0,
                    )
        ratio = sens["other_image"][f"ratio_{distance}"]["average"]
        text = "n/a" if not ratio or ratio["mean"] is None else f"{ratio['mean'][-1]:.2f}"
        ax.set_title(f"{name}: input → latents\nlatents / image tokens (another image, last layer) {text}", fontsize=9)
        ax.set_xlabel("layer")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0, 0].set_ylabel("cosine distance" if distance == "cos" else "relative L2")
    handles = [Line2D([], [], color=c, lw=2, label=p) for c, p in zip(PERTURBATION_COLOURS, perts)]
    handles += [
        Line2D([], [], color="#333", ls=s, label=w if w != "image" else "image tokens") for w, s in WHO_STYLES.items()
    ]
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    fig.legend(handles=handles, loc="lower center", ncol=5, fontsize=8, frameon=False)
    return fig


def interchange_figure(report: MediationReport):
    """Two panels per model: the share of questions whose answer follows the source (latents, image tokens, reverse)
    or changes (unrelated-task control) with 95 % intervals; and the share that follows B when the latents are
    patched at one layer's output only."""
    fig, axes, names = _model_rows(report, 2, 9.5, 3.2)
    if not names:
        return fig
    for row, name in zip(axes, names):
        inter = report.result(name)["interchange"]
        bars = [("latents", "follows"), ("image", "follows"), ("reverse", "follows"), ("control", "changed")]
        for x, (kind, metric) in enumerate(bars):
            stat = inter[kind][metric]["average"]
            if not stat or stat["mean"] is None:
                row[0].text(x, 0.02, "n/a", ha="center", fontsize=8)
                continue
            err = None
            if stat["ci95"]:
                err = [[stat["mean"] - stat["ci95"][0]], [stat["ci95"][1] - stat["mean"]]]
            row[0].bar(x, stat["mean"], color=INTERVENTION_COLOURS[kind], yerr=err, capsize=3)
            row[0].text(x, stat["mean"] + 0.03, f"{100 * stat['mean']:.0f} %", ha="center", fontsize=8)
        row[0].set_xticks(
            range(len(bars)),
            [
                "latents B→A\nfollows B",
                "image tokens\nfollows B",
                "B's image, A's latents\nfollows B",
                "unrelated latents\nchanged",
            ],
            fontsize=7,
        )
        row[0].set_ylim(0, 1.1)
        row[0].set_ylabel("share of questions")
        row[0].set_title(f"{name}: latents → answer", fontsize=9)
        per_layer = [k for k in inter if k.startswith("latents@")]
        means = [inter[k]["follows"]["average"] for k in per_layer]
        xs = [int(k.split("@")[1]) for k in per_layer]
        ys = [np.nan if not m or m["mean"] is None else m["mean"] for m in means]
        row[1].plot(xs, ys, "o-", color=INTERVENTION_COLOURS["latents"], label="one layer's output")
        all_layers = inter["latents"]["follows"]["average"]
        if all_layers and all_layers["mean"] is not None:
            row[1].axhline(all_layers["mean"], color=INTERVENTION_COLOURS["latents"], ls="--", label="every layer")
        row[1].set_ylim(-0.02, 1.02)
        row[1].set_xlabel("layer whose latent output is swapped")
        row[1].set_title(f"{name}: answer follows B, by patched layer", fontsize=9)
        row[1].xaxis.set_major_locator(MaxNLocator(integer=True))
        row[1].legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def _boundaries(ax, tasks: list[str]) -> None:
    edges = [i for i in range(1, len(tasks)) if tasks[i] != tasks[i - 1]]
    for e in edges:
        ax.axhline(e - 0.5, color="white", lw=0.6)
        ax.axvline(e - 0.5, color="white", lw=0.6)


def collapse_figure(report: MediationReport, layer: int = -1):
    """Rows: models. Columns: latents' cosine similarity across inputs (mean over latent indices; inputs grouped by
    task, white lines between tasks), the image tokens' (same positions compared), the K latents of one input with
    each other (mean over inputs), and the mean off-diagonal similarity per layer (latents solid, image dashed)."""
    fig, axes, names = _model_rows(report, 4, 16, 3.8)
    if not names:
        return fig
    for row, name in zip(axes, names):
        col = report.result(name)["collapse"]
        tasks = col["latent"]["matrix_tasks"]
        n_layers = len(col["latent"]["all"])
        shown = layer % n_layers
        for ax, who, title in ((row[0], "latent", "latents"), (row[1], "image", "image tokens")):
            matrix = np.asarray(col[who]["matrices"][shown], float)
            im = ax.imshow(matrix, vmin=-1, vmax=1, cmap="RdBu_r")
            _boundaries(ax, tasks)
            ax.set_title(
                f"{title} across inputs, layer {shown}\nmean {col[who]['all'][shown]:.3f}, effective rank "
                f"{col[who]['effective_rank'][shown]:.1f}",
                fontsize=8,
            )
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(name, fontsize=9)
        index = np.asarray(col["latent"]["index_matrix"][shown], float)
        row[2].imshow(index, vmin=-1, vmax=1, cmap="RdBu_r")
        row[2].set_title(
            f"latent × latent (one input), layer {shown}\nmean {col['latent']['index_similarity'][shown]:.3f}",
            fontsize=8,
        )
        row[2].set_xlabel("latent index")
        layers = np.arange(n_layers)
        for who, style in (("latent", "-"), ("image", "--")):
            row[3].plot(
                layers,
                col[who]["all"],
                style,
                color="#e8a33c" if who == "latent" else "#3b7dd8",
                marker="o",
                ms=3,
                label=f"{who}: all pairs",
            )
            row[3].plot(layers, col[who]["across_tasks"], style, color="#888", lw=1, label=f"{who}: across tasks")
        row[3].set_ylim(-0.05, 1.05)
        row[3].set_xlabel("layer")
        row[3].set_title("mean cosine similarity across inputs", fontsize=8)
        row[3].xaxis.set_major_locator(MaxNLocator(integer=True))
        row[3].legend(fontsize=6, frameon=False)
        fig.colorbar(im, ax=list(row[:3]), shrink=0.8, label="cosine similarity")
    return fig


def _ci(stat: dict | None, percent: bool = True, index: int | None = None) -> str:
    if not stat or stat.get("mean") is None:
        return "n/a"
    pick = lambda v: v if index is None or not isinstance(v, list) else v[index]  # noqa: E731
    mean = pick(stat["mean"])
    scale, fmt = (100, "{:.0f}") if percent else (1, "{:.3f}")
    text = fmt.format(scale * mean) + (" %" if percent else "")
    if stat.get("ci95"):
        lo, hi = pick(stat["ci95"][0]), pick(stat["ci95"][1])
        if lo is not None and hi is not None:
            text += f" [{fmt.format(scale * lo)}, {fmt.format(scale * hi)}]"
    return text


def _section_table(report: MediationReport, section: str, key: str, columns) -> pd.DataFrame:
    """One row per (model with a result, entry of its ``section``): the model, the entry's name under ``key``, and
    the cells ``columns(entry)`` gives."""
    rows = [
        {"model": name, key: entry, **columns(m)}
        for name in _done(report)
        for entry, m in report.result(name)[section].items()
    ]
    return pd.DataFrame(rows)


def interchange_table(report: MediationReport) -> pd.DataFrame:
    """One row per (model, intervention): follows, changed, shift toward B, drop of A's answer (averages, 95 %)."""

    def columns(m: dict) -> dict:
        return {
            "follows B": _ci(m["follows"]["average"]),
            "pairs": (m["follows"]["average"] or {}).get("n", 0),
            "changed": _ci(m["changed"]["average"]),
            "shift → B": _ci(m["shift"]["average"], False),
            "drop of A": _ci(m["drop"]["average"], False),
        }

    return _section_table(report, "interchange", "intervention", columns)


def sensitivity_table(report: MediationReport) -> pd.DataFrame:
    """One row per (model, perturbation), last layer: latents', image tokens' and answer row's cosine distance, the
    ratio latents / image tokens, and how often the answer changed."""

    last_layer = {"latents": "latent", "image tokens": "image", "answer row": "answer", "ratio": "ratio"}

    def columns(e: dict) -> dict:
        cells = {column: _ci(e[f"{key}_cos"]["average"], False, -1) for column, key in last_layer.items()}
        return {**cells, "answer changed": _ci(e["answer_changed"]["average"])}

    return _section_table(report, "sensitivity", "perturbation", columns)


def collapse_table(report: MediationReport) -> pd.DataFrame:
    """One row per (model, tokens), last layer: similarity across all inputs, within a task, across tasks, the
    effective rank and the similarity of one input's indices with each other."""
    rows = []
    for name in _done(report):
        col = report.result(name)["collapse"]
        for who in ("latent", "image"):
            c = col[who]
            rows.append(
                {
                    "model": name,
                    "tokens": "latents" if who == "latent" else "image tokens",
                    "similarity (all)": round(c["all"][-1], 3),
                    "per input [95 %]": _ci(c["mean_similarity"]["average"], False, -1),
                    "within task": None if c["within_task"][-1] is None else round(c["within_task"][-1], 3),
                    "across tasks": None if c["across_tasks"][-1] is None else round(c["across_tasks"][-1], 3),
                    "effective rank": round(c["effective_rank"][-1], 2),
                    "inputs": col["n_inputs"],
                    "index × index": round(c["index_similarity"][-1], 3),
                }
            )
    return pd.DataFrame(rows)


def _frame_html(frame: pd.DataFrame) -> str:
    """The table with one row a line: pandas writes a line a cell, and a report of many rows then repeats the same few
    indented lines over and over (the saved reports in docs/ are read as source by the duplicate check)."""
    if not len(frame):
        return "<p>no model with latents</p>"
    return compact_table(frame.to_html(index=False, escape=True, border=0))


def compact_table(table: str) -> str:
    """``<table>`` markup with its indentation dropped and a line break after each row; the text of a cell is on one
    line in pandas' output, so nothing shown changes."""
    return "".join(line.strip() for line in table.splitlines()).replace("</tr>", "</tr>\n").rstrip("\n")


def mediation_html(report: MediationReport) -> str:
    """The report as one self-contained HTML page: the verdicts, three tables and three figures (PNG, base64)."""
    s = report.settings
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>livr-viz mediation</title><style>{STYLE}"
        "</style></head><body><h1>Is X → Z → Y real? Causal mediation of the latents</h1>",
        f"<p>{s['n_items']} test questions over {len(s['tasks'])} task(s) ({html.escape(', '.join(s['tasks']))})"
        f"; condition <code>{html.escape(str(s.get('condition')))}</code>; items digest "
        f"<code>{html.escape(s['items_digest'])}</code>.</p>",
    ]
    for name in report.models:
        result = report.result(name)
        parts.append(f"<h2>{html.escape(name)}</h2>")
        if result["status"] != "done":
            parts.append(f"<p>n/a: {html.escape(result['reason'])}</p>")
            continue
        parts.append("<ul>" + "".join(f"<li>{html.escape(v)}</li>" for v in result["verdict"]) + "</ul>")
    for title, frame, fig in (
        ("Input → latents (last layer)", sensitivity_table(report), sensitivity_figure(report)),
        ("Latents → answer", interchange_table(report), interchange_figure(report)),
        ("Collapse (last layer)", collapse_table(report), collapse_figure(report)),
    ):
        parts.append(
            f"<h2>{html.escape(title)}</h2>{_frame_html(frame)}"
            f"<img alt='{html.escape(title)}' src='data:image/png;base64,{png_base64(fig)}'>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)

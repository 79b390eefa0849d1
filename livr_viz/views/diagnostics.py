"""A :class:`~livr_viz.methods.diagnostics.DiagnosticReport` as figures and one self-contained HTML page.

:func:`flow_figure`: per model, the attention mass per layer of the answer row and of the latent rows on image /
text / latent keys (full mask solid, bottleneck dashed, 95 % bands). :func:`effect_attention_figure`: per model,
each latent's drop of the correct answer's probability when blinded alone against its attention on the image and
on the evidence. :func:`diagnostics_html`: the tables and both figures (PNG, base64) in a single file.
"""

from __future__ import annotations

import base64
import html
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from livr_viz.methods.diagnostics import DiagnosticReport
from livr_viz.views.figures import subplots

SEGMENT_COLOURS = {"image": "#3b7dd8", "text": "#888888", "latent": "#e8a33c"}
STAGE_STYLES = {"full": "-", "bottleneck": "--"}


def _band(ax, stat: dict, colour: str, style: str) -> None:
    mean = np.asarray(stat["mean"])
    layers = np.arange(len(mean))
    ax.plot(layers, mean, style, color=colour, lw=1.6, marker="o", ms=3)
    if stat["ci95"] is not None:
        ax.fill_between(layers, stat["ci95"][0], stat["ci95"][1], color=colour, alpha=0.15, lw=0)


def flow_figure(report: DiagnosticReport):
    """Rows: models with a flow section; columns: the answer row, the latent rows."""
    names = [n for n in report.models if report.section(n, "flow")["status"] == "done"]
    fig, axes = subplots(max(1, len(names)), 2, figsize=(9, 2.6 * max(1, len(names))), squeeze=False, sharey=True)
    for ax_row, name in zip(axes, names):
        flow = report.section(name, "flow")
        for ax, who in zip(ax_row, ("answer", "latent")):
            ax.set_title(f"{name}: {who} row{'s' if who == 'latent' else ''} → keys", fontsize=9)
            ax.set_ylim(-0.02, 1.02)
            ax.set_xlabel("layer")
            for stage, rows in flow["stages"].items():
                if rows.get(who) is None:
                    continue
                for segment, summary in rows[who].items():
                    _band(ax, summary["average"], SEGMENT_COLOURS[segment], STAGE_STYLES[stage])
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            if not any(rows.get(who) for rows in flow["stages"].values()):
                ax.text(0.5, 0.5, "n/a (no latents)", ha="center", va="center", transform=ax.transAxes, color="#888")
        ax_row[0].set_ylabel("attention mass")
    if not names:
        axes[0, 0].text(0.5, 0.5, "no flow section", ha="center", va="center")
    handles = [Line2D([], [], color=c, lw=2, label=f"on {s}") for s, c in SEGMENT_COLOURS.items()]
    handles += [Line2D([], [], color="#444", ls=ls, label=f"{stage} mask") for stage, ls in STAGE_STYLES.items()]
    fig.tight_layout(rect=(0, 0.06 / max(1, len(names)), 1, 1))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    return fig


def effect_attention_figure(report: DiagnosticReport):
    """One panel per model with latents: mean drop (95 % bars) vs mean attention mass, one point per latent."""
    names = [n for n in report.models if report.section(n, "per_latent")["status"] == "done"]
    fig, axes = subplots(1, max(1, len(names)), figsize=(4.6 * max(1, len(names)), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names):
        section = report.section(name, "per_latent")
        drop = section["latents"]["drop"]["average"]
        y = np.asarray(drop["mean"])
        err = None if drop["ci95"] is None else np.abs(np.asarray(drop["ci95"]) - y)
        for key, marker, colour in (("image", "o", SEGMENT_COLOURS["image"]), ("evidence", "s", "#c0392b")):
            summary = section["latents"].get(key)
            if summary is None:
                continue
            x = np.asarray(summary["average"]["mean"])
            rho = section["spearman"][key]["rho"]
            label = f"on {key} (ρ = {'n/a' if rho is None else f'{rho:+.2f}'})"
            ax.errorbar(x, y, yerr=err, fmt=marker, ms=4, capsize=2, color=colour, label=label)
            if key == "image":
                for i, (xi, yi) in enumerate(zip(x, y)):
                    ax.annotate(str(i), (xi, yi), fontsize=6, xytext=(3, 3), textcoords="offset points")
        ax.axhline(0, color="#999", lw=0.8)
        ax.set_xlabel("latent's attention mass (mean over layers, heads)")
        ax.set_ylabel("drop of p(correct) when blinded alone")
        ax.set_title(f"{name} ({section['n_items']} questions)", fontsize=9)
        ax.legend(fontsize=7)
    if not names:
        axes[0, 0].text(0.5, 0.5, "no model with latents", ha="center", va="center")
    fig.tight_layout()
    return fig


def png_base64(fig) -> str:
    """The figure as a base64 PNG (closed afterwards)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


# -------------------------------------------------------------------------------------------------------- HTML
def _cell(stat: dict | None, percent: bool = True) -> str:
    if not stat:
        return "–"
    show = (lambda v: f"{100 * v:.1f}") if percent else (lambda v: f"{v:.3f}")
    text = show(stat["mean"])
    if stat.get("ci95"):
        text += f" <small>[{show(stat['ci95'][0])}, {show(stat['ci95'][1])}]</small>"
    return text


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _model_tables(report: DiagnosticReport, name: str) -> str:
    table, parts = report.section(name, "table"), []
    if table["status"] != "done":
        return f"<p>table: {html.escape(table.get('reason', ''))}</p>"
    verdict = table["verdict"]
    parts.append(
        f"<p class='verdict'><b>Uses its latents: {html.escape(verdict['answer'])}</b> — "
        f"{html.escape(verdict['reason'])}</p>"
    )
    tasks = list(table["conditions"]["standard"]["tasks"])
    rows = [
        [html.escape(c)] + [_cell(s["tasks"][t]) for t in tasks] + [_cell(s["average"])]
        for c, s in table["conditions"].items()
    ]
    stage1 = report.section(name, "stage1")
    if stage1["status"] == "done":
        rows += [
            [f"Stage-1 checkpoint, {html.escape(c)}"] + [_cell(s["tasks"][t]) for t in tasks] + [_cell(s["average"])]
            for c, s in stage1["conditions"].items()
        ]
    attention = table["answer_latent_attention"]
    if attention:
        rows.append(
            ["answer → latent attention"]
            + [_cell(attention["tasks"][t], False) for t in tasks]
            + [_cell(attention["average"], False)]
        )
    parts.append(_table(["accuracy %", *tasks, "average"], rows))
    if table["paired"]:
        paired = [
            [
                f"standard − {html.escape(c)}",
                f"{100 * p['average']['delta']:+.1f}",
                f"[{100 * p['average']['ci95'][0]:+.1f}, {100 * p['average']['ci95'][1]:+.1f}]",
                f"{p['average']['mcnemar_p']:.3g}",
            ]
            for c, p in table["paired"].items()
        ]
        parts.append(_table(["paired difference", "points", "95 % CI (paired bootstrap)", "McNemar p"], paired))
    effects = report.section(name, "per_latent")
    if effects["status"] == "done":
        rho = [
            [
                html.escape(k),
                "n/a" if v["rho"] is None else f"{v['rho']:+.3f}",
                "–" if v["p"] is None else f"{v['p']:.3g}",
                str(v["n"]),
                "n/a" if effects["spearman_pairs"][k]["rho"] is None else f"{effects['spearman_pairs'][k]['rho']:+.3f}",
            ]
            for k, v in effects["spearman"].items()
        ]
        parts.append(
            _table(["drop vs attention on", "Spearman ρ (latents)", "p", "latents", "ρ over (question, latent)"], rho)
        )
    else:
        parts.append(f"<p>per-latent effects: {html.escape(effects.get('reason', ''))}</p>")
    backends = report.section(name, "backends")
    if backends["status"] == "done":
        rows = [
            [
                html.escape(f"{impl} vs {backends['reference']}"),
                stage,
                f"{r['agreement']:.3f}",
                f"{r['kl_mean']:.2e}",
                f"{r['kl_max']:.2e}",
                f"{r['max_attention_diff']:.2e}",
            ]
            for impl, stages in backends["implementations"].items()
            for stage, r in stages.items()
        ]
        parts.append(
            _table(["attention kernels", "mask", "answer agreement", "KL mean", "KL max", "max |Δ attention|"], rows)
        )
        parts += [f"<p class='warn'>⚠ {html.escape(w)}</p>" for w in backends["warnings"]]
    return "".join(parts)


STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;color:#222}"
    "table{border-collapse:collapse;margin:.6em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;"
    "text-align:right}th{background:#f3f3f3}td:first-child{text-align:left}small{color:#777}"
    ".verdict{font-size:15px}.warn{color:#a33}img{max-width:100%}"
)


def diagnostics_html(report: DiagnosticReport) -> str:
    """The whole report as one self-contained HTML page (no external files or scripts)."""
    s = report.settings
    parts = [
        (
            f"<!doctype html><html><head><meta charset='utf-8'><title>livr-viz diagnosis</title>"
            f"<style>{STYLE}</style></head><body><h1>Is the model really using its latents?</h1>"
        ),
        (
            f"<p>{s['n_items']} test questions over {len(s['tasks'])} task(s) ({html.escape(', '.join(s['tasks']))})"
            f"; items digest <code>{html.escape(s['items_digest'])}</code>; torch "
            f"{html.escape(report.environment.get('torch', '?'))}, transformers "
            f"{html.escape(report.environment.get('transformers', '?'))}.</p>"
        ),
    ]
    for name, entry in report.models.items():
        info = entry["info"]
        parts.append(
            f"<h2>{html.escape(name)}</h2><p>variant {html.escape(info['variant'])}, K = {info['n_latents']},"
            f" attention kernel <code>{html.escape(info['attn_implementation'])}</code>, "
            f"{info['trained_steps']} training steps</p>"
        )
        parts.append(_model_tables(report, name))
    if report.comparisons:
        rows = [
            [
                html.escape(pair),
                f"{100 * c['average']['delta']:+.1f}",
                f"[{100 * c['average']['ci95'][0]:+.1f}, {100 * c['average']['ci95'][1]:+.1f}]",
                f"{c['average']['mcnemar_p']:.3g}",
            ]
            for pair, c in report.comparisons.items()
        ]
        parts.append(
            "<h2>Models compared (standard condition, same questions)</h2>"
            + _table(["models", "Δ accuracy, points", "95 % CI", "McNemar p"], rows)
        )
    parts.append(
        "<h2>Where attention goes, layer by layer</h2>"
        f"<img alt='attention flow per layer' src='data:image/png;base64,{png_base64(flow_figure(report))}'>"
    )
    parts.append(
        "<h2>Each latent blinded alone: effect vs attention</h2><img alt='per-latent effect vs attention' "
        f"src='data:image/png;base64,{png_base64(effect_attention_figure(report))}'>"
    )
    parts.append("</body></html>")
    return "\n".join(parts)

"""The Compare tab: the model's trio (LIVR · latents-only · SFT) on the same input, side by side."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from livr_viz import service as S
from livr_viz.ui.common import Page, user_errors
from livr_viz.ui.queues import QUICK_EVENTS

COMPARE_INTRO = (
    "The same input through three fine-tunes of one backbone: **LIVR** (latents, bottleneck stage then "
    "full attention), **latents-only** (the same latents, full attention only) and **SFT** (no latents; "
    "its tiles are the answer row's attention). On a synthetic sample: **mass in evidence** = share of "
    "the image attention inside the ground-truth evidence (mean over latents); **area** = the evidence's "
    "share of the image, what a uniform map would get; **lift** = mass / area (1 = chance, above 1 = "
    "looks at the evidence); **pointing game** = fraction of latents whose brightest patch lies in the "
    "evidence. The sheet: one row of tiles per model, each tile on its own scale (0 … the number under "
    "it)."
)


@user_errors
def on_compare(selected, image, prompt, stage, aggregation, opacity, views):
    table, sheet = S.compare_view(selected, image, prompt, stage, aggregation, opacity)
    views = S.record_view(
        views,
        "compare",
        dict(models=list(S.compare_set(selected)), prompt=prompt, stage=stage, aggregation=aggregation),
        {"heatmaps": sheet},
        {"table": table},
    )
    return table, sheet, views


def build(page: Page, attention: SimpleNamespace) -> SimpleNamespace:
    """``attention``: the Latent attention tab, whose aggregation and opacity the comparison draws with."""
    gr.Markdown(COMPARE_INTRO, elem_id="compare-intro")
    compare_btn = gr.Button("compare LIVR · latents-only · SFT", elem_id="compare")
    compare_table = gr.Dataframe(label="answers, probabilities, faithfulness", elem_id="compare-table")
    compare_sheet = gr.Image(
        label="heatmaps per variant (one row of tiles per model)",
        type="pil",
        format="png",
        interactive=False,
        show_label=False,
        elem_id="compare-sheet",
    )
    compare_btn.click(
        on_compare,
        [page.model, page.image, page.prompt, page.stage, attention.aggregation, attention.opacity, page.views],
        [compare_table, compare_sheet, page.views],
        api_name="compare",
        **QUICK_EVENTS,
    )
    page.results += [compare_table, compare_sheet]
    return SimpleNamespace(table=compare_table, sheet=compare_sheet)

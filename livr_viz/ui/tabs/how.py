"""The How-it-works tab: the method in a paragraph and the attention mask of this very input."""

from __future__ import annotations

import gradio as gr

from livr_viz import service as S
from livr_viz.ui.common import Page, user_errors
from livr_viz.ui.queues import QUICK_EVENTS

HOW_IT_WORKS = """
**LIVR** inserts K learned *latent tokens* between the prompt and the answer: `image · prompt · latents · answer`.
Training has two stages. In **Stage 1 (bottleneck)** the prompt and answer tokens may not look at the image —
only the latents may — so everything the answer knows about the image has to pass through the latents.
In **Stage 2 (full)** ordinary causal attention returns and the model learns to combine both routes.
The matrix below is the attention mask of *your* input with the model's answer appended: a coloured cell means the
row (query) may attend to the column (key); white cells are blocked; the strips along the top and the left give each
column's and row's segment. Switch the stage to compare.
"""


@user_errors
def on_mask(model, image, prompt, stage, views):
    fig = S.mask_view(model, image, prompt, stage)
    return fig, S.record_view(views, "mask", dict(model=model, prompt=prompt, stage=stage), {"mask": fig})


def build(page: Page) -> None:
    gr.Markdown(HOW_IT_WORKS)
    mask_btn = gr.Button("draw the mask of this input", elem_id="mask")
    mask_plot = gr.Plot(label="attention mask")
    page.stage.change(lambda: None, None, [mask_plot], api_name=False, queue=False)  # the mask drawn is per stage
    mask_btn.click(
        on_mask,
        [page.model, page.image, page.prompt, page.stage, page.views],
        [mask_plot, page.views],
        api_name="mask",
        **QUICK_EVENTS,
    )
    page.results.append(mask_plot)

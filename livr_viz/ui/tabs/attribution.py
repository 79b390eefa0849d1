"""The Attribution tab (which pixels and latents raise an option's logit) and the Ablation tab (switch latents off
and watch the answer)."""

from __future__ import annotations

import gradio as gr

from livr_viz import service as S
from livr_viz.ui.common import Page, user_errors
from livr_viz.ui.queues import QUICK_EVENTS


@user_errors
def on_attribution(model, image, prompt, stage, target, method, views):
    picture, frame, md = S.attribution_view(model, image, prompt, stage, target, method)
    views = S.record_view(
        views,
        "attribution",
        dict(model=model, prompt=prompt, stage=stage, target=target, method=method),
        {"pixels": picture},
        {"summary": md, "latents": frame},
    )
    return picture, frame, md, views


@user_errors
def on_ablation(model, image, prompt, stage, latents, mode, layer, views):
    v = S.ablation_panel(model, image, prompt, stage, latents, mode, layer)
    views = S.record_view(
        views,
        "ablation",
        dict(model=model, prompt=prompt, stage=stage, latents=latents, mode=mode, layer=layer),
        {},
        {"summary": v["markdown"], "before_after": v["bars"], "each_latent": v["effects"]},
    )
    return v["markdown"], gr.BarPlot(value=v["bars"], sort=v["order"]), v["effects"], views


def build_attribution(page: Page) -> None:
    with gr.Row():
        target = gr.Textbox(value="", label="target choice (empty = the answer)")
        attr_method = gr.Radio(list(S.ATTRIBUTION_METHODS), value="saliency", label="method")
    attr_btn = gr.Button("attribute", elem_id="attribute")
    attr_md = gr.Markdown()
    attr_image = gr.Image(label="pixel attribution", interactive=False)
    attr_bars = gr.BarPlot(x="latent", y="attribution", title="attribution to latent embeddings", height=220)
    attr_btn.click(
        on_attribution,
        [page.model, page.image, page.prompt, page.stage, target, attr_method, page.views],
        [attr_image, attr_bars, attr_md, page.views],
        api_name="attribution",
        **QUICK_EVENTS,
    )
    page.results += [attr_image, attr_bars, attr_md]


def build_ablation(page: Page) -> None:
    ablate_latents = gr.CheckboxGroup([str(i) for i in range(page.n_latents)], value=[], label="latents to switch off")
    with gr.Row():
        ablate_mode = gr.Radio(list(S.ABLATIONS), value="zero", label="mode")
        ablate_layer = gr.Slider(-1, page.n_layers - 1, value=-1, step=1, label="after layer (-1 = embeddings)")
    ablate_btn = gr.Button("ablate", elem_id="ablate")
    ablate_md = gr.Markdown()
    ablate_plot = gr.BarPlot(x="choice", y="probability", color="when", title="before / after", height=220)
    ablate_effects = gr.BarPlot(
        x="latent",
        y="change",
        title="change of the answer's probability, each latent alone",
        height=220,
    )
    ablate_btn.click(
        on_ablation,
        [page.model, page.image, page.prompt, page.stage, ablate_latents, ablate_mode, ablate_layer, page.views],
        [ablate_md, ablate_plot, ablate_effects, page.views],
        api_name="ablation",
        **QUICK_EVENTS,
    )
    page.results += [ablate_md, ablate_plot, ablate_effects]

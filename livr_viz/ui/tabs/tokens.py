"""The Token map tab: a projection of one layer's hidden states (this image or dataset samples, a click on a point
loads its sample), and the trio in one aligned embedding."""

from __future__ import annotations

import time
from types import SimpleNamespace

import gradio as gr

from livr_viz import service as S
from livr_viz.ui.common import Page, user_errors
from livr_viz.ui.queues import LONG_EVENTS, QUICK_EVENTS

# linked views: a click on a point of the token map writes its sample index into the hidden #token-pick box
LINK_TOKEN_MAP = """() => {
  const attach = (tries) => {
    const plot = document.querySelector('#token-plot .js-plotly-plot');
    if (!plot || !plot.on) { if (tries > 0) setTimeout(() => attach(tries - 1), 300); return; }
    if (plot.dataset.linked) return;
    plot.dataset.linked = '1';
    plot.on('plotly_click', (event) => {
      const box = document.querySelector('#token-pick textarea');
      box.value = event.points[0].customdata + ':' + Date.now();  // a new value each click: a change event
      box.dispatchEvent(new Event('input', {bubbles: true}));
    });
  };
  attach(40);
}"""


@user_errors
def on_token_map(model, image, prompt, stage, method, layer, scope, n_samples, color_by, views, progress=gr.Progress()):
    fig = S.token_map_view(
        model, image, prompt, stage, method, layer, scope, n_samples, color_by, progress=progress
    )  # the service's one progress signature: gr.Progress as it is
    views = S.record_view(
        views,
        "token_map",
        dict(
            model=model,
            prompt=prompt,
            stage=stage,
            method=method,
            layer=layer,
            scope=scope,
            n_samples=n_samples,
            color_by=color_by,
        ),
        {"token_map": fig},
    )
    return fig, views


def route_token_map(scope):
    """The draw button: a fresh value on the hidden trigger of the queue this scope belongs to (quick for this image,
    long for dataset samples); the other trigger is left as it is."""
    stamp = str(time.time_ns())
    return (stamp, gr.skip()) if scope == "this image" else (gr.skip(), stamp)


@user_errors
def on_aligned(model, stage, method, layer, n_samples, color_by, views):
    fig = S.aligned_token_map(model, stage, method, layer, n_samples, color_by)
    views = S.record_view(
        views,
        "aligned_token_map",
        dict(model=model, stage=stage, method=method, layer=layer, n_samples=n_samples),
        {"aligned_token_map": fig},
    )
    return fig, views


@user_errors
def on_token_pick(index, model):
    return S.token_map_sample(model, index)


def build(page: Page) -> SimpleNamespace:
    n_layers = page.n_layers
    with gr.Row():
        method = gr.Radio(list(S.PROJECTIONS), value="tsne", label="projection")
        tlayer = gr.Slider(0, n_layers, value=n_layers, step=1, label="layer (0 = embeddings)")
        scope = gr.Radio(["this image", "dataset"], value="this image", label="tokens of", elem_id="token-scope")
    with gr.Row():
        n_samples = gr.Slider(2, 60, value=12, step=1, label="dataset samples")
        color_by = gr.Textbox(value="segment", label="colour by (segment, task, a concept key)")
    token_btn = gr.Button("draw token map", elem_id="token-map")
    token_cancel = gr.Button("cancel")
    token_plot = gr.Plot(label="token map (dataset: click a point to load its sample)", elem_id="token-plot")
    token_pick = gr.Textbox(visible="hidden", elem_id="token-pick")
    aligned_btn = gr.Button("one aligned map of LIVR · latents-only · SFT (dataset samples)", elem_id="aligned-map")
    aligned_plot = gr.Plot(label="the model's set in one embedding, with trustworthiness and seed-to-seed stability")

    model, views = page.model, page.views
    aligned_btn.click(
        on_aligned,
        [model, page.stage, method, tlayer, n_samples, color_by, views],
        [aligned_plot, views],
        api_name="aligned_token_map",
        **LONG_EVENTS,
    )
    # one image's map is a quick view (one forward pass); a dataset's runs a forward pass per sample, a long job:
    # the button sends each to its queue through a hidden trigger, so a map of this image never waits behind a
    # diagnosis. The API's /token_map takes any scope, in the long queue.
    quick_go = gr.Textbox(visible="hidden", elem_id="token-map-quick")
    long_go = gr.Textbox(visible="hidden", elem_id="token-map-long")
    inputs = [model, page.image, page.prompt, page.stage, method, tlayer, scope, n_samples, color_by, views]
    token_btn.click(route_token_map, [scope], [quick_go, long_go], queue=False, api_name=False)
    quick_event = quick_go.change(on_token_map, inputs, [token_plot, views], api_name=False, **QUICK_EVENTS)
    long_event = long_go.change(on_token_map, inputs, [token_plot, views], api_name="token_map", **LONG_EVENTS)
    token_cancel.click(None, None, None, cancels=[quick_event, long_event], api_name=False)
    for event in (quick_event, long_event):  # a click on a point fills token_pick
        event.then(None, None, None, js=LINK_TOKEN_MAP, api_name=False)
    token_pick.change(on_token_pick, [token_pick, model], [page.image, page.prompt], api_name=False)
    page.results.append(token_plot)
    return SimpleNamespace(plot=token_plot, scope=scope)

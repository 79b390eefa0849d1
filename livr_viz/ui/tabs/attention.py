"""The Latent attention tab: one heatmap tile per latent, answer → latent bars, and in accordions the patch readers,
the layer × head grid with the filmstrip, the dataset view and the latent swap."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from livr_viz import service as S
from livr_viz.ui.common import Page, user_errors
from livr_viz.ui.mediation import swap_section
from livr_viz.ui.queues import LONG_EVENTS, QUICK_EVENTS

TILE_LEGEND = (
    "<div class='legend'>Each tile (one per latent; SFT has none, its tile is the answer row's) — "
    "<b>top bar</b>: where this row's attention goes, "
    "<span class='sw' style='background:#4c9be8'></span>image "
    "<span class='sw' style='background:#8c8c8c'></span>text "
    "<span class='sw' style='background:#e8a33c'></span>latents (left to right, widths = shares); "
    "<b>map</b>: its attention over the image patches, brighter = more, on the colour bar's scale "
    "(0 … the number at its right); <span class='sw' style='border:2px solid #33ff4c'></span><b>green "
    "outline</b>: the evidence a correct answer needs (synthetic samples). <b>Caption</b>: image % = "
    "share of attention on image tokens; <i>in evidence X% of Y% area</i> = attention mass inside the "
    "evidence against the evidence's share of the image (what a uniform map would score); lift = X / Y "
    "(1 = chance).</div>"
)
GRID_LEGEND = (
    "Rows are layers, columns heads. Each thumbnail is the latents' mean map in that layer and head on its "
    "own scale; **L·H·%** is the share of the latents' attention that lands on image tokens there (the rest "
    "goes to text and latents). Click one to show that layer and head in the tiles."
)


@user_errors
def on_analyze(model, image, prompt, stage, layers, heads, aggregation, normalisation, opacity):
    v = S.attention_view(model, image, prompt, stage, layers, heads, aggregation, normalisation, opacity)
    return v["markdown"], v["choice_probs"] or None, v["tiles"], v["answer_latent"], v["image"]


@user_errors
def on_dataset_view(model, task, n, stage, aggregation, views):
    v = S.dataset_view(model, task, n, stage, aggregation)
    settings = dict(model=model, task=task, n=n, stage=stage, aggregation=aggregation)
    views = S.record_view(
        views,
        "dataset_view",
        settings,
        {"mean_maps": S.montage(v["tiles"], columns=8, tile=192)},
        {"per_latent": v["table"]},
    )
    return v["markdown"], v["tiles"], v["table"], views


@user_errors
def on_patch(model, image, prompt, stage, layers, heads, evt: gr.SelectData):
    v = S.patch_readers(model, image, prompt, stage, evt.index[0], evt.index[1], layers, heads)
    return v["markdown"], v["image"], gr.BarPlot(value=v["readers"], sort=list(v["readers"]["reader"]))


@user_errors
def on_grid(model, image, prompt, stage):
    return S.layer_head_grid(model, image, prompt, stage)


@user_errors
def on_grid_pick(model, evt: gr.SelectData):
    return S.layer_head_at(model, evt.index[0], evt.index[1])


@user_errors
def on_filmstrip(model, image, prompt, stage, views):
    fig = S.filmstrip_view(model, image, prompt, stage)
    return fig, S.record_view(views, "filmstrip", dict(model=model, prompt=prompt, stage=stage), {"filmstrip": fig})


def view_note(layers, heads) -> str:
    return f"tiles, captions and bars below: layers **{layers or 'all'}** · heads **{heads or 'mean'}**"


def on_drawn(layers, heads):
    """After a redraw: remember what the tiles show, say it, lift the stale mark, put away an enlarged old tile."""
    return (
        {"layers": layers, "heads": heads},
        gr.Markdown(view_note(layers, heads), elem_classes=[]),
        gr.Image(value=None, visible=False),
    )


def on_view_edit(layers, heads, drawn):
    """A typed layer or head selection leaves the tiles drawn for the old one: mark them stale until redrawn."""
    if not drawn or (drawn.get("layers"), drawn.get("heads")) == (layers, heads):
        return gr.Markdown(view_note(drawn.get("layers"), drawn.get("heads")) if drawn else "", elem_classes=[])
    return gr.Markdown(
        f"⚠ **stale** — the tiles, captions and bars below are still for layers **{drawn['layers']}** "
        f"· heads **{drawn['heads']}**; press Enter in the box or **Run** to redraw for layers "
        f"**{layers}** · heads **{heads}**.",
        elem_classes=["stale"],
    )  # CSS greys the old tiles


@user_errors
def on_enlarge(model, image, prompt, stage, drawn, aggregation, normalisation, opacity, evt: gr.SelectData):
    """Click to enlarge: the clicked tile drawn again at full resolution (not the 192-px tile scaled up)."""
    drawn = drawn or {}
    tile, caption = S.enlarged_tile(
        model,
        image,
        prompt,
        stage,
        drawn.get("layers"),
        drawn.get("heads"),
        aggregation,
        normalisation,
        opacity,
        evt.index,
    )
    return gr.Image(value=tile, label=f"{caption} — drawn again at full resolution", visible=True)


def build(page: Page) -> SimpleNamespace:
    """Lay out and wire the tab; returns its components, ``view_inputs`` / ``view_outputs`` of :func:`on_analyze`
    and ``redrawn(event)``, which every event that redraws the tiles passes through."""
    first = page.first
    with gr.Row():
        layers = gr.Textbox(value="all", label="layers (all or 0,2-3)")
        heads = gr.Textbox(value="mean", label="heads (mean or 0,1)")
        aggregation = gr.Radio(list(S.AGGREGATIONS), value="mean", label="aggregation")
    with gr.Row():
        normalisation = gr.Radio(list(S.NORMALISATIONS), value="per_latent", label="normalisation")
        opacity = gr.Slider(0.0, 1.0, value=0.55, step=0.05, label="opacity")
    view_md = gr.Markdown(view_note("all", "mean") if first else "", elem_id="view-note")
    gr.HTML(TILE_LEGEND, elem_id="tile-legend")
    gallery = gr.Gallery(
        first.get("tiles"),
        label="latent → image attention (click a tile to enlarge it)",
        columns=4,
        format="png",
        height="auto",
        object_fit="contain",
        allow_preview=False,
        elem_id="latent-gallery",
    )
    enlarged = gr.Image(
        label="the clicked tile, drawn again at full resolution",
        interactive=False,
        format="png",
        elem_id="enlarged-tile",
        visible=False,
    )
    bars = gr.BarPlot(
        first.get("answer_latent"),
        x="latent",
        y="attention",
        title="answer → latent attention",
        height=220,
    )
    with gr.Accordion("who reads this patch? click a patch of the input", open=False):
        patch_md = gr.Markdown("Run, then click the input image above to pick a patch.")
        patch_image = gr.Image(label="the patch", interactive=False, height=220, elem_id="patch-image")
        patch_bars = gr.BarPlot(
            x="reader",
            y="attention",
            title="attention to the patch",
            height=220,
            elem_id="patch-bars",
        )
    with gr.Accordion("layer × head grid: click a thumbnail to show that layer and head", open=False):
        grid_btn = gr.Button("draw the grid", elem_id="grid-button")
        gr.Markdown(GRID_LEGEND, elem_id="grid-legend")
        grid_image = gr.Image(
            label="latents' mean map per layer (rows) and head (columns); L·H·% = share on image tokens",
            interactive=False,
            format="png",
            show_label=False,
            elem_id="layer-head-grid",
        )
        film_btn = gr.Button("filmstrip: each latent across the layers", elem_id="filmstrip")
        film_plot = gr.Plot(label="latents (rows) × layers (columns), per-latent scale")
    with gr.Accordion("dataset view: the same maps over many samples of a task", open=False):
        with gr.Row():
            dataset_n = gr.Slider(*S.DATASET_VIEW_SAMPLES, value=16, step=1, label="samples")
            dataset_btn = gr.Button("average over samples of the task", elem_id="dataset-view")
        dataset_md = gr.Markdown()
        dataset_gallery = gr.Gallery(
            label="mean latent → image attention",
            columns=4,
            format="png",
            height="auto",
            object_fit="contain",
            elem_id="dataset-gallery",
        )
        dataset_table = gr.Dataframe(label="per latent, over the samples")
    swap_section(page.model, page.image, page.prompt, page.stage, QUICK_EVENTS, user_errors)

    model, image, prompt, stage, views = page.model, page.image, page.prompt, page.stage, page.views
    drawn = gr.State({"layers": "all", "heads": "mean"} if first else {})  # what the tiles show now
    view_inputs = [model, image, prompt, stage, layers, heads, aggregation, normalisation, opacity]
    view_outputs = [page.answer, page.probs, gallery, bars, page.preview]

    def redrawn(event):  # every redraw of the tiles: remember its layers and heads, lift the stale mark
        event.success(on_drawn, [layers, heads], [drawn, view_md, enlarged], api_name=False, queue=False)

    for control in (aggregation, normalisation, stage):
        redrawn(control.change(on_analyze, view_inputs, view_outputs, api_name=False, **QUICK_EVENTS))
    redrawn(opacity.release(on_analyze, view_inputs, view_outputs, api_name=False, **QUICK_EVENTS))
    for box in (layers, heads):  # typing marks the tiles stale at once; Enter redraws them
        box.input(on_view_edit, [layers, heads, drawn], [view_md], api_name=False, queue=False)
        redrawn(box.submit(on_analyze, view_inputs, view_outputs, api_name=False, **QUICK_EVENTS))
    gallery.select(
        on_enlarge,
        [model, image, prompt, stage, drawn, aggregation, normalisation, opacity],
        [enlarged],
        api_name=False,
        **QUICK_EVENTS,
    )
    page.preview.select(
        on_patch,
        [model, image, prompt, stage, layers, heads],
        [patch_md, patch_image, patch_bars],
        api_name=False,
        **QUICK_EVENTS,
    )
    grid_btn.click(on_grid, [model, image, prompt, stage], [grid_image], api_name="layer_head_grid", **QUICK_EVENTS)
    film_btn.click(
        on_filmstrip,
        [model, image, prompt, stage, views],
        [film_plot, views],
        api_name="filmstrip",
        **QUICK_EVENTS,
    )
    redrawn(
        grid_image.select(on_grid_pick, [model], [layers, heads], api_name=False).then(
            on_analyze, view_inputs, view_outputs, api_name=False, **QUICK_EVENTS
        )
    )
    dataset_btn.click(
        on_dataset_view,
        [model, page.task, dataset_n, stage, aggregation, views],
        [dataset_md, dataset_gallery, dataset_table, views],
        api_name="dataset_view",
        **LONG_EVENTS,
    )
    page.results += [
        gallery,
        enlarged,
        view_md,
        bars,
        patch_md,
        patch_image,
        patch_bars,
        grid_image,
        film_plot,
        dataset_md,
        dataset_gallery,
        dataset_table,
    ]
    return SimpleNamespace(
        layers=layers,
        heads=heads,
        aggregation=aggregation,
        normalisation=normalisation,
        opacity=opacity,
        enlarged=enlarged,
        patch_md=patch_md,
        view_inputs=view_inputs,
        view_outputs=view_outputs,
        redrawn=redrawn,
    )

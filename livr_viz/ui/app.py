"""livr-viz: the Gradio app. Upload an image, see where each latent looks, compare variants, probe concepts.

It composes the engine (``livr_viz.service`` and friends) and holds no model logic of its own.
Run ``python app.py`` or ``livr-viz app``.  Every event has an ``api_name``; events that touch the model share
one ``concurrency_id`` so hooks of one request never see another's forward.
"""

from __future__ import annotations

import functools
import os
import threading
import traceback
from pathlib import Path

import gradio as gr

from livr_viz import service as S
from livr_viz.ui.mediation import mediation_section, swap_section

MODEL_EVENTS = dict(concurrency_id="model", concurrency_limit=1)
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
STALE = "Inputs changed: press **Run** for this image, prompt and model."
HOW_IT_WORKS = """
**LIVR** inserts K learned *latent tokens* between the prompt and the answer: `image · prompt · latents · answer`.
Training has two stages. In **Stage 1 (bottleneck)** the prompt and answer tokens may not look at the image —
only the latents may — so everything the answer knows about the image has to pass through the latents.
In **Stage 2 (full)** ordinary causal attention returns and the model learns to combine both routes.
The matrix below is the attention mask of *your* input with the model's answer appended: a coloured cell means the
row (query) may attend to the column (key); white cells are blocked; the strips along the top and the left give each
column's and row's segment. Switch the stage to compare.
"""


def user_errors(fn):
    """Turn engine errors into clear gr.Error messages; the app keeps serving."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except S.LIVRError as exc:  # the user's input: its one-line message (never a server path)
            raise gr.Error(S.public_text(str(exc))) from None
        except Exception as exc:  # noqa: BLE001 - report, keep serving
            traceback.print_exc()
            raise gr.Error(f"internal error ({type(exc).__name__}): {S.public_text(str(exc))}") from None

    return wrapper


# ----------------------------------------------------------------------------------------------- events
# each event calls one service action and maps its result onto components
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


@user_errors
def on_probes(model, concept, image, prompt, stage, retrain, views, progress=gr.Progress()):
    v = S.probe_view(model, concept, image, prompt, stage, retrain, progress=progress)
    views = S.record_view(
        views,
        "probes",
        dict(model=model, concept=concept, prompt=prompt, stage=stage),
        {"per_layer_accuracy": v["figure"]},
        {"summary": v["markdown"], "per_layer": v["table"], "reading": v["reading"]},
    )
    return v["markdown"], v["figure"], v["table"], v["reading"], views


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


@user_errors
def on_mask(model, image, prompt, stage, views):
    fig = S.mask_view(model, image, prompt, stage)
    return fig, S.record_view(views, "mask", dict(model=model, prompt=prompt, stage=stage), {"mask": fig})


@user_errors
def on_export(model, image, prompt, stage, layers, heads, aggregation, normalisation, opacity, views):
    return S.export_view(model, image, prompt, stage, layers, heads, aggregation, normalisation, opacity, views)


@user_errors
def on_preview(image):
    return S.display_image(S.load_upload(image), 256) if image else None


@user_errors
def on_diagnose(models, tasks, n, views, progress=gr.Progress()):
    v = S.diagnostics_view(models, tasks, n, progress=progress)
    views = S.record_view(
        views,
        "diagnostics",
        dict(models=models, tasks=tasks, n=n),
        {
            "flow": v["flow"],
            "effects": v["effects"],
            "deletion": v["deletion"],
            **({"redundancy": v["redundancy"]} if v["redundancy"] is not None else {}),
        },
        {"table": v["table"], "report": v["report"]},
    )
    return v["markdown"], v["table"], v["flow"], v["effects"], v["deletion"], v["redundancy"], views


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
def on_filmstrip(model, image, prompt, stage, views):
    fig = S.filmstrip_view(model, image, prompt, stage)
    return fig, S.record_view(views, "filmstrip", dict(model=model, prompt=prompt, stage=stage), {"filmstrip": fig})


@user_errors
def on_token_pick(index, model):
    return S.token_map_sample(model, index)


@user_errors
def on_new_sample(task, model):
    return S.new_sample(task, S.scratch_dir() / "samples", answer_format=S.answer_format_of(model))


def on_pick_example(model, evt: gr.SelectData):
    return S.example_pick(model, evt.index)


def on_template(task, model):
    return S.task_templates(S.answer_format_of(model)).get(task, "")


# ----------------------------------------------------------------------------------------------- page
INTRO = (
    "**LIVR** puts K learned *latent tokens* between the question and the answer and trains in two stages: first "
    "the answer may see the image *only through the latents* (a bottleneck), then with ordinary attention. "
    "**latents-only** has the same latents without the bottleneck stage; **SFT** is plain fine-tuning, no "
    "latents. The tiles show where each latent looks; *Compare* puts the three side by side."
)
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
APP_CSS = """
#intro p { margin: 0; font-size: 0.95em; }
#title h2 { margin: 0; }
#examples .grid-wrap { min-height: 0 !important; height: auto !important; max-height: none !important;
                       overflow: visible !important; padding-top: 30px; }
#examples .grid-container { grid-template-columns: repeat(auto-fit, minmax(84px, 1fr)) !important;
                            grid-template-rows: none !important; grid-auto-rows: auto !important; }
#examples .thumbnail-item { aspect-ratio: 4 / 5; }
#examples .thumbnail-item > img { height: calc(100% - 2.6em); object-fit: contain; }
#examples .caption-label { left: 0; right: 0; bottom: 0; max-width: 100%; height: 2.6em; white-space: normal;
                           text-align: center; line-height: 1.2; font-size: 12px; border: 0; border-radius: 0;
                           padding: 1px 2px; opacity: 1 !important; background: var(--background-fill-primary); }
#latent-gallery .grid-wrap, #dataset-gallery .grid-wrap { min-height: 0 !important; height: auto !important;
                                                          max-height: none !important; overflow: visible !important; }
#latent-gallery .grid-container, #dataset-gallery .grid-container { grid-template-rows: none !important;
                                                                    grid-auto-rows: auto !important; }
#latent-gallery .thumbnail-item, #dataset-gallery .thumbnail-item { aspect-ratio: auto; height: auto; display: flex;
                                                                    flex-direction: column; }
#latent-gallery .thumbnail-item > img, #dataset-gallery .thumbnail-item > img { height: auto; width: 100%; }
#latent-gallery .caption-label, #dataset-gallery .caption-label { position: static; max-width: 100%; border: 0;
    white-space: normal; text-align: left; font-size: 12px; line-height: 1.25; opacity: 1 !important; }
.legend { font-size: 0.85em; line-height: 1.45; }
.legend .sw { display: inline-block; width: 0.9em; height: 0.9em; vertical-align: -0.1em; margin: 0 0.2em; }
#view-note p { margin: 0; }
#view-note.stale { color: #b45309; }
body:has(#view-note.stale) #latent-gallery img { opacity: 0.35; filter: grayscale(0.8); }
"""


def example_items(model: str) -> list[tuple[str, str]]:
    """The example gallery: each example's file and a readable name, marked ✓ / ✗ where ``model`` answers its ground
    truth right / wrong (:func:`livr_viz.service.example_verdicts`, computed once per model)."""
    try:
        verdicts = S.example_verdicts(model)
    except S.LIVRError:  # a model that cannot answer the suite's questions: names without marks
        verdicts = [None] * len(S.ensure_examples())
    items = []
    for path, verdict in zip(S.ensure_examples(), verdicts):
        sample = S.synthetic_sample_for(path)
        name = (
            sample.task.replace("_", " ")
            if sample is not None
            else "photo: " + Path(path).stem.removeprefix("photo-").replace("-", " ")
        )
        items.append((path, ("" if verdict is None else "✔ " if verdict else "✘ ") + name))
    return items


def examples_label(model: str) -> str:
    return (
        f"examples: click one to load and answer it (✔ / ✘: {S.display_name(model)} answers it right / wrong; "
        "or upload your own image below)"
    )


def on_examples(model):
    return gr.Gallery(value=example_items(model), label=examples_label(model))


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


def first_view(model: str, image: str, prompt: str) -> dict:
    """The page's opening state: the first example answered (cached by the service, so every visitor gets it at
    once); {} where this model cannot answer it (the page then opens with the usual hint)."""
    try:
        return S.attention_view(model, image, prompt, "full", "all", "mean", "mean", "per_latent", 0.55)
    except S.LIVRError:
        return {}


# ----------------------------------------------------------------------------------------------- layout
def build_app(default_model: str = "demo-livr") -> gr.Blocks:
    templates = S.task_templates(S.answer_format_of(default_model))
    examples = S.ensure_examples()
    lm = S.POOL.get(default_model)  # selector ranges come from the model's config, never hard-coded
    n_layers = lm.base_model.config.get_text_config().num_hidden_layers
    n_latents = max(1, lm.config.n_latents)
    first_image, first_prompt = S.example_pick(default_model, 0)  # the page opens on the first example, answered
    first = first_view(default_model, first_image, first_prompt)
    with gr.Blocks(title="livr-viz") as demo:
        gr.Markdown("## livr-viz — where do the latent tokens look?", elem_id="title")
        gr.Markdown(INTRO, elem_id="intro")
        example_gallery = gr.Gallery(
            example_items(default_model),
            label=examples_label(default_model),
            columns=len(examples),
            height="auto",
            allow_preview=False,
            object_fit="contain",
            elem_id="examples",
        )
        with gr.Row():
            with gr.Column(scale=1):
                model = gr.Dropdown(
                    S.model_choices(default_model),
                    value=default_model,
                    allow_custom_value=True,
                    label="model (demo name, local path or hub id)",
                )
                prompt = gr.Textbox(label="prompt", lines=4, value=first_prompt, elem_id="prompt")
                with gr.Row(equal_height=True):
                    stage = gr.Radio(list(S.STAGES), value="full", label="stage (mask at inference)", scale=2)
                    run = gr.Button("Run", variant="primary", elem_id="run", scale=1)
                image = gr.File(
                    label="image: upload your own",
                    file_types=["image"],
                    type="filepath",
                    elem_id="image-input",
                    value=first_image,
                    height=120,
                )
                with gr.Row():
                    task = gr.Dropdown(S.example_tasks(), value=S.LEAD_TASK, label="task")
                    new = gr.Button("new sample", elem_id="new-sample")
                template = gr.Dropdown(list(templates), label="prompt template", value=None)
            with gr.Column(scale=2):
                with gr.Row():
                    preview = gr.Image(
                        first.get("image"),
                        label="input · click a patch",
                        format="png",
                        interactive=False,
                        height=230,
                        elem_id="preview",
                        scale=1,
                        min_width=200,
                    )
                    with gr.Column(scale=2):
                        answer = gr.Markdown(
                            first.get("markdown", "Upload an image or press *new sample*, then **Run**."),
                            elem_id="answer",
                        )
                        probs = gr.Label(
                            first.get("choice_probs") or None, label="choice probabilities", num_top_classes=8
                        )
                with gr.Tabs():
                    with gr.Tab("Latent attention", id="tab-attention"):
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
                            patch_image = gr.Image(
                                label="the patch", interactive=False, height=220, elem_id="patch-image"
                            )
                            patch_bars = gr.BarPlot(
                                x="reader",
                                y="attention",
                                title="attention to the patch",
                                height=220,
                                elem_id="patch-bars",
                            )
                        with gr.Accordion(
                            "layer × head grid: click a thumbnail to show that layer and head", open=False
                        ):
                            grid_btn = gr.Button("draw the grid", elem_id="grid-button")
                            gr.Markdown(GRID_LEGEND, elem_id="grid-legend")
                            grid_image = gr.Image(
                                label="latents' mean map per layer (rows) and head (columns); "
                                "L·H·% = share on image tokens",
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
                        swap_section(model, image, prompt, stage, MODEL_EVENTS, user_errors)
                    with gr.Tab("Compare", id="tab-compare"):
                        gr.Markdown(COMPARE_INTRO, elem_id="compare-intro")
                        compare_btn = gr.Button("compare LIVR · latents-only · SFT", elem_id="compare")
                        compare_table = gr.Dataframe(
                            label="answers, probabilities, faithfulness", elem_id="compare-table"
                        )
                        compare_sheet = gr.Image(
                            label="heatmaps per variant (one row of tiles per model)",
                            type="pil",
                            format="png",
                            interactive=False,
                            show_label=False,
                            elem_id="compare-sheet",
                        )
                    with gr.Tab("Token map", id="tab-tokens"):
                        with gr.Row():
                            method = gr.Radio(list(S.PROJECTIONS), value="tsne", label="projection")
                            tlayer = gr.Slider(0, n_layers, value=n_layers, step=1, label="layer (0 = embeddings)")
                            scope = gr.Radio(
                                ["this image", "dataset"], value="this image", label="tokens of", elem_id="token-scope"
                            )
                        with gr.Row():
                            n_samples = gr.Slider(2, 60, value=12, step=1, label="dataset samples")
                            color_by = gr.Textbox(value="segment", label="colour by (segment, task, a concept key)")
                        token_btn = gr.Button("draw token map", elem_id="token-map")
                        token_cancel = gr.Button("cancel")
                        token_plot = gr.Plot(
                            label="token map (dataset: click a point to load its sample)", elem_id="token-plot"
                        )
                        token_pick = gr.Textbox(visible="hidden", elem_id="token-pick")
                        aligned_btn = gr.Button(
                            "one aligned map of LIVR · latents-only · SFT (dataset samples)", elem_id="aligned-map"
                        )
                        aligned_plot = gr.Plot(
                            label="the model's set in one embedding, with trustworthiness and seed-to-seed stability"
                        )
                    with gr.Tab("Probes", id="tab-probes"):
                        with gr.Row():
                            concept = gr.Dropdown(
                                S.builtin_specs(), label="concept", value=S.default_concept(default_model, examples[0])
                            )
                            retrain = gr.Checkbox(
                                False,
                                label="train again (otherwise load the bundled or cached "
                                "probes; training shows its estimated time first)",
                            )
                        probe_btn = gr.Button("load / train probes", elem_id="probes")
                        probe_cancel = gr.Button("cancel")
                        probe_md = gr.Markdown(elem_id="probe-summary")
                        probe_plot = gr.Plot(label="per-layer accuracy")
                        probe_table = gr.Dataframe(label="per layer")
                        probe_reading = gr.Label(label="the best probe's reading of this image")
                    with gr.Tab("Attribution", id="tab-attribution"):
                        with gr.Row():
                            target = gr.Textbox(value="", label="target choice (empty = the answer)")
                            attr_method = gr.Radio(list(S.ATTRIBUTION_METHODS), value="saliency", label="method")
                        attr_btn = gr.Button("attribute", elem_id="attribute")
                        attr_md = gr.Markdown()
                        attr_image = gr.Image(label="pixel attribution", interactive=False)
                        attr_bars = gr.BarPlot(
                            x="latent", y="attribution", title="attribution to latent embeddings", height=220
                        )
                    with gr.Tab("Ablation", id="tab-ablation"):
                        ablate_latents = gr.CheckboxGroup(
                            [str(i) for i in range(n_latents)], value=[], label="latents to switch off"
                        )
                        with gr.Row():
                            ablate_mode = gr.Radio(list(S.ABLATIONS), value="zero", label="mode")
                            ablate_layer = gr.Slider(
                                -1, n_layers - 1, value=-1, step=1, label="after layer (-1 = embeddings)"
                            )
                        ablate_btn = gr.Button("ablate", elem_id="ablate")
                        ablate_md = gr.Markdown()
                        ablate_plot = gr.BarPlot(
                            x="choice", y="probability", color="when", title="before / after", height=220
                        )
                        ablate_effects = gr.BarPlot(
                            x="latent",
                            y="change",
                            title="change of the answer's probability, each latent alone",
                            height=220,
                        )
                    with gr.Tab("Diagnostics", id="tab-diagnostics"):
                        gr.Markdown(
                            "Is the model really using its latents? The paper's table (standard, bottleneck "
                            "mask at test time, latents blinded, latents removed) with 95 % intervals, "
                            "where attention flows per layer, each latent's causal effect against its "
                            "attention, how faithful each explanation is under deletion, and how redundant "
                            "the latents' maps are. `livr-viz diagnose` runs the same at any size."
                        )
                        with gr.Row():
                            diag_models = gr.CheckboxGroup(
                                S.model_choices(default_model),
                                label="models",
                                value=list(S.compare_set(default_model))
                                if default_model in S.DEMO_MODELS
                                else [default_model],
                            )
                            diag_tasks = gr.Dropdown(["all", *S.task_names()], value="all", label="tasks")
                            diag_n = gr.Slider(*S.DIAGNOSTIC_SAMPLES, value=5, step=1, label="questions per task")
                        diag_btn = gr.Button("diagnose", elem_id="diagnose")
                        diag_md = gr.Markdown()
                        diag_table = gr.Dataframe(label="per model")
                        diag_flow = gr.Plot(label="attention flow per layer")
                        diag_effects = gr.Plot(label="per-latent effect vs attention")
                        diag_deletion = gr.Plot(label="deletion / insertion AUC per explanation")
                        diag_redundancy = gr.Plot(label="redundancy of the latents' maps")
                        mediation_section(default_model, MODEL_EVENTS, user_errors)
                    with gr.Tab("How it works", id="tab-how"):
                        gr.Markdown(HOW_IT_WORKS)
                        mask_btn = gr.Button("draw the mask of this input", elem_id="mask")
                        mask_plot = gr.Plot(label="attention mask")
                with gr.Row():
                    export_btn = gr.Button("export figures + report.json + settings", elem_id="export")
                    export_file = gr.File(label="export")

        views = gr.State({})  # this session's tabs that ran: what Export writes besides the attention view
        drawn = gr.State({"layers": "all", "heads": "mean"} if first else {})  # what the tiles show now
        view_inputs = [model, image, prompt, stage, layers, heads, aggregation, normalisation, opacity]
        view_outputs = [answer, probs, gallery, bars, preview]
        # everything that depends on the input: a new image, prompt or model clears it (no stale answer beside
        # new inputs), and so does a Run before it starts (an error then leaves no old answer behind)
        results = [
            answer,
            probs,
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
            compare_table,
            compare_sheet,
            token_plot,
            probe_md,
            probe_plot,
            probe_table,
            probe_reading,
            attr_image,
            attr_bars,
            attr_md,
            ablate_md,
            ablate_plot,
            ablate_effects,
            mask_plot,
            export_file,
            views,
        ]

        def clear_results(scope):
            return [
                STALE
                if c in (answer, patch_md)
                else {}
                if c is views
                else gr.Image(value=None, visible=False)
                if c is enlarged
                else gr.update()
                if c is token_plot and scope == "dataset"
                else None
                for c in results
            ]

        for control in (image, prompt):
            control.change(clear_results, [scope], results, api_name=False, queue=False)
        image.change(on_preview, [image], [preview], api_name=False)  # the input shown is always the input given
        model.change(lambda: clear_results("this image"), None, results, api_name=False, queue=False)
        for control in (model, image):  # the probe concept follows the loaded sample's task (else the model's)
            control.change(user_errors(S.default_concept), [model, image], [concept], api_name=False)
        stage.change(lambda: None, None, [mask_plot], api_name=False, queue=False)  # the mask drawn is per stage

        def drawn_after(event):  # every redraw of the tiles: remember its layers and heads, lift the stale mark
            event.success(on_drawn, [layers, heads], [drawn, view_md, enlarged], api_name=False, queue=False)

        drawn_after(
            run.click(clear_results, [scope], results, api_name=False, queue=False).then(
                on_analyze, view_inputs, view_outputs, api_name="analyze", **MODEL_EVENTS
            )
        )
        for control in (aggregation, normalisation, stage):
            drawn_after(control.change(on_analyze, view_inputs, view_outputs, api_name=False, **MODEL_EVENTS))
        drawn_after(opacity.release(on_analyze, view_inputs, view_outputs, api_name=False, **MODEL_EVENTS))
        for box in (layers, heads):  # typing marks the tiles stale at once; Enter redraws them
            box.input(on_view_edit, [layers, heads, drawn], [view_md], api_name=False, queue=False)
            drawn_after(box.submit(on_analyze, view_inputs, view_outputs, api_name=False, **MODEL_EVENTS))
        gallery.select(
            on_enlarge,
            [model, image, prompt, stage, drawn, aggregation, normalisation, opacity],
            [enlarged],
            api_name=False,
            **MODEL_EVENTS,
        )
        new.click(on_new_sample, [task, model], [image, prompt], api_name="new_sample")
        drawn_after(
            example_gallery.select(on_pick_example, [model], [image, prompt], api_name=False).then(
                on_analyze, view_inputs, view_outputs, api_name=False, **MODEL_EVENTS
            )
        )  # a click loads and answers it
        model.change(user_errors(on_examples), [model], [example_gallery], api_name=False)  # ✓ / ✗ for this model
        template.change(on_template, [template, model], [prompt], api_name=False)
        preview.select(
            on_patch,
            [model, image, prompt, stage, layers, heads],
            [patch_md, patch_image, patch_bars],
            api_name=False,
            **MODEL_EVENTS,
        )
        grid_btn.click(on_grid, [model, image, prompt, stage], [grid_image], api_name="layer_head_grid", **MODEL_EVENTS)
        aligned_btn.click(
            on_aligned,
            [model, stage, method, tlayer, n_samples, color_by, views],
            [aligned_plot, views],
            api_name="aligned_token_map",
            **MODEL_EVENTS,
        )
        film_btn.click(
            on_filmstrip, [model, image, prompt, stage, views], [film_plot, views], api_name="filmstrip", **MODEL_EVENTS
        )
        drawn_after(
            grid_image.select(on_grid_pick, [model], [layers, heads], api_name=False).then(
                on_analyze, view_inputs, view_outputs, api_name=False, **MODEL_EVENTS
            )
        )
        dataset_btn.click(
            on_dataset_view,
            [model, task, dataset_n, stage, aggregation, views],
            [dataset_md, dataset_gallery, dataset_table, views],
            api_name="dataset_view",
            **MODEL_EVENTS,
        )
        compare_btn.click(
            on_compare,
            [model, image, prompt, stage, aggregation, opacity, views],
            [compare_table, compare_sheet, views],
            api_name="compare",
            **MODEL_EVENTS,
        )
        token_event = token_btn.click(
            on_token_map,
            [model, image, prompt, stage, method, tlayer, scope, n_samples, color_by, views],
            [token_plot, views],
            api_name="token_map",
            **MODEL_EVENTS,
        )
        token_cancel.click(None, None, None, cancels=[token_event], api_name=False)
        token_event.then(None, None, None, js=LINK_TOKEN_MAP, api_name=False)  # a click on a point fills token_pick
        token_pick.change(on_token_pick, [token_pick, model], [image, prompt], api_name=False)
        probe_event = probe_btn.click(
            on_probes,
            [model, concept, image, prompt, stage, retrain, views],
            [probe_md, probe_plot, probe_table, probe_reading, views],
            api_name="probes",
            **MODEL_EVENTS,
        )
        probe_cancel.click(None, None, None, cancels=[probe_event], api_name=False)
        attr_btn.click(
            on_attribution,
            [model, image, prompt, stage, target, attr_method, views],
            [attr_image, attr_bars, attr_md, views],
            api_name="attribution",
            **MODEL_EVENTS,
        )
        ablate_btn.click(
            on_ablation,
            [model, image, prompt, stage, ablate_latents, ablate_mode, ablate_layer, views],
            [ablate_md, ablate_plot, ablate_effects, views],
            api_name="ablation",
            **MODEL_EVENTS,
        )
        diag_btn.click(
            on_diagnose,
            [diag_models, diag_tasks, diag_n, views],
            [diag_md, diag_table, diag_flow, diag_effects, diag_deletion, diag_redundancy, views],
            api_name="diagnose",
            **MODEL_EVENTS,
        )
        mask_btn.click(
            on_mask, [model, image, prompt, stage, views], [mask_plot, views], api_name="mask", **MODEL_EVENTS
        )
        export_btn.click(on_export, view_inputs + [views], [export_file], api_name="export", **MODEL_EVENTS)
    return demo


def main(argv=None) -> None:
    from livr_viz.ui.options import parse_app_args

    serve(parse_app_args(argv))


def serve(args) -> None:
    """Load the model, build the app and serve it (``args`` from :func:`livr_viz.ui.options.parse_app_args`)."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    S.restrict_models([args.model], getattr(args, "model_root", None) or [])  # typed paths: only under the roots
    try:
        S.POOL.get(args.model)  # load once, before serving
    except S.LIVRError as exc:
        raise SystemExit(f"error: {exc}") from None
    if os.environ.get("LIVR_VIZ_WARM_UMAP", "1") != "0":  # numba compiles UMAP once: do it off the request path
        threading.Thread(target=S.warm_up, daemon=True).start()
    demo = build_app(args.model)
    demo.queue(default_concurrency_limit=args.concurrency, max_size=64)
    demo.launch(
        server_name=args.host,
        server_port=args.port,
        max_file_size=f"{args.max_upload_mb}mb",
        show_error=True,
        allowed_paths=[str(S.EXAMPLES_DIR), str(S.scratch_dir())],
        css=APP_CSS,
    )


if __name__ == "__main__":  # python -m livr_viz.ui.app: the same as python -m livr_viz.ui
    from livr_viz.ui.__main__ import main

    main()

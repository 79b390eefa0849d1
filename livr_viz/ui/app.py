"""livr-viz: the Gradio app. Upload an image, see where each latent looks, compare variants, probe concepts.

It composes the engine (``livr_viz.service`` and friends) and holds no model logic of its own.
Run ``python app.py`` or ``livr-viz app``.  Every event has an ``api_name``; events that touch the model share
one ``concurrency_id`` so hooks of one request never see another's forward.
"""

from __future__ import annotations

import functools
import os
import traceback
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd

from livr_viz import service as S
from livr_viz.core.errors import LIVRError
from livr_viz.methods.interventions import ABLATIONS

MODEL_EVENTS = dict(concurrency_id="model", concurrency_limit=1)
STALE = "Inputs changed: press **Run** for this image, prompt and model."
HOW_IT_WORKS = """
**LIVR** inserts K learned *latent tokens* between the prompt and the answer: `image · prompt · latents · answer`.
Training has two stages. In **Stage 1 (bottleneck)** the prompt and answer tokens may not look at the image —
only the latents may — so everything the answer knows about the image has to pass through the latents.
In **Stage 2 (full)** ordinary causal attention returns and the model learns to combine both routes.
The matrix below is the attention mask of *your* input: a coloured cell means the row (query) may attend to the
column (key); white cells are blocked. Switch the stage to compare.
"""


def user_errors(fn):
    """Turn engine errors into clear gr.Error messages; the app keeps serving."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except LIVRError as exc:
            raise gr.Error(str(exc)) from None
        except (ValueError, KeyError) as exc:
            raise gr.Error(f"invalid input: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - report, keep serving
            traceback.print_exc()
            raise gr.Error(f"internal error ({type(exc).__name__}): {exc}") from None

    return wrapper


def _lm_dims(model_name):
    cfg = S.POOL.get(model_name).base_model.config.get_text_config()
    return cfg.num_hidden_layers, cfg.num_attention_heads


def _selection(model_name, layers, heads):
    n_layers, n_heads = _lm_dims(model_name)
    return S.parse_selection(layers, n_layers, "layers"), S.parse_selection(heads, n_heads, "heads")


def _probs_frame(probs: dict) -> pd.DataFrame:
    return pd.DataFrame({"choice": list(probs), "probability": [round(v, 4) for v in probs.values()]})


# ----------------------------------------------------------------------------------------------- events
@user_errors
def on_analyze(model, image, prompt, stage, layers, heads, aggregation, normalisation, opacity):
    a = S.analysis_for(model, image, prompt, stage)
    lay, hd = _selection(model, layers, heads)
    tiles = S.heatmap_tiles(a, lay, hd, aggregation, normalisation, opacity)
    bars = a.answer_latent_attention(lay, hd)
    frame = pd.DataFrame({"latent": [f"{i:02d}" for i in range(len(bars))], "attention": bars.astype(float)})
    notes = "".join(f"\n\n> note: {S.escape_markdown(n)}" for n in a.notes)
    shown = S.escape_markdown(a.answer) if a.answer else "(no answer: the model ended at once)"
    kind = "" if a.choice_probs else " (free-form, greedy)"
    md = (f"### Answer: **{shown}**{kind}  \n{S.escape_markdown(model)} · stage `{stage}` · K = {a.n_latents}"
          f"{notes}")
    sample = S.synthetic_sample_for(image, prompt)
    if sample is not None:
        md += f"  \nsynthetic `{sample.task}` sample — ground truth **{sample.target}**"
    return md, a.choice_probs or None, tiles, frame, S.display_image(a.image, 256)


@user_errors
def on_compare(selected, image, prompt, stage, aggregation, opacity):
    sample = S.synthetic_sample_for(image, prompt)
    rows, sheets = [], []
    from livr_viz.methods.faithfulness import evidence_scores

    for model in S.compare_set(selected):
        a = S.analysis_for(model, image, prompt, stage)
        tiles = S.heatmap_tiles(a, None, None, aggregation, "per_latent", opacity)
        sheets.append(S.montage(tiles, columns=8, title=model))
        row = {"model": model, "answer": a.answer,
               **{f"p({k})": round(v, 3) for k, v in a.choice_probs.items()}}
        if sample is not None:
            maps = a.latent_maps(None, None, aggregation)
            raw = a.latent_maps(None, None, aggregation, "none")
            f = evidence_scores(maps, sample.evidence, raw)
            row.update({"truth": sample.target, "mass in evidence": round(f["mean_mass_in_evidence"], 3),
                        "lift": round(f["mean_lift"], 2), "pointing game": round(f["pointing_game"], 2)})
        rows.append(row)
    if sample is not None:
        sheets.append(S.montage([(S.evidence_overlay(sample.image, sample.evidence), "evidence")], columns=8,
                                title="ground-truth evidence"))
    return pd.DataFrame(rows), S.stack(sheets, top=24)


@user_errors
def on_token_map(model, image, prompt, stage, method, layer, scope, n_samples, color_by, progress=gr.Progress()):
    from livr_viz.methods.tokenmap import dataset_points, points_from_capture, project, tokenmap_figure_plotly

    n_layers, _ = _lm_dims(model)
    layer = int(layer)
    if not 0 <= layer <= n_layers:
        raise LIVRError(f"layer must be in 0..{n_layers}")
    if scope == "this image":
        a = S.analysis_for(model, image, prompt, stage)
        points = points_from_capture(a.capture, layer, 0)
        if color_by not in ("segment",):
            color_by = "segment"
    else:
        from livr_viz.data import make_sample, task_names

        tasks = task_names()
        n = int(n_samples)
        if not 2 <= n <= 60:
            raise LIVRError("dataset size must be between 2 and 60 samples")
        fmt = S.answer_format_of(model)
        items = [make_sample(tasks[i % len(tasks)], "test", 0, i // len(tasks), answer_format=fmt) for i in range(n)]
        points = dataset_points(S.POOL.get(model), items, layer, stage,
                                progress=lambda it: progress.tqdm(it, desc="capturing hidden states"))
        if color_by != "segment" and color_by not in points.labels:
            keys = sorted(k for k in points.labels if k not in ("sample", "position", "task"))
            raise LIVRError(f"colour by {color_by!r} is not available; try segment, task or {', '.join(keys[:6])}")
    xy = project(points.vectors, method, cache_dir=S.scratch_dir() / "projections")
    return tokenmap_figure_plotly(points, xy, color_by, f"{method} of layer {layer} hidden states ({scope})")


@user_errors
def on_probes(model, concept, image, prompt, stage, retrain, progress=gr.Progress()):
    import json
    from pathlib import Path

    from livr_viz.data.dataset import SyntheticTaskDataset
    from livr_viz.methods.probes import (
        PROBES_DIR,
        ConceptSpec,
        ProbeReport,
        probe_curves_figure,
        read_with_probe,
        run_probes,
    )

    spec = ConceptSpec.load(concept)
    bundled = PROBES_DIR / model
    cache = S.scratch_dir() / "probes" / model
    found = [d / f"{spec.name}_report.json" for d in (bundled, cache) if (d / f"{spec.name}_report.json").is_file()]
    report_path = max(found, key=lambda p: p.stat().st_mtime) if found else None  # the newest: bundled or retrained
    if retrain or report_path is None:
        lm = S.POOL.get(model)
        items = SyntheticTaskDataset(spec.tasks or "all", "train", 120, 0, answer_format=S.answer_format_of(model))
        report = run_probes(lm, spec, items, cache, stage=stage, per_latent=True,
                            progress=lambda f: progress(f, desc="collecting hidden states"))
        source = f"trained now on {report.n} samples"
        folder = cache
    else:
        report = ProbeReport(**json.loads(report_path.read_text()))
        source = f"loaded from {report_path.parent}"
        folder = report_path.parent
    best = report.layers[report.best_layer]
    table = pd.DataFrame([{"layer": r["layer"], "latents": round(r["latent_pooled"]["accuracy"], 3),
                           "control": round(r["control"]["accuracy"], 3), "selectivity": round(r["selectivity"], 3),
                           "image tokens": round(r["image_pooled"]["accuracy"], 3),
                           "text tokens": round(r["text_pooled"]["accuracy"], 3),
                           "random model": round(r.get("random_model", {}).get("accuracy", float("nan")), 3)}
                          for r in report.layers])
    md = (f"**{spec.name}** — {spec.description}. Probes {source}. Best layer {report.best_layer}: "
          f"accuracy {best['latent_pooled']['accuracy']:.3f} vs control {best['control']['accuracy']:.3f} "
          f"(selectivity {best['selectivity']:+.3f}); majority baseline {report.majority:.3f}.")
    md += S.probe_caveat(best, report.majority)
    reading = {}
    if image and prompt:
        reading = read_with_probe(S.POOL.get(model), Path(folder) / f"{spec.name}_layer{report.best_layer}",
                                  S.load_upload(image), prompt, stage)
    return md, probe_curves_figure(report), table, reading


@user_errors
def on_attribution(model, image, prompt, stage, target, method):
    from livr_viz.methods.attribution import attribute
    from livr_viz.methods.heatmaps import overlay

    a = S.analysis_for(model, image, prompt, stage)
    lm = S.POOL.get(model)
    target = S.attribution_target(target, a)
    batch = lm.build_inputs([a.image], [prompt])
    attr = attribute(lm, batch, target, method, stage, grid=a.grid)
    pix = attr.pixels / (attr.pixels.max() or 1.0)
    shown = S.display_image(a.image, 256)
    from PIL import Image

    heat = np.asarray(Image.fromarray((pix * 255).astype(np.uint8)).resize(shown.size)) / 255.0
    picture = Image.fromarray(overlay(shown, heat, 0.6))
    frame = pd.DataFrame({"latent": [f"{i:02d}" for i in range(len(attr.latents if attr.latents is not None else []))],
                          "attribution": [float(v) for v in (attr.latents if attr.latents is not None else [])]})
    delta = "n/a (saliency)" if attr.convergence_delta is None else f"{attr.convergence_delta:.4f}"
    md = f"Attribution of the logit of **{S.escape_markdown(target)}** ({method}); IG convergence delta: {delta}"
    if attr.warning:
        md += f"\n\n> ⚠ {attr.warning}"
    return picture, frame, md


@user_errors
def on_ablation(model, image, prompt, stage, latents, mode, layer):

    lm = S.POOL.get(model)
    if not lm.config.n_latents:
        raise LIVRError(f"{model} has no latents to ablate (variant sft); pick demo-livr or demo-latents-only")
    a = S.analysis_for(model, image, prompt, stage)
    n_layers, _ = _lm_dims(model)
    r = S.ablation_view(lm, a, [int(v) for v in (latents or [])], mode, int(layer), n_layers)
    labels = [f"{c} · {when}" for c in r["choices"] for when in ("before", "after")]
    frame = pd.DataFrame({"choice": labels,
                          "probability": [p for pair in zip(r["before"], r["after"]) for p in pair],
                          "when": ["before", "after"] * len(r["choices"])})
    eff = pd.DataFrame({"latent": [f"{i:02d}" for i in range(len(r["effects"]))], "change": r["effects"]})
    how = " (none ticked: the latent whose removal moves the answer most)" if r["auto"] else ""
    md = (f"Switching off latents {r['latents']}{how} ({mode}, layer {layer}): answer **{S.escape_markdown(r['answer_before'])} → "
          f"{S.escape_markdown(r['answer_after'])}**; largest probability change {r['largest_change']:.3f}.")
    return md, gr.BarPlot(value=frame, sort=labels), eff


@user_errors
def on_mask(model, image, prompt, stage):
    from livr_viz.views.masks import mask_figure

    a = S.analysis_for(model, image, prompt, stage)
    return mask_figure(a.segments, stage)


@user_errors
def on_export(model, image, prompt, stage, layers, heads, aggregation, normalisation, opacity):
    a = S.analysis_for(model, image, prompt, stage)
    lay, hd = _selection(model, layers, heads)
    tiles = S.heatmap_tiles(a, lay, hd, aggregation, normalisation, opacity)
    files = {"image.png": a.image, "latent_heatmaps.png": S.montage(tiles, title=f"{model} {stage} {aggregation}")}
    files.update({f"latents/{caption.replace(' ', '_')}.png": img for img, caption in tiles})
    report = {"answer": a.answer, "choice_probs": a.choice_probs, "segment_attention": a.segment_attention("latent"),
              "answer_latent_attention": a.answer_latent_attention(lay, hd).tolist(),
              "latent_image_attention_shape": list(a.latent_maps(lay, hd, aggregation).shape), "notes": a.notes}
    sample = S.synthetic_sample_for(image, prompt)
    if sample is not None:
        report["sample"] = {"id": sample.id, "truth": sample.target, "concepts": sample.concepts}
    settings = {"model": model, "prompt": prompt, "stage": stage, "layers": layers, "heads": heads,
                "aggregation": aggregation, "normalisation": normalisation, "opacity": opacity,
                "image_sha1": S.image_digest(image), "reproduce": f"livr-viz analyze --model {model} --image IMAGE "
                f"--prompt '...' --stage {stage} --aggregation {aggregation} --out DIR"}
    return S.export_zip(files, report, settings, S.scratch_dir() / "exports")


@user_errors
def on_new_sample(task, model):
    path, prompt = S.new_sample(task, S.scratch_dir() / "samples", answer_format=S.answer_format_of(model))
    return path, prompt


def on_pick_example(model, evt: gr.SelectData):
    path = S.ensure_examples()[evt.index]
    sample = S.synthetic_sample_for(path)
    return path, (sample.prompt if sample is not None else S.photo_prompt(S.answer_format_of(model)))


def on_template(task, model):
    return S.task_templates(S.answer_format_of(model)).get(task, "")


# ----------------------------------------------------------------------------------------------- layout
def build_app(default_model: str = "demo-livr") -> gr.Blocks:
    from livr_viz.data import task_names
    from livr_viz.methods.probes import builtin_specs

    templates = S.task_templates(S.answer_format_of(default_model))
    examples = S.ensure_examples()
    lm = S.POOL.get(default_model)  # selector ranges come from the model's config, never hard-coded
    n_layers = lm.base_model.config.get_text_config().num_hidden_layers
    n_latents = max(1, lm.config.n_latents)
    with gr.Blocks(title="livr-viz") as demo:
        gr.Markdown("# livr-viz — where do the latent tokens look?")
        with gr.Row():
            with gr.Column(scale=1):
                model = gr.Dropdown(list(S.DEMO_MODELS), value=default_model, allow_custom_value=True,
                                    label="model (demo name, local path or hub id)")
                image = gr.File(label="image", file_types=["image"], type="filepath", elem_id="image-input")
                preview = gr.Image(label="input", interactive=False, height=220)
                with gr.Row():
                    task = gr.Dropdown(task_names(), value="counting", label="task")
                    new = gr.Button("new sample", elem_id="new-sample")
                template = gr.Dropdown(list(templates), label="prompt template", value=None)
                prompt = gr.Textbox(label="prompt", lines=4, value=templates["counting"], elem_id="prompt")
                stage = gr.Radio(["full", "bottleneck"], value="full", label="stage (mask at inference)")
                run = gr.Button("Run", variant="primary", elem_id="run")
                example_gallery = gr.Gallery([(p, Path(p).stem) for p in examples], label="examples (click one)",
                                             columns=4, height=260, allow_preview=False, elem_id="examples")
            with gr.Column(scale=2):
                answer = gr.Markdown("Upload an image or press *new sample*, then **Run**.", elem_id="answer")
                probs = gr.Label(label="choice probabilities", num_top_classes=8)
                with gr.Tabs():
                    with gr.Tab("Latent attention", id="tab-attention"):
                        with gr.Row():
                            layers = gr.Textbox(value="all", label="layers (all or 0,2-3)")
                            heads = gr.Textbox(value="mean", label="heads (mean or 0,1)")
                            aggregation = gr.Radio(["mean", "max", "rollout"], value="mean", label="aggregation")
                        with gr.Row():
                            normalisation = gr.Radio(["per_latent", "global", "none"], value="per_latent",
                                                     label="normalisation")
                            opacity = gr.Slider(0.0, 1.0, value=0.55, step=0.05, label="opacity")
                        gallery = gr.Gallery(label="latent → image attention (click to enlarge)", columns=4,
                                             height="auto", object_fit="contain", elem_id="latent-gallery")
                        bars = gr.BarPlot(x="latent", y="attention", title="answer → latent attention", height=220)
                    with gr.Tab("Compare", id="tab-compare"):
                        compare_btn = gr.Button("compare LIVR · latents-only · SFT", elem_id="compare")
                        compare_table = gr.Dataframe(label="answers, probabilities, faithfulness")
                        compare_sheet = gr.Image(label="heatmaps per variant (one row of tiles per model)",
                                                 type="pil", interactive=False, elem_id="compare-sheet")
                    with gr.Tab("Token map", id="tab-tokens"):
                        with gr.Row():
                            method = gr.Radio(["tsne", "umap", "pca"], value="tsne", label="projection")
                            tlayer = gr.Slider(0, n_layers, value=n_layers, step=1, label="layer (0 = embeddings)")
                            scope = gr.Radio(["this image", "dataset"], value="this image", label="tokens of")
                        with gr.Row():
                            n_samples = gr.Slider(2, 60, value=12, step=1, label="dataset samples")
                            color_by = gr.Textbox(value="segment", label="colour by (segment, task, a concept key)")
                        token_btn = gr.Button("draw token map", elem_id="token-map")
                        token_cancel = gr.Button("cancel")
                        token_plot = gr.Plot(label="token map")
                    with gr.Tab("Probes", id="tab-probes"):
                        with gr.Row():
                            concept = gr.Dropdown(builtin_specs(), value=S.default_concept(default_model), label="concept")
                            retrain = gr.Checkbox(False, label="train again (otherwise load)")
                        probe_btn = gr.Button("load / train probes", elem_id="probes")
                        probe_cancel = gr.Button("cancel")
                        probe_md = gr.Markdown()
                        probe_plot = gr.Plot(label="per-layer accuracy")
                        probe_table = gr.Dataframe(label="per layer")
                        probe_reading = gr.Label(label="the best probe's reading of this image")
                    with gr.Tab("Attribution", id="tab-attribution"):
                        with gr.Row():
                            target = gr.Textbox(value="", label="target choice (empty = the answer)")
                            attr_method = gr.Radio(["integrated_gradients", "saliency"], value="saliency",
                                                   label="method")
                        attr_btn = gr.Button("attribute", elem_id="attribute")
                        attr_md = gr.Markdown()
                        attr_image = gr.Image(label="pixel attribution", interactive=False)
                        attr_bars = gr.BarPlot(x="latent", y="attribution", title="attribution to latent embeddings",
                                               height=220)
                    with gr.Tab("Ablation", id="tab-ablation"):
                        ablate_latents = gr.CheckboxGroup([str(i) for i in range(n_latents)], value=[],
                                                          label="latents to switch off")
                        with gr.Row():
                            ablate_mode = gr.Radio(list(ABLATIONS), value="zero", label="mode")
                            ablate_layer = gr.Slider(-1, n_layers - 1, value=-1, step=1, label="after layer (-1 = embeddings)")
                        ablate_btn = gr.Button("ablate", elem_id="ablate")
                        ablate_md = gr.Markdown()
                        ablate_plot = gr.BarPlot(x="choice", y="probability", color="when", title="before / after",
                                                 height=220)
                        ablate_effects = gr.BarPlot(x="latent", y="change",
                                                    title="change of the answer's probability, each latent alone",
                                                    height=220)
                    with gr.Tab("How it works", id="tab-how"):
                        gr.Markdown(HOW_IT_WORKS)
                        mask_btn = gr.Button("draw the mask of this input", elem_id="mask")
                        mask_plot = gr.Plot(label="attention mask")
                with gr.Row():
                    export_btn = gr.Button("export figures + report.json + settings", elem_id="export")
                    export_file = gr.File(label="export")

        view_inputs = [model, image, prompt, stage, layers, heads, aggregation, normalisation, opacity]
        view_outputs = [answer, probs, gallery, bars, preview]
        # everything that depends on the input: a new image, prompt or model clears it (no stale answer beside
        # new inputs), and so does a Run before it starts (an error then leaves no old answer behind)
        results = [answer, probs, gallery, bars, compare_table, compare_sheet, token_plot, probe_md, probe_plot,
                   probe_table, probe_reading, attr_image, attr_bars, attr_md, ablate_md, ablate_plot,
                   ablate_effects, mask_plot, export_file]

        def clear_results():
            return [STALE if c is answer else None for c in results]

        for control in (image, prompt, model):
            control.change(clear_results, None, results, api_name=False, queue=False)
        model.change(user_errors(S.default_concept), [model], [concept], api_name=False)
        stage.change(lambda: None, None, [mask_plot], api_name=False, queue=False)  # the mask drawn is per stage
        run.click(clear_results, None, results, api_name=False, queue=False).then(
            on_analyze, view_inputs, view_outputs, api_name="analyze", **MODEL_EVENTS)
        for control in (aggregation, normalisation, stage):
            control.change(on_analyze, view_inputs, view_outputs, api_name=False, **MODEL_EVENTS)
        opacity.release(on_analyze, view_inputs, view_outputs, api_name=False, **MODEL_EVENTS)
        new.click(on_new_sample, [task, model], [image, prompt], api_name="new_sample")
        example_gallery.select(on_pick_example, [model], [image, prompt], api_name=False)
        template.change(on_template, [template, model], [prompt], api_name=False)
        compare_btn.click(on_compare, [model, image, prompt, stage, aggregation, opacity], [compare_table, compare_sheet],
                          api_name="compare", **MODEL_EVENTS)
        token_event = token_btn.click(on_token_map, [model, image, prompt, stage, method, tlayer, scope, n_samples,
                                                     color_by], [token_plot], api_name="token_map", **MODEL_EVENTS)
        token_cancel.click(None, None, None, cancels=[token_event], api_name=False)
        probe_event = probe_btn.click(on_probes, [model, concept, image, prompt, stage, retrain],
                                      [probe_md, probe_plot, probe_table, probe_reading], api_name="probes",
                                      **MODEL_EVENTS)
        probe_cancel.click(None, None, None, cancels=[probe_event], api_name=False)
        attr_btn.click(on_attribution, [model, image, prompt, stage, target, attr_method],
                       [attr_image, attr_bars, attr_md], api_name="attribution", **MODEL_EVENTS)
        ablate_btn.click(on_ablation, [model, image, prompt, stage, ablate_latents, ablate_mode, ablate_layer],
                         [ablate_md, ablate_plot, ablate_effects], api_name="ablation", **MODEL_EVENTS)
        mask_btn.click(on_mask, [model, image, prompt, stage], [mask_plot], api_name="mask", **MODEL_EVENTS)
        export_btn.click(on_export, view_inputs, [export_file], api_name="export", **MODEL_EVENTS)
    return demo


def main(argv=None) -> None:
    from livr_viz.ui.options import parse_app_args

    serve(parse_app_args(argv))


def serve(args) -> None:
    """Load the model, build the app and serve it (``args`` from :func:`livr_viz.ui.options.parse_app_args`)."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        S.POOL.get(args.model)  # load once, before serving
    except LIVRError as exc:
        raise SystemExit(f"error: {exc}") from None
    if os.environ.get("LIVR_VIZ_WARM_UMAP", "1") != "0":  # numba compiles UMAP once: do it off the request path
        import threading

        from livr_viz.methods.tokenmap import warm_up_umap

        threading.Thread(target=warm_up_umap, daemon=True).start()
    demo = build_app(args.model)
    demo.queue(default_concurrency_limit=args.concurrency, max_size=64)
    demo.launch(server_name=args.host, server_port=args.port, max_file_size=f"{args.max_upload_mb}mb",
                show_error=True, allowed_paths=[str(S.EXAMPLES_DIR), str(S.scratch_dir() / "examples")])


if __name__ == "__main__":
    main()

"""``livr-viz`` command line. Every command has ``--help``; user errors print one line and exit 2."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .bundled import DEMO_NAMES, DEMO_SETS
from .errors import LIVRError

# backbone sizes `build-demo` takes (DemoBackboneConfig fields): the language model's, then the vision side's
# (e.g. --patch-size 8: 144 image tokens at 96 px instead of 64, the resolution lever of RESULTS.md)
BUILD_SIZES = ("text_hidden", "text_layers", "text_heads", "text_intermediate", "image_size", "patch_size",
               "vision_hidden", "vision_layers", "vision_heads")
MODEL_HELP = f"a bundled name ({', '.join(DEMO_NAMES)}), a local directory or a hub id"


def _quiet_transformers() -> None:
    import warnings

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", category=FutureWarning)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _load(args):
    from .model import load_model

    return load_model(args.model, variant=getattr(args, "variant", None), n_latents=getattr(args, "n_latents", None),
                      allow_pickle=getattr(args, "allow_pickle", False),
                      trust_remote_code=getattr(args, "trust_remote_code", False))


def cmd_info(args) -> int:
    lm = _load(args)
    counts = lm.param_counts()
    cfg = lm.config
    info = {
        "model": args.model,
        "architecture": type(lm.base_model).__name__,
        "family": cfg.family,
        "backbone": cfg.backbone,
        "variant": cfg.variant,
        "n_latents": cfg.n_latents,
        "stage1_fraction": cfg.stage1_fraction,
        "trained_steps": cfg.trained_steps,
        "latent_token_ids": f"{cfg.latent_token_ids[0]}..{cfg.latent_token_ids[-1]}" if cfg.latent_token_ids else "-",
        "image_token_id": lm.image_token_id,
        "lm_layers": lm.base_model.config.get_text_config().num_hidden_layers,
        "lm_heads": lm.base_model.config.get_text_config().num_attention_heads,
        "params_total": counts["total"],
        "params_trainable": counts["trainable"],
        "params_language_model": counts["language_model"],
        "params_vision": counts["vision"],
    }
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        width = max(map(len, info))
        for key, value in info.items():
            print(f"{key:<{width}}  {value:,}" if isinstance(value, int) else f"{key:<{width}}  {value}")
    return 0


def cmd_demo(args) -> int:
    """Answer one question and save a latent heatmap grid (the pre-app demo)."""
    from .analysis import analyze
    from .images import load_image

    lm = _load(args)
    if args.image:
        image, prompt = load_image(args.image), args.prompt
        if prompt is None:
            raise LIVRError("--prompt is required with --image")
        evidence = None
    else:
        from .data import make_sample, resolve_tasks

        resolve_tasks([args.task])
        sample = make_sample(args.task, "test", args.seed, 0, answer_format=lm.config.answer_format)
        image, prompt, evidence = sample.image, args.prompt or sample.prompt, sample.evidence
        print(f"synthetic {args.task} sample (seed {args.seed}); truth: {sample.target}")
    report = analyze(lm, image, prompt, Path(args.out), stage=args.stage, evidence=evidence)
    print(f"prompt: {prompt}")
    print(f"answer: {report['answer']}")
    if report.get("choice_probs"):
        print("choice probabilities: " + ", ".join(f"{k} {v:.3f}" for k, v in report["choice_probs"].items()))
    for name, path in report["figures"].items():
        print(f"{name}: {path}")
    return 0


def cmd_build_demo(args) -> int:
    """Write a randomly initialised demo backbone: where `reproduce --out DIR` starts when DIR/init holds one."""
    from .demo import DemoBackboneConfig, save_demo_backbone

    out = Path(args.out)
    if (out / "config.json").exists() and not args.force:
        raise LIVRError(f"{out} already holds a model (config.json); pass --force to overwrite it with a random one")
    sizes = {k: getattr(args, k) for k in BUILD_SIZES if getattr(args, k) is not None}
    try:
        cfg = DemoBackboneConfig(seed=args.seed, **sizes)
    except ValueError as exc:  # a size below 1, or a width its number of heads does not divide
        raise LIVRError(str(exc)) from None
    save_demo_backbone(out, cfg)
    print(f"wrote a random demo backbone to {out} ({cfg.text_layers} LM layers of width {cfg.text_hidden}, "
          f"{(cfg.image_size // cfg.patch_size) ** 2} image tokens); "
          f"`livr-viz reproduce --out {out.parent}` starts from it when it sits at {out.parent}/init")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="livr-viz", description=__doc__.replace("``", "'"),
                                     epilog="Start here: 'livr-viz app' (the Gradio app on the demo model), "
                                            "'livr-viz eval --model demo-livr', 'livr-viz reproduce --help'.")
    sub = parser.add_subparsers(dest="command", required=True)

    def model_args(p, variant=True):
        p.add_argument("model", nargs="?", default=None, help=MODEL_HELP + " (default demo-livr)")
        p.add_argument("--model", dest="model_option", metavar="MODEL", default=None,
                       help="the same, as an option (as the other commands take it)")
        if variant:
            p.add_argument("--variant", choices=["livr", "latents_only", "sft"], default=None,
                           help="variant when wrapping a plain VLM (default livr)")
            p.add_argument("--n-latents", type=int, default=None, help="K latent tokens for a plain VLM (default 16)")
        p.add_argument("--allow-pickle", action="store_true", help="allow pickle-based weights (.bin/.pt): unsafe")
        p.add_argument("--trust-remote-code", action="store_true", help="run model code from its repository")

    p = sub.add_parser("info", help="architecture, K, variant and parameter counts of a model")
    model_args(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("demo", help="answer a question and write a latent heatmap PNG")
    model_args(p)
    p.add_argument("--image", help="image file (default: a synthetic sample)")
    p.add_argument("--prompt", help="question (default: the synthetic sample's)")
    p.add_argument("--task", default="counting", help="synthetic task when no --image is given")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stage", choices=["full", "bottleneck"], default="full")
    p.add_argument("--out", default="livr-demo", help="output directory")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("build-demo", help="write a randomly initialised demo backbone (optionally another size)")
    p.add_argument("--out", required=True,
                   help="directory for the backbone, e.g. RUN/init to start `reproduce --out RUN` from it")
    p.add_argument("--seed", type=int, default=0, help="weight initialisation seed")
    p.add_argument("--force", action="store_true", help="overwrite a model already in --out")
    for field in BUILD_SIZES:  # DemoBackboneConfig fields
        p.add_argument(f"--{field.replace('_', '-')}", type=int, default=None,
                       help=f"{'vision tower / image' if field in BUILD_SIZES[4:] else 'language-model'} size "
                            "(default: the shipped demo backbone's)")
    p.set_defaults(func=cmd_build_demo)

    _data_commands(sub)
    _train_commands(sub)
    _engine_commands(sub)
    p = sub.add_parser("bench", help="benchmarks (ratios measured side by side); results for BENCHMARKS.md")
    p.add_argument("--quick", action="store_true", help="small sizes and fewer repeats")
    p.add_argument("--json", default=None, help="write results here")
    p.add_argument("--plot", default=None, help="PNG of capture memory and time vs T")
    p.add_argument("--markdown", default=None, help="write a BENCHMARKS.md table here")
    p.set_defaults(func=lambda args: (__import__("livr_viz.bench", fromlist=["main"]).main(
        args.quick, args.json, args.plot, args.markdown), 0)[1])

    p = sub.add_parser("app", help="start the Gradio app (python app.py)", add_help=False,
                       description="start the Gradio app; `livr-viz app --help` lists its options")
    p.add_argument("app_args", nargs=argparse.REMAINDER,
                   help="the app's options: --model, --host, --port (env GRADIO_SERVER_PORT), --max-upload-mb, "
                        "--concurrency, --help (a leading `--` is accepted and dropped)")
    p.set_defaults(func=cmd_app)
    return parser


def cmd_app(args) -> int:
    from .ui.options import parse_app_args

    options = parse_app_args([a for a in args.app_args if a != "--"])  # --help exits here, before torch loads
    from .ui.app import serve

    serve(options)
    return 0


def cmd_analyze(args) -> int:
    from .analysis import analyze
    from .images import load_image

    lm = _load(args)
    report = analyze(lm, load_image(args.image), args.prompt, Path(args.out), stage=args.stage,
                     aggregation=args.aggregation, tokenmap=not args.no_tokenmap)
    print(f"answer: {report['answer']}")
    if report["choice_probs"]:
        print("choice probabilities: " + ", ".join(f"{k} {v:.3f}" for k, v in report["choice_probs"].items()))
    print(f"wrote {Path(args.out) / 'report.json'}")
    return 0


def _probe_items(args):
    from .data.dataset import RecordDataset

    if args.data:
        from .data.io import load_jsonl

        return RecordDataset(load_jsonl(args.data)[0])
    return None


def cmd_probe(args) -> int:
    from .data.dataset import SyntheticTaskDataset
    from .probes import ConceptSpec, builtin_specs, run_probes

    lm = _load(args)
    names = builtin_specs() if args.concepts == "all" else args.concepts.split(",")
    user_items = _probe_items(args)
    summary = {}
    for name in names:
        spec = ConceptSpec.load(name)
        items = user_items if user_items is not None else SyntheticTaskDataset(
            spec.tasks or "all", "train", args.n, args.seed, answer_format=lm.config.answer_format)
        report = run_probes(lm, spec, items, args.out, csv_path=args.csv, random_baseline=not args.no_random)
        best = report.layers[report.best_layer]
        summary[spec.name] = {"best_layer": report.best_layer, "accuracy": best["latent_pooled"]["accuracy"],
                              "selectivity": best["selectivity"], "majority": report.majority}
        print(f"{spec.name:<18} best layer {report.best_layer}: acc {best['latent_pooled']['accuracy']:.3f} "
              f"(control {best['control']['accuracy']:.3f}, selectivity {best['selectivity']:+.3f}, "
              f"image {best['image_pooled']['accuracy']:.3f}, majority {report.majority:.3f})")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"wrote {args.out}")
    return 0


def cmd_faithfulness(args) -> int:
    from .data import resolve_tasks
    from .data.dataset import SyntheticTaskDataset
    from .faithfulness import faithfulness_report, randomization_sanity

    out = {}
    for name in args.model.split(","):
        args_one = argparse.Namespace(**{**vars(args), "model": name})
        lm = _load(args_one)
        items = SyntheticTaskDataset(resolve_tasks(args.tasks), "test", args.n, args.seed,
                                     answer_format=lm.config.answer_format)
        report = faithfulness_report(lm, items, args.stage)
        report["sanity"] = randomization_sanity(lm, [items[i] for i in range(min(len(items), args.sanity_n))])
        out[name] = report
        avg = report["average"]
        print(f"{name}: mass in evidence {avg['mass_in_evidence']:.3f}, lift {avg['lift']:.2f}, pointing game "
              f"{avg['pointing_game']:.3f}; randomisation rank correlation {report['sanity']['spearman_mean']:.3f}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2))
        print(f"wrote {args.json}")
    return 0


def cmd_ablate(args) -> int:
    from .data import resolve_tasks
    from .data.dataset import SyntheticTaskDataset
    from .interventions import ablation_accuracy

    lm = _load(args)
    items = SyntheticTaskDataset(resolve_tasks(args.tasks), "test", args.n, args.seed,
                                 answer_format=lm.config.answer_format)
    out = {}
    for stage in args.stage.split(","):
        r = ablation_accuracy(lm, [items[i] for i in range(len(items))], args.mode, args.layer, stage.strip())
        out[stage] = r
        drops = ", ".join(f"{i}: {100 * d:+.1f}" for i, d in enumerate(r["per_latent_change"]))
        print(f"stage {stage}: accuracy {100 * r['accuracy_intact']:.1f} % intact, "
              f"{100 * r['accuracy_all_ablated']:.1f} % with all {lm.config.n_latents} latents ablated ({args.mode}); "
              f"n = {r['n']}\n  each latent alone (points): {drops}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2))
        print(f"wrote {args.json}")
    return 0


def cmd_tokenmap(args) -> int:
    from .data import make_sample, resolve_tasks
    from .tokenmap import dataset_points, project, tokenmap_figure, tokenmap_figure_plotly

    lm = _load(args)
    tasks = resolve_tasks(args.tasks)
    items = [make_sample(tasks[i % len(tasks)], "test", args.seed, i // len(tasks),
                         answer_format=lm.config.answer_format) for i in range(args.n)]
    keys = [] if args.color_by in ("segment", "task") else [args.color_by]
    points = dataset_points(lm, items, args.layer, args.stage, keys)
    xy = project(points.vectors, args.method, cache_dir=Path(args.out).parent / ".projection-cache")
    title = f"{args.method} of layer {args.layer} hidden states, {args.n} samples"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tokenmap_figure(points, xy, args.color_by, title).savefig(out.with_suffix(".png"), dpi=110)
    tokenmap_figure_plotly(points, xy, args.color_by, title).write_html(out.with_suffix(".html"))
    print(f"wrote {out.with_suffix('.png')} and {out.with_suffix('.html')}")
    return 0


def _engine_commands(sub) -> None:
    def model_opts(p):
        p.add_argument("--model", default="demo-livr", help=MODEL_HELP)
        p.set_defaults(allow_pickle=False, trust_remote_code=False)
        p.add_argument("--allow-pickle", action="store_true", help="allow pickle-based weights (unsafe)")
        p.add_argument("--trust-remote-code", action="store_true")

    p = sub.add_parser("analyze", help="answer + latent heatmaps, answer→latent bars, mask, token map, report.json")
    model_opts(p)
    p.add_argument("--image", required=True)
    p.add_argument("--prompt", required=True)
    p.add_argument("--stage", choices=["full", "bottleneck"], default="full")
    p.add_argument("--aggregation", choices=["mean", "max", "rollout"], default="mean")
    p.add_argument("--no-tokenmap", action="store_true", help="skip the t-SNE token map")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("tokenmap", help="t-SNE / UMAP / PCA of token hidden states over many samples (PNG + HTML)")
    model_opts(p)
    p.add_argument("--tasks", default="all")
    p.add_argument("--n", type=int, default=27, help="samples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--layer", type=int, default=4, help="0 = embeddings")
    p.add_argument("--method", choices=["tsne", "umap", "pca"], default="tsne")
    p.add_argument("--color-by", default="segment", help="segment, task or a concept key")
    p.add_argument("--stage", choices=["full", "bottleneck"], default="full")
    p.add_argument("--out", required=True, help="output path (PNG and HTML are written)")
    p.set_defaults(func=cmd_tokenmap)

    p = sub.add_parser("probe", help="linear concept probes per layer with control tasks and baselines")
    model_opts(p)
    p.add_argument("--concepts", default="all", help="'all', or comma list of built-in spec names / spec paths")
    p.add_argument("--data", default=None, help="user JSONL (default: synthetic samples of the spec's tasks)")
    p.add_argument("--csv", default=None, help="CSV with an 'id' column for csv: concept sources")
    p.add_argument("--n", type=int, default=200, help="synthetic samples per task")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-random", action="store_true", help="skip the random-model baseline")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_probe)

    p = sub.add_parser("faithfulness", help="attention mass in evidence, lift, pointing game, randomisation check")
    model_opts(p)
    p.add_argument("--tasks", default="all")
    p.add_argument("--n", type=int, default=30, help="test samples per task")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--stage", choices=["full", "bottleneck"], default="full")
    p.add_argument("--sanity-n", type=int, default=20, help="items for the randomisation sanity check")
    p.add_argument("--json", default=None)
    p.set_defaults(func=cmd_faithfulness)

    p = sub.add_parser("ablate", help="test accuracy with latents ablated: all at once and each alone")
    model_opts(p)
    p.add_argument("--tasks", default="all")
    p.add_argument("--n", type=int, default=100, help="test samples per task")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--mode", choices=["remove", "blind", "zero", "mean", "noise"], default="remove",
                   help="remove: no later token may read the latent; blind: the latent may not read the image; "
                        "zero / mean / noise: replace its residual")
    p.add_argument("--layer", type=int, default=-1, help="for zero / mean / noise: after this layer (-1 = input)")
    p.add_argument("--stage", default="full", help="full, bottleneck, or both: full,bottleneck")
    p.add_argument("--json", default=None)
    p.set_defaults(func=cmd_ablate)


def cmd_train(args) -> int:
    from .train import preset_config, train

    cfg = preset_config(args.preset, pretrain=args.command == "pretrain", variant=getattr(args, "variant", None),
                        tasks=getattr(args, "tasks", None), steps=args.steps, lr=args.lr, batch_size=args.batch_size,
                        grad_accum=args.grad_accum, precision=args.precision, seed=args.seed, data_seed=args.data_seed,
                        n_latents=getattr(args, "n_latents", None),
                        latent_placement=getattr(args, "latent_placement", None),
                        answer_format=getattr(args, "answer_format", None),
                        stage1_fraction=getattr(args, "stage1_fraction", None),
                        task_balance=getattr(args, "task_balance", None),
                        warmup_fraction=args.warmup_fraction, n_train_per_task=args.n_train_per_task,
                        **_lora_settings(getattr(args, "lora_r", None), getattr(args, "lora_alpha", None)))
    backbone = "demo-base" if args.model == "demo" else args.model
    _, metrics = train(backbone, cfg, Path(args.out), resume=args.resume)
    print(f"validation accuracy (macro): {metrics.get('average', {}).get('accuracy', float('nan')):.3f}")
    print(f"wrote {Path(args.out) / 'model'}")
    return 0


def _lora_settings(r: int | None, alpha: int | None) -> dict:
    """``--lora-r`` / ``--lora-alpha``: alpha follows the rank at the shipped ratio (alpha = 2 r) unless given."""
    if r is None and alpha is None:
        return {}
    from .train import TrainConfig

    rank = r if r is not None else TrainConfig.lora_r
    return {"lora_r": rank, "lora_alpha": alpha if alpha is not None else 2 * rank}


def cmd_pretrain_vision(args) -> int:
    from .vision_pretrain import VISION_PRESETS, VisionPretrainConfig, pretrain_vision

    if not Path(args.model).is_dir():
        raise LIVRError(f"--model must be a backbone directory; {args.model!r} is not one")
    overrides = {"steps": args.steps, "lr": args.lr, "batch_size": args.batch_size}
    settings = {**VISION_PRESETS[args.preset], **{k: v for k, v in overrides.items() if v is not None},
                "letters": args.letters}
    pretrain_vision(args.model, VisionPretrainConfig(**settings), args.out)
    print(f"wrote {Path(args.out) / 'model'}")
    return 0


def cmd_eval(args) -> int:
    from .data.dataset import RecordDataset, SyntheticTaskDataset
    from .evaluate import evaluate

    lm = _load(args)
    data = Path(args.data)
    if data.exists():
        from .data.io import load_blink, load_jsonl

        records = load_jsonl(data)[0] if (data.is_file() or (data / "samples.jsonl").is_file()) else load_blink(data)
        items = RecordDataset(records)
    else:
        items = SyntheticTaskDataset(args.data, args.split, args.n, args.seed,
                                     answer_format=args.answer_format or lm.config.answer_format)
    metrics = evaluate(lm, items, args.stage, progress=True)
    for task, m in metrics["tasks"].items():
        print(f"{task:<27} acc {m['accuracy']:.3f}  95% CI [{m['ci95'][0]:.3f}, {m['ci95'][1]:.3f}]  "
              f"chance {m['chance']:.3f}  majority {m['majority']:.3f}  n={m['n']}")
    print(f"{'average':<27} acc {metrics['average']['accuracy']:.3f}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(metrics, indent=2))
        print(f"wrote {args.json}")
    return 0


def cmd_reproduce(args) -> int:
    from .reproduce import reproduce

    install = args.install or args.install_as != "demo"  # naming a set to ship it is asking to install
    results = reproduce(args.out, preset=args.preset, tasks=args.tasks, n_test=args.n_test, install=install,
                        pretrain_steps=args.pretrain_steps, steps=args.steps, seed=args.seed,
                        install_as=args.install_as, grad_accum=args.grad_accum, task_balance=args.task_balance)
    print(f"wrote {Path(args.out) / 'RESULTS.md'} ({results['seconds']['total'] / 60:.1f} min)")
    return 0


def _train_commands(sub) -> None:
    def common(p):
        p.add_argument("--model", default="demo", help="backbone: 'demo' (bundled) or a path / hub id")
        p.add_argument("--preset", default="demo", help="quick | demo | paper (pretrain: quick | demo)")
        p.add_argument("--out", required=True, help="run directory (checkpoint/, log.jsonl, training.png, model/)")
        p.add_argument("--steps", type=int, default=None, help="override the preset's optimizer steps")
        p.add_argument("--lr", type=float, default=None)
        p.add_argument("--batch-size", type=int, default=None)
        p.add_argument("--grad-accum", type=int, default=None)
        p.add_argument("--precision", choices=["fp32", "bf16"], default=None)
        p.add_argument("--seed", type=int, default=None, help="LoRA / latent init and dropout (preset default 42)")
        p.add_argument("--data-seed", type=int, default=None,
                       help="training / validation data and their order (default 0; `reproduce --seed N` uses N)")
        p.add_argument("--warmup-fraction", type=float, default=None, help="share of each stage's steps in warmup")
        p.add_argument("--n-train-per-task", type=int, default=None,
                       help="distinct training questions per task (demo / paper presets: 1000, as in the paper); "
                            "the suite is procedural, so more costs no memory")
        p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")

    p = sub.add_parser("train", help="two-stage LIVR fine-tune (or latents_only / sft controls)")
    common(p)
    p.add_argument("--variant", choices=["livr", "latents_only", "sft"], default="livr")
    p.add_argument("--tasks", default="all", help="comma list of tasks or 'all'")
    p.add_argument("--n-latents", type=int, default=None)
    p.add_argument("--latent-placement", choices=["end_of_prompt", "before_answer"], default=None,
                   help="end_of_prompt (default, the paper's Q' = Q + L): latents end the user turn, before the chat "
                        "template's assistant marker, so text rows read the answer out and Stage 1 cuts them from "
                        "the image; before_answer: after the assistant marker, so the last latent's row predicts the "
                        "first answer token and may see the image in Stage 1 -- this weakens the bottleneck (for a "
                        "one-token answer it blocks nothing); kept as a contrast")
    p.add_argument("--answer-format", choices=["word", "letter"], default=None,
                   help="word (default): options named by marker colour / position, answered with that word (counting: "
                        "the number); letter: BLINK's drawn letters")
    p.add_argument("--stage1-fraction", type=float, default=None, help="share of steps in Stage 1 (default 0.4)")
    p.add_argument("--lora-r", type=int, default=None, help="LoRA rank (default 16, as in the paper)")
    p.add_argument("--lora-alpha", type=int, default=None, help="LoRA alpha (default 2 x rank: 32 at rank 16)")
    p.add_argument("--task-balance", choices=["none", "grad_norm"], default=None,
                   help="grad_norm: one task per micro-batch (round robin; use --grad-accum = number of tasks for "
                        "all of them in every step), each task's gradient scaled to the same norm (default none)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("pretrain", help="full-parameter perception pretraining of a backbone")
    common(p)
    p.add_argument("--tasks", default="perception", help="'perception' or 'perception:kind,kind' (e.g. colour)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("pretrain-vision", help="stage 0: train a LLaVA backbone's vision tower on dense patch labels")
    p.add_argument("--model", required=True, help="backbone directory (e.g. a fresh one from `livr-viz build-demo`)")
    p.add_argument("--out", required=True, help="run directory (log.jsonl, model/)")
    p.add_argument("--preset", default="demo", choices=["quick", "demo"])
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--letters", action="store_true",
                   help="also learn to read drawn letters (glyph head and letter sheets; give it ~1200 steps)")
    p.set_defaults(func=cmd_pretrain_vision)

    p = sub.add_parser("eval", help="accuracy per task with 95 %% CIs, chance and majority baselines")
    p.add_argument("--model", default="demo-livr", help=MODEL_HELP)
    p.add_argument("--data", default="all", help="synthetic task list / 'all', a JSONL file or dir, or a BLINK folder")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--n", type=int, default=100, help="synthetic samples per task")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--stage", choices=["full", "bottleneck"], default="full")
    p.add_argument("--answer-format", choices=["word", "letter"], default=None,
                   help="synthetic questions answered by a colour / position word or number (word) or by the option's "
                        "drawn letter (letter, BLINK's); default: the format the model was trained in")
    p.add_argument("--json", default=None, help="write the metrics here")
    p.set_defaults(func=cmd_eval, allow_pickle=False, trust_remote_code=False)

    p = sub.add_parser("reproduce", help="pretrain the demo backbone, fine-tune 3 variants, evaluate, RESULTS.md")
    p.add_argument("--preset", default="demo", help="quick (tests, ~2 min) | demo (the shipped models)")
    p.add_argument("--out", default="runs/reproduce",
                   help="run directory; starts from OUT/init when that holds a backbone (e.g. one of another size "
                        "from `livr-viz build-demo --out OUT/init --text-hidden 384`), else from a fresh "
                        "shipped-size one")
    p.add_argument("--tasks", default="all")
    p.add_argument("--n-test", type=int, default=200, help="test samples per task")
    p.add_argument("--pretrain-steps", type=int, default=None)
    p.add_argument("--steps", type=int, default=None, help="fine-tune steps per variant")
    p.add_argument("--grad-accum", type=int, default=None,
                   help="fine-tunes: micro-batches per optimizer step (effective batch = batch size x this)")
    p.add_argument("--task-balance", choices=["none", "grad_norm"], default=None,
                   help="fine-tunes: grad_norm gives every task the same gradient norm (one task per micro-batch)")
    p.add_argument("--seed", type=int, default=None,
                   help="fine-tune seed: LoRA / latent init, dropout, training data and order (default 42 / data 0)")
    p.add_argument("--install", action="store_true", help="copy the models into assets/ and RESULTS.md to the repo")
    p.add_argument("--install-as", default="demo", choices=list(DEMO_SETS),
                   help="the bundled set to install as (implies --install; 'demo' ships backbone, adapters and RESULTS.md; "
                        "any other set only its three adapters, fine-tuned on the bundled demo-base)")
    p.set_defaults(func=cmd_reproduce)


def cmd_data_export(args) -> int:
    from .data.io import export_samples

    path = export_samples(args.task, args.split, args.n, args.seed, Path(args.out), size=args.size,
                          answer_format=args.answer_format)
    print(f"wrote {path}")
    return 0


def cmd_data_preview(args) -> int:
    from .data.io import preview

    out = Path(args.out or f"preview-{args.task}.png")
    print(f"wrote {preview(args.task, out, n=args.n, seed=args.seed, split=args.split, size=args.size)}")
    return 0


def cmd_data_validate(args) -> int:
    from .data.io import load_jsonl

    records, errors = load_jsonl(args.path, skip_invalid=True)
    for e in errors:
        print(f"invalid: {e}")
    print(f"{len(records)} valid records, {len(errors)} invalid lines")
    return 1 if errors else 0


def cmd_data_tasks(args) -> int:
    from .data import TASKS

    for spec in TASKS.values():
        print(f"{spec.name:<27} {spec.n_choices} choices  {spec.description}")
    return 0


def _data_commands(sub) -> None:
    from .data import SPLITS

    data = sub.add_parser("data", help="synthetic task suite: export, preview, validate user JSONL")
    dsub = data.add_subparsers(dest="data_command", required=True)
    p = dsub.add_parser("export", help="write samples.jsonl + PNGs for a task (or all)")
    p.add_argument("--task", required=True, help="task name, comma list, or 'all'")
    p.add_argument("--split", choices=list(SPLITS), default="train")
    p.add_argument("--n", type=int, default=100, help="samples per task")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=96, help="image side in pixels")
    p.add_argument("--answer-format", choices=["word", "letter"], default="word",
                   help="word: options named by marker colour / position (the demo models'); letter: BLINK's letters")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_data_export)
    p = dsub.add_parser("preview", help="PNG grid of samples with evidence outlined")
    p.add_argument("--task", required=True)
    p.add_argument("--split", choices=list(SPLITS), default="train")
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--out", default=None, help="PNG path (default preview-TASK.png)")
    p.set_defaults(func=cmd_data_preview)
    p = dsub.add_parser("validate", help="check a user JSONL file; lists every bad line and field")
    p.add_argument("path")
    p.set_defaults(func=cmd_data_validate)
    p = dsub.add_parser("tasks", help="list the synthetic tasks")
    p.set_defaults(func=cmd_data_tasks)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["app"]:  # the app parses its own options (argparse's REMAINDER cannot start with --help)
        return cmd_app(argparse.Namespace(app_args=argv[1:]))
    parser = build_parser()
    args = parser.parse_args(argv)
    if hasattr(args, "model_option"):  # info / demo: the model positionally or as --model, not two different ones
        if args.model and args.model_option and args.model != args.model_option:
            parser.error(f"two models given: {args.model!r} and --model {args.model_option!r}")
        args.model = args.model or args.model_option or "demo-livr"
    _quiet_transformers()
    try:
        return int(args.func(args) or 0)
    except (LIVRError, ValueError) as exc:  # engine validation errors are user errors: one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

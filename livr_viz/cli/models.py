"""Model commands: info, demo (answer + heatmap PNG), build-demo (a random backbone of any size)."""

from __future__ import annotations

import json
from pathlib import Path

from livr_viz.cli.common import BUILD_SIZES, _load, model_args
from livr_viz.core.config import STAGES
from livr_viz.core.errors import LIVRError
from livr_viz.core.fsutil import cache_dir


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
        "finetune": "every parameter" if cfg.finetune == "full" else f"LoRA r {cfg.lora_r}",
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
    from livr_viz.core.images import load_image
    from livr_viz.service import analyze

    lm = _load(args)
    if args.image:
        image, prompt = load_image(args.image), args.prompt
        if prompt is None:
            raise LIVRError("--prompt is required with --image")
        evidence = None
    else:
        from livr_viz.data import make_sample, resolve_tasks

        resolve_tasks([args.task])
        sample = make_sample(args.task, "test", args.seed, 0, answer_format=lm.config.answer_format)
        image, prompt, evidence = sample.image, args.prompt or sample.prompt, sample.evidence
        print(f"synthetic {args.task} sample (seed {args.seed}); truth: {sample.target}")
    out = Path(args.out) if args.out else cache_dir("demo")
    report = analyze(lm, image, prompt, out, stage=args.stage, evidence=evidence)
    print(f"prompt: {prompt}")
    print(f"answer: {report['answer']}")
    if report.get("choice_probs"):
        print("choice probabilities: " + ", ".join(f"{k} {v:.3f}" for k, v in report["choice_probs"].items()))
    for note in report["notes"]:  # the prompt's: special tokens removed, no options recognised (free-form answer)
        print(f"note: {note}")
    for name, path in report["figures"].items():
        print(f"{name}: {path}")
    return 0


def cmd_build_demo(args) -> int:
    """Write a randomly initialised demo backbone: where `reproduce --out DIR` starts when DIR/init holds one."""
    from livr_viz.demo.backbone import DemoBackboneConfig, save_demo_backbone

    out = Path(args.out)
    if (out / "config.json").exists() and not args.force:
        raise LIVRError(f"{out} already holds a model (config.json); pass --force to overwrite it with a random one")
    sizes = {k: getattr(args, k) for k in BUILD_SIZES if getattr(args, k) is not None}
    try:
        cfg = DemoBackboneConfig(seed=args.seed, **sizes)
    except ValueError as exc:  # a size below 1, or a width its number of heads does not divide
        raise LIVRError(str(exc)) from None
    save_demo_backbone(out, cfg)
    print(
        f"wrote a random demo backbone to {out} ({cfg.text_layers} LM layers of width {cfg.text_hidden}, "
        f"{(cfg.image_size // cfg.patch_size) ** 2} image tokens); "
        f"`python -m tools.reproduce --out {out.parent}` (in a clone) starts from it when it sits at "
        f"{out.parent}/init"
    )
    return 0


def add_commands(sub) -> None:
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
    p.add_argument("--stage", choices=STAGES, default="full")
    p.add_argument("--out", default=None, help="output directory (default: the user's cache, ~/.cache/livr-viz/demo)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("build-demo", help="write a randomly initialised demo backbone (optionally another size)")
    p.add_argument(
        "--out", required=True, help="directory for the backbone, e.g. RUN/init to start `reproduce --out RUN` from it"
    )
    p.add_argument("--seed", type=int, default=0, help="weight initialisation seed")
    p.add_argument("--force", action="store_true", help="overwrite a model already in --out")
    for field in BUILD_SIZES:  # DemoBackboneConfig fields
        p.add_argument(
            f"--{field.replace('_', '-')}",
            type=int,
            default=None,
            help=f"{'vision tower / image' if field in BUILD_SIZES[4:] else 'language-model'} size "
            "(default: the shipped demo backbone's)",
        )
    p.set_defaults(func=cmd_build_demo)

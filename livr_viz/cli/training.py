"""Training commands: train, pretrain, pretrain-vision (`eval` is a registered view of the service:
livr_viz/service/catalog.py; `reproduce` is a repository tool: tools/reproduce.py)."""

from __future__ import annotations

from pathlib import Path

from livr_viz.core.config import (
    ANSWER_FORMATS,
    FINETUNES,
    LATENT_PLACEMENTS,
    PRECISIONS,
    TASK_BALANCES,
    VARIANTS,
)
from livr_viz.core.errors import LIVRError

FINETUNE_HELP = (
    "lora (default, the paper): LoRA on the language model + the latent rows, tower frozen; full: every "
    "parameter of every variant (tower, projector, language model, embeddings) with the full-fine-tune "
    "preset (demo: 2,000 steps, lr 3e-4, fresh questions; full: 5,000 steps, `--resume` across sessions); "
    "a departure from the paper for the 3 M demo "
    "backbone (docs/experiments/full-finetune/)"
)
TASK_WEIGHTS_HELP = (
    "integer sampling weights, e.g. art_style=4,counting=4: a task of weight w gets w shares of every "
    "batch, tasks not named 1 (default: an equal share each)"
)


def cmd_train(args) -> int:
    from livr_viz.training.trainer import preset_config, train

    cfg = preset_config(
        args.preset,
        pretrain=args.command == "pretrain",
        finetune=getattr(args, "finetune", "lora"),
        variant=getattr(args, "variant", None),
        tasks=getattr(args, "tasks", None),
        steps=args.steps,
        lr=args.lr,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        precision=args.precision,
        seed=args.seed,
        data_seed=args.data_seed,
        n_latents=getattr(args, "n_latents", None),
        latent_placement=getattr(args, "latent_placement", None),
        answer_format=getattr(args, "answer_format", None),
        stage1_fraction=getattr(args, "stage1_fraction", None),
        stage2_lr=getattr(args, "stage2_lr", None),
        stage1_body_lr_scale=getattr(args, "stage1_body_lr_scale", None),
        stage2_open_steps=getattr(args, "stage2_open_steps", None),
        stage1_focus=getattr(args, "stage1_focus", None),
        stage1_focus_steps=getattr(args, "stage1_focus_steps", None),
        stage1_focus_share=getattr(args, "stage1_focus_share", None),
        task_balance=getattr(args, "task_balance", None),
        task_weights=_task_weights(getattr(args, "task_weights", None)),
        warmup_fraction=args.warmup_fraction,
        n_train_per_task=args.n_train_per_task,
        gradient_checkpointing=True if args.gradient_checkpointing else None,
        **_lora_settings(getattr(args, "lora_r", None), getattr(args, "lora_alpha", None)),
    )
    backbone = "demo-base" if args.model == "demo" else args.model
    branch = getattr(args, "branch_from", None)
    _, metrics = train(backbone, cfg, Path(args.out), resume=args.resume, branch_from=branch)
    print(f"validation accuracy (macro): {metrics.get('average', {}).get('accuracy', float('nan')):.3f}")
    print(f"wrote {Path(args.out) / 'model'}")
    return 0


def _task_weights(text: str | None) -> dict | None:
    from livr_viz.training.trainer import parse_task_weights

    return None if text is None else parse_task_weights(text)


def _lora_settings(r: int | None, alpha: int | None) -> dict:
    """``--lora-r`` / ``--lora-alpha``: alpha follows the rank at the shipped ratio (alpha = 2 r) unless given."""
    if r is None and alpha is None:
        return {}
    from livr_viz.training.trainer import TrainConfig

    rank = r if r is not None else TrainConfig.lora_r
    return {"lora_r": rank, "lora_alpha": alpha if alpha is not None else 2 * rank}


def cmd_pretrain_vision(args) -> int:
    from livr_viz.training.vision_pretrain import VISION_PRESETS, VisionPretrainConfig, pretrain_vision

    if not Path(args.model).is_dir():
        raise LIVRError(f"--model must be a backbone directory; {args.model!r} is not one")
    overrides = {"steps": args.steps, "lr": args.lr, "batch_size": args.batch_size}
    settings = {
        **VISION_PRESETS[args.preset],
        **{k: v for k, v in overrides.items() if v is not None},
        "letters": args.letters,
        "markers": args.markers,
    }
    pretrain_vision(args.model, VisionPretrainConfig(**settings), args.out)
    print(f"wrote {Path(args.out) / 'model'}")
    return 0


def optimizer_options(p) -> None:
    """``--steps``, ``--lr``, ``--batch-size``: every training command's overrides of its preset."""
    p.add_argument("--steps", type=int, default=None, help="override the preset's optimizer steps")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=None)


def add_commands(sub) -> None:

    def common(p):
        p.add_argument("--model", default="demo", help="backbone: 'demo' (bundled) or a path / hub id")
        p.add_argument(
            "--preset",
            default="demo",
            help="quick | demo | paper (pretrain: quick | demo; --finetune full: quick | demo | full)",
        )
        p.add_argument("--out", required=True, help="run directory (checkpoint/, log.jsonl, training.png, model/)")
        optimizer_options(p)
        p.add_argument("--grad-accum", type=int, default=None)
        p.add_argument("--precision", choices=PRECISIONS, default=None)
        p.add_argument(
            "--gradient-checkpointing",
            action="store_true",
            help="recompute activations in the backward pass (less memory, same numbers; for 3-7 B "
            "backbones on one GPU)",
        )
        for flag, kind, text in (
            ("--seed", int, "LoRA / latent init and dropout (preset default 42)"),
            ("--data-seed", int, "training / validation data and their order (default 0; `reproduce --seed N` uses N)"),
            ("--warmup-fraction", float, "share of each stage's steps in warmup"),
            (
                "--n-train-per-task",
                int,
                "distinct training questions per task (demo / paper presets: 1000, as in the paper); the suite is "
                "procedural, so more costs no memory",
            ),
        ):
            p.add_argument(flag, type=kind, default=None, help=text)
        p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")

    p = sub.add_parser("train", help="two-stage LIVR fine-tune (or latents_only / sft controls)")
    common(p)
    p.add_argument("--variant", choices=VARIANTS, default="livr")
    p.add_argument("--tasks", default="all", help="comma list of tasks or 'all'")
    p.add_argument("--n-latents", type=int, default=None)
    p.add_argument(
        "--latent-placement",
        choices=LATENT_PLACEMENTS,
        default=None,
        help="end_of_prompt (default, the paper's Q' = Q + L): latents end the user turn, before the chat "
        "template's assistant marker, so text rows read the answer out and Stage 1 cuts them from "
        "the image; before_answer: after the assistant marker, so the last latent's row predicts the "
        "first answer token and may see the image in Stage 1 -- this weakens the bottleneck (for a "
        "one-token answer it blocks nothing); kept as a contrast",
    )
    p.add_argument(
        "--answer-format",
        choices=ANSWER_FORMATS,
        default=None,
        help="word (default): options named by marker colour / position, answered with that word (counting: "
        "the number); letter: BLINK's drawn letters",
    )
    p.add_argument("--stage1-fraction", type=float, default=None, help="share of steps in Stage 1 (default 0.4)")
    p.add_argument(
        "--stage2-lr", type=float, default=None, help="LIVR: Stage 2's peak learning rate (default: --lr, as the paper)"
    )
    p.add_argument(
        "--stage1-body-lr-scale",
        type=float,
        default=None,
        help="LIVR: in Stage 1 every trained parameter but the latent rows learns at this fraction of the rate "
        "(default 1, as the paper; 0 trains the latent rows alone in Stage 1)",
    )
    p.add_argument(
        "--stage2-open-steps",
        type=int,
        default=None,
        help="LIVR: open the text rows' view of the image over this many Stage-2 steps (their image keys' attention "
        "weights scaled from 0 up to 1) instead of at once (default 0, as the paper)",
    )
    p.add_argument(
        "--stage1-focus",
        default=None,
        metavar="TASK,...",
        help="LIVR: Stage 1 opens with one focus block per task named, in order: for --stage1-focus-steps steps the "
        "task fills --stage1-focus-share of every batch, the rest is the plain mix (default: the plain mix, as the "
        "paper)",
    )
    p.add_argument("--stage1-focus-steps", type=int, default=None, help="LIVR: steps of each Stage-1 focus block")
    p.add_argument(
        "--stage1-focus-share",
        type=float,
        default=None,
        help="LIVR: the focus task's share of every batch in its block (default 0.5)",
    )
    p.add_argument(
        "--branch-from",
        default=None,
        metavar="RUN",
        help="LIVR: start Stage 2 from the end of Stage 1 of the LIVR run in RUN (its stage1_checkpoint/), with the "
        "same settings except --stage2-lr; ends where a straight run with that rate would",
    )
    p.add_argument("--finetune", choices=FINETUNES, default="lora", help=FINETUNE_HELP)
    p.add_argument("--lora-r", type=int, default=None, help="LoRA rank (default 16, as in the paper)")
    p.add_argument("--lora-alpha", type=int, default=None, help="LoRA alpha (default 2 x rank: 32 at rank 16)")
    p.add_argument(
        "--task-balance",
        choices=TASK_BALANCES,
        default=None,
        help="grad_norm: one task per micro-batch (round robin; use --grad-accum = number of tasks for "
        "all of them in every step), each task's gradient scaled to the same norm (default none)",
    )
    p.add_argument("--task-weights", default=None, metavar="TASK=W,...", help=TASK_WEIGHTS_HELP)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("pretrain", help="full-parameter perception pretraining of a backbone")
    common(p)
    p.add_argument("--tasks", default="perception", help="'perception' or 'perception:kind,kind' (e.g. colour)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("pretrain-vision", help="stage 0: train a LLaVA backbone's vision tower on dense patch labels")
    p.add_argument("--model", required=True, help="backbone directory (e.g. a fresh one from `livr-viz build-demo`)")
    p.add_argument("--out", required=True, help="run directory (log.jsonl, model/)")
    p.add_argument("--preset", default="demo", choices=["quick", "demo"])
    optimizer_options(p)
    p.add_argument(
        "--letters",
        action="store_true",
        help="also learn to read drawn letters (glyph head and letter sheets; give it ~1200 steps)",
    )
    p.add_argument(
        "--markers",
        action="store_true",
        help="see the word format's images (coloured rings on shapes, coloured boxes and frames) and learn "
        "every colour a patch holds, not only the majority one",
    )
    p.set_defaults(func=cmd_pretrain_vision)

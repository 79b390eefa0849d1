"""``livr-viz sweep``: the paper's K and schedule ablations as one command (a LIVR fine-tune per value × seed, an SFT
baseline per seed, one JSON and one plot; resumable)."""

from __future__ import annotations

import sys

from livr_viz.cli.common import print_report

HELP = (
    "K / Stage-1 schedule ablation: LIVR per value x seed plus SFT per seed, evaluated on the same test questions "
    "(sweep.json + sweep.png, resumable)"
)


def cmd_sweep(args) -> int:
    from livr_viz.training.sweep import parse_param, sweep

    param, values = parse_param(args.param)
    result = sweep(
        param,
        values,
        args.seeds,
        args.tasks,
        args.out,
        preset=args.preset,
        steps=args.steps,
        backbone="demo-base" if args.model == "demo" else args.model,
        n_test=args.n_test,
        log=lambda line: print(line, file=sys.stderr, flush=True),
    )
    print_report(result, result.json_path, result.plot_path)
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("sweep", help=HELP)
    p.add_argument(
        "--param",
        required=True,
        metavar="NAME=V1,V2,...",
        help="the setting and its values: n_latents=4,8,16,32 | stage1_fraction=0,0.2,0.4,0.6,0.8 | lora_r=4,16,64",
    )
    p.add_argument("--seeds", type=int, default=3, help="seeds 0 .. N-1 per value (init, dropout and data draw)")
    p.add_argument("--tasks", required=True, help="comma list of synthetic tasks, or all")
    p.add_argument(
        "--preset",
        default="quick",
        help="quick (a smoke test, minutes) | demo (the shipped models' recipe, hours on a CPU) | paper",
    )
    p.add_argument("--steps", type=int, default=None, help="optimizer steps per run (default: the preset's)")
    p.add_argument("--model", default="demo-base", help="backbone: demo-base (bundled), a local directory or a hub id")
    p.add_argument("--n-test", type=int, default=200, help="test questions per task (seed 2026, shared by every run)")
    p.add_argument(
        "--out",
        required=True,
        help="sweep directory: runs in <param>=<value>/seed<k>/ and sft/seed<k>/, "
        "sweep.json, sweep.png; rerun the same command to resume",
    )
    p.set_defaults(func=cmd_sweep)

"""Data commands: export, preview, validate, tasks."""

from __future__ import annotations

from pathlib import Path

from livr_viz.core.config import ANSWER_FORMATS


def cmd_data_export(args) -> int:
    from livr_viz.data.io import export_samples

    path = export_samples(
        args.task, args.split, args.n, args.seed, Path(args.out), size=args.size, answer_format=args.answer_format
    )
    print(f"wrote {path}")
    return 0


def cmd_data_preview(args) -> int:
    from livr_viz.data.io import preview

    out = Path(args.out or f"preview-{args.task}.png")
    print(f"wrote {preview(args.task, out, n=args.n, seed=args.seed, split=args.split, size=args.size)}")
    return 0


def cmd_data_validate(args) -> int:
    from livr_viz.data.io import load_jsonl

    records, errors = load_jsonl(args.path, skip_invalid=True)
    for e in errors:
        print(f"invalid: {e}")
    print(f"{len(records)} valid records, {len(errors)} invalid lines")
    return 1 if errors else 0


def cmd_data_tasks(args) -> int:
    from livr_viz.data import TASKS

    for spec in TASKS.values():
        print(f"{spec.name:<27} {spec.n_choices} choices  {spec.description}")
    return 0


def add_commands(sub) -> None:
    from livr_viz.data import SPLITS

    data = sub.add_parser("data", help="synthetic task suite: export, preview, validate user JSONL")
    dsub = data.add_subparsers(dest="data_command", required=True)
    p = dsub.add_parser("export", help="write samples.jsonl + PNGs for a task (or all)")
    p.add_argument("--task", required=True, help="task name, comma list, or 'all'")
    p.add_argument("--split", choices=list(SPLITS), default="train")
    p.add_argument("--n", type=int, default=100, help="samples per task")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=96, help="image side in pixels")
    p.add_argument(
        "--answer-format",
        choices=ANSWER_FORMATS,
        default="word",
        help="word: options named by marker colour / position (the demo models'); letter: BLINK's letters",
    )
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

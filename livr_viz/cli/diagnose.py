"""``livr-viz diagnose``: is the model really using its latents? (the §4.6 table, attention flow per layer,
per-latent effects, optionally the attention-kernel check), as JSON and one self-contained HTML page."""

from __future__ import annotations

from pathlib import Path

from livr_viz.cli.common import MODEL_HELP, print_report, progress_printer, suite_of, suite_options

HELP = (
    "is the model really using its latents? §4.6 table with 95 %% CIs, attention flow per layer, per-latent effect vs "
    "attention (JSON + HTML, resumable)"
)


def cmd_diagnose(args) -> int:
    from livr_viz.service import diagnose_models

    models = [args.model, *args.compare]
    effects = {} if args.effect_n is None else {"effect_per_task": args.effect_n or None}  # 0 = every question
    options = dict(batch_size=args.batch_size, check_backends=args.check_backends, **effects)
    report = diagnose_models(*suite_of(args, models), args.json, args.html, progress_printer(), **options)
    print_report(report, args.json, args.html)
    if args.mediation:  # is X → Z → Y real? (livr-viz mediate on the same models and questions)
        from livr_viz.service import mediate_models

        found = mediate_models(
            *suite_of(args, models), out=args.mediation, progress=progress_printer(), batch_size=args.batch_size
        )
        print("mediation:")
        print_report(found, f"{args.mediation}/mediation.json, {args.mediation}/mediation.html")
    if args.explanations:  # how faithful each explanation is, how redundant the latents are
        from livr_viz.cli.common import write_json
        from livr_viz.service import explanation_diagnostics

        found = explanation_diagnostics(models, args.tasks, args.explanations, args.seed, progress_printer())
        print(found["markdown"])
        print(f"redundancy: {found['redundancy_note']}")
        if args.json:
            write_json(str(Path(args.json).with_suffix(".explanations.json")), found["to_json"])
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("diagnose", help=HELP)
    p.add_argument("--model", default="demo-livr", help=MODEL_HELP)
    p.add_argument(
        "--compare",
        nargs="*",
        default=[],
        metavar="MODEL",
        help="more models, diagnosed on the same questions and compared with --model",
    )
    suite_options(p, n=50)
    p.add_argument(
        "--json", default=None, help="write the report here; an existing one is resumed (finished sections are skipped)"
    )
    p.add_argument("--html", default=None, help="write a self-contained HTML page (tables and figures) here")
    p.add_argument("--batch-size", type=int, default=32, help="questions per forward pass")
    p.add_argument(
        "--effect-n",
        type=int,
        default=None,
        help="questions per task for the per-latent effects, which cost K forwards per batch (default: "
        "the library's EFFECT_PER_TASK, 10); 0 = all",
    )
    p.add_argument(
        "--explanations",
        type=int,
        default=0,
        metavar="N",
        help="also score each explanation by deletion / insertion on N questions per model and the "
        "latents' redundancy (JSON beside --json as *.explanations.json)",
    )
    p.add_argument(
        "--mediation",
        default=None,
        metavar="DIR",
        help="also measure the causal mediation X → Z → Y (livr-viz mediate) on the same models and "
        "questions, into DIR (resumable)",
    )
    p.add_argument(
        "--check-backends",
        action="store_true",
        help="also rerun the captures under the other attention kernels (eager / sdpa) and compare",
    )
    p.set_defaults(func=cmd_diagnose)

"""``livr-viz mediate``: is X → Z → Y real? Causal mediation of the latents (input → latents sensitivity, interchange
interventions latents → answer, latent collapse) for one or more models, as JSON, CSV-ready numbers and one HTML page;
resumable (each finished model and task is kept in DIR/parts/)."""

from __future__ import annotations

from livr_viz.cli.common import MODEL_HELP, print_report, progress_printer, suite_of, suite_options
from livr_viz.core.config import CONDITIONS

HELP = (
    "is X → Z → Y real? input → latents sensitivity, latent interchange interventions, latent collapse, with 95 %% "
    "bootstrap CIs (JSON + HTML, resumable)"
)
OUT_HELP = "output directory (mediation.json, mediation.html, parts/); an existing one is resumed"


def cmd_mediate(args) -> int:
    from livr_viz.service import mediate_models

    latents = None if not args.latents else [int(v) for v in args.latents.split(",") if v.strip()]
    options = dict(batch_size=args.batch_size, condition=args.condition, latents=latents)
    report = mediate_models(*suite_of(args, args.model), out=args.out, progress=progress_printer(), **options)
    print_report(report, f"{args.out}/mediation.json, {args.out}/mediation.html")
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("mediate", help=HELP)
    p.add_argument(
        "--model",
        nargs="+",
        default=["demo-livr"],
        metavar="MODEL",
        help=MODEL_HELP + "; several are measured on the same questions (a model without latents is listed as n/a)",
    )
    suite_options(p, n=50)
    p.add_argument("--out", required=True, metavar="DIR", help=OUT_HELP)
    p.add_argument("--batch-size", type=int, default=64, help="questions per forward pass")
    p.add_argument(
        "--condition",
        default="standard",
        choices=CONDITIONS,
        help="the attention mask every forward runs under (standard = how the model is used; "
        "bottleneck = the Stage-1 mask)",
    )
    p.add_argument("--latents", default=None, metavar="I,J,…", help="patch only these latent indices (default: all)")
    p.set_defaults(func=cmd_mediate)

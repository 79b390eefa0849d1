"""``livr-viz`` command line. Every command has ``--help``; user errors print one line and exit 2."""

from __future__ import annotations

import argparse
import sys

from livr_viz.cli import data, diagnose, engine, mediate, models, sweep, training
from livr_viz.cli.common import REPO_TOOLS, _quiet_transformers, finish_help, repo_tool_error
from livr_viz.core.errors import LIVRError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="livr-viz",
        description=__doc__.replace("``", "'"),
        epilog="Start here: 'livr-viz app' (the Gradio app on the demo model), "
        "'livr-viz eval --model demo-livr', "
        "'python -m tools.reproduce --help' (from a clone).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    models.add_commands(sub)

    data.add_commands(sub)
    training.add_commands(sub)
    engine.add_commands(sub)
    diagnose.add_commands(sub)
    mediate.add_commands(sub)
    sweep.add_commands(sub)
    for command, (module, summary) in REPO_TOOLS.items():  # listed here, run from a clone (livr_viz.cli.common)
        sub.add_parser(command, help=f"{summary} (repository tool: `python -m {module}` in a clone)", add_help=False)

    p = sub.add_parser(
        "app",
        help="start the Gradio app (python app.py)",
        add_help=False,
        description="start the Gradio app; `livr-viz app --help` lists its options",
    )
    p.add_argument(
        "app_args",
        nargs=argparse.REMAINDER,
        help="the app's options: --model, --host, --port (env GRADIO_SERVER_PORT), --max-upload-mb, "
        "--concurrency, --help (a leading `--` is accepted and dropped)",
    )
    p.set_defaults(func=cmd_app)
    finish_help(parser)
    return parser


def cmd_app(args) -> int:
    from livr_viz.ui.options import parse_app_args

    options = parse_app_args([a for a in args.app_args if a != "--"])  # --help exits here, before torch loads
    from livr_viz.ui.app import serve

    serve(options)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] and argv[0] in REPO_TOOLS:  # whatever follows, --help included: say where the tool is
        print(f"error: {repo_tool_error(argv[0])}", file=sys.stderr)
        return 2
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
    except LIVRError as exc:  # a user error: one line, no traceback (anything else is a bug and keeps its traceback)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

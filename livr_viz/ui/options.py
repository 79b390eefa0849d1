"""The app's command-line options, parsed before torch and gradio are imported (so ``--help`` answers at once).

Host and port follow Gradio's conventions: ``--host`` / ``--port`` win, then ``GRADIO_SERVER_NAME`` /
``GRADIO_SERVER_PORT`` (what Spaces and most containers set), then ``LIVR_VIZ_HOST`` / ``LIVR_VIZ_PORT``, then
127.0.0.1:7860.
"""

from __future__ import annotations

import argparse
import os


def _env(*names: str, default: str) -> str:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return default


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"port must be a number; got {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be in 1..65535; got {port}")
    return port


def parse_app_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="livr-viz app",
        description="livr-viz app: upload an image, see where each latent looks, compare "
        "variants, probe concepts. (`livr-viz app -- --port 8000` passes options through the CLI.)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--model", default="demo-livr", help="model selected at start (demo name, path or hub id)")
    parser.add_argument(
        "--host",
        default=_env("GRADIO_SERVER_NAME", "LIVR_VIZ_HOST", default="127.0.0.1"),
        help="address to bind (env GRADIO_SERVER_NAME, then LIVR_VIZ_HOST)",
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=_env("GRADIO_SERVER_PORT", "LIVR_VIZ_PORT", default="7860"),
        help="port to bind (env GRADIO_SERVER_PORT, then LIVR_VIZ_PORT)",
    )
    parser.add_argument(
        "--model-root",
        action="append",
        default=[],
        metavar="DIR",
        help="a folder whose model directories clients may name by path (repeatable); without it "
        "the app loads only the bundled models and --model, and answers any other name or path "
        "with one message, whether it exists or not",
    )
    parser.add_argument("--max-upload-mb", type=int, default=20, help="largest accepted upload")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=4,
        help="quick requests processed at once (long jobs: one at a time, in their own queue)",
    )
    args = parser.parse_args(argv)
    args.port = _port(str(args.port))  # an environment default is checked like a flag
    return args

"""Run the benchmarks from the root of a clone: ``python -m tools.bench [--quick] [--json ..] [--plot ..]
[--markdown ..]``. The defaults write the repository's copies (tools/bench/results.json, docs/capture_vs_T.png,
BENCHMARKS.md); name other paths (or none: ``--markdown ''``) to leave the checkout as it is."""

import argparse
import sys

from livr_viz.core.errors import LIVRError
from tools.bench.lib import main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="small sizes and fewer repeats")
    parser.add_argument("--json", default="tools/bench/results.json", help="write results here")
    parser.add_argument("--plot", default="docs/capture_vs_T.png", help="PNG of capture memory and time vs T")
    parser.add_argument("--markdown", default="BENCHMARKS.md", help="write the BENCHMARKS.md table here")
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    try:
        main(args.quick, args.json or None, args.plot or None, args.markdown or None)
    except LIVRError as exc:
        sys.exit(f"error: {exc}")

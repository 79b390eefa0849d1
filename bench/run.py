"""Run the benchmarks: ``python bench/run.py [--quick]`` (same as ``livr-viz bench``)."""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout: bench/ is a repo tool, not installed
from bench.lib import main  # noqa: E402

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", default="bench/results.json")
    parser.add_argument("--plot", default="bench/capture_vs_T.png")
    parser.add_argument("--markdown", default="BENCHMARKS.md")
    args = parser.parse_args()
    main(args.quick, args.json, args.plot, args.markdown)

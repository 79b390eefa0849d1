"""Run the benchmarks: ``python bench/run.py [--quick]`` (same as ``livr-viz bench``)."""

import argparse

from livr_viz.bench import main

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", default="bench/results.json")
    parser.add_argument("--plot", default="bench/capture_vs_T.png")
    parser.add_argument("--markdown", default="BENCHMARKS.md")
    args = parser.parse_args()
    main(args.quick, args.json, args.plot, args.markdown)

"""Time ``livr-viz diagnose`` on the demo trio, the issue-21 target: at most 5 minutes on 2 cores.

    python -m tools.bench.diagnose [--n 50] [--json OUT.json] [--keep DIR] [-- EXTRA DIAGNOSE OPTIONS]

One run of the command in a fresh process (imports and model loading count), into a temporary folder (or DIR, to
keep the report: a DIR that already holds one resumes it, which times nothing). Printed: the
wall time, the child's CPU time, the time of each (model, section) from the command's progress lines, and the load
average before and after: on shared cores the wall time means something only beside the load.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 300.0
MODELS = ("demo-livr", "demo-latents-only", "demo-sft")


def run(n: int = 50, extra: list[str] | None = None, keep: str | None = None) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        tmp = keep or scratch
        Path(tmp).mkdir(parents=True, exist_ok=True)
        argv = [
            sys.executable,
            "-m",
            "livr_viz.cli",
            "diagnose",
            "--model",
            MODELS[0],
            "--compare",
            *MODELS[1:],
            "--tasks",
            "all",
            "--n",
            str(n),
            "--json",
            f"{tmp}/d.json",
            "--html",
            f"{tmp}/d.html",
            *(extra or []),
        ]
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        load_before, start = os.getloadavg(), time.perf_counter()
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        marks, messages = [], []  # (seconds since start, progress message); anything else on stderr
        for line in proc.stderr:  # not a terminal: one "[ 12.3 %] model: section" line per section
            if line.startswith("[") and "] " in line:
                marks.append((time.perf_counter() - start, line.split("] ", 1)[1].strip()))
            else:
                messages.append(line)
        stdout = proc.stdout.read()
        code = proc.wait()
        wall = time.perf_counter() - start
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        if code:
            raise SystemExit(f"livr-viz diagnose failed ({code}):\n{stdout}{''.join(messages[-20:])}")
        sizes = {name: Path(tmp, name).stat().st_size for name in ("d.json", "d.html")}
    sections = {m: round(marks[i + 1][0] - t, 1) for i, (t, m) in enumerate(marks[:-1])}
    return {
        "command": "livr-viz " + " ".join(argv[3:]).replace(tmp, "OUT"),
        "wall_s": round(wall, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "start_s": round(marks[0][0], 1) if marks else None,
        "sections_s": sections,
        "load_before": [round(v, 2) for v in load_before],
        "load_after": [round(v, 2) for v in os.getloadavg()],
        "cpus": os.cpu_count(),
        "target_s": TARGET_S,
        "within_target": wall <= TARGET_S,
        "output_bytes": sizes,
        "summary": stdout.splitlines(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=50, help="test questions per task")
    parser.add_argument("--json", default=None, help="also write the result here")
    parser.add_argument("--keep", default=None, help="write the report (d.json, d.html) here instead of a temp folder")
    parser.add_argument("extra", nargs="*", help="more `livr-viz diagnose` options, after --")
    args = parser.parse_args()
    result = run(args.n, args.extra, args.keep)
    for line in result.pop("summary"):
        print(line)
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""Pick the example the app opens on for a model, by a stated rule, and record it (run from the root of a clone).

    python -m tools.pick_example --model demo-livr            # 500 test questions per task; writes
                                                                # assets/examples/teaching-demo-livr.json + its image

Every test question of each task (seed TEST_SEED, the model's answer format) is scored as ``livr-viz eval`` scores
it; the questions answered right with p >= 0.8 get their evidence lift measured; the first candidate by the rule in
``livr_viz/methods/teaching.py`` that the app's own path confirms (p >= 0.8, lift >= 1.3) is recorded, with the
model's accuracy on that task over the scanned questions and its Wilson 95 % interval. When no question meets the
thresholds the tool says so with the best figures per task, writes nothing and removes a record of this model that
no longer matches its files (the app then opens as before, with no teaching claim). The thresholds are the issue's
and are not options.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def table(result: dict) -> list[str]:
    """One line per task: accuracy with its interval, what blinding the latents costs, the best figures found."""
    lines = [
        f"{'task':<27} {'acc':>6} {'95% CI':>15} {'blind':>6} {'right p>=' + str(result['thresholds']['p']):>11} "
        f"{'best lift':>9} {'best p|lift':>11} {'eligible':>8}"
    ]
    for task, f in result["tasks"].items():
        blind = f.get("accuracy_latents_blinded")
        best_lift, best_p = f["best_lift_among_them"], f["best_p_with_lift_min"]
        lines.append(
            f"{task:<27} {f['accuracy']:6.3f} [{f['ci95'][0]:.3f}, {f['ci95'][1]:.3f}] "
            f"{'-' if blind is None else format(blind, '.3f'):>6} {f['right_with_p_min']:>11} "
            f"{'-' if best_lift is None else format(best_lift, '.2f'):>9} "
            f"{'-' if best_p is None else format(best_p, '.3f'):>11} {f['eligible']:>8}"
        )
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.pick_example", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="demo-livr", help="bundled name or checkpoint folder")
    parser.add_argument("--tasks", default="all", help="comma-separated tasks or 'all'")
    parser.add_argument("--n", type=int, default=500, help="test questions per task")
    parser.add_argument("--out", default=str(REPO / "assets" / "examples"), help="folder for the record and image")
    parser.add_argument("--report", help="also write the whole scan (every task's figures, the checks) as JSON here")
    args = parser.parse_args(argv)

    from livr_viz.core.errors import LIVRError
    from livr_viz.core.model import load_model
    from livr_viz.service import teaching

    try:
        lm = load_model(args.model)
        result = teaching.scan_teaching(
            lm,
            args.model,
            args.tasks,
            args.n,
            progress=lambda fraction, desc=None: print(f"[{100 * fraction:3.0f}%] {desc}", flush=True),
        )
    except LIVRError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(table(result)))
    for check in result["checked"]:
        print(f"confirmed on the app's path: {check['id']}  p {check['p']:.3f}  lift {check['lift']:.2f}")
    if args.report:
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(json.dumps(result, indent=1) + "\n")
    pick = result["pick"]
    if pick is None:
        thresholds = result["thresholds"]
        print(
            f"no test question of {args.model} is answered right with p >= {thresholds['p']} and evidence lift >= "
            f"{thresholds['lift']} ({args.n} per task; best figures above): nothing recorded, the app opens on the "
            "first example with no teaching claim"
        )
        record = teaching.record_path(args.model, Path(args.out))
        if record.is_file() and teaching.load_record(record) is None:
            teaching.drop_teaching(args.model, Path(args.out))
            print(f"removed {record.name}: it was made for other files than the model's now")
        return 1
    path = teaching.write_teaching(pick, Path(args.out))
    print(teaching.teaching_caption(pick))
    print(f"wrote {path} and {pick['image']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

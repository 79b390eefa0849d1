"""Engine commands: analyze, tokenmap, probe, faithfulness, ablate."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from livr_viz.cli.common import MODEL_HELP, _load, suite_items, write_json
from livr_viz.core.config import ABLATIONS, AGGREGATIONS, PROJECTIONS, STAGES


def cmd_analyze(args) -> int:
    from livr_viz.core.images import load_image
    from livr_viz.service import analyze

    lm = _load(args)
    report = analyze(
        lm,
        load_image(args.image),
        args.prompt,
        Path(args.out),
        stage=args.stage,
        aggregation=args.aggregation,
        tokenmap=not args.no_tokenmap,
    )
    print(f"answer: {report['answer']}")
    if report["choice_probs"]:
        print("choice probabilities: " + ", ".join(f"{k} {v:.3f}" for k, v in report["choice_probs"].items()))
    for note in report["notes"]:  # the prompt's: special tokens removed, no options recognised (free-form answer)
        print(f"note: {note}")
    for note in report["input_notes"]:  # the app shows the same notes beside its answer
        print(f"note: {note}")
    if args.check_backends:  # the same input under the other attention kernels, added to report.json
        from types import SimpleNamespace

        from livr_viz.methods.diagnostics import backend_lines, check_backends

        report["backends"] = check_backends(lm, [SimpleNamespace(image=load_image(args.image), prompt=args.prompt)])
        (Path(args.out) / "report.json").write_text(json.dumps(report, indent=2))
        print("\n".join(backend_lines(report["backends"])))
    print(f"wrote {Path(args.out) / 'report.json'}")
    return 0


def _probe_items(args):
    from livr_viz.data.dataset import RecordDataset

    if args.data:
        from livr_viz.data.io import load_jsonl

        return RecordDataset(load_jsonl(args.data)[0])
    return None


def cmd_probe(args) -> int:
    from livr_viz.data.dataset import SyntheticTaskDataset
    from livr_viz.methods.probes import (
        ConceptSpec,
        builtin_specs,
        probe_baselines,
        probe_margin,
        run_probes,
        weak_baselines,
    )
    from livr_viz.views.probes import save_probe_curves

    lm = _load(args)
    names = builtin_specs() if args.concepts == "all" else args.concepts.split(",")
    user_items = _probe_items(args)
    summary = {}
    for name in names:
        spec = ConceptSpec.load(name)
        items = (
            user_items
            if user_items is not None
            else SyntheticTaskDataset(
                spec.tasks or "all", "train", args.n, args.seed, answer_format=lm.config.answer_format
            )
        )
        report = run_probes(lm, spec, items, args.out, csv_path=args.csv, random_baseline=not args.no_random)
        save_probe_curves(report, args.out)
        best = report.layers[report.best_layer]
        summary[spec.name] = {
            "best_layer": report.best_layer,
            "accuracy": best["latent_pooled"]["accuracy"],
            "selectivity": best["selectivity"],
            "majority": report.majority,
        }
        baselines = probe_baselines(report)
        summary[spec.name].update(baselines=baselines, margin=probe_margin(best), weak_against=weak_baselines(report))
        print(
            f"{spec.name:<18} best layer {report.best_layer}: acc {best['latent_pooled']['accuracy']:.3f} "
            f"(selectivity {best['selectivity']:+.3f}) vs " + ", ".join(f"{k} {v:.3f}" for k, v in baselines.items())
        )
        if summary[spec.name]["weak_against"]:  # the same warning as the app's Probes tab
            print(
                f"  warning: does not beat {', '.join(summary[spec.name]['weak_against'])} by more than "
                f"{probe_margin(best):.3f}: the reading says nothing about what the latents encode"
            )
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"wrote {args.out}")
    return 0


def cmd_faithfulness(args) -> int:
    from livr_viz.methods.faithfulness import faithfulness_report, randomization_sanity

    out = {}
    for name in args.model.split(","):
        args_one = argparse.Namespace(**{**vars(args), "model": name})
        lm = _load(args_one)
        items = suite_items(lm, args)
        report = faithfulness_report(lm, items, args.stage)
        report["sanity"] = randomization_sanity(lm, [items[i] for i in range(min(len(items), args.sanity_n))])
        out[name] = report
        avg = report["average"]
        print(
            f"{name}: mass in evidence {avg['mass_in_evidence']:.3f}, lift {avg['lift']:.2f}, pointing game "
            f"{avg['pointing_game']:.3f}; randomisation rank correlation {report['sanity']['spearman_mean']:.3f}"
        )
    write_json(args.json, out)
    return 0


def cmd_ablate(args) -> int:
    from livr_viz.methods.interventions import ablation_accuracy

    lm = _load(args)
    items = suite_items(lm, args)
    out = {}
    for stage in args.stage.split(","):
        r = ablation_accuracy(lm, [items[i] for i in range(len(items))], args.mode, args.layer, stage.strip())
        out[stage] = r
        drops = ", ".join(f"{i}: {100 * d:+.1f}" for i, d in enumerate(r["per_latent_change"]))
        print(
            f"stage {stage}: accuracy {100 * r['accuracy_intact']:.1f} % intact, "
            f"{100 * r['accuracy_all_ablated']:.1f} % with all {lm.config.n_latents} latents ablated ({args.mode}); "
            f"n = {r['n']}\n  each latent alone (points): {drops}"
        )
    write_json(args.json, out)
    return 0


def cmd_tokenmap(args) -> int:
    from livr_viz.data import make_sample, resolve_tasks
    from livr_viz.methods.tokenmap import dataset_points, project
    from livr_viz.views.tokenmap import tokenmap_figure, tokenmap_figure_plotly

    lm = _load(args)
    tasks = resolve_tasks(args.tasks)
    items = [
        make_sample(tasks[i % len(tasks)], "test", args.seed, i // len(tasks), answer_format=lm.config.answer_format)
        for i in range(args.n)
    ]
    keys = [] if args.color_by in ("segment", "task") else [args.color_by]
    points = dataset_points(lm, items, args.layer, args.stage, keys)
    xy = project(points.vectors, args.method, cache_dir=Path(args.out).parent / ".projection-cache")
    title = f"{args.method} of layer {args.layer} hidden states, {args.n} samples"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tokenmap_figure(points, xy, args.color_by, title).savefig(out.with_suffix(".png"), dpi=110)
    tokenmap_figure_plotly(points, xy, args.color_by, title).write_html(out.with_suffix(".html"))
    print(f"wrote {out.with_suffix('.png')} and {out.with_suffix('.html')}")
    return 0


def add_commands(sub) -> None:
    def model_opts(p):
        p.add_argument("--model", default="demo-livr", help=MODEL_HELP)
        p.set_defaults(allow_pickle=False, trust_remote_code=False)
        p.add_argument("--allow-pickle", action="store_true", help="allow pickle-based weights (unsafe)")
        p.add_argument("--trust-remote-code", action="store_true")

    def suite_opts(p, n: int, seed: int, n_help: str, stage: bool = True):  # which synthetic questions, which mask
        p.add_argument("--tasks", default="all")
        p.add_argument("--n", type=int, default=n, help=n_help)
        p.add_argument("--seed", type=int, default=seed)
        if stage:
            p.add_argument("--stage", choices=STAGES, default="full")

    def model_command(name: str, func, summary: str):  # a command that loads one model and runs ``func`` on it
        p = sub.add_parser(name, help=summary)
        model_opts(p)
        p.set_defaults(func=func)
        return p

    p = model_command(
        "analyze", cmd_analyze, "answer + latent heatmaps, answer→latent bars, mask, token map, report.json"
    )
    p.add_argument("--image", required=True)
    p.add_argument("--prompt", required=True)
    p.add_argument("--stage", choices=STAGES, default="full")
    p.add_argument("--aggregation", choices=AGGREGATIONS, default="mean")
    p.add_argument("--no-tokenmap", action="store_true", help="skip the t-SNE token map")
    p.add_argument(
        "--check-backends",
        action="store_true",
        help="also rerun this input under the other attention kernels (eager / sdpa) and compare",
    )
    p.add_argument("--out", required=True)

    p = model_command(
        "tokenmap", cmd_tokenmap, "t-SNE / UMAP / PCA of token hidden states over many samples (PNG + HTML)"
    )
    suite_opts(p, 27, 0, "samples")
    p.add_argument("--layer", type=int, default=4, help="0 = embeddings")
    p.add_argument("--method", choices=PROJECTIONS, default="tsne")
    p.add_argument("--color-by", default="segment", help="segment, task or a concept key")
    p.add_argument("--out", required=True, help="output path (PNG and HTML are written)")

    p = model_command("probe", cmd_probe, "linear concept probes per layer with control tasks and baselines")
    p.add_argument("--concepts", default="all", help="'all', or comma list of built-in spec names / spec paths")
    p.add_argument("--data", default=None, help="user JSONL (default: synthetic samples of the spec's tasks)")
    p.add_argument("--csv", default=None, help="CSV with an 'id' column for csv: concept sources")
    p.add_argument("--n", type=int, default=200, help="synthetic samples per task")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-random", action="store_true", help="skip the random-model baseline")
    p.add_argument("--out", required=True)

    p = model_command(
        "faithfulness", cmd_faithfulness, "attention mass in evidence, lift, pointing game, randomisation check"
    )
    suite_opts(p, 30, 2026, "test samples per task")
    p.add_argument("--sanity-n", type=int, default=20, help="items for the randomisation sanity check")
    p.add_argument("--json", default=None)

    p = model_command("ablate", cmd_ablate, "test accuracy with latents ablated: all at once and each alone")
    suite_opts(p, 100, 2026, "test samples per task", stage=False)
    p.add_argument(
        "--mode",
        choices=ABLATIONS,
        default="remove",
        help="remove: no later token may read the latent; blind: the latent may not read the image; "
        "zero / mean / noise: replace its residual",
    )
    p.add_argument("--layer", type=int, default=-1, help="for zero / mean / noise: after this layer (-1 = input)")
    p.add_argument("--stage", default="full", help="full, bottleneck, or both: full,bottleneck")
    p.add_argument("--json", default=None)

"""Helpers every command group shares: the model argument, loading, quiet transformers."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from livr_viz.core.config import VARIANTS
from livr_viz.core.errors import LIVRError
from livr_viz.demo.bundled import DEMO_NAMES

# backbone sizes `build-demo` takes (DemoBackboneConfig fields): the language model's, then the vision side's
# (e.g. --patch-size 8: 144 image tokens at 96 px instead of 64, the resolution lever of RESULTS.md)
BUILD_SIZES = (
    "text_hidden",
    "text_layers",
    "text_heads",
    "text_intermediate",
    "image_size",
    "patch_size",
    "vision_hidden",
    "vision_layers",
    "vision_heads",
)
MODEL_HELP = f"a bundled name ({', '.join(DEMO_NAMES)}), a local directory or a hub id"


def _quiet_transformers() -> None:
    import warnings

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", category=FutureWarning)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _load(args):
    from livr_viz.core.model import load_model

    return load_model(
        args.model,
        variant=getattr(args, "variant", None),
        n_latents=getattr(args, "n_latents", None),
        allow_pickle=getattr(args, "allow_pickle", False),
        trust_remote_code=getattr(args, "trust_remote_code", False),
    )


def model_args(p, variant=True):
    p.add_argument("model", nargs="?", default=None, help=MODEL_HELP + " (default demo-livr)")
    p.add_argument(
        "--model",
        dest="model_option",
        metavar="MODEL",
        default=None,
        help="the same, as an option (as the other commands take it)",
    )
    if variant:
        p.add_argument(
            "--variant", choices=VARIANTS, default=None, help="variant when wrapping a plain VLM (default livr)"
        )
        p.add_argument("--n-latents", type=int, default=None, help="K latent tokens for a plain VLM (default 16)")
    p.add_argument("--allow-pickle", action="store_true", help="allow pickle-based weights (.bin/.pt): unsafe")
    p.add_argument("--trust-remote-code", action="store_true", help="run model code from its repository")


# Repository tools: scripts that write into a clone (assets/, RESULTS.md, BENCHMARKS.md), so they live in the
# repository's tools/ and import the installed package; the package never imports them (nor puts the checkout on
# sys.path). Their `livr-viz` names stay in the command list and say how to run them.
REPO_TOOLS = {
    "reproduce": ("tools.reproduce", "pretrain the demo backbone, fine-tune 3 variants, evaluate, RESULTS.md"),
    "bench": ("tools.bench", "benchmarks (ratios measured side by side); results for BENCHMARKS.md"),
}


def repo_tool_error(command: str) -> LIVRError:
    """What ``livr-viz reproduce`` / ``livr-viz bench`` answer: where the tool lives and the command that runs it."""
    module = REPO_TOOLS[command][0]
    return LIVRError(
        f"`{command}` is a repository tool ({module.replace('.', '/')}), not part of the installed "
        f"package: in a clone of livr-viz (`pip install -e .`), run `python -m {module}` from its root "
        "with the same options (`--help` lists them)"
    )


# help for options that several commands share (an option's own help, where given, wins)
COMMON_HELP = {
    "--seed": "seed of the synthetic samples drawn",
    "--stage": "attention at inference: full (causal) or bottleneck (the Stage-1 mask: text and answer rows cannot "
    "see the image)",
    "--split": "synthetic split: train | val | test",
    "--out": "output path",
    "--lr": "peak learning rate (default: the preset's)",
    "--batch-size": "micro-batch size (default: the preset's)",
    "--grad-accum": "micro-batches per optimizer step (default: the preset's)",
    "--precision": "fp32, or bf16 CPU autocast (default: the preset's)",
    "--variant": "livr (Stage 1 + 2) | latents_only (latents, Stage 2 only) | sft (plain LoRA, no latents)",
    "--n-latents": "K, the number of latent tokens",
    "--preset": "quick (tests, seconds) | demo (the shipped models)",
    "--steps": "optimizer steps (default: the preset's)",
    "--trust-remote-code": "run model code from its repository (only if you trust its authors)",
    "--image": "image file",
    "--prompt": "the question, with its options",
    "--aggregation": "how heads are combined: mean | max, or rollout across layers",
    "--tasks": "comma list of synthetic tasks, or all",
    "--method": "projection: tsne | umap | pca",
    "--json": "also write the results as JSON here",
    "--task": "synthetic task",
    "--n": "number of samples",
    "--size": "image size in pixels",
    "--pretrain-steps": "perception-curriculum steps (default: the preset's)",
    "path": "the JSONL file to check",
}


class HelpFormatter(argparse.HelpFormatter):
    """Shows an option's default unless it is None / False or its help already speaks of the default."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


def finish_help(parser: argparse.ArgumentParser) -> None:
    """Every option of every command gets a help line and shows its default."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                finish_help(sub)
        elif not action.help and action.dest != "help":
            key = action.option_strings[-1] if action.option_strings else action.dest
            action.help = COMMON_HELP.get(key, "")
    parser.formatter_class = HelpFormatter


def write_json(path: str | None, value) -> None:
    """``--json PATH``: write ``value`` there (folders made) and say so; nothing when no path was given."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(value, indent=2))
        print(f"wrote {path}")


def progress_printer():
    """Progress on stderr for the long commands: one updating line on a terminal, a line per section in a log."""
    shown = {"message": None}

    def report(fraction: float, message: str) -> None:
        if sys.stderr.isatty():
            print(
                f"\r[{100 * fraction:5.1f} %] {message:<50}",
                end="" if fraction < 1 else "\n",
                file=sys.stderr,
                flush=True,
            )
        elif message != shown["message"]:
            shown["message"] = message
            print(f"[{100 * fraction:5.1f} %] {message}", file=sys.stderr, flush=True)

    return report


def print_report(report, *written) -> None:
    """A report's summary lines, then ``wrote …`` for each file it was written to (None: not written)."""
    print("\n".join(report.summary_lines()))
    for path in written:
        if path:
            print(f"wrote {path}")


def suite_options(p, n: int, seed: int = 2026, n_help: str = "test questions per task") -> None:
    """``--tasks``, ``--n`` and ``--seed``: which synthetic questions a diagnosis or mediation asks."""
    p.add_argument("--tasks", default="all")
    p.add_argument("--n", type=int, default=n, help=n_help)
    p.add_argument("--seed", type=int, default=seed)


def suite_of(args, models) -> tuple:
    """The positional suite of a diagnosis or mediation: the models, then ``--tasks``, ``--n`` and ``--seed``."""
    return models, args.tasks, args.n, args.seed

"""The views the CLI and the app show, declared once: each is a function in a service module (named by its dotted
path, imported on first use, so the CLI's parser is built without loading torch) and one :func:`register` call
(:func:`command` for the CLI-only ones).

A new view: write its function beside its kin (``def my_view(lm, …) -> dict``) and add one ``register(View(…))``
here; ``livr-viz my-view --help`` and the app's *More views* tab then show it (``app=True``). The CLI's analysis
commands below write files (``out``), so they are CLI-only; the app has its own tabs for them.
"""

from __future__ import annotations

from livr_viz.core.config import ABLATIONS, AGGREGATIONS, ANSWER_FORMATS, PROJECTIONS, STAGES
from livr_viz.data import SPLITS
from livr_viz.service.registry import Output, Param, View, register


def suite_params(n: int, seed: int, n_help: str, stage: bool = True) -> tuple[Param, ...]:
    """``tasks``, ``n``, ``seed`` (and ``stage``): which synthetic questions a view asks, under which mask."""
    suite = (Param("tasks", default="all"), Param("n", "int", n, help=n_help), Param("seed", "int", seed))
    return (*suite, Param("stage", default="full", choices=STAGES)) if stage else suite


TEXT_AND_JSON = (Output("text", "text"), Output("json", "json"))  # lines to print, and what --json writes


def command(name: str, function: str, summary: str, *params: Param, **options) -> View:
    """Register a CLI-only view (``function``: ``"module:function"`` under ``livr_viz.service``): the app has its
    own tabs for these; ``options``: the rest of :class:`View`'s fields."""
    return register(View(name, f"livr_viz.service.{function}", summary, params=params, app=False, **options))


command(
    "analyze",
    "analysis:analyze_command",
    "answer + latent heatmaps, answer→latent bars, mask, token map, report.json",
    Param("image", "image", required=True),
    Param("prompt", required=True),
    Param("out", required=True),  # the required options first
    Param("stage", default="full", choices=STAGES),
    Param("aggregation", default="mean", choices=AGGREGATIONS),
    Param("no_tokenmap", "bool", False, help="skip the t-SNE token map"),
    Param(
        "check_backends",
        "bool",
        False,
        help="also rerun this input under the other attention kernels (eager / sdpa) and compare",
    ),
)

command(
    "tokenmap",
    "tokenmap:tokenmap_command",
    "t-SNE / UMAP / PCA of token hidden states over many samples (PNG + HTML)",
    *suite_params(27, 0, "samples"),
    Param("layer", "int", 4, help="0 = embeddings"),
    Param("method", default="tsne", choices=PROJECTIONS),
    Param("color_by", default="segment", help="segment, task or a concept key"),
    Param("out", required=True, help="output path (PNG and HTML are written)"),
)

command(
    "probe",
    "probes:probe_command",
    "linear concept probes per layer with control tasks and baselines",
    Param("concepts", default="all", help="'all', or comma list of built-in spec names / spec paths"),
    Param("data", help="user JSONL (default: synthetic samples of the spec's tasks)"),
    Param("csv", help="CSV with an 'id' column for csv: concept sources"),
    Param("n", "int", 200, help="synthetic samples per task"),
    Param("seed", "int", 0),
    Param("no_random", "bool", False, help="skip the random-model baseline"),
    Param("out", required=True),
)

command(
    "faithfulness",
    "diagnostics:faithfulness_command",
    "attention mass in evidence, lift, pointing game, randomisation check",
    *suite_params(30, 2026, "test samples per task"),
    Param("sanity_n", "int", 20, help="items for the randomisation sanity check"),
    outputs=TEXT_AND_JSON,
    many_models=True,
)

command(
    "ablate",
    "attribution:ablation_command",
    "test accuracy with latents ablated: all at once and each alone",
    *suite_params(100, 2026, "test samples per task", stage=False),
    Param(
        "mode",
        default="remove",
        choices=ABLATIONS,
        help="remove: no later token may read the latent; blind: the latent may not read the image; "
        "zero / mean / noise: replace its residual",
    ),
    Param("layer", "int", -1, help="for zero / mean / noise: after this layer (-1 = input)"),
    Param("stage", default="full", help="full, bottleneck, or both: full,bottleneck"),
    outputs=TEXT_AND_JSON,
)

command(
    "eval",
    "evaluation:eval_command",
    "accuracy per task with 95 % CIs, chance and majority baselines",
    Param("data", default="all", help="synthetic task list / 'all', a JSONL file or dir, or a BLINK folder"),
    Param("split", default="test", choices=tuple(SPLITS)),
    Param("n", "int", 100, help="synthetic samples per task"),
    Param("seed", "int", 2026),
    Param("stage", default="full", choices=STAGES),
    Param(
        "answer_format",
        choices=ANSWER_FORMATS,
        help="synthetic questions answered by a colour / position word or number (word) or by the option's "
        "drawn letter (letter, BLINK's); default: the format the model was trained in",
    ),
    outputs=TEXT_AND_JSON,
)

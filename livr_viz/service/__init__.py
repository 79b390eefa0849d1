"""UI-free service layer the app and the CLI compose: a shared model pool, per-input caches and view builders.

Every function here takes plain values (paths, strings, numbers) and returns plain values (PIL images, dicts,
figures), so it is testable without Gradio and the app stays a thin layout. The package is the public façade
(``from livr_viz import service; service.analyze(...)``); its modules, each one concern:

- ``models``: which models may load (:class:`ModelAccess`), the shared :data:`POOL`, the bounded caches
- ``samples``: uploads, synthetic samples, templates, the example gallery
- ``teaching``: the example picked for teaching a model (its scan, its record, the app's caption)
- ``notes``: what is said beside an answer (tiny image, out of distribution, attention kernel)
- ``analysis``: one input's cached analysis, the Attention and Compare tabs, the CLI's ``analyze`` report
- ``tokenmap``, ``probes``, ``attribution``: the tabs of those names (attribution: ablation, layer × head grid,
  patch readers and filmstrip too)
- ``diagnostics``, ``mediation``: the long jobs of the Diagnostics tab and the CLI's ``diagnose`` / ``mediate``
- ``export``: the session's record and its zip
- ``common``: Markdown escaping, the progress convention, the scratch folder, path scrubbing
- ``registry``, ``catalog``: views declared once (function, typed parameters, outputs) for the CLI and the app
- ``registry``: views declared once (function, typed parameters, outputs) for the CLI and the app

The engine's menus and a few engine names the UI needs (it may import only this layer) are re-exported too. Names are
resolved on first use (PEP 562), so importing a light module of the package (``registry``, ``catalog``: what the
CLI's parser needs) loads no torch.
"""

from __future__ import annotations

import importlib

# where each public name lives: module -> names
_MODULES = {
    "livr_viz.core.config": (
        "ABLATIONS",
        "AGGREGATIONS",
        "ATTRIBUTION_METHODS",
        "NORMALISATIONS",
        "PROJECTIONS",
        "STAGES",
    ),
    "livr_viz.core.errors": ("LIVRError",),
    "livr_viz.data": ("resolve_tasks", "task_names"),
    "livr_viz.demo.bundled": ("DEMO_MODELS", "EXAMPLES_DIR"),
    "livr_viz.methods.probes": ("builtin_specs",),
    "livr_viz.service.analysis": (
        "analysis_for",
        "parse_selection",
        "selection",
        "probs_frame",
        "heatmap_tiles",
        "pointing_chance",
        "attention_view",
        "COMPARE_FONT",
        "compare_view",
        "ENLARGED_TILE",
        "enlarged_tile",
        "answered_segments",
        "mask_view",
        "example_verdicts",
        "analyze",
        "analyze_command",
    ),
    "livr_viz.service.attribution": (
        "attribution_target",
        "attribution_view",
        "ablation_view",
        "ablation_panel",
        "filmstrip_view",
        "GRID_CELL",
        "GRID_LABEL",
        "layer_head_grid",
        "layer_head_at",
        "patch_readers",
        "ablation_command",
    ),
    "livr_viz.service.common": (
        "escape_markdown",
        "jsonable",
        "progress_callback",
        "progress_iterable",
        "public_text",
        "scratch_dir",
        "without_paths",
    ),
    "livr_viz.service.diagnostics": (
        "stage1_checkpoint",
        "named_models",
        "diagnose_models",
        "DIAGNOSTIC_SAMPLES",
        "DELETION_ITEMS",
        "DELETION_METHODS",
        "diagnostics_view",
        "explanation_diagnostics",
        "DATASET_VIEW_SAMPLES",
        "dataset_view",
        "faithfulness_command",
    ),
    "livr_viz.service.evaluation": ("question_set", "eval_command"),
    "livr_viz.service.export": ("export_view", "export_zip", "record_view"),
    "livr_viz.service.mediation": (
        "MEDIATION_CONTROL_SEED_OFFSET",
        "MEDIATION_SAMPLES",
        "mediate_models",
        "mediation_view",
        "swap_latents_view",
    ),
    "livr_viz.service.models": (
        "ACCESS",
        "ANALYSES",
        "LRU",
        "MODEL_REFUSED",
        "POOL",
        "VIEWS",
        "ModelAccess",
        "ModelPool",
        "answer_format_of",
        "check_model",
        "compare_set",
        "display_name",
        "lm_dims",
        "model_allowed",
        "model_cache_key",
        "model_choices",
        "model_has_latents",
        "restrict_models",
        "model_bytes",
        "RESULT_CACHE_BYTES",
    ),
    "livr_viz.service.notes": (
        "OOD_MARGIN",
        "OOD_REFERENCE_SAMPLES",
        "backend_badge",
        "distinct_colours",
        "input_notes",
        "ood_note",
        "out_of_distribution_note",
        "patch_size_of",
        "tiny_image_note",
    ),
    "livr_viz.service.probes": (
        "default_concept",
        "concept_value",
        "probe_baseline_line",
        "probe_caveat",
        "PROBE_TRAIN_SAMPLES",
        "PROBE_TIMING_ITEMS",
        "PROBE_COST_FACTOR",
        "probe_training_estimate",
        "probe_view",
        "probe_command",
    ),
    "livr_viz.service.registry": (
        "OUTPUT_KINDS",
        "PARAM_KINDS",
        "Output",
        "Param",
        "View",
        "get_view",
        "register",
        "registered_views",
        "run_view",
        "save_outputs",
        "unregister",
    ),
    "livr_viz.service.samples": (
        "VIEW_MAX_SIDE",
        "image_digest",
        "load_upload",
        "synthetic_sample_for",
        "new_sample",
        "task_templates",
        "photo_prompt",
        "LEAD_TASK",
        "example_tasks",
        "ensure_examples",
        "example_pick",
        "suite_items",
        "suite_questions",
        "gallery_examples",
        "opening_example",
    ),
    "livr_viz.service.teaching": (
        "TEACHING_DIR",
        "TEACHING_PREFIX",
        "TEACHING_CHECKS",
        "model_dir",
        "model_fingerprint",
        "record_path",
        "truth_probability",
        "scan_task",
        "confirm",
        "scan_teaching",
        "teaching_record",
        "write_teaching",
        "drop_teaching",
        "load_record",
        "teaching_records",
        "teaching_for",
        "teaching_caption",
        "teaching_note",
    ),
    "livr_viz.service.tokenmap": (
        "TOKEN_MAP_SAMPLES",
        "token_map_view",
        "token_map_item",
        "token_map_items",
        "token_map_sample",
        "aligned_token_map",
        "warm_up",
        "tokenmap_command",
    ),
    "livr_viz.views.heatmaps": ("display_image", "montage"),
}
_EXPORTS = {name: module for module, names in _MODULES.items() for name in names}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    """A public name, from its module (imported now); a submodule (``service.models``) by its name."""
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":  # a module of ours failed to import: say why
            raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))

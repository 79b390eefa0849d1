"""Single sources: every choice a user makes by name is defined once, by the module that owns the concept
(``core/config.py`` for the names every layer shares), and read from there by the CLI, the app and the checks;
``TrainConfig``'s model settings come from ``LIVRConfig``'s fields; family-specific code lives in ``core/families.py``.
"""

import argparse
from dataclasses import fields
from pathlib import Path

import pytest

from livr_viz.cli.main import build_parser
from livr_viz.core import config as C
from livr_viz.core.errors import LIVRError

PACKAGE = Path(__file__).resolve().parents[1] / "livr_viz"


def _owners() -> dict[str, tuple]:
    """Every owned choice list the CLI may offer, by its owner's name."""
    from livr_viz.data.tasks import SPLITS
    from livr_viz.demo.backbone import TOWERS
    from livr_viz.methods.latent_use import CONDITIONS
    from livr_viz.training.vision_pretrain import VISION_PRESETS

    owned = {name: value for name, value in vars(C).items() if name.isupper() and isinstance(value, tuple)}
    owned.update(
        {
            "data.tasks.SPLITS": tuple(SPLITS),
            "demo.backbone.TOWERS": TOWERS,
            "methods.latent_use.CONDITIONS": CONDITIONS,
            "training.vision_pretrain.VISION_PRESETS": tuple(VISION_PRESETS),
        }
    )
    return owned


def _choice_actions(parser: argparse.ArgumentParser, prefix: str = "livr-viz"):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _choice_actions(sub, f"{prefix} {name}")
        elif action.choices is not None:
            yield f"{prefix} {'/'.join(action.option_strings) or action.dest}", tuple(action.choices)


def test_every_cli_choice_list_is_an_owned_one():
    owned = set(_owners().values())
    stray = [f"{where}: {choices}" for where, choices in _choice_actions(build_parser()) if choices not in owned]
    assert not stray, "choice lists typed out instead of imported from their owner:\n" + "\n".join(stray)


def test_the_engine_checks_read_the_same_lists():
    from livr_viz.methods import attribution, heatmaps, interventions, tokenmap

    assert heatmaps.AGGREGATIONS is C.AGGREGATIONS and heatmaps.NORMALISATIONS is C.NORMALISATIONS
    assert tokenmap.METHODS is C.PROJECTIONS and attribution.METHODS is C.ATTRIBUTION_METHODS
    assert interventions.ABLATIONS is C.ABLATIONS


def test_the_app_menus_read_the_same_lists():
    from livr_viz import service

    for name in ("STAGES", "AGGREGATIONS", "NORMALISATIONS", "PROJECTIONS", "ATTRIBUTION_METHODS", "ABLATIONS"):
        assert getattr(service, name) is getattr(C, name), name
    for path in (PACKAGE / "ui").rglob("*.py"):  # the app and its tabs
        source = path.read_text()
        for values in (C.AGGREGATIONS, C.NORMALISATIONS, C.PROJECTIONS, C.ATTRIBUTION_METHODS, C.STAGES):
            typed = "[" + ", ".join(f'"{v}"' for v in values) + "]"
            assert typed not in source, f"{path.name} types out {typed}"


def test_check_one_of_is_the_one_message():
    with pytest.raises(LIVRError, match=r"^aggregation must be one of mean, max, rollout; got 'median'$"):
        C.check_one_of("aggregation", "median", C.AGGREGATIONS)

    class Custom(LIVRError):
        pass

    with pytest.raises(Custom, match="line 3: field 'answer_format' must be one of word, letter"):
        C.check_one_of("line 3: field 'answer_format'", "emoji", C.ANSWER_FORMATS, error=Custom)
    C.check_one_of("stage", "full", C.STAGES)  # an allowed value passes silently
    from livr_viz.methods.heatmaps import image_attention_maps

    with pytest.raises(LIVRError, match="normalisation must be one of per_latent, global, none; got 'z'"):
        image_attention_maps(None, (1, 1), normalisation="z")  # checked before the result is read


def test_model_fields_come_from_livr_config():
    from livr_viz.training.trainer import MODEL_FIELDS, TrainConfig

    marked = [f.name for f in fields(C.LIVRConfig) if f.metadata.get("setting")]
    assert list(MODEL_FIELDS) == marked == list(C.model_settings())
    assert {"variant", "n_latents", "latent_placement", "answer_format", "lora_r"} <= set(MODEL_FIELDS)
    # each is settable by name, lands in the model's config, and reads back through the TrainConfig
    given = {
        "variant": "latents_only",
        "n_latents": 8,
        "latent_placement": "before_answer",
        "answer_format": "letter",
        "lora_r": 4,
        "lora_alpha": 8,
        "lora_dropout": 0.1,
    }
    cfg = TrainConfig(**given)
    assert all(getattr(cfg.model, k) == v == getattr(cfg, k) for k, v in given.items())
    assert TrainConfig.from_dict(cfg.to_dict()).to_dict() == cfg.to_dict()


def test_family_branches_live_in_families():
    """The model wrapper and the methods ask the family; only families.py (and the Qwen processor it loads, and the
    tiny test configs) name a family's model type or its processor outputs."""
    allowed = {"core/families.py", "core/processors.py", "demo/tiny.py"}
    found = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel in allowed:
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if '"qwen2_vl"' in code or '"image_grid_thw"' in code or "family.name ==" in code:
                found.append(f"{rel}:{n}: {line.strip()}")
    assert not found, "\n".join(found)

"""Names of the bundled demo models (import-light: no torch, so the app and CLI can list them cheaply)."""

from pathlib import Path

from livr_viz.core.errors import LIVRError
from livr_viz.core.refs import register_names
from livr_viz.core.shipped import shipped_dir

# the repository's assets/, which the wheel carries as livr_viz._assets (found wherever the package is installed)
ASSETS_DIR = shipped_dir("livr_viz._assets")
EXAMPLES_DIR = ASSETS_DIR / "examples"  # one sample per task in the demo models' format, and a few photos
# model sets compared side by side: LIVR, latents-only, SFT fine-tuned the same way on the same backbone
# (the single-task art-style set that shipped beside it until the nine-task LIVR covered art style is retired: its
# numbers stay in docs/experiments/letter-format/ and RESULTS.md's history)
DEMO_SETS = {
    "demo": ("demo-livr", "demo-latents-only", "demo-sft"),  # multi-task, all nine tasks
}
# the backbone each set was fine-tuned on: the nine-task word-format trio sits on demo-base (pretrained through the
# word curriculum)
SET_BACKBONES = {"demo": "demo-base"}
DEMO_MODELS = tuple(name for names in DEMO_SETS.values() for name in names)  # the model menu, default set first
DEMO_NAMES = {**{base: base for base in SET_BACKBONES.values()}, **{name: name for name in DEMO_MODELS}}


def demo_path(name: str) -> Path | None:
    """Directory of a bundled demo checkpoint, or None if ``name`` is not a demo name."""
    if name not in DEMO_NAMES:
        return None
    return ASSETS_DIR / DEMO_NAMES[name]


def resolve_bundled(name: str) -> str | None:
    """The bundled checkpoint a demo name stands for (clear errors for a missing one or a set's name)."""
    path = demo_path(name)
    if path is not None:
        if not path.is_dir():
            raise LIVRError(
                f"bundled model {name!r} is missing at {path}; reinstall livr-viz (in a clone: "
                "`git checkout -- assets`), or retrain it with "
                "`python -m tools.reproduce --out runs/demo --install` in a clone of livr-viz"
            )
        return str(path)
    if name in DEMO_SETS and not Path(name).exists():
        raise LIVRError(
            f"{name!r} is a set of bundled models, not one model: name one of {', '.join(DEMO_SETS[name])} "
            "(or demo-base, the backbone they were fine-tuned from)"
        )
    return None


register_names(resolve_bundled, lambda: DEMO_NAMES)

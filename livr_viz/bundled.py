"""Names of the bundled demo models (import-light: no torch, so the app and CLI can list them cheaply)."""

from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
# model sets compared side by side: LIVR, latents-only, SFT fine-tuned the same way on the same backbone
DEMO_SETS = {
    "demo": ("demo-livr", "demo-latents-only", "demo-sft"),  # multi-task, all nine tasks
    "demo-art-style": ("demo-art-style-livr", "demo-art-style-latents-only", "demo-art-style-sft"),  # single task
}
DEMO_MODELS = tuple(name for names in DEMO_SETS.values() for name in names)  # the model menu, default set first
DEMO_NAMES = {"demo-base": "demo-base", **{name: name for name in DEMO_MODELS}}

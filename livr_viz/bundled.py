"""Names of the bundled demo models (import-light: no torch, so the app and CLI can list them cheaply)."""

from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
# model sets compared side by side: LIVR, latents-only, SFT fine-tuned the same way on the same backbone
DEMO_SETS = {
    "demo": ("demo-livr", "demo-latents-only", "demo-sft"),  # multi-task, all nine tasks
    "demo-art-style": ("demo-art-style-livr", "demo-art-style-latents-only", "demo-art-style-sft"),  # single task
}
# the backbone each set was fine-tuned on: the nine-task word-format trio sits on demo-base (pretrained through the
# word curriculum); the art-style set on the earlier letter-format backbone it was trained from
SET_BACKBONES = {"demo": "demo-base", "demo-art-style": "demo-art-style-base"}
DEMO_MODELS = tuple(name for names in DEMO_SETS.values() for name in names)  # the model menu, default set first
DEMO_NAMES = {**{base: base for base in SET_BACKBONES.values()}, **{name: name for name in DEMO_MODELS}}

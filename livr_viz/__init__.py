"""livr-viz: train, run and open up vision-language models that reason with latent visual tokens (LIVR).

Layers, each importing only those below it (``tests/test_layers.py`` walks the import graph):

- :mod:`livr_viz.core`: segments, float attention masks, attention capture, architecture families, the model
  wrapper (:func:`~livr_viz.core.model.load_model`, :class:`~livr_viz.core.model.LIVRModel`) and its config;
- :mod:`livr_viz.data`: the nine-task synthetic suite, the perception curriculum, JSONL / BLINK loaders;
- :mod:`livr_viz.methods`: analysis, interventions, attribution, probes, token maps, faithfulness, latent use;
- :mod:`livr_viz.views`: figures from those results; :mod:`livr_viz.training`: the trainer and evaluation;
- :mod:`livr_viz.demo`: the embedded demo backbone, its tokenizer and the bundled model names;
- :mod:`livr_viz.service`: every app action as a plain function; :mod:`livr_viz.ui` (Gradio) and
  :mod:`livr_viz.cli` compose it.

Repository tools (``tools/reproduce.py``, ``bench/``) live beside the package and are not installed.
"""

__version__ = "0.1.0"

from livr_viz.core.errors import LIVRError
from livr_viz.demo import bundled as _bundled  # noqa: F401 - registers the bundled demo names with the core

__all__ = ["LIVRError", "Segment", "__version__", "attention_mask_4d", "segment_ids"]
# torch-backed names load on first use (PEP 562), so `livr-viz --help` and `python app.py --help` never import torch
_LAZY = {
    "attention_mask_4d": "livr_viz.core.masks",
    "Segment": "livr_viz.core.segments",
    "segment_ids": "livr_viz.core.segments",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'livr_viz' has no attribute {name!r}")

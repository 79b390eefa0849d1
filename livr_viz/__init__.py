"""livr-viz: train, run and open up vision-language models that reason with latent visual tokens (LIVR).

Entry points: :func:`livr_viz.model.load_model` / :class:`livr_viz.model.LIVRModel`, the pure functions in
:mod:`livr_viz.segments` and :mod:`livr_viz.masks`, :class:`livr_viz.capture.LatentAttention`, the task suite in
:mod:`livr_viz.data`, the trainer in :mod:`livr_viz.train`; the ``livr-viz`` CLI and ``app.py`` compose them.
"""

__version__ = "0.1.0"

from .errors import LIVRError
from .masks import attention_mask_4d
from .segments import Segment, segment_ids

__all__ = ["LIVRError", "Segment", "__version__", "attention_mask_4d", "segment_ids"]

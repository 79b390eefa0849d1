"""What is said beside an answer about the input and the run: a tiny image, an image unlike the model's
training data, the attention kernel that produced the view."""

from __future__ import annotations

import hashlib
import threading

import numpy as np
from PIL import Image

from livr_viz.core.capture import base_attn_implementation
from livr_viz.core.errors import LIVRError
from livr_viz.core.lru import LRU
from livr_viz.data import make_sample, resolve_tasks
from livr_viz.service.common import escape_markdown
from livr_viz.service.models import POOL, display_name

OOD_REFERENCE_SAMPLES = 54  # synthetic training images per model that define "like its training data"


OOD_MARGIN = 2.0  # more than this many times the most colourful reference image is out of distribution


_OOD_REFERENCES: dict[str, int] = {}  # per task list (a handful): the reference's distinct colours
_OOD_LOCK = threading.Lock()


def distinct_colours(image: Image.Image, size: int = 96) -> int:
    """Distinct RGB values at ``size`` px: the synthetic suite draws flat colours (at most ~160 in a textured
    jigsaw, 2–15 elsewhere); photographs and JPEG-compressed copies have thousands."""
    pixels = np.asarray(image.convert("RGB").resize((size, size), Image.NEAREST)).reshape(-1, 3)
    return len(np.unique(pixels, axis=0))


def ood_note(model_name: str, analysis) -> str | None:
    """A warning beside the answer when the input is unlike the images the model was fine-tuned on (only for
    models trained on the synthetic suite): :func:`out_of_distribution_note` for a model of the pool."""
    return out_of_distribution_note(POOL.get(model_name), analysis.image, display_name(model_name))


def out_of_distribution_note(lm, image: Image.Image, name: str = "the model") -> str | None:
    """The test behind :func:`ood_note`: distinct colours, against the most colourful of ``OOD_REFERENCE_SAMPLES``
    training samples of the model's tasks times ``OOD_MARGIN``. (Pooled vision features did not separate photos from
    the suite for the demo models: their tiny tower maps both to similar tokens.) None for models not trained on
    the synthetic suite."""
    trained = lm.config.training.get("tasks")
    if not trained:
        return None
    try:
        tasks = resolve_tasks(trained)
    except LIVRError:  # perception-pretrained backbones and the like: no suite to compare with
        return None
    key = ",".join(tasks)  # the reference depends only on the tasks
    with _OOD_LOCK:
        reference = _OOD_REFERENCES.get(key)
    if reference is None:  # computed outside the lock (deterministic: two requests at once agree)
        reference = max(
            distinct_colours(make_sample(tasks[i % len(tasks)], "train", 1, i // len(tasks)).image)
            for i in range(OOD_REFERENCE_SAMPLES)
        )
        with _OOD_LOCK:
            _OOD_REFERENCES[key] = reference
    colours = distinct_colours(image)
    if colours <= OOD_MARGIN * reference:
        return None
    return (
        f"this image is unlike the synthetic images {name} was trained on ({colours:,} distinct colours at "
        f"96 px; its training images have at most {reference}): the answer and the maps say little about how "
        "the model reasons on its tasks"
    )


def patch_size_of(lm) -> int | None:
    """The vision tower's patch side in pixels (None when the config does not say)."""
    vision = getattr(lm.base_model.config, "vision_config", None)
    size = getattr(vision, "patch_size", None)
    return int(size) if isinstance(size, int) and size > 0 else None


def tiny_image_note(lm, image: Image.Image) -> str | None:
    """A warning when the input is smaller than one of the model's patches: the processor blows it up to the model's
    input size, so the answer and every map read interpolated pixels, not content (a 1 × 1 image is one colour)."""
    patch = patch_size_of(lm)
    if patch is None or min(image.size) >= patch:
        return None
    return (
        f"this image is {image.width} × {image.height} px, smaller than one {patch} × {patch} px patch of the "
        "model: it is stretched to the model's input size, so the answer and the maps read interpolated pixels, "
        "not picture content"
    )


def input_notes(lm, image: Image.Image, name: str = "the model") -> list[str]:
    """Every warning about the input itself (too small for a patch, unlike the training images), for the app's answer
    and the CLI's ``analyze`` alike."""
    return [note for note in (tiny_image_note(lm, image), out_of_distribution_note(lm, image, name)) if note]


_BADGES = LRU(256)  # backend_badge's text per (model, prompt, image): four captures each, so computed once


def backend_badge(model: str, analysis) -> str:
    """The attention kernel that produced this view, and a warning badge when the other available kernels
    (eager / sdpa) disagree on this very input above :data:`~livr_viz.methods.diagnostics.BACKEND_KL_TOLERANCE`
    / ``BACKEND_ATTENTION_TOLERANCE`` (real VLMs can: transformers issue 35749). The other kernels run for this
    request's forwards only (:func:`~livr_viz.core.capture.attention_kernel`): the pooled model is never switched."""
    from types import SimpleNamespace

    from livr_viz.methods.diagnostics import check_backends

    lm = POOL.get(model)
    image = analysis.image
    key = (model, analysis.prompt, image.mode, image.size, hashlib.sha1(image.tobytes()).hexdigest())
    text = _BADGES.get(key)  # one check per input: a view setting (opacity, layers, …) does not change it
    if text is None:
        check = check_backends(lm, [SimpleNamespace(image=image, prompt=analysis.prompt)])
        text = f"  \nattention kernel `{base_attn_implementation(lm.base_model)}`"
        if check.get("status") == "done" and check["warnings"]:
            warnings = escape_markdown("; ".join(check["warnings"]))
            text += "\n\n> ⚠ **attention kernels disagree on this input**: " + warnings
        _BADGES.put(key, text)
    return text

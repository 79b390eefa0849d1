"""The app's inputs: uploads, synthetic samples recognised by their pixels, fresh samples, prompt templates
and the example gallery."""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path

import numpy as np
from PIL import Image

from livr_viz.core.errors import LIVRError
from livr_viz.core.images import load_image
from livr_viz.data import TASKS, make_sample, resolve_tasks, task_names
from livr_viz.data.dataset import SyntheticTaskDataset
from livr_viz.data.tasks import format_prompt
from livr_viz.demo.bundled import EXAMPLES_DIR
from livr_viz.service.common import scratch_dir
from livr_viz.service.models import answer_format_of, display_name
from livr_viz.service.teaching import teaching_for, teaching_records

VIEW_MAX_SIDE = 768  # uploads are downscaled once to this (the model's processor resizes again for the model)


_SAMPLE_ID = re.compile(r"^([a-z_]+)-(train|val|test)-(\d+)-(\d+)(?:-(word))?$")  # no suffix: letter format


def image_digest(path: str | Path) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


def load_upload(path: str | Path) -> Image.Image:
    """An uploaded image, decoded once and downscaled to :data:`VIEW_MAX_SIDE` (errors name its base name)."""
    return load_image(path, max_side=VIEW_MAX_SIDE)


def _words(text: str) -> list[str]:
    """The prompt up to spacing: a stray or doubled space, a tab or a line break asks the same question."""
    return text.split()


def synthetic_sample_for(path: str | Path | None, prompt: str | None = None):
    """The synthetic sample this input *is*, or None.

    The file name (``<task>-<split>-<seed>-<index>[-word].png``, as examples and *new sample* write them) only
    says which sample to regenerate; the sample counts only when the uploaded pixels equal it exactly and, when
    ``prompt`` is given, the prompt is the sample's own question. So a photo renamed like a sample, or a sample
    asked another question, never gets a ground truth or an evidence mask that is not its own."""
    if not path:
        return None
    match = _SAMPLE_ID.match(Path(path).stem)
    if not match:
        return None

    task, split, seed, index, fmt = match.groups()
    if task not in TASKS:
        return None
    sample = make_sample(task, split, int(seed), int(index), answer_format=fmt or "letter")
    if prompt is not None and _words(prompt) != _words(sample.prompt):
        return None
    try:
        pixels = np.asarray(load_image(path))
    except LIVRError:
        return None
    return (
        sample
        if pixels.shape == np.asarray(sample.image).shape and np.array_equal(pixels, np.asarray(sample.image))
        else None
    )


def new_sample(task: str, out_dir: str | Path, index: int | None = None, answer_format: str = "word", seed: int = 777):
    """A fresh synthetic sample saved as ``<id>.png`` (so its evidence can be found again); returns (path, prompt)."""
    resolve_tasks([task])
    index = int(time.time_ns() % 1_000_000) if index is None else index
    sample = make_sample(task, "test", seed, index, answer_format=answer_format)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{sample.id}.png"
    sample.image.save(path)
    return str(path), sample.prompt


def task_templates(answer_format: str = "word") -> dict[str, str]:
    """A prompt template per task (the question of its first test sample, with its options in ``answer_format``)."""
    return {t: make_sample(t, "test", 0, 0, answer_format=answer_format).prompt for t in task_names()}


def photo_prompt(answer_format: str = "word") -> str:
    """The question asked of the bundled photos, in the model's answer format."""
    return format_prompt("Is there a person in the image?", ["yes", "no"], answer_format)


# the app's first example and default task: the task the shipped nine-task models answer best (RESULTS.md: LIVR
# 78.2 % on 500 test questions, and blinding its latents costs it 21 points), so the first thing a user runs is a
# trained read-out, not one at chance; the sample itself is the task's first test sample, like every other example
LEAD_TASK = "art_style"


def example_tasks() -> list[str]:
    """The tasks in the example gallery's order: ``LEAD_TASK`` first, then the suite's order."""
    return [LEAD_TASK] + [t for t in task_names() if t != LEAD_TASK]


def ensure_examples() -> list[str]:
    """Example gallery files: one word-format synthetic sample per task (the demo models' format; ``LEAD_TASK``
    first) plus the bundled photos. The task samples ship in ``assets/examples``; one that is missing there is drawn
    into the scratch directory instead (the package never writes into its own folder at run time)."""
    paths = []
    for task in example_tasks():
        s = make_sample(task, "test", 0, 0, answer_format="word")
        path = EXAMPLES_DIR / f"{s.id}.png"
        if not path.is_file():
            path = scratch_dir() / "examples" / f"{s.id}.png"
            if not path.is_file():
                path.parent.mkdir(parents=True, exist_ok=True)
                s.image.save(path)
        paths.append(str(path))
    paths += [str(p) for p in sorted(EXAMPLES_DIR.glob("photo-*.jpg"))]
    return paths


def gallery_examples() -> list[str]:
    """The app's gallery: the examples picked for teaching (★, :mod:`livr_viz.service.teaching`; only records still
    true of their model), then :func:`ensure_examples` (each task's first test sample, not picked, and the photos)."""
    return [r["path"] for r in teaching_records()] + ensure_examples()


def opening_example(model: str) -> tuple[str, str]:
    """The example the app opens on for ``model``: the one picked for teaching it when there is a valid record,
    else the first task's first test sample (as before there were records); with its question."""
    record = teaching_for(model)
    examples = gallery_examples()
    index = examples.index(record["path"]) if record else examples.index(ensure_examples()[0])
    return example_pick(model, index)


def example_pick(model: str, index: int) -> tuple[str, str]:
    """The gallery's ``index``-th example (:func:`gallery_examples`) and its question in the model's answer format."""
    path = gallery_examples()[index]
    sample = synthetic_sample_for(path)
    return path, (sample.prompt if sample is not None else photo_prompt(answer_format_of(model)))


def suite_questions(models: dict, tasks, n: int, seed: int) -> SyntheticTaskDataset:
    """The ``n`` test questions per task of ``tasks`` that every model of ``models`` (name → loaded model) is asked,
    in their one answer format: models trained in different formats cannot be compared on one set of questions."""
    formats = {name: lm.config.answer_format for name, lm in models.items()}
    if len(set(formats.values())) > 1:
        shown = ", ".join(f"{display_name(k)}: {v}" for k, v in formats.items())
        raise LIVRError(f"the models answer in different formats ({shown}): compare models trained in one format")
    return SyntheticTaskDataset(
        resolve_tasks(tasks), "test", int(n), int(seed), answer_format=next(iter(formats.values()))
    )


def suite_items(lm, tasks="all", n: int = 30, seed: int = 2026) -> SyntheticTaskDataset:
    """``n`` synthetic test questions per task of ``tasks`` (seed ``seed``) in the model's answer format."""
    return suite_questions({"model": lm}, tasks, n, seed)

"""Torch-style datasets over synthetic tasks or loaded records, and collation through the LIVR wrapper."""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass

from torch.utils.data import Dataset

from livr_viz.core.errors import LIVRError
from livr_viz.data.tasks import DEFAULT_ANSWER_FORMAT, DEFAULT_SIZE, make_sample, resolve_tasks


class SyntheticTaskDataset(Dataset):
    """``n_per_task`` samples of each task, interleaved (item i is task ``i % T``, index ``i // T``).

    Samples are generated on access (a pure function of the key), so the dataset costs no memory
    and every epoch sees identical bytes.
    """

    def __init__(
        self,
        tasks: str | Sequence[str] = "all",
        split: str = "train",
        n_per_task: int = 1000,
        seed: int = 0,
        size: int = DEFAULT_SIZE,
        knobs: dict[str, dict] | None = None,
        answer_format: str = DEFAULT_ANSWER_FORMAT,
    ):
        self.tasks = resolve_tasks(tasks if isinstance(tasks, str) else list(tasks))
        self.split, self.n_per_task, self.seed, self.size = split, int(n_per_task), int(seed), int(size)
        self.knobs = knobs or {}
        self.answer_format = answer_format
        if self.n_per_task < 1:
            raise LIVRError(f"n_per_task must be >= 1; got {n_per_task}")

    def __len__(self) -> int:
        return len(self.tasks) * self.n_per_task

    def __getitem__(self, i: int):
        i = operator.index(i)  # an int, numpy integer or 0-d integer tensor (a sampler's index); a float is a TypeError
        if not 0 <= i < len(self):
            raise IndexError(i)
        task = self.tasks[i % len(self.tasks)]
        return make_sample(
            task,
            self.split,
            self.seed,
            i // len(self.tasks),
            size=self.size,
            answer_format=self.answer_format,
            **self.knobs.get(task, {}),
        )


class RecordDataset(Dataset):
    """A list of loaded :class:`~livr_viz.data.io.Record` (user JSONL, BLINK)."""

    def __init__(self, records):
        self.records = list(records)
        self.tasks = sorted({r.task for r in self.records})

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i):
        return self.records[i]


@dataclass
class LIVRCollator:
    """Turn a list of samples/records into a :class:`~livr_viz.core.model.LIVRBatch` (answers included)."""

    model: object  # a LIVRModel
    with_answers: bool = True

    def __call__(self, items):
        targets = [getattr(it, "target", it.answer) for it in items] if self.with_answers else None
        batch = self.model.build_inputs([it.image for it in items], [it.prompt for it in items], targets)
        batch.meta = {
            "tasks": [it.task for it in items],
            "answers": [it.answer for it in items],
            "n_choices": [len(it.choices) for it in items],
            "ids": [it.id for it in items],
        }
        return batch

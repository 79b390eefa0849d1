"""Synthetic BLINK-style task suite, loaders for user JSONL and BLINK data, datasets and collation."""

from livr_viz.data.tasks import (
    DEFAULT_SIZE,
    LETTERS,
    SPLITS,
    TASKS,
    Sample,
    answer_index,
    format_prompt,
    make_sample,
    resolve_tasks,
    task_names,
)

__all__ = [
    "DEFAULT_SIZE",
    "LETTERS",
    "SPLITS",
    "TASKS",
    "Sample",
    "answer_index",
    "format_prompt",
    "make_sample",
    "resolve_tasks",
    "task_names",
]

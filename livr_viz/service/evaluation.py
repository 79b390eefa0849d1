"""Accuracy of a model on a question set, per task with 95 % intervals beside chance and the majority answer: the
CLI's ``eval`` on synthetic tasks, a JSONL file or folder, or a BLINK folder."""

from __future__ import annotations

from pathlib import Path

from livr_viz.data.dataset import RecordDataset, SyntheticTaskDataset


def question_set(lm, data: str = "all", split: str = "test", n: int = 100, seed: int = 2026, answer_format=None):
    """``data`` as questions: an existing JSONL file (or a folder with ``samples.jsonl``) or BLINK folder, else a
    synthetic task list (``n`` per task of ``split``, in ``answer_format`` or the model's)."""
    path = Path(data)
    if path.exists():
        from livr_viz.data.io import load_blink, load_jsonl

        records = load_jsonl(path)[0] if (path.is_file() or (path / "samples.jsonl").is_file()) else load_blink(path)
        return RecordDataset(records)
    return SyntheticTaskDataset(data, split, n, seed, answer_format=answer_format or lm.config.answer_format)


def eval_command(
    lm, data: str = "all", split: str = "test", n: int = 100, seed: int = 2026, stage: str = "full", answer_format=None
) -> dict:
    """``livr-viz eval``: :func:`~livr_viz.training.evaluate.evaluate` on :func:`question_set`, a line per task and
    the average; the metrics are the JSON output."""
    from livr_viz.training.evaluate import evaluate

    metrics = evaluate(lm, question_set(lm, data, split, n, seed, answer_format), stage, progress=True)
    lines = [
        f"{task:<27} acc {m['accuracy']:.3f}  95% CI [{m['ci95'][0]:.3f}, {m['ci95'][1]:.3f}]  "
        f"chance {m['chance']:.3f}  majority {m['majority']:.3f}  n={m['n']}"
        for task, m in metrics["tasks"].items()
    ]
    return {"text": [*lines, f"{'average':<27} acc {metrics['average']['accuracy']:.3f}"], "json": metrics}

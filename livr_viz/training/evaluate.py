"""Multiple-choice evaluation: accuracy per task with Wilson 95 % intervals, chance and majority baselines."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

import torch
from tqdm.auto import tqdm

from livr_viz.core.config import LETTERS
from livr_viz.methods.stats import wilson_interval  # noqa: F401 - part of evaluate's API


@torch.no_grad()
def predict(
    lm,
    items: Sequence,
    stage: str = "full",
    batch_size: int = 32,
    block_latent_image: bool = False,
    progress: bool = False,
) -> list[dict]:
    """Per item: predicted letter, probability of each letter, correctness. Options are scored in context
    (:meth:`LIVRModel.score_options`): one-token options off the answer row's logits, longer ones by their tokens'
    per-token mean log-probability."""
    out = []
    iterator: Iterable = range(0, len(items), batch_size)
    if progress:
        iterator = tqdm(iterator, desc=f"eval {lm.config.variant}", leave=False)
    for start in iterator:
        chunk = [items[i] for i in range(start, min(start + batch_size, len(items)))]
        batch = lm.build_inputs([it.image for it in chunk], [it.prompt for it in chunk])
        logits = lm.answer_logits(batch, stage, block_latent_image).float()
        letters = [list(LETTERS[: len(it.choices)]) for it in chunk]
        options = [getattr(it, "options", ls) for it, ls in zip(chunk, letters)]  # or word-format option words
        scored = lm.score_options(batch, options, stage, block_latent_image, answer_logits=logits)
        for it, probs, ls in zip(chunk, scored, letters):
            pred = ls[int(probs.argmax())]
            out.append(
                {
                    "id": it.id,
                    "task": it.task,
                    "answer": it.answer,
                    "prediction": pred,
                    "correct": pred == it.answer,
                    "probs": [round(float(p), 5) for p in probs],
                }
            )
    return out


def summarize(predictions: list[dict], n_choices: dict[str, int] | None = None) -> dict:
    """Accuracy, Wilson CI, chance (1/n_choices) and majority-letter baseline per task, plus macro averages."""
    by_task: dict[str, list[dict]] = defaultdict(list)
    for p in predictions:
        by_task[p["task"]].append(p)
    tasks = {}
    for task, rows in sorted(by_task.items()):
        n = len(rows)
        correct = sum(r["correct"] for r in rows)
        letters = Counter(r["answer"] for r in rows)
        k = (n_choices or {}).get(task) or len(rows[0]["probs"])
        lo, hi = wilson_interval(correct, n)
        tasks[task] = {
            "n": n,
            "accuracy": correct / n,
            "ci95": [lo, hi],
            "chance": 1 / k,
            "majority": letters.most_common(1)[0][1] / n,
        }
    average = (
        {key: sum(t[key] for t in tasks.values()) / len(tasks) for key in ("accuracy", "chance", "majority")}
        if tasks
        else {}
    )
    return {"tasks": tasks, "average": average, "n": len(predictions)}


def evaluate(lm, items: Sequence, *args, **kwargs) -> dict:
    """:func:`summarize` of :func:`predict`, whose arguments it takes (stage, batch_size, block_latent_image,
    progress): accuracy per task with its interval and baselines."""
    return summarize(predict(lm, items, *args, **kwargs))

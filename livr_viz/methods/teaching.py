"""The example the app opens on: a test question that shows the mechanism clearly, picked by a stated rule.

A teaching example is *picked*, not drawn, and the app says so. The rule (:data:`RULE`) asks for a question the model
answers right with probability ``≥ P_MIN`` and whose latents look at the ground-truth evidence (evidence lift
``≥ LIFT_MIN``: the Compare tab's lift, mean over latents of attention mass inside the evidence over the evidence's
share of the image), and among those prefers the tasks where the latents matter (blinding them costs accuracy) and the
questions that blinding them turns wrong. This module holds the rule and the per-task figures, pure functions of
per-question scores; running the model is the service's (``livr_viz.service.teaching``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from livr_viz.methods.stats import wilson_interval

P_MIN = 0.8  # the right answer's probability a teaching example needs
LIFT_MIN = 1.3  # its latents' evidence lift (1 = a uniform map)
RULE = (
    "eligible: a test question answered right with probability >= {p_min} whose evidence lift is >= {lift_min} "
    "(mean over the latents of the attention mass inside the ground-truth evidence / the evidence's share of the "
    "image; all layers, mean over heads, stage full: the Compare tab's lift; for a model without latents, the answer "
    "row's). Tasks in order of what blinding the latents costs on the task's test questions (accuracy drop, most "
    "first; a model without latents: by accuracy); in the first task with an eligible question, the question whose "
    "answer blinding its latents turns wrong, then the highest lift, then the highest probability, then the lowest "
    "index. p and lift are confirmed on the app's own single-question path (its Run) before the pick is kept."
)


@dataclass
class ScoredQuestion:
    """One test question: is it answered right, with what probability on the right answer, and (measured only where
    needed) how its latents look at the evidence and what blinding them does."""

    task: str
    index: int  # within the task's test questions (make_sample's index)
    id: str
    correct: bool
    p: float  # the model's probability of the right answer
    correct_blind: bool | None = None  # right with its latents blinded (None: a model without latents)
    p_blind: float | None = None
    lift: float | None = None  # None: not measured (wrong, or below P_MIN) or no evidence

    def eligible(self, p_min: float = P_MIN, lift_min: float = LIFT_MIN) -> bool:
        return self.correct and self.p >= p_min and self.lift is not None and self.lift >= lift_min

    def to_dict(self) -> dict:
        return asdict(self)


def task_figures(questions: Sequence[ScoredQuestion], p_min: float = P_MIN, lift_min: float = LIFT_MIN) -> dict:
    """A task's figures from its scored questions: accuracy with its Wilson 95 % interval and n, the same with the
    latents blinded (and the cost), how many are right with ``p >= p_min``, the best lift among those, the best
    probability among questions whose lift reaches ``lift_min``, and how many are eligible."""
    n = len(questions)
    correct = sum(q.correct for q in questions)
    confident = [q for q in questions if q.correct and q.p >= p_min]
    lifts = [q.lift for q in confident if q.lift is not None]
    lifted = [q.p for q in questions if q.correct and q.lift is not None and q.lift >= lift_min]
    figures: dict = {
        "n": n,
        "correct": correct,
        "accuracy": correct / n if n else 0.0,
        "ci95": list(wilson_interval(correct, n)),
        "right_with_p_min": len(confident),
        "best_lift_among_them": max(lifts) if lifts else None,
        "best_p_with_lift_min": max(lifted) if lifted else None,
        "eligible": sum(q.eligible(p_min, lift_min) for q in questions),
    }
    if n and all(q.correct_blind is not None for q in questions):
        blind = sum(bool(q.correct_blind) for q in questions)
        figures["accuracy_latents_blinded"] = blind / n
        figures["blinding_cost"] = (correct - blind) / n
    return figures


def task_order(figures: Mapping[str, dict]) -> list[str]:
    """Tasks, the one where blinding the latents costs most first (a model without latents: the most accurate
    first); ties in the order given."""
    names = list(figures)

    def key(task: str):
        f = figures[task]
        return (-f.get("blinding_cost", f["accuracy"]), names.index(task))

    return sorted(names, key=key)


def ranked_candidates(
    scans: Mapping[str, Sequence[ScoredQuestion]], p_min: float = P_MIN, lift_min: float = LIFT_MIN
) -> list[ScoredQuestion]:
    """Every eligible question, best first by :data:`RULE` (tasks in :func:`task_order`, within a task the question
    blinding turns wrong, then lift, probability, index): the first one the app's path confirms is the pick."""
    figures = {task: task_figures(qs, p_min, lift_min) for task, qs in scans.items()}
    ranked = []
    for task in task_order(figures):
        eligible = [q for q in scans[task] if q.eligible(p_min, lift_min)]
        ranked += sorted(eligible, key=lambda q: (q.correct_blind is not False, -(q.lift or 0.0), -q.p, q.index))
    return ranked


def rule_text(p_min: float = P_MIN, lift_min: float = LIFT_MIN) -> str:
    return RULE.format(p_min=p_min, lift_min=lift_min)

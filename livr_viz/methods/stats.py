"""95 % intervals for the per-task means every report prints (pure functions of numbers, no model).

* a proportion of one task (accuracy): the Wilson score interval, sane at 0 and 1;
* a mean of continuous values (attention mass, a change of probability): the normal interval, mean ± z·sd/√n;
* a macro average over tasks (tasks weigh equally, whatever their sizes): the stratified normal interval,
  ``mean_t m_t ± z·sqrt(sum_t v_t) / T`` with ``v_t`` the variance of task t's mean; for proportions ``v_t`` uses
  the Agresti–Coull estimate ``p~(1-p~)/(n+4)``, so a task at 0 % or 100 % still contributes some width.

Arrays are reduced along axis 0 (items); trailing axes (e.g. layers) are kept. An interval that one value cannot
give (n < 2 for a mean) is None.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

Z95 = 1.959964  # two-sided 95 % normal quantile


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (``(0, 1)`` when n = 0)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def _plain(value):
    return value.tolist() if isinstance(value, np.ndarray) else float(value)


def _interval(mean: np.ndarray, variance: np.ndarray | None, z: float):
    if variance is None:
        return None
    half = z * np.sqrt(variance)
    return [_plain(mean - half), _plain(mean + half)]


def task_summary(values: Mapping[str, np.ndarray], binary: bool = False, z: float = Z95) -> dict:
    """Per task and macro-averaged: ``{"tasks": {task: {"n", "mean", "ci95"}}, "average": {...}}``.

    ``values[task]``: ``[n, ...]`` per-item values (0/1 when ``binary``). ``mean`` and the two ends of ``ci95`` are
    floats, or lists for trailing axes. ``average.n`` counts items over all tasks.
    """
    tasks, means, variances = {}, [], []
    for task, raw in sorted(values.items()):
        x = np.asarray(raw, dtype=np.float64)
        n = len(x)
        mean = x.mean(0)
        variance: np.ndarray | None  # None: one item, no interval
        if binary:
            ci = list(wilson_interval(int(x.sum()), n, z))
            adjusted = (x.sum() + 2) / (n + 4)
            variance = np.asarray(adjusted * (1 - adjusted) / (n + 4))
        else:
            variance = x.var(0, ddof=1) / n if n > 1 else None
            ci = _interval(mean, variance, z)
        tasks[task] = {"n": n, "mean": _plain(mean), "ci95": ci}
        means.append(mean)
        variances.append(variance)
    if not tasks:
        return {"tasks": {}, "average": None}
    mean = np.mean(means, axis=0)
    known = [v for v in variances if v is not None]
    total = np.sum(known, axis=0) / len(means) ** 2 if len(known) == len(variances) else None
    ci = _interval(mean, total, z)
    if binary and ci is not None:  # a proportion's interval stays inside [0, 1]
        ci = [max(0.0, ci[0]), min(1.0, ci[1])]
    average = {"n": sum(t["n"] for t in tasks.values()), "mean": _plain(mean), "ci95": ci}
    return {"tasks": tasks, "average": average}

"""Figures that belong to the call that drew them, safe to draw from several threads at once.

``matplotlib.pyplot`` keeps every figure it makes in one process-wide registry (figure numbers, the "current"
figure) that is not thread-safe, and holds each figure until ``plt.close``. The app draws figures for several
requests at once, so the views make plain :class:`matplotlib.figure.Figure` objects instead: the same axes, owned by
the caller alone, freed with its last reference, saved with ``fig.savefig`` (Agg) as before.
"""

from __future__ import annotations

from matplotlib.figure import Figure


def subplots(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float] | None = None, **kwargs):
    """``plt.subplots`` without pyplot: ``(figure, axes)``; ``kwargs`` go to :meth:`Figure.subplots`
    (``sharex``, ``sharey``, ``squeeze``, …)."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **kwargs)

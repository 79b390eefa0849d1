"""How the app's events share the server, in one place: quick views side by side, long jobs in their own queue.

Sharing a model between requests is safe by construction (hooks, captures and attention kernels are per request:
:mod:`livr_viz.core.hooks`, :func:`livr_viz.core.capture.attention_kernel`; see ``ModelPool``), so no event needs
the model to itself. Quick events (Run, the grid, the mask, ablation, attribution, compare, export, …) share the
``quick`` group, up to ``--concurrency`` at once (``"default"``: the queue's default limit). Long jobs (diagnose,
dataset views, probes, token maps, the aligned token map, mediation) run one at a time in the ``long`` group, so a
diagnosis never holds a quick Run back.
"""

from __future__ import annotations

QUICK_EVENTS = dict(concurrency_id="quick", concurrency_limit="default")
LONG_EVENTS = dict(concurrency_id="long", concurrency_limit=1)

"""Small helpers every service module uses: the app's scratch folder, Markdown escaping, the one progress
callback convention, JSON conversion and scrubbing server paths from what a client sees."""

from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np
import pandas as pd

from livr_viz.core.fsutil import cache_dir


def scratch_dir() -> Path:
    """The app's working folder (exports, drawn samples, retrained probes, projection caches): the user's cache."""
    return cache_dir("app")


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]#|~])")


def escape_markdown(text) -> str:
    """User-typed or model-made text made inert for a Markdown panel: HTML escaped (``<s>`` stays visible text
    instead of striking through the rest) and Markdown's active characters backslash-escaped."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(str(text), quote=False)).replace("\n", " ")


# Every action of the app as a plain function (the UI only maps their results onto components); all take model
# names and file paths, so they are callable from Python and tests exactly as the app calls them.
#
# Progress: every action that reports progress takes ONE kind of callback, ``progress(fraction, desc=None)`` — the
# fraction done in [0, 1] and, optionally, a line saying what runs now (keyword ``desc``). That is Gradio's
# ``gr.Progress`` call signature, so the app passes its ``gr.Progress`` object as it is; None reports nothing. The
# engine's own callbacks differ (``collect_features``: fraction only; ``methods.diagnostics.Progress``: (fraction,
# message); token maps and deletion curves: an iterable wrapper) and are adapted here, never in the UI.


def progress_callback(progress):
    """``progress`` (see above) as a callable that always takes ``(fraction, desc=None)``; None: a no-op."""
    if progress is None:
        return lambda fraction, desc=None: None
    return lambda fraction, desc=None: progress(float(fraction), desc=desc)


def progress_iterable(progress, desc: str):
    """The engine's iterable-wrapper kind of progress, driven by a service progress callback."""
    tick = progress_callback(progress)

    def wrap(iterable):
        items = list(iterable)
        for i, item in enumerate(items):
            tick(i / max(1, len(items)), desc=desc)
            yield item
        tick(1.0, desc=desc)

    return wrap


def jsonable(value):
    if isinstance(value, pd.DataFrame):
        return value.to_dict(orient="records")
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


_SERVER_PATH = re.compile(r"(?<![\w.:/~])~?/(?:[\w.@+-]+/)*[\w.@+-]+/?")


_OBJECT_REPR = re.compile(r"<([\w.]+) object at 0x[0-9a-fA-F]+>")


def public_text(text: str) -> str:
    """A message fit to show a client: every absolute path shortened to its last component and object reprs
    (``<… object at 0x…>``) to their class name (the app's error toasts pass through here)."""
    text = _SERVER_PATH.sub(lambda m: Path(m.group(0).rstrip("/")).name or m.group(0), str(text))
    return _OBJECT_REPR.sub(lambda m: m.group(1).rsplit(".", 1)[-1], text)


def without_paths(value):
    """``value`` (JSON-like) with every absolute path string shortened to its last component (a model's backbone
    folder, say): what the app hands the user names no server path."""
    if isinstance(value, str):
        return Path(value.rstrip("/")).name if value.startswith(("/", "~")) and "\n" not in value else value
    if isinstance(value, dict):
        return {k: without_paths(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [without_paths(v) for v in value]
    return value

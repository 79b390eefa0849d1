"""The view registry: a view is one function plus one :func:`register` call, and both front ends pick it up.

A :class:`View` names its function (a callable, or ``"module:function"`` imported on first call so that declaring a
view loads nothing heavy), its typed parameters (defaults and choices taken from ``core/config.py``, so the
menus are defined once) and its outputs. The CLI turns every view with ``cli=True`` into a subcommand (``--model``
and one option per parameter; text outputs printed, a ``json`` output written to ``--json``); the app gives every
view with ``app=True`` a panel in its *More views* tab (a model menu, one input per parameter, one component per
output). The function takes a loaded model first, then the parameters by keyword, and returns a dict holding each
declared output by name::

    def brightness(lm, image: str, gain: float = 1.0) -> dict:
        ...
        return {"markdown": ..., "figure": ...}

    register(View("brightness", "livr_viz.service.notes:brightness", "how bright the input is",
                  params=(Param("image", "image", required=True), Param("gain", "float", 1.0)),
                  outputs=(Output("markdown", "markdown"), Output("figure", "figure"))))

The built-in registrations are in :mod:`livr_viz.service.catalog`. A function that writes files (the CLI's
``analyze``, ``probe``, ``tokenmap``) takes an ``out`` parameter and stays CLI-only (``app=False``): the app has
its own tabs for those.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from livr_viz.core.errors import LIVRError

PARAM_KINDS = ("str", "int", "float", "bool", "image")  # image: a file path (the app: an upload)
OUTPUT_KINDS = ("text", "markdown", "table", "figure", "image", "json")  # text: printed lines (a list of str)


@dataclass(frozen=True)
class Param:
    """One parameter of a view: its keyword, kind, default, allowed values and help line (empty: the CLI's shared
    help for an option of that name)."""

    name: str
    kind: str = "str"
    default: Any = None
    choices: tuple | None = None
    help: str = ""
    required: bool = False

    def __post_init__(self):
        if self.kind not in PARAM_KINDS:
            raise ValueError(f"Param {self.name!r}: kind must be one of {PARAM_KINDS}; got {self.kind!r}")
        if self.choices is not None and self.default is not None and self.default not in self.choices:
            raise ValueError(f"Param {self.name!r}: default {self.default!r} is not one of {self.choices}")

    @property
    def flag(self) -> str:
        """The CLI option: ``--`` and the name with dashes."""
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class Output:
    """One output of a view: the key of the function's result and how it is shown."""

    name: str
    kind: str = "markdown"
    label: str = ""

    def __post_init__(self):
        if self.kind not in OUTPUT_KINDS:
            raise ValueError(f"Output {self.name!r}: kind must be one of {OUTPUT_KINDS}; got {self.kind!r}")


@dataclass(frozen=True)
class View:
    """A registered view. ``many_models``: the CLI takes ``--model a,b`` and runs the view once per model (its text
    prefixed with the model's name, its JSON keyed by it). ``long_job``: the app queues it with the long jobs."""

    name: str
    func: Callable[..., dict] | str
    summary: str
    params: tuple[Param, ...] = ()
    outputs: tuple[Output, ...] = (Output("text", "text"),)
    app: bool = True
    cli: bool = True
    many_models: bool = False
    long_job: bool = False  # the app runs it in the long-job queue (a diagnosis, a dataset sweep), not beside Run
    param_names: frozenset = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        names = [p.name for p in self.params]
        if len(set(names)) != len(names) or "model" in names:
            raise ValueError(f"view {self.name!r}: parameter names must be unique and not 'model'; got {names}")
        object.__setattr__(self, "param_names", frozenset(names))

    def function(self) -> Callable[..., dict]:
        """The view's function (a ``"module:function"`` reference imported now)."""
        if callable(self.func):
            return self.func
        module, _, name = self.func.partition(":")
        return getattr(importlib.import_module(module), name)

    def call(self, lm, **values) -> dict:
        """Run the view on a loaded model with ``values`` (missing ones take their defaults); a required one that
        is missing, an unknown one or a value outside its choices is a :class:`LIVRError`."""
        unknown = set(values) - self.param_names
        if unknown:
            raise LIVRError(f"{self.name}: unknown parameter(s) {', '.join(sorted(unknown))}")
        kwargs = {}
        for p in self.params:
            value = values.get(p.name, p.default)
            if p.required and value in (None, ""):
                raise LIVRError(f"{self.name}: {p.name} is required")
            if p.choices is not None and value is not None and value not in p.choices:
                raise LIVRError(f"{self.name}: {p.name} must be one of {', '.join(map(str, p.choices))}; got {value!r}")
            kwargs[p.name] = value
        result = self.function()(lm, **kwargs)
        missing = [o.name for o in self.outputs if o.name not in result]
        if missing:
            raise RuntimeError(f"view {self.name!r} did not return its declared output(s) {missing}")
        return result


_VIEWS: dict[str, View] = {}


def _builtins() -> dict[str, View]:
    """The registry, with the built-in views of :mod:`livr_viz.service.catalog` registered first."""
    import livr_viz.service.catalog  # noqa: F401 - registers on import

    return _VIEWS


def register(view: View) -> View:
    """Add ``view`` (a name may be registered once; :func:`unregister` frees it)."""
    if view.name in _builtins():
        raise ValueError(f"a view named {view.name!r} is registered already")
    _VIEWS[view.name] = view
    return view


def unregister(name: str) -> None:
    _VIEWS.pop(name, None)


def registered_views(app: bool | None = None, cli: bool | None = None) -> list[View]:
    """The registered views in registration order; ``app`` / ``cli``: only those shown there."""
    return [v for v in _builtins().values() if (app is None or v.app == app) and (cli is None or v.cli == cli)]


def get_view(name: str) -> View:
    if name not in _builtins():
        raise LIVRError(f"no view named {name!r}; registered: {', '.join(_VIEWS)}")
    return _VIEWS[name]


def save_outputs(view: View, result: dict, out_dir) -> list[str]:
    """The CLI's files for a view's figures, images and tables: ``<out_dir>/<output>.png`` (a plotly figure:
    ``.html``), ``.csv`` for a table; returns their paths."""
    from pathlib import Path

    out = Path(out_dir)
    paths = []
    for output in view.outputs:
        value = result[output.name]
        if output.kind not in ("figure", "image", "table") or value is None:
            continue
        out.mkdir(parents=True, exist_ok=True)
        if output.kind == "table":
            path = out / f"{output.name}.csv"
            value.to_csv(path, index=False)
        elif hasattr(value, "write_html"):  # plotly: interactive, opens offline
            path = out / f"{output.name}.html"
            value.write_html(path)
        elif hasattr(value, "savefig"):  # matplotlib
            path = out / f"{output.name}.png"
            value.savefig(path, dpi=110)
        else:  # a PIL image
            path = out / f"{output.name}.png"
            value.save(path)
        paths.append(str(path))
    return paths


def run_view(name: str, model: str, values: dict) -> dict:
    """The app's call: view ``name`` on the pool's ``model`` (the app's model policy applies)."""
    from livr_viz.service.models import POOL

    return get_view(name).call(POOL.get(model), **values)

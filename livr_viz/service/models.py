"""Which models a served app may load, the shared model pool and the bounded result caches.

Models are loaded once per process and shared read-only.  Results are cached per (model, image bytes, prompt,
stage) in :data:`ANALYSES` and per view setting in :data:`VIEWS`."""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections import OrderedDict
from pathlib import Path

from livr_viz.core.errors import LIVRError
from livr_viz.core.model import load_model
from livr_viz.demo.bundled import DEMO_MODELS, DEMO_NAMES, DEMO_SETS

MODEL_REFUSED = (
    "unknown model: this server loads only the models in its menu and folders under the roots its "
    "operator named (--model-root); other names and paths are not looked up"
)


class ModelAccess:
    """Which models a served app may load. Unrestricted in the library and the CLI (the user's own machine); the app
    (:func:`restrict_models`) admits the bundled names, the models the operator started it with, and paths that lie
    under the roots the operator named. Anything else gets :data:`MODEL_REFUSED` — one text whether the path exists
    or not, decided before the file system is touched — so a client can neither load nor probe other folders."""

    def __init__(self):
        self.restricted = False
        self.names: set[str] = set()
        self.roots: list[str] = []

    def restrict(self, names=(), roots=()) -> None:
        self.names = {str(n).strip() for n in names if n}
        self.roots = [os.path.realpath(os.path.expanduser(str(r))) for r in roots]
        self.restricted = True

    def allows(self, name: str) -> bool:
        if not self.restricted or name in DEMO_NAMES or name in self.names:
            return True
        real = os.path.realpath(os.path.expanduser(name))
        return any(real == root or real.startswith(root.rstrip(os.sep) + os.sep) for root in self.roots)

    def check(self, name: str) -> None:
        if not self.allows(name):
            raise LIVRError(MODEL_REFUSED)


ACCESS = ModelAccess()


def check_model(name: str) -> None:
    """:data:`ACCESS`'s check, with ``ACCESS`` looked up here at call time (so every module sees the policy a test or
    the app put in place)."""
    ACCESS.check(name)


def model_allowed(name: str) -> bool:
    """Whether :data:`ACCESS` (looked up at call time, as in :func:`check_model`) admits ``name``."""
    return ACCESS.allows(name)


def restrict_models(names=(), roots=()) -> None:
    """Serve only the bundled models, ``names`` (the app's ``--model``) and folders under ``roots``
    (``--model-root``, repeatable): see :class:`ModelAccess`."""
    ACCESS.restrict(names, roots)


def model_choices(default_model: str | None = None) -> list[str]:
    """The model menu of every tab that takes a model: the bundled models, then the one the app started with."""
    choices = list(DEMO_MODELS)
    if default_model and default_model.strip() and default_model.strip() not in choices:
        choices.append(default_model.strip())
    return choices


def display_name(model: str | None) -> str:
    """How a model is named to the user: a bundled name or hub id as it is, a local folder by its last component
    (never a server path)."""
    name = (model or "demo-livr").strip()
    if name in DEMO_NAMES:
        return name
    local = name.startswith(("/", ".", "~")) or ("/" in name and Path(name).is_dir())  # else a hub id: org/name
    return (Path(name.rstrip("/")).name or name) if local else name


def model_cache_key(model: str) -> str:
    """A folder name for this model's cached files (a path's base name and a hash of the full path, so a model
    given as an absolute path never writes beside itself)."""
    name = (model or "demo-livr").strip()
    if name in DEMO_NAMES:
        return name
    digest = hashlib.sha1(os.path.realpath(os.path.expanduser(name)).encode()).hexdigest()[:12]
    return f"{re.sub(r'[^A-Za-z0-9_.-]', '_', Path(name.rstrip('/')).name)}-{digest}"


class ModelPool:
    """Load each model once per process; afterwards shared read-only by every session."""

    def __init__(self):
        self._models: dict[str, object] = {}
        self._lock = threading.Lock()

    def get(self, name: str):
        name = (name or "demo-livr").strip()
        ACCESS.check(name)  # before anything touches the file system
        with self._lock:
            if name not in self._models:
                self._models[name] = load_model(name)
            return self._models[name]

    def loaded(self) -> list[str]:
        return list(self._models)


class LRU:
    def __init__(self, size: int = 64):
        self.size, self._data, self._lock = size, OrderedDict(), threading.Lock()

    def get(self, key):
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
        return None

    def put(self, key, value):
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)
        return value


POOL = ModelPool()


ANALYSES = LRU(64)


VIEWS = LRU(64)  # rendered attention views (tiles, bars, text) of the analyses above, per view setting


def compare_set(model: str | None) -> tuple[str, ...]:
    """The bundled LIVR / latents-only / SFT trio that ``model`` belongs to (the multi-task trio otherwise)."""
    name = (model or "").strip()
    return next((names for names in DEMO_SETS.values() if name in names), DEMO_SETS["demo"])


def lm_dims(model_name: str) -> tuple[int, int]:
    """(layers, heads) of the model's language model: the app's selector ranges."""
    cfg = POOL.get(model_name).base_model.config.get_text_config()
    return cfg.num_hidden_layers, cfg.num_attention_heads


def answer_format_of(model_name: str) -> str:
    """The answer format (``word`` | ``letter``) the model was trained in: the app's questions follow it."""
    return POOL.get(model_name).config.answer_format


def model_has_latents(name: str) -> bool:
    """Whether ``name`` has latents, read from its ``livr_config.json`` without loading it (a plain VLM is wrapped
    with latents by default)."""
    from livr_viz.core.config import LIVRConfig
    from livr_viz.core.model import CONFIG_NAME
    from livr_viz.core.refs import resolve_reference

    try:
        path = Path(resolve_reference(name)) / CONFIG_NAME
    except LIVRError:
        return False
    return LIVRConfig.from_json(path.read_text()).n_latents > 0 if path.is_file() else True

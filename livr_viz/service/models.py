"""Which models a served app may load, the shared model pool and the bounded result caches.

Models are loaded once per process, shared read-only and evicted least recently used (:class:`ModelPool`). Results
are cached per (model, image bytes, prompt, stage) in :data:`ANALYSES` and per view setting in :data:`VIEWS`, both
bounded by entries and by bytes (:class:`~livr_viz.core.lru.LRU`)."""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections import OrderedDict
from pathlib import Path

from livr_viz.core.errors import LIVRError
from livr_viz.core.lru import LRU
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


def model_bytes(lm) -> int:
    """Bytes of a loaded model's parameters and buffers (what evicting it frees)."""
    modules = {id(m): m for m in (lm.model, lm.base_model)}.values()
    tensors = {id(t): t for m in modules for t in (*m.parameters(), *m.buffers())}.values()
    return sum(t.numel() * t.element_size() for t in tensors)


def _memory_budget() -> int:
    """The pool's byte budget: ``$LIVR_VIZ_POOL_MB`` if set, else half of this machine's memory."""
    text = os.environ.get("LIVR_VIZ_POOL_MB", "").strip()
    if text:
        try:
            return int(float(text) * 2**20)
        except ValueError:
            raise LIVRError(f"LIVR_VIZ_POOL_MB must be a number of MiB; got {text!r}") from None
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2


class ModelPool:
    """Load each model once per process; afterwards shared read-only by every session, evicted least recently used.

    Sharing is safe because nothing mutates a pooled model per request: hooks act only for the request that
    registered them (:mod:`livr_viz.core.hooks`), captures and backend comparisons switch the attention kernel per
    request (:func:`livr_viz.core.capture.attention_kernel`), and the model stays in eval mode. Loads take a lock per
    name (two requests for one model load it once) and never the pool's lock, so a slow load blocks no request for
    another model. Past ``max_models`` or ``max_bytes`` (parameters and buffers, :func:`model_bytes`) the least
    recently used models are dropped from the pool (never the one just asked for); a request still holding one keeps
    using it, and its memory goes when the last such request ends."""

    def __init__(self, max_models: int = 8, max_bytes: int | None = None):
        if max_models < 1:
            raise ValueError(f"the pool holds at least one model; got max_models {max_models}")
        self.max_models, self.max_bytes = max_models, _memory_budget() if max_bytes is None else max_bytes
        self._models: OrderedDict[str, tuple[object, int]] = OrderedDict()  # name -> (model, bytes), LRU first
        self._loading: dict[str, threading.Lock] = {}  # name -> its load lock, while a load may be under way
        self._lock = threading.Lock()  # guards the two dicts above; never held while a model loads

    def get(self, name: str):
        name = (name or "demo-livr").strip()
        ACCESS.check(name)  # before anything touches the file system
        with self._lock:
            found = self._take(name)
            if found is not None:
                return found
            load_lock = self._loading.setdefault(name, threading.Lock())
        with load_lock:  # one load per name; other names go on meanwhile
            with self._lock:
                found = self._take(name)  # loaded by the request we waited for
            if found is not None:
                return found
            lm = load_model(name)
            nbytes = model_bytes(lm)
            with self._lock:
                self._models[name] = (lm, nbytes)
                self._models.move_to_end(name)
                self._loading.pop(name, None)
                self._evict()
        return lm

    def _take(self, name: str):
        """The pooled model, marked most recently used, or None (call with the lock held)."""
        if name not in self._models:
            return None
        self._models.move_to_end(name)
        return self._models[name][0]

    def _evict(self) -> None:
        """Drop least recently used models until both bounds hold; the newest (the one just asked for) always stays,
        even alone over the budget."""
        while len(self._models) > 1 and (len(self._models) > self.max_models or self._held() > self.max_bytes):
            del self._models[next(iter(self._models))]  # the least recently used

    def _held(self) -> int:
        return sum(nbytes for _, nbytes in self._models.values())

    @property
    def nbytes(self) -> int:
        """Bytes of the pooled models' parameters and buffers."""
        with self._lock:
            return self._held()

    def loaded(self) -> list[str]:
        """Names in the pool, least recently used first."""
        with self._lock:
            return list(self._models)


POOL = ModelPool()
RESULT_CACHE_BYTES = 256 * 2**20  # per cache (estimated by core.lru.approx_bytes): views of large uploads are big
ANALYSES = LRU(64, max_bytes=RESULT_CACHE_BYTES)  # captured forwards (attention rows, hidden states, the input)
VIEWS = LRU(64, max_bytes=RESULT_CACHE_BYTES)  # rendered attention views (tiles, bars, text) of the analyses above


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

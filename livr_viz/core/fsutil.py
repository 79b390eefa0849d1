"""Atomic directory writes: build everything in ``<target>.tmp``, then swap it in with renames.

Replacing an existing ``target`` takes two renames (POSIX cannot rename a directory over a non-empty one):
``target`` → ``target.old``, then ``target.tmp`` → ``target``.  A crash at any point leaves a complete copy, never a
half-written mix: the new one at ``target``, or the previous one at ``target`` or, between the two renames, at
``target.old``, which :func:`recover_dir` (called by :func:`replace_dir` and before a resume) moves back.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import ClassVar, Self

from livr_viz.core.errors import LIVRError


def fresh_tmp_dir(target: str | Path) -> Path:
    """An empty ``<target>.tmp`` directory (a leftover from an interrupted write is discarded)."""
    tmp = Path(target).with_name(Path(target).name + ".tmp")
    if tmp.is_dir():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def previous_copy(target: str | Path) -> Path:
    """``target.old``: where a swap keeps the previous ``target`` between its two renames."""
    return Path(target).with_name(Path(target).name + ".old")


def recover_dir(target: str | Path) -> bool:
    """Undo a swap interrupted between its two renames: ``target`` missing but ``target.old`` there → move it back.
    True if something was recovered."""
    target, old = Path(target), previous_copy(target)
    if target.exists() or not old.is_dir():
        return False
    os.replace(old, target)
    return True


def replace_dir(tmp: str | Path, target: str | Path) -> Path:
    """Move the finished ``tmp`` to ``target``, replacing an existing ``target``."""
    tmp, target = Path(tmp), Path(target)
    recover_dir(target)  # never delete the only complete copy a crash left in ``target.old``
    old = previous_copy(target)
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        os.replace(target, old)
    os.replace(tmp, target)
    if old.exists():
        shutil.rmtree(old)
    return target


def write_json_atomic(path: str | Path, data) -> Path:
    """Write ``data`` as compact JSON to ``<path>.tmp``, then rename it over ``path``: a killed run never leaves half a
    file (compact: people read the HTML pages; the per-question records make most of a report)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, separators=(",", ":"), allow_nan=False))
    os.replace(tmp, path)
    return path


def load_json_report(path: str | Path, from_dict, what: str, other: str):
    """``from_dict`` of the JSON at ``path``; an unreadable or foreign file is a :class:`LIVRError` that says to pass
    another output ``other`` (path, directory) instead of resuming ``what`` (a kind of report) from it."""
    try:
        return from_dict(json.loads(Path(path).read_text()))
    except (OSError, ValueError) as exc:
        raise LIVRError(
            f"{path} is not a {what} report this version can resume ({str(exc).splitlines()[0]}); "
            f"pass another output {other} or delete it"
        ) from None


class JsonReport:
    """``to_dict`` / ``from_dict`` / ``save`` / ``load`` of a report dataclass, written once for every kind of report.

    The JSON holds ``version`` first, then the fields named in ``KEYS`` in that order (``KEYS[0]`` is required on
    reading, the others read as ``{}`` when missing); ``KIND`` names the report in errors, ``RESUME_FROM`` what the
    error asks for instead (``path`` or ``directory``)."""

    KIND: ClassVar[str]
    RESUME_FROM: ClassVar[str]
    KEYS: ClassVar[tuple[str, ...]]
    VERSION: ClassVar[int]
    version: int  # the subclass's dataclass field

    def to_dict(self) -> dict:
        return {"version": self.version, **{key: getattr(self, key) for key in self.KEYS}}

    @classmethod
    def from_dict(cls, data: dict) -> Self:
        if not isinstance(data, dict) or data.get("version") != cls.VERSION or cls.KEYS[0] not in data:
            raise LIVRError(f"not a {cls.KIND} report of version {cls.VERSION}")
        return cls(**{key: data.get(key, {}) for key in cls.KEYS})

    def save(self, path: str | Path) -> Path:
        """Write the JSON atomically (a temporary file renamed over ``path``): a killed run never leaves half a file."""
        return write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> Self:
        return load_json_report(path, cls.from_dict, cls.KIND, cls.RESUME_FROM)


def save_backbone(model, processor, target: str | Path) -> Path:
    """``save_pretrained`` of a HF model and its processor into ``target``, atomically (safetensors)."""
    tmp = fresh_tmp_dir(target)
    model.save_pretrained(tmp, safe_serialization=True)
    processor.save_pretrained(tmp)
    return replace_dir(tmp, target)


def cache_dir(*parts: str) -> Path:
    """Where livr-viz writes what nobody named a place for (app exports and samples, retrained probes, projection
    caches, default command outputs): ``$LIVR_VIZ_CACHE``, else ``$XDG_CACHE_HOME/livr-viz``, else
    ``~/.cache/livr-viz``. Never the repository."""
    cache_home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    root = os.environ.get("LIVR_VIZ_CACHE") or Path(cache_home) / "livr-viz"
    path = Path(root, *parts).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LIVRError(
            f"cannot create the cache directory {path} ({exc.strerror}); set LIVR_VIZ_CACHE to a writable folder"
        ) from None
    return path

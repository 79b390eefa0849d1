"""Atomic directory writes: build everything in ``<target>.tmp``, then swap it in with renames.

A crash at any point leaves either the previous complete ``target`` or the new one, never a half-written mix.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def fresh_tmp_dir(target: str | Path) -> Path:
    """An empty ``<target>.tmp`` directory (a leftover from an interrupted write is discarded)."""
    tmp = Path(target).with_name(Path(target).name + ".tmp")
    if tmp.is_dir():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def replace_dir(tmp: str | Path, target: str | Path) -> Path:
    """Move the finished ``tmp`` to ``target``, replacing an existing ``target``."""
    tmp, target = Path(tmp), Path(target)
    old = target.with_name(target.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        os.replace(target, old)
    os.replace(tmp, target)
    if old.exists():
        shutil.rmtree(old)
    return target


def save_backbone(model, processor, target: str | Path) -> Path:
    """``save_pretrained`` of a HF model and its processor into ``target``, atomically (safetensors)."""
    tmp = fresh_tmp_dir(target)
    model.save_pretrained(tmp, safe_serialization=True)
    processor.save_pretrained(tmp)
    return replace_dir(tmp, target)

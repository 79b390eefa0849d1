"""A thread-safe LRU cache bounded by entries *and* by an estimate of the bytes its values hold.

Result caches of a served app grow with every distinct input; a count bound alone lets a few large entries (a
dataset's hidden states, a 768 px figure per tile) take any amount of memory. :class:`LRU` evicts the least
recently used entries until both bounds hold; :func:`approx_bytes` estimates a value's size from the arrays,
tensors, images and strings it holds (shared models are not counted: a value that points at a model does not own it).
"""

from __future__ import annotations

import dataclasses
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

import numpy as np
import torch

_MAX_DEPTH = 6


def approx_bytes(value, _seen: set[int] | None = None, _depth: int = 0) -> int:
    """Bytes held by ``value``: arrays, tensors, PIL images, figures, str / bytes, walked through containers,
    dataclasses and plain objects (``__dict__``); a ``torch.nn.Module`` counts 0 (shared, never owned by a result)."""
    seen = set() if _seen is None else _seen
    if id(value) in seen or _depth > _MAX_DEPTH:
        return 0
    seen.add(id(value))
    if isinstance(value, torch.nn.Module):
        return 0
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, str | bytes | bytearray):
        return sys.getsizeof(value)
    if hasattr(value, "getbands") and hasattr(value, "size"):  # a PIL image: bands × pixels (8 bit)
        return len(value.getbands()) * value.size[0] * value.size[1]
    if hasattr(value, "memory_usage") and hasattr(value, "columns"):  # a pandas DataFrame
        return int(value.memory_usage(deep=True).sum())

    def nested(items) -> int:
        return sum(approx_bytes(v, seen, _depth + 1) for v in items)

    if isinstance(value, dict):
        return nested(value.values()) + nested(value.keys())
    if isinstance(value, list | tuple | set | frozenset):
        return nested(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return nested(getattr(value, f.name) for f in dataclasses.fields(value))
    if hasattr(value, "to_json"):  # a plotly figure: its JSON is what it holds
        return len(value.to_json())
    if hasattr(value, "__dict__") and not isinstance(value, type):
        return nested(vars(value).values())
    return sys.getsizeof(value)


class LRU:
    """``get`` / ``put`` with both bounds: at most ``size`` entries and ``max_bytes`` estimated bytes
    (:func:`approx_bytes`, or ``sizeof``). A value larger than the whole budget is returned but not kept."""

    def __init__(self, size: int = 64, max_bytes: int | None = None, sizeof: Callable[[object], int] = approx_bytes):
        if size < 1:
            raise ValueError(f"an LRU holds at least one entry; got size {size}")
        self.size, self.max_bytes, self.sizeof = size, max_bytes, sizeof
        self._data: OrderedDict[Hashable, tuple[object, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key][0]
        return None

    def put(self, key, value):
        nbytes = self.sizeof(value) if self.max_bytes is not None else 0
        with self._lock:
            if key in self._data:
                self._bytes -= self._data.pop(key)[1]
            if self.max_bytes is not None and nbytes > self.max_bytes:
                return value  # larger than the whole budget: served, not kept
            self._data[key] = (value, nbytes)
            self._bytes += nbytes
            while len(self._data) > self.size or (self.max_bytes is not None and self._bytes > self.max_bytes):
                self._bytes -= self._data.popitem(last=False)[1][1]
        return value

    def __contains__(self, key) -> bool:
        with self._lock:
            return key in self._data

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)

    @property
    def nbytes(self) -> int:
        """Estimated bytes held now."""
        with self._lock:
            return self._bytes

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._bytes = 0

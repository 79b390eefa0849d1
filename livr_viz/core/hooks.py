"""Forward hooks that act only for the request that registered them.

A hook registered with ``module.register_forward_hook`` fires on *every* forward of that module, from any thread:
on a model shared by several requests, one request's patch would land in another's forward. :func:`local_hook`
registers a guarded hook instead: it acts only while the current context (a ``contextvars`` context: the thread,
or the asyncio task, that entered the ``with`` block) holds its key, and is a no-op for every other forward running
at the same time. The hook is removed when the block ends, also when it raises.

Torch calls forward hooks in the thread that runs the forward (on CPU and on one GPU; no ``DataParallel`` here),
so the guard holds by construction. It would not hold for a forward replayed in autograd's own threads (reentrant
gradient checkpointing on a GPU), which no analysis in this package does under a hook.
"""

from __future__ import annotations

import contextvars
import itertools
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

import torch

_OWNED: contextvars.ContextVar[frozenset[int]] = contextvars.ContextVar("livr_local_hooks", default=frozenset())
_KEYS = itertools.count()


@contextmanager
def local_hook(
    module: torch.nn.Module, hook: Callable, *, pre: bool = False, with_kwargs: bool = False
) -> Iterator[None]:
    """Register ``hook`` on ``module`` (a forward hook, or a forward pre-hook with ``pre=True``) for forwards of this
    context only, inside the block. ``hook`` has torch's signature for that kind of hook."""
    key = next(_KEYS)

    def guarded(*args, **kwargs):
        if key not in _OWNED.get():
            return None  # another request's forward: leave it untouched
        return hook(*args, **kwargs)

    token = _OWNED.set(_OWNED.get() | {key})
    register = module.register_forward_pre_hook if pre else module.register_forward_hook
    handle = register(guarded, with_kwargs=with_kwargs)
    try:
        yield
    finally:
        handle.remove()
        _OWNED.reset(token)


@contextmanager
def local_hooks(hooks: list[tuple[torch.nn.Module, Callable]], *, pre: bool = False, with_kwargs: bool = False):
    """:func:`local_hook` for several ``(module, hook)`` pairs at once, all removed when the block ends."""
    with ExitStack() as stack:
        for module, hook in hooks:
            stack.enter_context(local_hook(module, hook, pre=pre, with_kwargs=with_kwargs))
        yield

"""Model references: a local directory, a hub id, or a short name that a higher layer registers (the bundled demo
models register theirs in :mod:`livr_viz.demo.bundled`). The core resolves names through this registry, so it never
imports the demo. Import-light: no torch."""

from __future__ import annotations

from collections.abc import Callable, Iterable

# resolver(name) -> a directory, or None when the name is not one of its own; it raises LIVRError for a name it owns
# but cannot serve (a bundled model missing from the checkout, a set of models named as one)
Resolver = Callable[[str], "str | None"]
_RESOLVERS: list[tuple[Resolver, Callable[[], Iterable[str]]]] = []


def register_names(resolver: Resolver, names: Callable[[], Iterable[str]]) -> None:
    """Let ``load_model`` / ``load_backbone`` accept the short names ``names()`` lists, resolved by ``resolver``."""
    if all(r is not resolver for r, _ in _RESOLVERS):
        _RESOLVERS.append((resolver, names))


def resolve_reference(name: str) -> str:
    """A registered short name's directory; paths and hub ids come back as they are."""
    for resolver, _ in _RESOLVERS:
        path = resolver(name)
        if path is not None:
            return path
    return name


def known_names() -> list[str]:
    """Every registered short name (for error messages and menus)."""
    return [n for _, names in _RESOLVERS for n in names()]

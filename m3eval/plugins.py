"""A named registry that plugins extend through a Python entry-point group.

An entry point names either one item or a callable returning several; they are
loaded on the first lookup, so importing m3eval never imports a plugin.
"""
from __future__ import annotations

import inspect
from importlib.metadata import entry_points
from typing import Any, Callable, Generic, Iterable, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, group: str, item_type: type, fallback: Callable[[str], T | None] | None = None):
        self.kind, self.group, self.item_type, self.fallback = kind, group, item_type, fallback
        self._items: dict[str, T] = {}
        self._plugins_loaded = False

    def register(self, item: T) -> T:
        self._items[item.name] = item  # type: ignore[attr-defined]
        return item

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for ep in entry_points(group=self.group):
            obj = ep.load()
            for item in obj() if callable(obj) and not isinstance(obj, self.item_type) else [obj]:
                self.register(item)

    def get(self, name: str) -> T:
        self._load_plugins()
        if name not in self._items and self.fallback is not None:
            found = self.fallback(name)
            if found is not None:
                return self.register(found)
        if name not in self._items:
            raise KeyError(f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self._items))}")
        return self._items[name]

    def names(self) -> list[str]:
        self._load_plugins()
        return sorted(self._items)

    def items(self) -> list[T]:
        """Every registered item (plugins included), by name."""
        return [self._items[n] for n in self.names()]


def arguments(fn: Callable[..., Any], skip: int) -> dict[str, Any]:
    """The keyword arguments a registered callable takes after its `skip` positional inputs,
    with their defaults (inspect.Parameter.empty when required): what a task YAML's `args:` may
    set. Listed by `m3eval metrics`."""
    try:
        params = list(inspect.signature(fn).parameters.values())[skip:]
    except (TypeError, ValueError):
        return {}
    return {p.name: p.default for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def unknown_arguments(fn: Callable[..., Any], given: Iterable[str], skip: int = 0) -> tuple[list[str], list[str]]:
    """(the given keyword names `fn` does not take, the names it takes), skipping its first
    `skip` parameters (its positional inputs). Nothing is unknown to a callable with **kwargs or
    without a signature. One check for task metric/filter args and backend model args."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return [], []
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return [], []
    accepted = [p.name for p in params[skip:] if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return [k for k in given if k not in accepted], accepted

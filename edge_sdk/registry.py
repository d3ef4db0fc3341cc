"""Registries: plug-ins found by name. The one registration mechanism of the product.

A method, matcher, quantizer, pruner or allocator is one file that registers itself::

    from edge_sdk.registry import Registry
    PRUNERS: Registry[type[CoresetMethod]] = Registry("pruning method")

    @PRUNERS.register("ccs")
    class CCSPrune(CoresetMethod): ...

    PRUNERS.get("ccs")        # the class; an unknown name is a ConfigError listing the known ones
    PRUNERS.names()           # sorted names (the CLI's choices come from edge_sdk.names, checked against these)

Registering a name twice is an error (two plug-ins must not silently replace each other).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from edge_sdk.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> plug-in, for one kind of plug-in (``what`` names the kind in error messages)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register the decorated object under ``name``; returns it unchanged."""

        def deco(obj: T) -> T:
            self.add(name, obj)
            return obj

        return deco

    def add(self, name: str, obj: T) -> None:
        if not name or name in self._items:
            raise ConfigError(f"{self.what} {name!r} is registered twice (or has no name)")
        self._items[name] = obj

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise ConfigError(f"unknown {self.what} {name!r}; available: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> list[tuple[str, T]]:
        return [(k, self._items[k]) for k in self.names()]

"""Registries: plug-ins found by name. The one registration mechanism of the product.

A method, matcher, quantizer, pruner or allocator is one file that registers itself::

    from edge_sdk.registry import Registry
    PRUNERS: Registry[type[CoresetMethod]] = Registry("pruning method")

    @PRUNERS.register("ccs")
    class CCSPrune(CoresetMethod): ...

    PRUNERS.get("ccs")        # the class; an unknown name is a ConfigError listing the known ones
    PRUNERS.names()           # sorted names (the CLI's choices come from edge_sdk.catalog, checked against these)

Registering a name twice is an error (two plug-ins must not silently replace each other).

A registry may know where its plug-ins live without importing them: ``Registry("distillation host",
modules={"dm": "edge_sdk.server.distill.dm", ...})`` imports a plug-in's module the first time its name is looked
up (:meth:`Registry.get`), so a run loads, and pays the import-time work of, only the plug-ins it uses;
``names()`` and ``in`` answer from the table without importing anything; ``items()`` loads them all.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar

from edge_sdk.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> plug-in, for one kind of plug-in (``what`` names the kind in error messages)."""

    def __init__(self, what: str, modules: Mapping[str, str] | None = None) -> None:
        self.what = what
        self._items: dict[str, T] = {}
        #: name -> module that registers it when imported (loaded on first lookup of the name)
        self._modules: dict[str, str] = dict(modules or {})

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

    def _load(self, name: str) -> None:
        """Import the module that registers ``name`` (no-op when it is registered already)."""
        if name in self._items or name not in self._modules:
            return
        module = self._modules[name]
        importlib.import_module(module)
        if name not in self._items:
            raise ConfigError(f"{self.what} {name!r}: module {module} was imported but did not register it")

    def get(self, name: str) -> T:
        self._load(name)
        try:
            return self._items[name]
        except KeyError:
            raise ConfigError(f"unknown {self.what} {name!r}; available: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        """Every name, registered or known from ``modules`` (nothing is imported)."""
        return sorted({*self._items, *self._modules})

    def __contains__(self, name: object) -> bool:
        return name in self._items or name in self._modules

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def items(self) -> list[tuple[str, T]]:
        """Every ``(name, plug-in)``, sorted; imports every plug-in module not loaded yet."""
        for name in self._modules:
            self._load(name)
        return [(k, self._items[k]) for k in self.names()]

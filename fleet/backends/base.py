"""The backend interface (the shape of Flower's simulation backend: build, run tasks, terminate).

A task is a module-level function ``fn(ctx, item) -> result`` (``ctx``: the worker's
:class:`~edge_sdk.fleet.work.WorkerContext`, alive for the worker's life) and one picklable ``item``. Values
every task needs (the release's blobs, the pool's features, trained models) are given once with :meth:`share`
and read in the worker with ``ctx.shared(name)``; a backend moves each of them to a worker at most once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar, TypeVar

from edge_sdk.registry import Registry

T = TypeVar("T")
R = TypeVar("R")

#: backends by name: the product's one registration mechanism (edge_sdk.registry)
BACKENDS: Registry[type[Backend]] = Registry("fleet backend")


def register(name: str) -> Callable[[type[Backend]], type[Backend]]:
    """``@register("name")``: set the class's ``name`` and register it in :data:`BACKENDS`."""

    def deco(cls: type[Backend]) -> type[Backend]:
        cls.name = name
        BACKENDS.add(name, cls)
        return cls

    return deco


class Backend(ABC):
    """Runs tasks; results come back as ``(task index, result)`` in completion order."""

    name: ClassVar[str] = ""
    workers: int

    def __init__(self, workers: int | None = None, **options: Any) -> None:
        self.workers = int(workers) if workers else 1
        self.options = options

    @abstractmethod
    def share(self, name: str, value: Any) -> None:
        """Make ``value`` readable by every later task as ``ctx.shared(name)`` (replaces an older value)."""

    @abstractmethod
    def map(self, fn: Callable[[Any, T], R], items: Sequence[T]) -> Iterator[tuple[int, R]]:
        """Run ``fn(ctx, item)`` for every item; yield (index, result) as each finishes."""

    @abstractmethod
    def close(self) -> None:
        """Release workers and temporary files (idempotent)."""

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "workers": self.workers}

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""``inline``: every task in this process, in order (deterministic, no start-up cost; for tests and debugging)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from edge_sdk.fleet.backends.base import Backend, register
from edge_sdk.fleet.work import WorkerContext

T = TypeVar("T")
R = TypeVar("R")


@register("inline")
class InlineBackend(Backend):
    def __init__(self, workers: int | None = None, **options: Any) -> None:
        super().__init__(1, **options)
        self._root = Path(tempfile.mkdtemp(prefix="edge-sdk-fleet-"))
        self.ctx = WorkerContext(self._root)

    def share(self, name: str, value: Any) -> None:
        self.ctx.put(name, value)

    def close(self) -> None:
        shutil.rmtree(self._root, ignore_errors=True)

    def map(self, fn: Callable[[Any, T], R], items: Sequence[T]) -> Iterator[tuple[int, R]]:
        for i, item in enumerate(items):
            yield i, fn(self.ctx, item)

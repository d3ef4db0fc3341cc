"""``process`` (the default): a local pool of worker processes (``spawn``: no fork of a process that already
runs onnxruntime threads), one per core by default.

Each worker lives for the whole run and keeps its :class:`~edge_sdk.fleet.work.WorkerContext` (one ORT session
per graph and per model). Shared values are written once to the run's temporary folder and read by a worker the
first time one of its tasks needs them (by name and version), so a 400 kB payload is not sent with every task.
Workers start with ``OMP_NUM_THREADS = OPENBLAS_NUM_THREADS = MKL_NUM_THREADS = 1`` (one core each).
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, TypeVar

from edge_sdk.atomic import atomic_write_bytes
from edge_sdk.fleet.backends.base import Backend, register
from edge_sdk.fleet.work import WorkerContext

T = TypeVar("T")
R = TypeVar("R")

THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

_CTX: WorkerContext | None = None
_VERSIONS: dict[str, int] = {}
_ROOT: Path | None = None


def _load(name: str) -> Any:
    assert _ROOT is not None
    with open(_ROOT / f"{name}.{_VERSIONS[name]}.pickle", "rb") as f:
        return pickle.load(f)  # written by this run's own driver, never read from elsewhere


def _init(root: str) -> None:
    global _CTX, _ROOT
    _ROOT = Path(root)
    _CTX = WorkerContext(_ROOT, loader=_load)


def _run(fn: Callable[[Any, Any], Any], versions: dict[str, int], item: Any) -> Any:
    assert _CTX is not None
    for name, v in versions.items():
        if _VERSIONS.get(name) != v:
            _CTX.forget(name)
            _VERSIONS[name] = v
    return fn(_CTX, item)


def _ping(_: int) -> int:
    return os.getpid()


@register("process")
class ProcessBackend(Backend):
    def __init__(self, workers: int | None = None, **options: Any) -> None:
        super().__init__(workers or os.cpu_count() or 1, **options)
        self._root = Path(tempfile.mkdtemp(prefix="edge-sdk-fleet-"))
        self._versions: dict[str, int] = {}
        saved = {k: os.environ.get(k) for k in THREAD_ENV}
        os.environ.update({k: "1" for k in THREAD_ENV})  # inherited by the spawned workers
        try:
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_init, initargs=(str(self._root),))
            # start every worker now, while the environment says one thread
            self.pids = sorted(set(self._pool.map(_ping, range(self.workers))))
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def share(self, name: str, value: Any) -> None:
        v = self._versions.get(name, 0) + 1
        atomic_write_bytes(self._root / f"{name}.{v}.pickle", pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
        self._versions[name] = v

    def map(self, fn: Callable[[Any, T], R], items: Sequence[T]) -> Iterator[tuple[int, R]]:
        versions = dict(self._versions)
        pending: dict[Future[Any], int] = {self._pool.submit(_run, fn, versions, item): i
                                           for i, item in enumerate(items)}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    yield pending.pop(fut), fut.result()
        finally:
            for fut in pending:
                fut.cancel()

    def close(self) -> None:
        pool: ProcessPoolExecutor | None = getattr(self, "_pool", None)
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
            del self._pool
        shutil.rmtree(self._root, ignore_errors=True)

"""``ray``: Ray tasks on a local or remote cluster (``pip install -e '.[fleet]' in a checkout (docs/install.md)``).

Shared values are put in the object store once (``ray.put``) and a worker fetches each the first time one of its
tasks needs it; Ray reuses worker processes, so a worker's :class:`~edge_sdk.fleet.work.WorkerContext` (one ORT
session per graph and per model) lives across tasks. One task = one batch of 50-200 devices (1,000 trivial Ray
tasks cost ~1.5 s on this machine, so a task per device would be dominated by overhead). Each task reserves one
CPU; Ray sets ``OMP_NUM_THREADS`` to it, and onnxruntime's threads are set explicitly anyway.

With no ``address`` a private local cluster is started (``num_cpus = workers``, its own temporary folder, no
dashboard, a bounded object store) and shut down by :meth:`close`; with ``address`` (e.g. ``"auto"`` or
``"ray://host:10001"``) an existing cluster is joined and left running.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from edge_sdk.errors import ConfigError
from edge_sdk.fleet.backends.base import Backend, register
from edge_sdk.fleet.work import WorkerContext

T = TypeVar("T")
R = TypeVar("R")

OBJECT_STORE_BYTES = 256 * 2**20

_CTX: WorkerContext | None = None
_SEEN: dict[str, str] = {}  # shared name -> object ref hex loaded in this worker
_REFS: dict[str, Any] = {}


def _load(name: str) -> Any:
    import ray

    return ray.get(_REFS[name])


def _run(fn: Callable[[Any, Any], Any], refs: dict[str, Any], workdir: str, item: Any) -> Any:
    global _CTX
    if _CTX is None:
        _CTX = WorkerContext(Path(workdir), loader=_load)
    for name, ref in refs.items():
        _REFS[name] = ref
        if _SEEN.get(name) != ref.hex():
            _CTX.forget(name)
            _SEEN[name] = ref.hex()
    return fn(_CTX, item)


@register("ray")
class RayBackend(Backend):
    def __init__(self, workers: int | None = None, address: str | None = None, **options: Any) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError("the ray backend needs Ray: pip install -e '.[fleet]' in a checkout (docs/install.md) (or use --backend process)") from None
        n_cpus = int(workers or os.cpu_count() or 1)
        super().__init__(n_cpus, **options)
        self._ray = ray
        self._owns = False
        self._tmp: str | None = None
        self._root = Path(tempfile.mkdtemp(prefix="edge-sdk-fleet-"))
        if not ray.is_initialized():
            if address:
                ray.init(address=address, include_dashboard=False, log_to_driver=False)
            else:
                self._tmp = tempfile.mkdtemp(prefix="ray-")
                ray.init(num_cpus=n_cpus, include_dashboard=False, _temp_dir=self._tmp,
                         object_store_memory=OBJECT_STORE_BYTES, log_to_driver=False)
            self._owns = True
        self.workers = int(ray.cluster_resources().get("CPU", n_cpus))
        self._remote = ray.remote(num_cpus=1, max_retries=0)(_run)
        self._refs: dict[str, Any] = {}

    def share(self, name: str, value: Any) -> None:
        self._refs[name] = self._ray.put(value)

    def map(self, fn: Callable[[Any, T], R], items: Sequence[T]) -> Iterator[tuple[int, R]]:
        ray = self._ray
        refs = dict(self._refs)
        pending = {self._remote.remote(fn, refs, str(self._root), item): i for i, item in enumerate(items)}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    yield pending.pop(ref), ray.get(ref)
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "workers": self.workers, "ray": self._ray.__version__}

    def close(self) -> None:
        if self._owns and self._ray.is_initialized():
            self._ray.shutdown()
            self._owns = False
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        shutil.rmtree(self._root, ignore_errors=True)

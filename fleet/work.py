"""What a worker does: real onnxruntime training of a payload and real KPIs on a device's local data.

Functions here run inside a backend's worker (:mod:`edge_sdk.fleet.backends`); each takes the worker's
:class:`WorkerContext` and one task. A worker keeps, for its whole life: the release's blobs as files (the
device runtime reads files), **one training-graph session per graph digest** and one inference session per trained
model (onnxruntime with ``intra_op_num_threads = inter_op_num_threads = 1``, set explicitly: ORT ignores
``OMP_NUM_THREADS``), and the pool's model inputs per task spec. Training follows the payload's recipe and seed
exactly as a device does (:func:`edge_sdk.fleet.release.device_trainer`), so identical (payload, graph, config)
give bit-identical models on every backend.

Shared values (put once per run by the driver): ``blobs`` {"sha256:<hex>": bytes}, ``trusted_keys`` [PEM bytes],
``pool`` {task id: (X float32 [M, D], R float32 [M, n_tx])}, and with the memo ``models`` {train_key: inference ONNX
bytes}.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_sdk.errors import EdgeSdkError

KPI_COLUMNS = ("top1", "top2", "top1_1db", "rsrp_diff_mean", "rsrp_diff_p90")


@dataclass(frozen=True)
class TrainResult:
    """``model``: inference ONNX bytes (None on failure); ``wall_s``: real seconds the training took here."""

    key: str
    model: bytes | None
    steps: int
    final_loss: float | None
    wall_s: float
    error: str | None = None


@dataclass(frozen=True)
class DeviceTask:
    """One device-round to evaluate (and, without the memo, to train): ``row`` index into the fleet table."""

    row: int
    train_key: str
    task_id: str
    local: np.ndarray  # int32 [K] pool rows


@dataclass(frozen=True)
class DeviceResult:
    row: int
    kpis: dict[str, float] | None
    n_local: int
    wall_train_s: float
    wall_eval_s: float
    memo_hit: bool
    error: str | None
    worker: int


class WorkerContext:
    """Per-worker state. ``shared`` maps a name to its value, or to a loader called once on first use."""

    def __init__(self, workdir: Path, loader: Callable[[str], Any] | None = None) -> None:
        """``workdir``: a folder this worker may write (blobs as files); the backend removes it at close.
        ``loader(name)`` fetches a shared value the first time a task asks for it."""
        self._shared: dict[str, Any] = {}
        self._loader = loader
        self.pid = os.getpid()
        self._dir = Path(workdir) / f"worker-{self.pid}"
        self._dir.mkdir(parents=True, exist_ok=True)
        self._graphs: dict[str, Any] = {}
        self._sessions: dict[str, Any] = {}

    def shared(self, name: str) -> Any:
        if name not in self._shared:
            if self._loader is None:
                raise KeyError(f"shared value {name!r} was never put")
            self._shared[name] = self._loader(name)
        return self._shared[name]

    def put(self, name: str, value: Any) -> None:
        self._shared[name] = value

    def forget(self, name: str) -> None:
        """Drop a shared value (it changed); it is loaded again on next use."""
        self._shared.pop(name, None)

    def blob_path(self, digest: str) -> Path:
        """The blob as a file in this worker's folder (the device runtime reads files)."""
        p = self._dir / digest.replace(":", "-")
        if not p.exists():
            from edge_sdk.atomic import atomic_write_bytes

            atomic_write_bytes(p, self.shared("blobs")[digest])
        return p

    def train_graph(self, digest: str) -> Any:
        """One onnxruntime training session per graph digest for the life of the worker."""
        if digest not in self._graphs:
            from edge_sdk.device.graph import load_train_graph

            self._graphs[digest] = load_train_graph(self.shared("blobs")[digest], None, threads=1)
        return self._graphs[digest]

    def model_session(self, key: str, model: bytes) -> Any:
        if key not in self._sessions:
            from edge_sdk.device.evaluate import inference_session

            self._sessions[key] = inference_session(model, threads=1)
        return self._sessions[key]


def _task_blob(ctx: WorkerContext, payload: Path) -> Path | None:
    """The task blob a v2 payload names, as a file of this worker (None for v1, or when the release lacks it:
    the trainer then says which blob is missing)."""
    from edge_sdk.payload import read_payload

    with read_payload(payload) as p:
        digest = f"sha256:{p.task_digest}" if p.task_digest is not None else None
    return ctx.blob_path(digest) if digest is not None and digest in ctx.shared("blobs") else None


def _train(ctx: WorkerContext, key: str) -> TrainResult:
    """Train as a device would: the payload's own recipe and seed (:func:`edge_sdk.fleet.release.device_trainer`,
    the same call that made ``key`` in the driver), this worker's session of the graph."""
    import json

    from edge_sdk.fleet.release import device_trainer, train_key

    k = json.loads(key)
    t0 = time.perf_counter()
    try:
        trusted = ctx.shared("trusted_keys") or None
        payload = ctx.blob_path(k["payload"])
        tr = device_trainer(payload, ctx.blob_path(k["graph"]), train_graph=ctx.train_graph(k["graph"]),
                            trusted_keys=trusted, task_blob=_task_blob(ctx, payload))
        if train_key(k["payload"], k["graph"], tr.config) != key:
            raise RuntimeError("the worker's training config differs from the driver's")  # pragma: no cover
        st = tr.train()
        model = tr.model_bytes(st.params)
        loss = float(st.history[-1]["loss"]) if st.history else None
        return TrainResult(key, model, int(st.step), loss, time.perf_counter() - t0)
    except EdgeSdkError as exc:
        return TrainResult(key, None, 0, None, time.perf_counter() - t0, f"{type(exc).__name__}: {exc}")


def train_task(ctx: WorkerContext, key: str) -> TrainResult:
    """Backend task: train the model of one train key."""
    return _train(ctx, key)


def _evaluate(ctx: WorkerContext, task: DeviceTask, key: str, model: bytes) -> dict[str, float]:
    from edge_sdk.beam.kpis import beam_kpis
    from edge_sdk.device.evaluate import predict

    x_all, r_all = ctx.shared("pool")[task.task_id]
    sess = ctx.model_session(key, model)
    scores = predict(sess, x_all[task.local])
    k = beam_kpis(scores, r_all[task.local])
    return {c: float(k[c]) for c in KPI_COLUMNS}


def device_task(ctx: WorkerContext, batch: tuple[bool, list[DeviceTask]]) -> list[DeviceResult]:
    """Backend task: a batch of device-rounds. ``memo=True``: evaluate the shared model of each train key;
    ``memo=False``: every device trains its own model first (really), then evaluates it."""
    memo, tasks = batch
    out = []
    for task in tasks:
        t0 = time.perf_counter()
        if memo:
            model = ctx.shared("models").get(task.train_key)
            err = None if model is not None else "TrainFailed: the memo has no model for this payload"
            if model is None:
                fails = ctx.shared("train_errors")
                err = fails.get(task.train_key, err)
            key = task.train_key
        else:
            res = _train(ctx, task.train_key)
            model, err = res.model, res.error
            key = f"row{task.row}"  # one session per device model (no sharing across devices)
        t1 = time.perf_counter()
        kpis = None
        if model is not None:
            kpis = _evaluate(ctx, task, key, model)
            if not memo:
                ctx._sessions.pop(key, None)
        out.append(DeviceResult(task.row, kpis, int(len(task.local)), t1 - t0, time.perf_counter() - t1,
                                memo, err, ctx.pid))
    return out

"""Feed payload rows to a training graph and run its optimizer steps: one ``run()`` per step (format v1, ``step``
variant) or K steps per ``run()`` (format v2, ``epoch`` variant; docs/onnx-graph.md).

Feeds (:class:`PayloadData`, :class:`GroupFeed`): payload groups held in memory as graph feeds, and batch assembly.

Sample index: the ``samples`` groups with bits > 0, concatenated in payload order (global index ``0..N-1``,
as ``Payload.samples()``); ``soft_labels`` groups partition the same index range. A batch is a set of global
indices; it is sorted ascending and split by group, so the rows fed for group k (and the labels, and the soft
targets) follow the same global order. The loss is a mean over rows, so the order inside a batch does not
change the step (up to float summation order).

Both executors take the same arguments — parameters and optimizer state as ``{name: array}`` dicts (ModelSpec
names; the checkpoint format), the batches as arrays of global sample indices, and one hyper-parameter dict per
step — and return the updated dicts and the per-step losses, so the trainer does not care which variant the
payload's graph is.

The epoch executor feeds the rows of many batches at once (``Chunk``): the graph unpacks and dequantizes them
once, then loops over the batches. A chunk holds at most ``decode_budget`` bytes of decoded rows (default
:data:`DECODE_BUDGET_BYTES`), so a payload of any size trains in bounded memory; for the beam payloads a whole
epoch fits in one chunk. Batches of another size (the last, smaller batch of an epoch) go in a chunk of their own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_sdk.device.graph import TrainGraph
from edge_sdk.errors import DeviceError

#: bytes of decoded float32 rows (features + soft targets) one epoch-graph run may hold
DECODE_BUDGET_BYTES = 32 << 20

Arrays = dict[str, np.ndarray]
Progress = Callable[[int], Any] | None


# --- feeds: payload groups held in memory, batch assembly ---

@dataclass
class GroupFeed:
    """One graph group: ``data`` = packed uint8 [n, row_bytes] or raw float32 [n, D]; per-row and fixed params."""

    k: int
    role: str
    kind: str
    data: np.ndarray
    row_params: dict[str, np.ndarray]  # name -> [n] (symmetric_per_sample scale, affine_sample lo/hi)
    fixed_params: dict[str, np.ndarray]  # alpha / levels / affine_set, affine_feature lo/hi
    offset: int  # first global index

    @property
    def n(self) -> int:
        return int(self.data.shape[0])

    def feed(self, sel: np.ndarray) -> dict[str, np.ndarray]:
        """Feeds for the rows ``sel`` (sorted, unique local indices; all rows are fed without a copy)."""
        key = "values" if self.kind in ("float16", "float32") else "packed"
        if sel.size == self.n:  # every row, in order (sel is sorted and unique)
            out = {f"g{self.k}.{key}": self.data}
            out.update({f"g{self.k}.{n}": v for n, v in self.row_params.items()})
            out.update({f"g{self.k}.{n}": v for n, v in self.fixed_params.items()})
            return out
        out = {f"g{self.k}.{key}": np.ascontiguousarray(self.data[sel])}
        out.update({f"g{self.k}.{n}": np.ascontiguousarray(v[sel]) for n, v in self.row_params.items()})
        out.update({f"g{self.k}.{n}": v for n, v in self.fixed_params.items()})
        return out


class PayloadData:
    """Feeds for every group of a read payload (``edge_sdk.payload.Payload``)."""

    def __init__(self, payload: Any) -> None:
        self.groups: list[GroupFeed] = []
        labels: list[np.ndarray] = []
        off = {"samples": 0, "soft_labels": 0}
        has_labels = True
        for k, gv in enumerate(payload.groups):
            if gv.kind == "none" or gv.bits == 0:
                continue
            if gv.kind in ("float16", "float32"):
                data = np.asarray(gv.values(), np.float32)
            else:
                data = np.array(gv.packed_rows(), np.uint8)  # copy out of the memory map
            params = {n: np.asarray(v, np.float32) for n, v in gv.params().items()}
            per_row = gv.kind in ("symmetric_per_sample", "affine_sample")  # one value per row: fed sliced
            row = {n: v.reshape(-1) for n, v in params.items() if per_row}
            fixed = {n: v for n, v in params.items() if not per_row}
            self.groups.append(GroupFeed(k, gv.role, gv.kind, data, row, fixed, off[gv.role]))
            off[gv.role] += gv.n
            if gv.role == "samples":
                lab = gv.labels()
                if lab is None:
                    has_labels = False
                    lab = np.zeros(gv.n, np.int64)
                labels.append(np.asarray(lab, np.int64))
        self.n = off["samples"]
        if self.n == 0:
            raise DeviceError("payload has no samples to train on (no 'samples' group with bits > 0)")
        if off["soft_labels"] not in (0, self.n):
            raise DeviceError(f"soft labels cover {off['soft_labels']} rows, samples {self.n}: they must align")
        self.has_soft = off["soft_labels"] > 0
        self.has_hard_labels = has_labels
        if not has_labels and not self.has_soft:
            raise DeviceError("payload has neither hard labels nor soft labels: nothing to train against")
        self.labels = np.concatenate(labels)
        nc = int(payload.num_classes)
        if self.labels.size and (self.labels.min() < 0 or self.labels.max() >= nc):
            raise DeviceError(f"labels outside [0, {nc})")

    def batch_feed(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        """Feeds for the global sample indices ``idx`` (any order, no repeats; sorted here)."""
        idx = np.sort(np.asarray(idx, np.int64))
        feed: dict[str, np.ndarray] = {}
        for g in self.groups:
            lo = np.searchsorted(idx, g.offset)
            hi = np.searchsorted(idx, g.offset + g.n)
            feed.update(g.feed(idx[lo:hi] - g.offset))
        feed["labels"] = self.labels[idx]
        return feed


# --- executors ---


def flatten(arrays: Arrays, names: Sequence[str], suffix: str = "") -> np.ndarray:
    """Concatenate ``arrays[name + suffix]`` (C order) for ``names`` in order -> float32 ``[P]``."""
    return np.concatenate([np.asarray(arrays[n + suffix], np.float32).reshape(-1) for n in names])


def unflatten(flat: np.ndarray, shapes: Sequence[tuple[str, tuple[int, ...]]], suffix: str = "") -> Arrays:
    """Inverse of :func:`flatten`: ``{name + suffix: array of shape}`` (copies, so the dict owns its arrays)."""
    out: Arrays = {}
    pos = 0
    for name, shape in shapes:
        size = int(np.prod(shape))
        out[name + suffix] = flat[pos: pos + size].reshape(shape).copy()
        pos += size
    if pos != flat.size:
        raise DeviceError(f"flat parameter vector has {flat.size} values, the model {pos}")
    return out


def _check_losses(losses: np.ndarray, first_step: int) -> None:
    bad = np.flatnonzero(~np.isfinite(losses))
    if bad.size:
        raise DeviceError(f"loss became {losses[bad[0]]} at step {first_step + int(bad[0])}; lower the learning rate")


class StepExecutor:
    """Format v1: one ``run()`` per optimizer step, per-tensor parameters."""

    def __init__(self, graph: TrainGraph, data: PayloadData) -> None:
        self.graph, self.data = graph, data

    def run(self, params: Arrays, state: Arrays, batches: Sequence[np.ndarray], hypers: Sequence[Arrays],
            first_step: int = 0, progress: Progress = None) -> tuple[Arrays, Arrays, np.ndarray]:
        losses = np.empty(len(batches), np.float32)
        for i, (idx, hp) in enumerate(zip(batches, hypers, strict=True)):
            feed = self.data.batch_feed(idx)
            feed.update(hp)
            feed.update(params)
            feed.update(state)
            out = self.graph.run(feed)
            losses[i] = out["loss"]
            _check_losses(losses[i: i + 1], first_step + i)
            params = {n: out[f"new.{n}"] for n in self.graph.param_names}
            state = {n: out[f"new.{n}"] for n in self.graph.state_names}
            if progress is not None:
                progress(1)
        return params, state, losses


@dataclass(frozen=True)
class Chunk:
    """Consecutive steps run in one epoch-graph call: ``steps`` (positions in the batch list) of equal size."""

    steps: range


class EpochExecutor:
    """Format v2: K optimizer steps per ``run()``; parameters and state as flat vectors inside."""

    def __init__(self, graph: TrainGraph, data: PayloadData, decode_budget: int = DECODE_BUDGET_BYTES) -> None:
        self.graph, self.data = graph, data
        self.shapes = graph.model.param_shapes()
        self.names = [n for n, _ in self.shapes]
        self.suffixes = [s.split(".", 1)[1] for s in graph.flat_state_names]
        self.per_step = list(graph.meta.get("per_step_hyper", ["lr", "step"]))
        row_bytes = 4 * (graph.model.input_dim + (graph.model.num_classes if graph.has_soft else 0))
        self.max_rows = max(1, int(decode_budget) // row_bytes)

    def chunks(self, batches: Sequence[np.ndarray]) -> list[Chunk]:
        """Split the step list into runs: equal batch sizes, at most ``max_rows`` rows (at least one step)."""
        out: list[Chunk] = []
        start = 0
        while start < len(batches):
            size = len(batches[start])
            per = max(1, self.max_rows // max(size, 1))
            end = start + 1
            while end < len(batches) and end - start < per and len(batches[end]) == size:
                end += 1
            out.append(Chunk(range(start, end)))
            start = end
        return out

    def run(self, params: Arrays, state: Arrays, batches: Sequence[np.ndarray], hypers: Sequence[Arrays],
            first_step: int = 0, progress: Progress = None) -> tuple[Arrays, Arrays, np.ndarray]:
        theta = flatten(params, self.names)
        flat_state = {f"theta.{s}": flatten(state, self.names, f".{s}") for s in self.suffixes}
        losses = np.empty(len(batches), np.float32)
        for chunk in self.chunks(batches):
            steps = [np.asarray(batches[i], np.int64) for i in chunk.steps]
            rows = np.unique(np.concatenate(steps))  # sorted: the graph's X rows are in global order
            feed = self.data.batch_feed(rows)
            feed["batches"] = np.searchsorted(rows, np.stack(steps)).astype(np.int64)
            for h in self.graph.hyper:
                vals = [hypers[i][h] for i in chunk.steps]
                feed[h] = np.asarray(vals if h in self.per_step else vals[0], np.float32)
            if self.graph.has_soft:
                feed["soft_weight"] = np.asarray(hypers[chunk.steps[0]]["soft_weight"], np.float32)
            feed["theta"] = theta
            feed.update(flat_state)
            out = self.graph.run(feed)
            lo = chunk.steps.start
            losses[lo: chunk.steps.stop] = out["losses"]
            _check_losses(out["losses"], first_step + lo)
            theta = out["new.theta"]
            flat_state = {n: out[f"new.{n}"] for n in flat_state}
            if progress is not None:
                progress(len(chunk.steps))
        new_params = unflatten(theta, self.shapes)
        new_state: Arrays = {}
        for s in self.suffixes:
            new_state.update(unflatten(flat_state[f"theta.{s}"], self.shapes, f".{s}"))
        return new_params, new_state, losses


def make_executor(graph: TrainGraph, data: PayloadData, decode_budget: int = DECODE_BUDGET_BYTES
                  ) -> StepExecutor | EpochExecutor:
    """The executor for the graph's variant (the epoch variant whenever the graph is one)."""
    if graph.variant == "epoch":
        return EpochExecutor(graph, data, decode_budget)
    return StepExecutor(graph, data)

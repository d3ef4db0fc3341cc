"""Run optimizer steps on a training graph: one ``run()`` per step (format v1, ``step`` variant) or K steps per
``run()`` (format v2, ``epoch`` variant; docs/onnx-graph.md).

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

from edge_sdk.device.data import PayloadData
from edge_sdk.device.graph import TrainGraph
from edge_sdk.errors import DeviceError

#: bytes of decoded float32 rows (features + soft targets) one epoch-graph run may hold
DECODE_BUDGET_BYTES = 32 << 20

Arrays = dict[str, np.ndarray]
Progress = Callable[[int], Any] | None


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

"""The training graph on the device: load it, check it against the payload that names it, feed it payload rows
and run its optimizer steps.

The graph's self-description (``metadata_props["edge_sdk.train_graph"]``, JSON written by the server exporter;
input/output names in docs/onnx-graph.md) tells the device which groups it consumes, the model spec and the
optimizer. The payload header carries the graph's ``sha256`` and ``size``; :func:`load_train_graph` refuses a
graph whose bytes do not match.

Running it (:func:`make_executor`): one ``run()`` per step (format v1, ``step`` variant) or K steps per ``run()``
(format v2, ``epoch`` variant; docs/onnx-graph.md).

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

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnxruntime as ort

from edge_sdk.errors import DeviceError, SchemaError
from edge_sdk.graphmeta import (
    GRAPH_FORMAT,
    HYPER_NAMES,
    META_KEY,
    PER_STEP_HYPER,
    SUPPORTED_VERSIONS,
    THETA,
    VERSION_VARIANT,
    GraphMeta,
)
from edge_sdk.modelspec import ModelSpec

__all__ = ["DECODE_BUDGET_BYTES", "GRAPH_FORMAT", "META_KEY", "SUPPORTED_VERSIONS", "EpochExecutor", "GroupFeed",
           "PayloadData", "StepExecutor", "TrainGraph", "check_groups", "load_train_graph", "make_executor"]


@dataclass
class TrainGraph:
    """An onnxruntime session of a training graph plus its parsed description."""

    session: ort.InferenceSession
    meta: dict[str, Any]
    sha256: str
    size: int
    model: ModelSpec = field(init=False)

    def __post_init__(self) -> None:
        self.model = ModelSpec.from_dict(self.meta["model"])

    @property
    def optimizer(self) -> str:
        return str(self.meta["optimizer"])

    @property
    def groups(self) -> list[dict[str, Any]]:
        return list(self.meta["groups"])

    @property
    def hyper(self) -> list[str]:
        return list(self.meta["hyper"])

    @property
    def param_names(self) -> list[str]:
        return [n for n, _ in self.model.param_shapes()]

    @property
    def state_names(self) -> list[str]:
        return [f"{p}.{s}" for p in self.param_names for s in self.meta["state_suffixes"]]

    @property
    def has_soft(self) -> bool:
        return "soft_weight" in self.meta["inputs"]

    @property
    def has_label_smoothing(self) -> bool:
        """The graph takes the recipe's ``label_smoothing`` epsilon (graphs of edge-sdk >= 0.3 exported for it)."""
        return "label_smoothing" in self.meta["inputs"]

    @property
    def variant(self) -> str:
        """``step`` (format v1) or ``epoch`` (format v2)."""
        return VERSION_VARIANT[int(self.meta["version"])]

    @property
    def flat_state_names(self) -> list[str]:
        """Epoch variant: the optimizer-state vectors ``theta.<suffix>``."""
        return [f"{THETA}.{s}" for s in self.meta["state_suffixes"]]

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One training step: returns {output name: array} (``loss``, ``new.<param>``, ``new.<state>``)."""
        outs = self.session.run(self._out_names, feed)
        return dict(zip(self._out_names, outs, strict=True))

    @property
    def _out_names(self) -> list[str]:
        return [o.name for o in self.session.get_outputs()]


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_train_graph(data: bytes, expected: dict[str, Any] | None = None, threads: int = 1) -> TrainGraph:
    """Session for training-graph bytes ``data``. ``expected`` = the payload header's ``graph`` entry
    (``{"sha256", "size"}``): a mismatch raises :class:`DeviceError`."""
    digest = sha256_hex(data)
    if expected is not None:
        want = str(expected.get("sha256", "")).lower()
        if want != digest or int(expected.get("size", -1)) != len(data):
            raise DeviceError(
                f"graph does not match the payload: payload names sha256 {want} ({expected.get('size')} B), "
                f"got {digest} ({len(data)} B); use the graph exported together with this payload"
            )
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    try:
        sess = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise DeviceError(f"onnxruntime cannot load the training graph: {exc}") from exc
    raw = sess.get_modelmeta().custom_metadata_map.get(META_KEY)
    if raw is None:
        raise DeviceError(f"not an edge-sdk training graph (no {META_KEY!r} metadata); export it with "
                          "`edge-sdk export-graph`")
    gm = GraphMeta.from_json(raw)
    check_session(sess, gm)
    return TrainGraph(session=sess, meta=json.loads(raw), sha256=digest, size=len(data))


_ONNX_DTYPES = {"uint8": "tensor(uint8)", "float32": "tensor(float)", "int64": "tensor(int64)"}


def expected_input_specs(gm: GraphMeta) -> dict[str, tuple[str, tuple[int | None, ...]]]:
    """{input name: (onnx type, shape)} the graph must declare; None = a dynamic (batch) dimension."""
    f = _ONNX_DTYPES["float32"]
    out: dict[str, tuple[str, tuple[int | None, ...]]] = {}
    for k, g in enumerate(gm.groups):
        if g.kind == "none":
            continue
        if g.kind in ("float16", "float32"):
            out[f"g{k}.values"] = (f, (None, g.d))
        else:
            out[f"g{k}.packed"] = (_ONNX_DTYPES["uint8"], (None, (g.d * g.bits + 7) // 8))
        if g.kind == "symmetric_per_sample":
            out[f"g{k}.scale"] = (f, (None,))
        elif g.kind == "uniform_clip":
            out[f"g{k}.alpha"] = (f, (g.d if g.per_feature else 1,))
        elif g.kind == "codebook":
            out[f"g{k}.levels"] = (f, (1 << g.bits,))
    out["labels"] = (_ONNX_DTYPES["int64"], (None,))
    epoch = gm.variant == "epoch"
    if epoch:
        out["batches"] = (_ONNX_DTYPES["int64"], (None, None))
    for h in gm.loss_input_names + list(HYPER_NAMES[gm.optimizer]):
        out[h] = (f, (None,) if epoch and h in PER_STEP_HYPER else ())
    if epoch:
        p = gm.model.num_params()
        out[THETA] = (f, (p,))
        out.update({n: (f, (p,)) for n in gm.flat_state_names})
        return out
    shapes = dict(gm.model.param_shapes())
    for n in gm.param_names:
        out[n] = (f, shapes[n])
    for n in gm.state_names:
        out[n] = (f, shapes[n.rsplit(".", 1)[0]])
    return out


def check_session(sess: ort.InferenceSession, gm: GraphMeta) -> None:
    """The graph's real inputs and outputs are those its (validated) self-description implies, with the
    dtypes and static shapes the model spec gives: a graph whose metadata lies about its model is refused
    before any parameter is allocated."""
    ins = {i.name: i for i in sess.get_inputs()}
    if [i.name for i in sess.get_inputs()] != list(gm.inputs):
        raise SchemaError("training graph inputs do not match its metadata (corrupted or hand-edited graph); "
                          "export it again")
    if [o.name for o in sess.get_outputs()] != list(gm.outputs):
        raise SchemaError("training graph outputs do not match its metadata (corrupted or hand-edited graph); "
                          "export it again")
    for name, (dtype, shape) in expected_input_specs(gm).items():
        got = ins[name]
        dims = tuple(d if isinstance(d, int) else None for d in (got.shape or []))
        if got.type != dtype or len(dims) != len(shape) or any(
                w is not None and g != w for g, w in zip(dims, shape, strict=True)):  # static dims must match
            raise SchemaError(f"training graph input {name!r} is {got.type} {list(got.shape or [])}, its metadata "
                              f"implies {dtype} {[d if d is not None else 'B' for d in shape]}; export it again")


def check_groups(graph: TrainGraph, payload_groups: list[Any], num_classes: int) -> None:
    """The graph must consume exactly the payload's groups (same order, kind, bits, d, role, alpha shape)."""
    gg = graph.groups
    if len(gg) != len(payload_groups):
        raise DeviceError(f"graph expects {len(gg)} groups, payload has {len(payload_groups)}")
    for k, (g, p) in enumerate(zip(gg, payload_groups, strict=True)):
        got = (p.kind, int(p.bits), int(p.d), p.role)
        want = (g["kind"], int(g["bits"]), int(g["d"]), g["role"])
        if got != want:
            raise DeviceError(f"group {k}: payload has (kind, bits, d, role) = {got}, graph expects {want}")
        if p.kind == "uniform_clip":
            a = p.params()["alpha"].reshape(-1)
            if (a.shape[0] > 1) != bool(g["per_feature"]):
                raise DeviceError(f"group {k}: alpha shape {a.shape} does not match the graph's per_feature flag")
    if graph.model.num_classes != num_classes:
        raise DeviceError(f"graph model has {graph.model.num_classes} classes, payload {num_classes}")


# ------------------------------------------------------------------ feeding and running the graph

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
            for h in ("soft_weight", "label_smoothing"):  # loss scalars: one value for the whole run
                if h in hypers[chunk.steps[0]]:
                    feed[h] = np.asarray(hypers[chunk.steps[0]][h], np.float32)
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

"""Load a training graph on the device and check it against the payload that names it.

The graph's self-description (``metadata_props["edge_sdk.train_graph"]``, JSON written by the server exporter;
input/output names in docs/onnx-graph.md) tells the device which groups it consumes, the model spec and the
optimizer. The payload header carries the graph's ``sha256`` and ``size``; :func:`load_train_graph` refuses a
graph whose bytes do not match.
"""

from __future__ import annotations

import hashlib
import json
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

__all__ = ["GRAPH_FORMAT", "META_KEY", "SUPPORTED_VERSIONS", "TrainGraph", "check_groups", "load_train_graph"]


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
    for h in (["soft_weight"] if gm.has_soft else []) + list(HYPER_NAMES[gm.optimizer]):
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

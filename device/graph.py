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

from edge_sdk.errors import DeviceError
from edge_sdk.modelspec import ModelSpec

META_KEY = "edge_sdk.train_graph"
GRAPH_FORMAT = "edge-sdk-train-graph"
#: format version -> graph variant (docs/onnx-graph.md): 1 = "step" (one optimizer step per run, per-tensor
#: parameters), 2 = "epoch" (K steps per run in an ONNX Loop, flat parameter vector, rows decoded once per run)
SUPPORTED_VERSIONS = (1, 2)
VERSION_VARIANT = {1: "step", 2: "epoch"}


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
        return [f"theta.{s}" for s in self.meta["state_suffixes"]]

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
                f"graph does not match the payload: payload names sha256 {want[:16]}... ({expected.get('size')} B), "
                f"got {digest[:16]}... ({len(data)} B); use the graph exported together with this payload"
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
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise DeviceError(f"training graph metadata is not JSON: {exc}") from exc
    if meta.get("format") != GRAPH_FORMAT or meta.get("version") not in SUPPORTED_VERSIONS:
        raise DeviceError(f"unsupported training graph format {meta.get('format')!r} v{meta.get('version')}; "
                          f"this runtime reads {GRAPH_FORMAT} v{SUPPORTED_VERSIONS}")
    names = [i.name for i in sess.get_inputs()]
    if names != meta.get("inputs"):
        raise DeviceError("training graph inputs do not match its metadata (corrupted or hand-edited graph)")
    graph = TrainGraph(session=sess, meta=meta, sha256=digest, size=len(data))
    if graph.variant == "epoch" and (meta.get("variant") != "epoch"
                                     or meta.get("theta_size") != graph.model.num_params()):
        raise DeviceError("epoch training graph metadata is inconsistent (variant / theta_size do not match the "
                          "model); re-export the graph")
    return graph


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

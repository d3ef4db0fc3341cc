"""The inference model on the device: written from the trained weights (:func:`mlp_inference_model`) and
evaluated on the device's local beam measurements with the beam KPIs (:func:`evaluate_beam`).

Evaluation: ``features = BeamTaskSpec.inputs(ds)`` (task spec from the payload header or the model's metadata), scores =
model logits ``[N, n_tx]``, KPIs from :func:`edge_sdk.beam.kpis.beam_kpis` against
``BeamTaskSpec.target_rsrp(ds)`` (Top-K accuracy, Top-1 within 1 dB, RSRP difference; TR 38.843 Sec. 6.3).

Writing (:func:`mlp_inference_model`): a standalone inference ONNX model (ModelSpec kinds ``mlp`` and ``gru``) with
the trained weights as initializers, written without the ``onnx`` package (the device venv has only numpy +
onnxruntime): a minimal protobuf encoder for the few ``onnx.proto`` messages needed (ModelProto, GraphProto,
NodeProto, TensorProto, ValueInfoProto, ...).

Graph ``mlp``: ``features`` float32 ``[N, D]`` -> ``Gemm(transB=1)`` -> ``Relu`` ... -> ``Gemm`` -> ``logits``
``[N, C]``. Graph ``gru``: ``Reshape`` to ``[N, K, F]``, then per step ``Gather`` the step, gate ``Gemm`` s,
``Sigmoid``/``Tanh``/``Mul``/``Add``/``Sub`` (the GRU cell of edge_sdk.modelspec, unrolled over K; h_0 = 0),
``logits = Gemm(h_K, head) + Gemm(x_K, skip)``.
Opset 13 (Gemm/Relu unchanged since), IR version 7: loads in every onnxruntime >= 1.8.
Field numbers are those of onnx/onnx.proto (proto2); repeated ints are written unpacked, as proto2 does.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import onnxruntime as ort

from edge_sdk.beam.h5reader import H5ReadOptions
from edge_sdk.errors import DeviceError
from edge_sdk.modelspec import ModelSpec


def inference_session(model: bytes | str | os.PathLike[str], threads: int = 1) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    src = model if isinstance(model, bytes) else os.fspath(model)
    try:
        return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise DeviceError(f"onnxruntime cannot load the model: {exc}") from exc


def predict(sess: ort.InferenceSession, x: np.ndarray, batch: int = 4096) -> np.ndarray:
    """Logits float32 [N, C] for features float32 [N, D]."""
    name = sess.get_inputs()[0].name
    outs = [sess.run(None, {name: np.ascontiguousarray(x[s: s + batch], np.float32)})[0]
            for s in range(0, len(x), batch)]
    return np.concatenate(outs) if outs else np.zeros((0, 0), np.float32)


def task_of_model(sess: ort.InferenceSession) -> dict[str, Any] | None:
    raw = sess.get_modelmeta().custom_metadata_map.get("edge_sdk.task")
    return json.loads(raw) if raw else None


def check_eval_data(data_path: str | os.PathLike[str], h5: H5ReadOptions | None = None) -> int:
    """Validate the metadata and storage of the HDF5 file ``data_path`` without reading its values (no rows,
    compression bombs, links out of the file: docs/dataset-hdf5.md); returns its row count. ``device train
    --eval`` runs this before training, so a bad file costs no training time."""
    from edge_sdk.beam.h5reader import open_beam_h5

    with open_beam_h5(data_path, **(h5 or H5ReadOptions()).kwargs()) as f:
        return f.n


def evaluate_beam(model: bytes | str | os.PathLike[str], data_path: str | os.PathLike[str],
                  task: dict[str, Any] | None = None, h5: H5ReadOptions | None = None) -> dict[str, float]:
    """Beam KPIs of ``model`` on the HDF5 file ``data_path`` (read as ``h5`` allows, default
    :class:`H5ReadOptions`); ``task`` defaults to the model's own metadata."""
    from edge_sdk.beam.h5reader import read_beam_h5
    from edge_sdk.beam.kpis import beam_kpis
    from edge_sdk.beam.taskspec import BeamTaskSpec

    sess = inference_session(model)
    task = task or task_of_model(sess)
    if not task or task.get("kind") != "beam" or "beam" not in task:
        raise DeviceError("no beam task spec: pass --task-from PAYLOAD (the model's metadata has none)")
    spec = BeamTaskSpec.from_dict(task["beam"])
    ds = read_beam_h5(data_path, **(h5 or H5ReadOptions()).kwargs())
    x = spec.inputs(ds)
    r = spec.target_rsrp(ds)
    in_dim = sess.get_inputs()[0].shape[1]
    if isinstance(in_dim, int) and x.shape[1] != in_dim:
        raise DeviceError(f"task gives {x.shape[1]} input features, the model expects {in_dim}")
    kpis = beam_kpis(predict(sess, x), r)
    return {**{k: float(v) for k, v in kpis.items()}, "n": int(len(x))}


# --- writing the inference model (module docstring: a minimal ONNX protobuf encoder) ---

IR_VERSION = 7
OPSET = 13
FLOAT = 1  # TensorProto.DataType.FLOAT
INT64 = 7  # TensorProto.DataType.INT64
ATTR_INT = 2  # AttributeProto.AttributeType.INT


def _varint(v: int) -> bytes:
    if v < 0:
        v += 1 << 64
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _varint((field << 3) | wire)


def _int(field: int, v: int) -> bytes:
    return _key(field, 0) + _varint(int(v))


def _bytes(field: int, data: bytes) -> bytes:
    return _key(field, 2) + _varint(len(data)) + data


def _str(field: int, s: str) -> bytes:
    return _bytes(field, s.encode("utf-8"))


def _tensor(name: str, arr: np.ndarray) -> bytes:
    a = np.asarray(arr, dtype="<f4")  # not ascontiguousarray: it turns a 0-d scalar into shape (1,)
    return b"".join(_int(1, d) for d in a.shape) + _int(2, FLOAT) + _str(8, name) + _bytes(9, a.tobytes())


def _int64_tensor(name: str, arr: np.ndarray) -> bytes:
    a = np.asarray(arr, dtype="<i8")
    return b"".join(_int(1, d) for d in a.shape) + _int(2, INT64) + _str(8, name) + _bytes(9, a.tobytes())


def _value_info(name: str, dims: list[int | str]) -> bytes:
    shape = b"".join(
        _bytes(1, _int(1, d) if isinstance(d, int) else _str(2, d)) for d in dims
    )  # TensorShapeProto.dim -> Dimension{dim_value | dim_param}
    tensor_type = _int(1, FLOAT) + _bytes(2, shape)
    return _str(1, name) + _bytes(2, _bytes(1, tensor_type))


def _node(op: str, inputs: list[str], outputs: list[str], name: str, int_attrs: Mapping[str, int] | None = None) -> bytes:
    body = b"".join(_str(1, i) for i in inputs) + b"".join(_str(2, o) for o in outputs) + _str(3, name) + _str(4, op)
    for k, v in (int_attrs or {}).items():
        body += _bytes(5, _str(1, k) + _int(3, v) + _int(20, ATTR_INT))
    return body


def mlp_inference_model(spec: ModelSpec, params: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None = None) -> bytes:
    """Serialized ONNX ModelProto of ``spec`` (kind ``mlp`` or ``gru``) with ``params`` (ModelSpec names) as
    initializers."""
    if spec.kind not in ("mlp", "gru"):
        raise DeviceError(f"inference export supports ModelSpec kinds 'mlp' and 'gru', got {spec.kind!r}")
    shapes = dict(spec.param_shapes())
    for n, s in shapes.items():
        if n not in params or tuple(np.shape(params[n])) != tuple(s):
            raise DeviceError(f"parameter {n!r} missing or not of shape {s}")
    nodes, inits = _gru_graph(spec, params) if spec.kind == "gru" else _mlp_graph(spec, params)
    graph = (
        b"".join(_bytes(1, n) for n in nodes)
        + _str(2, f"edge_sdk_{spec.kind}")
        + b"".join(_bytes(5, t) for t in inits)
        + _bytes(11, _value_info("features", ["N", spec.input_dim]))
        + _bytes(12, _value_info("logits", ["N", spec.num_classes]))
    )
    meta = {"edge_sdk.model": json.dumps(spec.to_dict(), sort_keys=True, separators=(",", ":")), **(metadata or {})}
    model = (
        _int(1, IR_VERSION)
        + _str(2, "edge-sdk-device")
        + _bytes(7, graph)
        + _bytes(8, _str(1, "") + _int(2, OPSET))
        + b"".join(_bytes(14, _str(1, k) + _str(2, v)) for k, v in meta.items())
    )
    return model


def _mlp_graph(spec: ModelSpec, params: Mapping[str, np.ndarray]) -> tuple[list[bytes], list[bytes]]:
    n_layers = len(spec.param_shapes()) // 2
    nodes, inits = [], []
    h = "features"
    for i in range(n_layers):
        w, b = f"fc{i}.weight", f"fc{i}.bias"
        inits += [_tensor(w, params[w]), _tensor(b, params[b])]
        out = "logits" if i == n_layers - 1 else f"h{i}"
        nodes.append(_node("Gemm", [h, w, b], [out if i == n_layers - 1 else f"z{i}"], f"fc{i}", {"transB": 1}))
        if i < n_layers - 1:
            nodes.append(_node("Relu", [f"z{i}"], [out], f"relu{i}"))
        h = out
    return nodes, inits


def _gru_graph(spec: ModelSpec, params: Mapping[str, np.ndarray]) -> tuple[list[bytes], list[bytes]]:
    """The GRU of kind ``gru`` unrolled over its K steps (gate order r, z, n as torch.nn.GRU; h_0 = 0)."""
    k, f = spec.in_shape
    (hid,) = spec.hidden
    w_ih, w_hh = np.asarray(params["gru.weight_ih"]), np.asarray(params["gru.weight_hh"])
    b_ih, b_hh = np.asarray(params["gru.bias_ih"]), np.asarray(params["gru.bias_hh"])
    inits = [_int64_tensor("shape3", np.array([0, k, f])), _tensor("one", np.ones((), np.float32)),
             _tensor("head.weight", params["head.weight"]), _tensor("head.bias", params["head.bias"]),
             _tensor("skip.weight", params["skip.weight"])]
    for g, gate in enumerate("rzn"):
        sl = slice(g * hid, (g + 1) * hid)
        inits += [_tensor(f"w_i{gate}", w_ih[sl]), _tensor(f"b_i{gate}", b_ih[sl]), _tensor(f"b_h{gate}", b_hh[sl])]
        if k > 1:  # with one step h_0 = 0 never meets W_h
            inits.append(_tensor(f"w_h{gate}", w_hh[sl]))
    inits += [_int64_tensor(f"t{t}", np.array(t)) for t in range(k)]
    nodes = [_node("Reshape", ["features", "shape3"], ["xsteps"], "reshape")]
    h: str | None = None  # name of the current state; None = h_0 = 0
    for t in range(k):
        nodes.append(_node("Gather", ["xsteps", f"t{t}"], [f"x{t}"], f"step{t}", {"axis": 1}))
        for gate in "rzn":
            nodes.append(_node("Gemm", [f"x{t}", f"w_i{gate}", f"b_i{gate}"], [f"i{gate}{t}"], f"i{gate}{t}",
                               {"transB": 1}))
            if h is None:  # h_0 = 0: the hidden-side gate term is its bias
                gh = f"b_h{gate}"
            else:
                gh = f"h{gate}{t}"
                nodes.append(_node("Gemm", [h, f"w_h{gate}", f"b_h{gate}"], [gh], gh, {"transB": 1}))
            if gate == "n":
                nodes.append(_node("Mul", [f"r{t}", gh], [f"rh{t}"], f"rh{t}"))
                nodes.append(_node("Add", [f"in{t}", f"rh{t}"], [f"an{t}"], f"an{t}"))
                nodes.append(_node("Tanh", [f"an{t}"], [f"n{t}"], f"tanh{t}"))
            else:
                nodes.append(_node("Add", [f"i{gate}{t}", gh], [f"a{gate}{t}"], f"a{gate}{t}"))
                nodes.append(_node("Sigmoid", [f"a{gate}{t}"], [f"{gate}{t}"], f"sig{gate}{t}"))
        nodes.append(_node("Sub", ["one", f"z{t}"], [f"omz{t}"], f"omz{t}"))
        new = f"h{t + 1}"
        if h is None:
            nodes.append(_node("Mul", [f"omz{t}", f"n{t}"], [new], f"upd{t}"))
        else:
            nodes.append(_node("Mul", [f"omz{t}", f"n{t}"], [f"u{t}"], f"u{t}"))
            nodes.append(_node("Mul", [f"z{t}", h], [f"zh{t}"], f"zh{t}"))
            nodes.append(_node("Add", [f"u{t}", f"zh{t}"], [new], f"upd{t}"))
        h = new
    nodes.append(_node("Gemm", [f"h{k}", "head.weight", "head.bias"], ["head"], "head", {"transB": 1}))
    nodes.append(_node("Gemm", [f"x{k - 1}", "skip.weight"], ["skip"], "skip", {"transB": 1}))
    nodes.append(_node("Add", ["head", "skip"], ["logits"], "logits"))
    return nodes, inits

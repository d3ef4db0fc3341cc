"""A standalone MLP inference ONNX model with the trained weights as initializers, written without the
``onnx`` package (the device venv has only numpy + onnxruntime): a minimal protobuf encoder for the few
``onnx.proto`` messages needed (ModelProto, GraphProto, NodeProto, TensorProto, ValueInfoProto, ...).

Graph: ``features`` float32 ``[N, D]`` -> ``Gemm(transB=1)`` -> ``Relu`` ... -> ``Gemm`` -> ``logits`` ``[N, C]``.
Opset 13 (Gemm/Relu unchanged since), IR version 7: loads in every onnxruntime >= 1.8.
Field numbers are those of onnx/onnx.proto (proto2); repeated ints are written unpacked, as proto2 does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np

from edge_sdk.errors import DeviceError
from edge_sdk.modelspec import ModelSpec

IR_VERSION = 7
OPSET = 13
FLOAT = 1  # TensorProto.DataType.FLOAT
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
    a = np.ascontiguousarray(arr, dtype="<f4")
    return b"".join(_int(1, d) for d in a.shape) + _int(2, FLOAT) + _str(8, name) + _bytes(9, a.tobytes())


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
    """Serialized ONNX ModelProto of the MLP ``spec`` with ``params`` (ModelSpec names) as initializers."""
    if spec.kind != "mlp":
        raise DeviceError(f"inference export supports ModelSpec kind 'mlp' only, got {spec.kind!r}")
    shapes = dict(spec.param_shapes())
    for n, s in shapes.items():
        if n not in params or tuple(np.shape(params[n])) != tuple(s):
            raise DeviceError(f"parameter {n!r} missing or not of shape {s}")
    n_layers = len(shapes) // 2
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
    graph = (
        b"".join(_bytes(1, n) for n in nodes)
        + _str(2, "edge_sdk_mlp")
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

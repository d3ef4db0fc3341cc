"""Compact set <-> payload v1 (edge_sdk.payload): one helper for every server method (distill and ADQ).

API::

    from edge_sdk.server.payload_io import CompactSet, compact_from_codec, compact_from_quantizer, \
        compact_float, to_groups, layouts_for, planned_size, write_compact, read_compact
    cs = compact_from_codec(X, y, kind="uniform_clip", bits=2, params={"alpha": a})   # quantize with codecs
    cs = compact_from_quantizer(X_syn, y, torch_quantizer)                           # learned QuADD params
    cs = compact_float(X, y, "float32")                                               # raw float32/float16
    info = write_compact(path, cs, num_classes=C, task=task, provenance=prov)       # atomic, PayloadInfo
    X_hat, y, soft, payload = read_compact(path)                                      # what a device decodes
    nbytes = planned_size(kind, bits, n, d, num_classes=C, task=task, provenance=prov, ...)  # no data

``cs.X`` is float32 ``[N, D]``: the values *as decoded from the payload* (``codecs.dequantize`` of the
stored codes), so evaluating on ``cs.X`` evaluates exactly what the device will train on.

Groups written: one ``role="samples"`` group named ``"samples"`` (hard labels attached) and, with soft
labels, one ``role="soft_labels"`` group ``"soft"`` (``d = num_classes``; rows are *logits*, targets are
``softmax(row)``; stored with ``soft_kind`` — default ``uniform_clip`` 8 bit with one alpha per class,
or ``float16``). Everything is counted by ``payload_size``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge_sdk import codecs
from edge_sdk.errors import ConfigError


@dataclass
class CompactSet:
    """A compact training set ready to be written (shapes: ``X`` [N, D], ``y`` [N], ``soft`` [N, C])."""

    X: np.ndarray
    y: np.ndarray
    kind: str
    bits: int
    data: np.ndarray  # uint8 codes [N, D] for quantized kinds; float array for raw kinds
    params: dict[str, np.ndarray] = field(default_factory=dict)
    per_feature: bool = False
    soft: np.ndarray | None = None  # decoded soft-label logits [N, C]
    soft_data: np.ndarray | None = None
    soft_kind: str = "uniform_clip"
    soft_bits: int = 8
    soft_params: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.X.shape[0])

    @property
    def d(self) -> int:
        return int(self.X.shape[1])

    def targets(self) -> np.ndarray:
        """Training targets: soft logits [N, C] when present, else hard labels [N]."""
        return self.soft if self.soft is not None else self.y


def _check_xy(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    X = np.ascontiguousarray(X, np.float32)
    y = np.asarray(y, np.int64).reshape(-1)
    if X.ndim != 2 or X.shape[0] != y.shape[0]:
        raise ConfigError(f"compact set needs X [N, D] and y [N]; got {X.shape} and {y.shape}")
    if not np.all(np.isfinite(X)):
        raise ConfigError("compact set contains non-finite values")
    return X, y


def _encode_soft(cs: CompactSet, soft: np.ndarray | None, soft_kind: str, soft_bits: int) -> CompactSet:
    if soft is None:
        return cs
    soft = np.ascontiguousarray(soft, np.float32)
    if soft.shape[0] != cs.n:
        raise ConfigError("soft labels need one row per sample")
    if soft_kind == "float16":
        data = soft.astype(np.float16)
        cs.soft, cs.soft_data, cs.soft_kind, cs.soft_bits, cs.soft_params = data.astype(np.float32), data, "float16", 16, {}
        return cs
    if soft_kind != "uniform_clip":
        raise ConfigError("soft labels are stored as 'uniform_clip' or 'float16'")
    alpha = np.maximum(np.abs(soft).max(axis=0), 1e-3).astype(np.float32)
    codes, params = codecs.quantize(soft, "uniform_clip", soft_bits, {"alpha": alpha})
    cs.soft = codecs.dequantize(codes, "uniform_clip", soft_bits, params)
    cs.soft_data, cs.soft_kind, cs.soft_bits, cs.soft_params = codes, "uniform_clip", soft_bits, params
    return cs


def compact_float(X, y, kind: str = "float32", soft=None, soft_kind: str = "uniform_clip", soft_bits: int = 8) -> CompactSet:
    """Raw float32 / float16 samples."""
    X, y = _check_xy(X, y)
    if kind not in codecs.RAW_KINDS:
        raise ConfigError(f"compact_float needs kind float32 or float16, got {kind!r}")
    data = X.astype(np.float16 if kind == "float16" else np.float32)
    cs = CompactSet(data.astype(np.float32), y, kind, codecs.RAW_KINDS[kind], data)
    return _encode_soft(cs, soft, soft_kind, soft_bits)


def compact_from_codec(X, y, kind: str, bits: int, params: dict[str, np.ndarray] | None = None, per_feature: bool = False,
                       soft=None, soft_kind: str = "uniform_clip", soft_bits: int = 8) -> CompactSet:
    """Quantize ``X`` with ``codecs.quantize(kind, bits, params)`` (raw kinds go to :func:`compact_float`)."""
    if kind in codecs.RAW_KINDS:
        return compact_float(X, y, kind, soft, soft_kind, soft_bits)
    X, y = _check_xy(X, y)
    codes, p = codecs.quantize(X, kind, bits, params)
    Xh = codecs.dequantize(codes, kind, bits, p)
    cs = CompactSet(Xh, y, kind, bits, codes, p, per_feature=per_feature)
    return _encode_soft(cs, soft, soft_kind, soft_bits)


def compact_from_quantizer(X, y, quantizer, soft=None, soft_kind: str = "uniform_clip", soft_bits: int = 8) -> CompactSet:
    """Store ``X`` with a learned :mod:`edge_sdk.server.torch_quant` quantizer's parameters."""
    params = quantizer.export_params()
    per_feature = "alpha" in params and params["alpha"].shape[0] > 1
    Xn = X.detach().cpu().numpy() if hasattr(X, "detach") else X
    return compact_from_codec(Xn, y, quantizer.kind, quantizer.bits, params, per_feature, soft, soft_kind, soft_bits)


def to_groups(cs: CompactSet) -> list:
    """``edge_sdk.payload.SampleGroup`` list for ``cs``."""
    from edge_sdk.payload import SampleGroup

    gs = [SampleGroup(name="samples", kind=cs.kind, bits=cs.bits, data=cs.data, params=dict(cs.params),
                      labels=cs.y, role="samples")]
    if cs.soft_data is not None:
        gs.append(SampleGroup(name="soft", kind=cs.soft_kind, bits=cs.soft_bits, data=cs.soft_data,
                              params=dict(cs.soft_params), labels=None, role="soft_labels"))
    return gs


def layouts_for(kind: str, bits: int, n: int, d: int, num_classes: int, per_feature: bool = False,
                soft: bool = False, soft_kind: str = "uniform_clip", soft_bits: int = 8) -> list:
    """``GroupLayout`` list matching :func:`to_groups` for a set of ``n`` x ``d`` values (no data needed)."""
    from edge_sdk.payload import GroupLayout

    out = [GroupLayout(name="samples", role="samples", kind=kind, bits=bits, n=n, d=d,
                       param_shapes=codecs.param_shapes(kind, bits, n, d, per_feature),
                       extra_shapes={}, meta={})]
    if soft:
        out.append(GroupLayout(name="soft", role="soft_labels", kind=soft_kind, bits=soft_bits, n=n, d=num_classes,
                               param_shapes=codecs.param_shapes(soft_kind, soft_bits, n, num_classes, True),
                               extra_shapes={}, meta={}))
    return out


def planned_size(kind: str, bits: int, n: int, d: int, *, num_classes: int, task: dict[str, Any],
                 provenance: dict[str, Any], per_feature: bool = False, soft: bool = False,
                 soft_kind: str = "uniform_clip", soft_bits: int = 8, graph: dict | None = None, signed: bool = False) -> int:
    """Exact file size of the payload :func:`write_compact` would write (``edge_sdk.payload.payload_size``)."""
    from edge_sdk.payload import payload_size

    lay = layouts_for(kind, bits, n, d, num_classes, per_feature, soft, soft_kind, soft_bits)
    return int(payload_size(lay, num_classes=num_classes, task=task, provenance=provenance, graph=graph, signed=signed))


def write_compact(path: str | os.PathLike, cs: CompactSet, *, num_classes: int, task: dict[str, Any],
                  provenance: dict[str, Any], graph: dict | None = None, signing_key=None, budget_bytes: int | None = None):
    """Write ``cs`` as payload v1 (atomic). Refuses (ConfigError) to write a file larger than ``budget_bytes``."""
    from edge_sdk.payload import payload_size, write_payload

    groups = to_groups(cs)
    if budget_bytes is not None:
        size = payload_size([g.layout() for g in groups], num_classes=num_classes, task=task,
                            provenance=provenance, graph=graph, signed=signing_key is not None)
        if size > budget_bytes:
            raise ConfigError(f"compact set needs {size} bytes, over the budget of {budget_bytes} bytes")
    info = write_payload(path, groups, num_classes=num_classes, task=task, provenance=provenance,
                         graph=graph, signing_key=signing_key)
    if budget_bytes is not None and info.size > budget_bytes:  # pragma: no cover - payload_size is exact
        os.unlink(path)
        raise ConfigError(f"written payload is {info.size} bytes, over the budget of {budget_bytes}")
    return info


def read_compact(path: str | os.PathLike, **kw: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, Any]:
    """``(X float32 [N, D], y int64 [N], soft logits [N, C] or None, Payload)`` decoded from a payload."""
    from edge_sdk.payload import read_payload

    p = read_payload(path, **kw)
    X, y = p.samples()
    return X, y, p.soft_labels(), p

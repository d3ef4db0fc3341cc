"""Stored set <-> payload v1 or v2: the one path from a method's result to a payload file, for every method family.

API::

    from edge_sdk.server.payload_io import (CompactSet, Storage, SoftStorage, PayloadCost, compact_from_codec,
        compact_from_quantizer, compact_float, write_compact, read_compact)
    cs = compact_from_codec(X, y, Storage("uniform_clip", 2), params={"alpha": a})   # quantize with codecs
    cs = compact_from_quantizer(X_syn, y, torch_quantizer, soft=logits)               # learned QuADD params
    cs = compact_float(X, y, "float32")                                               # raw float32/float16
    cs = CompactSet.from_groups([SampleGroup(...), ...])                              # any layout (ADQ: one per width)
    cost = PayloadCost(num_classes=C, task=task, provenance=prov, graph=digest)      # everything but the groups
    cost.size(storage.layouts(n, d, C)) == cost.size(cs.layouts())                    # exact file size, no data
    info = write_compact(path, cs, cost, budget_bytes=B)                             # atomic; refuses > B bytes
    X_hat, y, soft, payload = read_compact(path)                                      # what a device decodes

A :class:`CompactSet` is the groups that will be written (``edge_sdk.payload.SampleGroup``, in payload order)
plus their decoded values ``X`` float32 [N, D], labels ``y`` int64 [N] and soft-label logits ``soft`` [N, C]
(or None), decoded with ``edge_sdk.codecs`` exactly as a device decodes the payload (the ``samples`` groups with
bits > 0 concatenated in order, ``Payload.samples()``), so evaluating ``X`` evaluates what the device trains on.

Layouts: a distillation-style set is one ``role="samples"`` group ``"samples"`` (hard labels attached) and, with
soft labels, one ``role="soft_labels"`` group ``"soft"`` (``d = num_classes``; rows are *logits*, targets are
``softmax(row)``; stored as :class:`SoftStorage`: ``uniform_clip`` 8 bit with one alpha per class, or
``float16``) — :class:`Storage` describes it. ADQ stores one group per bit width (``edge_sdk.server.adq``).
Everything is counted by :class:`PayloadCost` (``edge_sdk.payload.payload_size``).

``PayloadCost(payload_format=2)`` (docs/payload-format.md "Version 2.0"): the lean payload (binary header with the
recipe ``task["train"]``, labels as class counts, rows stored in class order) plus the task blob ``task.json``
(task spec + graph digest, shared by every payload of a release) written beside it; the payload names the blob by
SHA-256 and a reader finds it beside the payload. Only v2 holds the affine kinds. Sizes count the payload file (the
blob is sent once per release and cached, like the graph); the provenance is not stored in v2.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from edge_sdk import codecs
from edge_sdk.errors import ConfigError
from edge_sdk.payload import (
    GroupLayout,
    PayloadInfo,
    SampleGroup,
    payload_size,
    payload_size_v2,
    read_payload,
    write_payload,
    write_payload_v2,
)

#: payload format versions the server writes (``PayloadCost.payload_format``); 1 is the default. A release of v2
#: payloads carries their task blob (``edge-sdk store add`` / ``device fetch``, docs/transfer.md "Task blobs")
PAYLOAD_FORMATS = (1, 2)
#: a v2 payload names its task blob by SHA-256
TASK_DIGEST_BYTES = 32

SOFT_KINDS = ("uniform_clip", "float16")


@dataclass(frozen=True)
class SoftStorage:
    """How soft-label logits [N, C] are stored: ``uniform_clip`` (``bits``, one alpha per class) or ``float16``."""

    kind: str = "uniform_clip"
    bits: int = 8

    def __post_init__(self) -> None:
        if self.kind not in SOFT_KINDS:
            raise ConfigError(f"soft labels are stored as {SOFT_KINDS}, got {self.kind!r}")
        if self.kind == "float16" and self.bits != 16:
            object.__setattr__(self, "bits", 16)
        codecs.check_kind_bits(self.kind, self.bits)


@dataclass(frozen=True)
class Storage:
    """How a set of samples is stored as one ``samples`` group: payload ``kind`` and ``bits`` (``per_feature``:
    one ``uniform_clip`` alpha per feature), plus ``soft`` labels when not None."""

    kind: str
    bits: int
    per_feature: bool = False
    soft: SoftStorage | None = None

    def __post_init__(self) -> None:
        codecs.check_kind_bits(self.kind, self.bits)
        if self.per_feature and self.kind != "uniform_clip":
            object.__setattr__(self, "per_feature", False)  # only uniform_clip has per-feature thresholds

    def layouts(self, n: int, d: int, num_classes: int) -> list[GroupLayout]:
        """``GroupLayout``s of ``n`` samples of ``d`` values stored this way (no data needed)."""
        out = [GroupLayout(name="samples", role="samples", kind=self.kind, bits=self.bits, n=n, d=d,
                           param_shapes=codecs.param_shapes(self.kind, self.bits, n, d, self.per_feature))]
        if self.soft is not None:
            s = self.soft
            out.append(GroupLayout(name="soft", role="soft_labels", kind=s.kind, bits=s.bits, n=n, d=num_classes,
                                   param_shapes=codecs.param_shapes(s.kind, s.bits, n, num_classes, True),
                                   labeled=False))
        return out


@dataclass(frozen=True)
class PayloadCost:
    """Everything in a payload but the groups: ``num_classes``, the header's ``task`` and ``provenance`` dicts,
    the training graph's digest ``graph`` (``{"sha256", "size"}`` or None) and whether it will be ``signed``.

    Fix it before planning and pass the same object to :func:`write_compact`, so the planned size is the written
    size. ``size(layouts)`` is exact (``edge_sdk.payload.payload_size``)."""

    num_classes: int
    task: Mapping[str, Any] = field(default_factory=dict)
    provenance: Mapping[str, Any] = field(default_factory=dict)
    graph: Mapping[str, Any] | None = None
    signed: bool = False
    payload_format: int = 1

    def __post_init__(self) -> None:
        if self.payload_format not in PAYLOAD_FORMATS:
            raise ConfigError(f"unknown payload format {self.payload_format!r}; the server writes {list(PAYLOAD_FORMATS)}")

    def size(self, layouts: Sequence[GroupLayout]) -> int:
        if self.payload_format == 2:
            return int(payload_size_v2(list(layouts), self.num_classes, task_digest=bytes(TASK_DIGEST_BYTES),
                                       recipe=self.task.get("train"), signed=self.signed))
        return int(payload_size(list(layouts), num_classes=self.num_classes, task=dict(self.task),
                                provenance=dict(self.provenance), graph=dict(self.graph) if self.graph else None,
                                signed=self.signed))

    def with_graph(self, graph: Mapping[str, Any] | None) -> PayloadCost:
        return replace(self, graph=dict(graph) if graph is not None else None)


def decode_group(g: SampleGroup) -> np.ndarray:
    """float32 [n, d] values of a group, as a device decodes them (``codecs.dequantize`` / raw floats)."""
    if g.kind in codecs.RAW_KINDS:
        return np.asarray(g.data, np.float32)
    return codecs.dequantize(np.asarray(g.data), g.kind, g.bits, dict(g.params or {}))


@dataclass(frozen=True)
class CompactSet:
    """Groups to write (payload order) + their decoded values (module docstring). Build with
    :meth:`from_groups` or the ``compact_*`` helpers; ``info`` holds method details for the report."""

    groups: tuple[SampleGroup, ...]
    X: np.ndarray
    y: np.ndarray
    soft: np.ndarray | None = None
    info: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_groups(cls, groups: Sequence[SampleGroup], info: Mapping[str, Any] | None = None) -> CompactSet:
        xs, ys, softs = [], [], []
        for g in groups:
            if g.role == "samples" and g.bits > 0:
                if g.labels is None:
                    raise ConfigError(f"group {g.name!r} stores samples without labels")
                xs.append(decode_group(g))
                ys.append(np.asarray(g.labels, np.int64))
            elif g.role == "soft_labels":
                softs.append(decode_group(g))
        if not xs:
            raise ConfigError("the compact set stores no sample")
        X = np.ascontiguousarray(np.concatenate(xs), np.float32)
        soft = np.ascontiguousarray(np.concatenate(softs), np.float32) if softs else None
        if soft is not None and soft.shape[0] != X.shape[0]:
            raise ConfigError(f"soft labels cover {soft.shape[0]} rows, samples {X.shape[0]}")
        return cls(tuple(groups), X, np.concatenate(ys), soft, dict(info or {}))

    @property
    def n(self) -> int:
        return int(self.X.shape[0])

    @property
    def d(self) -> int:
        return int(self.X.shape[1])

    def layouts(self) -> list[GroupLayout]:
        return [g.layout() for g in self.groups]

    def with_info(self, **info: Any) -> CompactSet:
        return replace(self, info={**self.info, **info})


def _check_xy(X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    X = np.ascontiguousarray(X, np.float32)
    y = np.asarray(y, np.int64).reshape(-1)
    if X.ndim != 2 or X.shape[0] != y.shape[0]:
        raise ConfigError(f"compact set needs X [N, D] and y [N]; got {X.shape} and {y.shape}")
    if not np.all(np.isfinite(X)):
        raise ConfigError("compact set contains non-finite values")
    return X, y


def _soft_group(soft: Any, n: int, storage: SoftStorage) -> SampleGroup:
    s = np.ascontiguousarray(soft, np.float32)
    if s.ndim != 2 or s.shape[0] != n:
        raise ConfigError("soft labels need one row per sample")
    if storage.kind == "float16":
        return SampleGroup(name="soft", kind="float16", bits=16, data=s.astype(np.float16), params={},
                           labels=None, role="soft_labels")
    alpha = np.maximum(np.abs(s).max(axis=0), 1e-3).astype(np.float32)
    codes, params = codecs.quantize(s, "uniform_clip", storage.bits, {"alpha": alpha})
    return SampleGroup(name="soft", kind="uniform_clip", bits=storage.bits, data=codes, params=params, labels=None,
                       role="soft_labels")


def compact_float(X: Any, y: Any, kind: str = "float32", soft: Any = None,
                  soft_storage: SoftStorage = SoftStorage()) -> CompactSet:
    """Raw float32 / float16 samples (+ soft labels)."""
    X, y = _check_xy(X, y)
    if kind not in codecs.RAW_KINDS:
        raise ConfigError(f"compact_float needs kind float32 or float16, got {kind!r}")
    groups = [SampleGroup(name="samples", kind=kind, bits=codecs.RAW_KINDS[kind],
                          data=X.astype(np.float16 if kind == "float16" else np.float32), params={}, labels=y)]
    if soft is not None:
        groups.append(_soft_group(soft, len(y), soft_storage))
    return CompactSet.from_groups(groups)


def compact_from_codec(X: Any, y: Any, storage: Storage, params: Mapping[str, np.ndarray] | None = None,
                       soft: Any = None) -> CompactSet:
    """Quantize ``X`` with ``codecs.quantize(storage.kind, storage.bits, params)`` (raw kinds: stored as is)."""
    if storage.kind in codecs.RAW_KINDS:
        return compact_float(X, y, storage.kind, soft, storage.soft or SoftStorage())
    X, y = _check_xy(X, y)
    codes, p = codecs.quantize(X, storage.kind, storage.bits, dict(params) if params is not None else None)
    groups = [SampleGroup(name="samples", kind=storage.kind, bits=storage.bits, data=codes, params=p, labels=y)]
    if soft is not None:
        groups.append(_soft_group(soft, len(y), storage.soft or SoftStorage()))
    return CompactSet.from_groups(groups)


def compact_from_quantizer(X: Any, y: Any, quantizer: Any, soft: Any = None,
                           soft_storage: SoftStorage = SoftStorage()) -> CompactSet:
    """Store ``X`` [N, D] with a learned :mod:`edge_sdk.server.torch_quant` quantizer's parameters."""
    params = quantizer.export_params()
    per_feature = "alpha" in params and params["alpha"].shape[0] > 1
    Xn = X.detach().cpu().numpy() if hasattr(X, "detach") else X
    storage = Storage(quantizer.kind, quantizer.bits, per_feature, soft_storage if soft is not None else None)
    return compact_from_codec(Xn, y, storage, params, soft)


def write_compact(path: str | os.PathLike[str], cs: CompactSet, cost: PayloadCost, *,
                  budget_bytes: int | None = None, planned_bytes: int | None = None,
                  signing_key: Any = None) -> PayloadInfo:
    """Write ``cs`` as payload v1 or v2 (``cost.payload_format``; v2 also writes the task blob ``task.json``
    beside it; atomic) with ``cost``'s header. Refuses (ConfigError) a file larger than
    ``budget_bytes`` before writing, and checks the written size against ``planned_bytes`` (the plan's size)."""
    if (signing_key is not None) != cost.signed:
        raise ConfigError("sign the payload exactly when its cost was planned as signed (PayloadCost.signed)")
    size = cost.size(cs.layouts())
    if budget_bytes is not None and size > budget_bytes:
        raise ConfigError(f"compact set needs {size} bytes, over the budget of {budget_bytes} bytes")
    if planned_bytes is not None and size != planned_bytes:
        raise ConfigError(f"payload would be {size} B but {planned_bytes} B were planned (accounting mismatch)")
    if cost.payload_format == 2:
        from pathlib import Path

        from edge_sdk.payload.taskblob import TASK_BLOB_NAME, write_task_blob

        blob = write_task_blob(Path(path).parent / TASK_BLOB_NAME, dict(cost.task),
                               dict(cost.graph) if cost.graph else None)
        info = write_payload_v2(path, list(cs.groups), cost.num_classes, task_digest=blob.digest,
                                recipe=cost.task.get("train"), signing_key=signing_key)
    else:
        info = write_payload(path, list(cs.groups), num_classes=cost.num_classes, task=dict(cost.task),
                             provenance=dict(cost.provenance), graph=dict(cost.graph) if cost.graph else None,
                             signing_key=signing_key)
    if info.size != size:  # pragma: no cover - payload_size is exact (tested)
        os.unlink(path)
        raise ConfigError(f"written payload is {info.size} bytes, {size} were computed")
    return info


def read_compact(path: str | os.PathLike[str], **kw: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, Any]:
    """``(X float32 [N, D], y int64 [N], soft logits [N, C] or None, Payload)`` decoded from a payload."""
    p = read_payload(path, **kw)
    X, y = p.samples()
    if y is None:
        raise ConfigError(f"{path} holds no labels; a compact set for training needs them")
    return X, y, p.soft_labels(), p

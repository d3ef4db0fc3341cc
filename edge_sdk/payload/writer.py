"""Writing payloads: :class:`SampleGroup`, :func:`write_payload`, :func:`payload_size`, :func:`sign_payload`.

``payload_size`` and ``write_payload`` share one code path (:func:`edge_sdk.payload.format.plan_payload`),
so the size is exact before anything is written (CRCs are fixed-width hex, so they do not change it).
"""

from __future__ import annotations

import hashlib
import os
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_sdk import codecs
from edge_sdk.atomic import atomic_write_chunks
from edge_sdk.bitpack import pack_rows, pack_uint
from edge_sdk.errors import ConfigError
from edge_sdk.payload.format import (
    FLAG_SIGNED,
    FORMAT_MAJOR,
    FORMAT_MINOR,
    MAGIC,
    GroupLayout,
    dtype_code,
    file_size,
    plan_payload,
)
from edge_sdk.payload.signing import sign_digest


@dataclass
class SampleGroup:
    """N samples x D values of one quantizer kind/width (see docs/contracts.md, "Payload v1").

    ``data``: uint8 codes [N, D] for quantized kinds, a float array [N, D] for float16/float32, None for
    kind "none" (then give ``n`` and ``d``). ``params``: {name: array} with the shapes of
    ``codecs.param_shapes`` (stored float32, or float16 if passed as float16). ``labels``: int [N] hard labels
    in ``[0, num_classes)`` (not stored for bits = 0 groups or role "soft_labels"). ``extra``: {name: numeric
    array} stored as typed sections; ``meta``: small JSON dict stored in the header.
    """

    name: str
    kind: str
    bits: int
    data: np.ndarray | None = None
    params: Mapping[str, np.ndarray] | None = None
    labels: np.ndarray | None = None
    role: str = "samples"
    n: int | None = None
    d: int | None = None
    extra: Mapping[str, np.ndarray] = field(default_factory=dict)
    meta: Mapping[str, Any] = field(default_factory=dict)
    #: payload v2 only: {param: "f4" | "f2" | "q8" | "c4"}; a :class:`Q8Param` value implies "q8", a float16
    #: array "f2"; "c4" needs an array whose values are all equal
    param_encodings: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            codecs.check_kind_bits(self.kind, self.bits)
        except codecs.CodecError as exc:
            raise ConfigError(f"group {self.name!r}: {exc}") from exc
        if self.data is not None and self.kind != "none":
            a = np.asarray(self.data)
            if a.ndim != 2:
                raise ConfigError(f"group {self.name!r}: data must be 2-D [N, D], got shape {a.shape}")
            for attr, val in (("n", a.shape[0]), ("d", a.shape[1])):
                given = getattr(self, attr)
                if given is not None and given != val:
                    raise ConfigError(f"group {self.name!r}: {attr}={given} but data has {val}")
            self.n, self.d = int(a.shape[0]), int(a.shape[1])
            if self.kind in codecs.RAW_KINDS:
                if a.dtype.kind not in "fiu":
                    raise ConfigError(f"group {self.name!r}: raw data must be numeric, got {a.dtype}")
                with np.errstate(over="ignore"):  # out of float16 range -> inf, refused just below
                    self.data = np.ascontiguousarray(a, dtype="<f2" if self.kind == "float16" else "<f4")
                if not np.isfinite(self.data).all():
                    raise ConfigError(f"group {self.name!r}: raw values must be finite (NaN, inf, or out of the "
                                      f"{self.kind} range)")
            else:
                if a.dtype.kind not in "ui":
                    raise ConfigError(f"group {self.name!r}: codes must be unsigned ints, got {a.dtype}")
                top = codecs.code_max(self.kind, self.bits)
                if a.size and (int(a.min()) < 0 or int(a.max()) > top):
                    raise ConfigError(f"group {self.name!r}: {self.kind} codes at {self.bits} bits must lie in "
                                      f"[0, {top}]; got [{int(a.min())}, {int(a.max())}]")
                self.data = a
        elif self.kind == "none":
            if self.data is not None:
                a = np.asarray(self.data)
                self.n = int(a.shape[0]) if self.n is None else self.n
                if self.d is None:
                    self.d = int(a.shape[1]) if a.ndim == 2 else 0
            self.data = None
        if self.n is None or self.d is None:
            raise ConfigError(f"group {self.name!r}: data is None, so give n and d")
        if self.n < 0 or self.d < 0:
            raise ConfigError(f"group {self.name!r}: n and d must be >= 0")
        self.n, self.d = int(self.n), int(self.d)
        if self.bits > 0 and self.data is None:
            raise ConfigError(f"group {self.name!r}: kind {self.kind} needs data [N, D]")
        need = codecs.param_shapes(self.kind, self.bits, self.n, self.d)
        given = dict(self.params or {})
        if set(given) != set(need):
            raise ConfigError(f"group {self.name!r} ({self.kind}): params must be {sorted(need)}, got {sorted(given)}")
        enc = dict(self.param_encodings or {})
        self.q8: dict[str, Q8Param] = {}
        for k, v in given.items():
            if isinstance(v, Q8Param):
                if enc.get(k, "q8") != "q8":
                    raise ConfigError(f"group {self.name!r}: param {k!r} is a Q8Param but its encoding is {enc[k]!r}")
                self.q8[k] = v
                enc[k] = "q8"
                given[k] = v.values()
        self.params = {
            k: np.ascontiguousarray(np.asarray(v).reshape(-1), dtype="<f2" if np.asarray(v).dtype == np.float16 else "<f4")
            for k, v in given.items()
        }
        for k, v in self.params.items():
            e = enc.setdefault(k, "f2" if v.dtype == np.float16 else "f4")
            if e not in ("f4", "f2", "q8", "c4") or (e == "q8" and k not in self.q8):
                raise ConfigError(f"group {self.name!r}: param {k!r} encoding {e!r} needs f4, f2, c4, or a Q8Param for q8")
            if (e == "f2") != (v.dtype == np.float16):
                raise ConfigError(f"group {self.name!r}: param {k!r} encoding f2 needs a float16 array (and only f2 does)")
            if e == "c4" and v.size and not np.all(v == v[0]):
                raise ConfigError(f"group {self.name!r}: param {k!r} encoding c4 needs all values equal")
        self.param_encodings = enc
        problem = codecs.param_problem(self.kind, self.bits, self.params)
        if problem is not None:
            raise ConfigError(f"group {self.name!r}: {problem}")
        if self.labels is not None:
            lab = np.asarray(self.labels)
            if lab.dtype.kind not in "ui" or lab.shape != (self.n,):
                raise ConfigError(f"group {self.name!r}: labels must be ints of shape [{self.n}], got {lab.dtype} {lab.shape}")
            if self.role == "soft_labels":
                raise ConfigError(f"group {self.name!r}: a soft-label group carries no hard labels")
            self.labels = lab
        ex = {}
        for k, v in dict(self.extra or {}).items():
            a = np.asarray(v)
            ex[str(k)] = np.ascontiguousarray(a, dtype=np.dtype(a.dtype).newbyteorder("<"))
            dtype_code(a.dtype)
        self.extra = ex
        self.meta = dict(self.meta or {})

    def layout(self, labeled: bool | None = None) -> GroupLayout:
        """The :class:`GroupLayout` of this group (``labeled`` defaults to "labels were given")."""
        assert self.params is not None and self.n is not None and self.d is not None
        return GroupLayout(
            name=self.name, role=self.role, kind=self.kind, bits=self.bits, n=self.n, d=self.d,
            param_shapes={k: v.shape for k, v in self.params.items()},
            extra_shapes={k: (v.shape, v.dtype) for k, v in self.extra.items()},
            meta=self.meta,
            param_dtypes=dict(self.param_encodings),
            labeled=self.labels is not None if labeled is None else labeled,
        )

    def section_arrays(self) -> list[np.ndarray]:
        """Section contents in the writer's order: data, params (sorted), extras (sorted)."""
        out = []
        if self.bits > 0:
            assert self.data is not None
            if self.kind in codecs.RAW_KINDS:
                out.append(self.data)
            else:
                out.append(pack_rows(self.data, self.bits))
        assert self.params is not None
        for k in sorted(self.params):
            e = self.param_encodings.get(k, "f4")
            if e == "q8":
                q = self.q8[k]
                out.append(np.frombuffer(np.array([q.base, q.step], "<f4").tobytes() + q.codes.astype(np.uint8).tobytes(), np.uint8))
            elif e == "c4":
                out.append(np.asarray(self.params[k][:1] if self.params[k].size else np.zeros(1), "<f4"))
            else:
                out.append(self.params[k])
        out += [self.extra[k] for k in sorted(self.extra)]
        return out


@dataclass(frozen=True)
class Q8Param:
    """A parameter array on an 8-bit grid (payload v2 encoding ``q8``): ``value[i] = base + codes[i] * step``,
    one float32 product then one float32 sum. ``Q8Param.fit(values, rounding)`` builds one."""

    base: float
    step: float
    codes: np.ndarray

    def __post_init__(self) -> None:
        c = np.asarray(self.codes)
        if c.ndim != 1 or c.dtype.kind not in "ui" or (c.size and (c.min() < 0 or c.max() > 255)):
            raise ConfigError("Q8Param codes must be a 1-D array of integers in 0..255")
        if not (np.isfinite(np.float32(self.base)) and np.isfinite(np.float32(self.step)) and np.float32(self.step) >= 0):
            raise ConfigError("Q8Param base must be finite and step finite and >= 0")
        object.__setattr__(self, "codes", np.ascontiguousarray(c, np.uint8))
        object.__setattr__(self, "base", float(np.float32(self.base)))
        object.__setattr__(self, "step", float(np.float32(self.step)))

    def values(self) -> np.ndarray:
        return np.float32(self.base) + self.codes.astype(np.float32) * np.float32(self.step)

    @classmethod
    def fit(cls, values: np.ndarray, rounding: str = "nearest") -> Q8Param:
        """Grid from min to max of ``values`` in 255 steps; codes rounded ``nearest``, ``down`` (every stored value
        <= the given one, e.g. an affine ``lo``) or ``up`` (>=, e.g. ``hi`` or a scale)."""
        v = np.asarray(values, np.float32).reshape(-1)
        if v.size == 0:
            return cls(0.0, 0.0, np.zeros(0, np.uint8))
        if rounding not in ("nearest", "down", "up"):
            raise ConfigError(f"rounding must be 'nearest', 'down' or 'up', got {rounding!r}")
        base, top = np.float32(v.min()), np.float32(v.max())
        step = np.float32(np.float32(top - base) / np.float32(255))
        if not step > 0:
            return cls(float(base), 0.0, np.zeros(v.size, np.uint8))
        for _ in range(16):
            r = (v - base) / step
            c = np.clip({"nearest": np.rint, "down": np.floor, "up": np.ceil}[rounding](r), 0, 255).astype(np.int64)
            vals = base + c.astype(np.float32) * step
            # float32 rounding can put a grid value one ulp on the wrong side: move that code one step
            if rounding == "down":
                c = np.where(vals > v, np.maximum(c - 1, 0), c)
            elif rounding == "up":
                c = np.where(vals < v, np.minimum(c + 1, 255), c)
            q = cls(float(base), float(step), c.astype(np.uint8))
            vals = q.values()
            if rounding == "nearest" or (rounding == "down" and np.all(vals <= v)) or (rounding == "up" and np.all(vals >= v)):
                return q
            step = np.nextafter(step, np.float32(np.inf))  # the grid's top fell short of the maximum
        raise ConfigError("could not fit a q8 grid that bounds the values (non-finite or extreme range)")


def make_provenance(method: str, *, budget: Any = None, source_sha256: str | None = None, seed: int | None = None,
                    **extra: Any) -> dict[str, Any]:
    """The provenance dict for the header: method, budget, source dataset digest, library version, seed and
    any extra JSON fields (None values are dropped to keep the header small)."""
    from edge_sdk._version import __version__

    d: dict[str, Any] = {"method": method, "budget": budget, "source_sha256": source_sha256, "seed": seed,
                         "library_version": __version__, **extra}
    return {k: v for k, v in d.items() if v is not None}


@dataclass(frozen=True)
class PayloadInfo:
    """Result of a write: path, file size in bytes, content digest (hex SHA-256), signer key id or None."""

    path: Path | None
    size: int
    sha256: str
    key_id: str | None = None


def _layouts(groups: Sequence[SampleGroup | GroupLayout]) -> list[GroupLayout]:
    return [g.layout() if isinstance(g, SampleGroup) else g for g in groups]


def payload_size(groups: Sequence[SampleGroup | GroupLayout], num_classes: int, task: Mapping[str, Any] | None = None,
                 provenance: Mapping[str, Any] | None = None, graph: Mapping[str, Any] | None = None,
                 signed: bool = False) -> int:
    """Exact size in bytes of the payload :func:`write_payload` would write (no data needed)."""
    plan = plan_payload(_layouts(groups), num_classes, task or {}, provenance or {}, graph)
    return file_size(len(plan.header_bytes()), sum(plan.section_sizes), signed)


def _prefix(signed: bool, header_len: int) -> bytes:
    return (MAGIC + bytes([FORMAT_MAJOR, FORMAT_MINOR]) + (FLAG_SIGNED if signed else 0).to_bytes(2, "little")
            + header_len.to_bytes(4, "little"))


def _trailer(content_digest: bytes, signing_key: Ed25519PrivateKey | None) -> tuple[bytes, str | None]:
    if signing_key is None:
        return content_digest, None
    kid, sig = sign_digest(signing_key, content_digest)
    return content_digest + kid + sig, kid.hex()


def encode_chunks(groups: Sequence[SampleGroup], num_classes: int, task: Mapping[str, Any] | None = None,
                  provenance: Mapping[str, Any] | None = None, graph: Mapping[str, Any] | None = None,
                  signing_key: Ed25519PrivateKey | None = None) -> tuple[list[bytes | memoryview], str, str | None]:
    """(chunks of the payload bytes, content digest hex, key id hex or None)."""
    groups = list(groups)
    if not all(isinstance(g, SampleGroup) for g in groups):
        raise ConfigError("write_payload needs SampleGroup objects (layouts carry no data)")
    labeled = [g for g in groups if g.role == "samples" and g.bits > 0]
    has_labels = any(g.labels is not None for g in labeled)
    if has_labels and any(g.labels is None for g in labeled):
        missing = [g.name for g in labeled if g.labels is None]
        raise ConfigError(f"groups {missing} have no labels but others do: give labels for all or none")
    layouts = [g.layout(labeled=has_labels) for g in groups]
    plan = plan_payload(layouts, num_classes, task or {}, provenance or {}, graph)
    arrays: list[np.ndarray] = []
    for g in groups:
        arrays += g.section_arrays()
    if has_labels:
        lab = np.concatenate([np.asarray(g.labels).reshape(-1).astype(np.int64) for g in labeled])
        if lab.size and (lab.min() < 0 or lab.max() >= num_classes):
            raise ConfigError(f"labels must lie in [0, {num_classes}); got range [{lab.min()}, {lab.max()}]")
        arrays.append(pack_uint(lab.astype(np.uint16), codecs.label_bits(num_classes)))
    chunks = [np.ascontiguousarray(a).reshape(-1).view(np.uint8).data for a in arrays]
    sizes = [c.nbytes for c in chunks]
    if sizes != plan.section_sizes:  # pragma: no cover - guards the single-code-path invariant
        raise AssertionError(f"section sizes {sizes} != planned {plan.section_sizes}")
    header = plan.header_bytes([zlib.crc32(c) for c in chunks])
    prefix = _prefix(signing_key is not None, len(header))
    h = hashlib.sha256(prefix)
    h.update(header)
    for c in chunks:
        h.update(c)
    digest = h.digest()
    trailer, kid = _trailer(digest, signing_key)
    return [prefix, header, *chunks, trailer], digest.hex(), kid


def encode_payload(groups: Sequence[SampleGroup], num_classes: int, task: Mapping[str, Any] | None = None,
                   provenance: Mapping[str, Any] | None = None, graph: Mapping[str, Any] | None = None,
                   signing_key: Ed25519PrivateKey | None = None) -> bytes:
    """The payload as bytes (same bytes :func:`write_payload` writes)."""
    chunks, _, _ = encode_chunks(groups, num_classes, task, provenance, graph, signing_key)
    return b"".join(chunks)


def write_payload(path: str | os.PathLike, groups: Sequence[SampleGroup], num_classes: int,
                  task: Mapping[str, Any] | None = None, provenance: Mapping[str, Any] | None = None,
                  graph: Mapping[str, Any] | None = None,
                  signing_key: Ed25519PrivateKey | None = None) -> PayloadInfo:
    """Write a v1 payload atomically; returns :class:`PayloadInfo` (size, content digest, key id)."""
    chunks, digest, kid = encode_chunks(groups, num_classes, task, provenance, graph, signing_key)
    p = atomic_write_chunks(path, chunks)
    return PayloadInfo(p, sum(len(c) if isinstance(c, bytes) else c.nbytes for c in chunks), digest, kid)


# ------------------------------------------------------------------------------------------ format v2
def _prefix_v2(flags: int, header_len: int) -> bytes:
    from edge_sdk.payload.format_v2 import FORMAT_MAJOR_V2, FORMAT_MINOR_V2

    return MAGIC + bytes([FORMAT_MAJOR_V2, FORMAT_MINOR_V2]) + flags.to_bytes(2, "little") + header_len.to_bytes(4, "little")


def _trailer_v2(content_digest: bytes, signing_key: Ed25519PrivateKey | None) -> tuple[bytes, str | None]:
    """Unsigned: the 32-byte SHA-256; signed: 8-byte key id + Ed25519 signature of domain v2 + digest."""
    from edge_sdk.payload.format_v2 import KEY_ID_SIZE_V2, SIGNATURE_DOMAIN_V2
    from edge_sdk.payload.signing import key_id

    if signing_key is None:
        return content_digest, None
    if not isinstance(signing_key, Ed25519PrivateKey):
        raise ConfigError(f"signing needs an Ed25519PrivateKey, got {type(signing_key).__name__}")
    kid = bytes.fromhex(key_id(signing_key))
    sig = signing_key.sign(SIGNATURE_DOMAIN_V2 + content_digest)
    return kid[:KEY_ID_SIZE_V2] + sig, kid[:KEY_ID_SIZE_V2].hex()


def _sorted_by_class(g: SampleGroup) -> SampleGroup:
    """``g`` with its rows ordered by hard label (stable); per-sample params and q8 codes follow the rows."""
    assert g.labels is not None and g.params is not None
    order = np.argsort(np.asarray(g.labels), kind="stable")
    if np.all(order == np.arange(order.size)):
        return g
    per_sample = g.kind in ("symmetric_per_sample", "affine_sample")
    params: dict[str, Any] = {}
    for k, v in g.params.items():
        if k in g.q8:
            q = g.q8[k]
            params[k] = Q8Param(q.base, q.step, q.codes[order]) if per_sample and q.codes.size == g.n else q
        else:
            params[k] = v[order] if per_sample and v.shape == (g.n,) else v
    data = None if g.data is None else np.asarray(g.data)[order]
    return SampleGroup(name=g.name, kind=g.kind, bits=g.bits, data=data, params=params,
                       labels=np.asarray(g.labels)[order], role=g.role, n=g.n, d=g.d,
                       param_encodings=g.param_encodings)


def _plan_v2(groups: Sequence[SampleGroup | GroupLayout], num_classes: int, task_digest: bytes | None,
             recipe: Mapping[str, Any] | None, label_mode: str) -> Any:
    from edge_sdk.payload.format_v2 import plan_payload_v2

    return plan_payload_v2(_layouts(groups), num_classes, task_digest=task_digest, recipe=recipe, label_mode=label_mode)


def payload_size_v2(groups: Sequence[SampleGroup | GroupLayout], num_classes: int, *, task_digest: bytes | None = None,
                    recipe: Mapping[str, Any] | None = None, label_mode: str = "counts", signed: bool = False) -> int:
    """Exact size of the v2 file :func:`write_payload_v2` writes for these groups (no data needed)."""
    from edge_sdk.payload.format import DIGEST_SIZE, PREFIX_SIZE
    from edge_sdk.payload.format_v2 import KEY_ID_SIZE_V2, SIGNATURE_SIZE_V2

    plan = _plan_v2(groups, num_classes, task_digest, recipe, label_mode)
    trailer = KEY_ID_SIZE_V2 + SIGNATURE_SIZE_V2 if signed else DIGEST_SIZE
    return PREFIX_SIZE + len(plan.header) + sum(plan.section_sizes) + trailer


def encode_chunks_v2(groups: Sequence[SampleGroup], num_classes: int, *, task_digest: bytes | None = None,
                     recipe: Mapping[str, Any] | None = None, label_mode: str = "counts",
                     signing_key: Ed25519PrivateKey | None = None) -> tuple[list[bytes | memoryview], str, str | None]:
    """(chunks of the v2 payload bytes, content digest hex, key id hex or None). With ``label_mode="counts"``
    the rows of every labeled group are written in class order (stable)."""
    from edge_sdk.payload.format_v2 import label_count_bits

    groups = list(groups)
    if not all(isinstance(g, SampleGroup) for g in groups):
        raise ConfigError("write_payload_v2 needs SampleGroup objects (layouts carry no data)")
    labeled = [g for g in groups if g.role == "samples" and g.bits > 0]
    has_labels = any(g.labels is not None for g in labeled)
    if has_labels and any(g.labels is None for g in labeled):
        raise ConfigError(f"groups {[g.name for g in labeled if g.labels is None]} have no labels but others do")
    for g in labeled:
        lab = g.labels
        if lab is not None and lab.size and (int(lab.min()) < 0 or int(lab.max()) >= num_classes):
            raise ConfigError(f"labels must lie in [0, {num_classes}); got range [{lab.min()}, {lab.max()}]")
    if label_mode == "counts" and has_labels:
        if any(g.role == "soft_labels" for g in groups):
            raise ConfigError("label_mode='counts' reorders rows by class, which soft-label rows cannot follow; "
                              "use label_mode='packed' with soft labels")
        groups = [_sorted_by_class(g) if (g.role == "samples" and g.bits > 0) else g for g in groups]
        labeled = [g for g in groups if g.role == "samples" and g.bits > 0]
    plan = _plan_v2(groups, num_classes, task_digest, recipe, label_mode)
    arrays: list[np.ndarray] = []
    for g in groups:
        arrays += g.section_arrays()
    if has_labels and label_mode == "packed":
        lab = np.concatenate([np.asarray(g.labels).reshape(-1).astype(np.int64) for g in labeled])
        arrays.append(pack_uint(lab.astype(np.uint16), codecs.label_bits(num_classes)))
    elif has_labels:
        for g in labeled:
            counts = np.bincount(np.asarray(g.labels, np.int64), minlength=num_classes).astype(np.uint32)
            arrays.append(pack_uint(counts, label_count_bits(g.n)) if g.n else np.zeros(0, np.uint8))
    chunks = [np.ascontiguousarray(a).reshape(-1).view(np.uint8).data for a in arrays]
    sizes = [c.nbytes for c in chunks]
    if sizes != plan.section_sizes:  # pragma: no cover - guards the single-code-path invariant
        raise AssertionError(f"section sizes {sizes} != planned {plan.section_sizes}")
    flags = plan.flags | (FLAG_SIGNED if signing_key is not None else 0)
    prefix = _prefix_v2(flags, len(plan.header))
    h = hashlib.sha256(prefix)
    h.update(plan.header)
    for c in chunks:
        h.update(c)
    digest = h.digest()
    trailer, kid = _trailer_v2(digest, signing_key)
    return [prefix, plan.header, *chunks, trailer], digest.hex(), kid


def encode_payload_v2(groups: Sequence[SampleGroup], num_classes: int, **kw: Any) -> bytes:
    """The v2 payload as bytes (same bytes :func:`write_payload_v2` writes); keywords of :func:`encode_chunks_v2`."""
    chunks, _, _ = encode_chunks_v2(groups, num_classes, **kw)
    return b"".join(chunks)


def write_payload_v2(path: str | os.PathLike, groups: Sequence[SampleGroup], num_classes: int, **kw: Any) -> PayloadInfo:
    """Write a v2 payload atomically (keywords: ``task_digest``, ``recipe``, ``label_mode``, ``signing_key``)."""
    chunks, digest, kid = encode_chunks_v2(groups, num_classes, **kw)
    p = atomic_write_chunks(path, chunks)
    return PayloadInfo(p, sum(len(c) if isinstance(c, bytes) else c.nbytes for c in chunks), digest, kid)


def sign_payload(path: str | os.PathLike, private_key: Ed25519PrivateKey) -> PayloadInfo:
    """Sign (or re-sign) a payload file in place, atomically: sets the signed flag, recomputes the content
    digest and appends key id + signature. The file is fully verified first (digest, structure, CRCs)."""
    from edge_sdk.payload.reader import read_payload

    with read_payload(path) as p:
        p.verify_sections()
        body = bytes(p.raw_content())  # prefix + header + data (old flags)
        version = p.version
    hlen = int.from_bytes(body[12:16], "little")
    if version[0] == 2:
        flags = int.from_bytes(body[10:12], "little") | FLAG_SIGNED
        prefix = _prefix_v2(flags, hlen)
        h = hashlib.sha256(prefix)
        h.update(memoryview(body)[16:])
        digest = h.digest()
        trailer, kid = _trailer_v2(digest, private_key)
        out = atomic_write_chunks(path, [prefix, memoryview(body)[16:], trailer])
        return PayloadInfo(out, len(body) + len(trailer), digest.hex(), kid)
    prefix = _prefix(True, hlen)
    h = hashlib.sha256(prefix)
    h.update(memoryview(body)[16:])
    digest = h.digest()
    trailer, kid = _trailer(digest, private_key)
    out = atomic_write_chunks(path, [prefix, memoryview(body)[16:], trailer])
    return PayloadInfo(out, len(body) + len(trailer), digest.hex(), kid)

"""Payload format v1: constants, the header schema, and the one code path that lays out a payload.

Byte layout (docs/payload-format.md is the spec; tests parse its byte table and compare with the constants
here):

====== =========== ============================================================================
offset size        field
====== =========== ============================================================================
0      8           magic ``MAGIC``
8      1           format major version (u8)
9      1           format minor version (u8)
10     2           flags (u16 LE): bit 0 = signed, all other bits 0
12     4           header length ``H`` in bytes (u32 LE), ``1 <= H <= HEADER_MAX_BYTES``
16     H           header: canonical JSON (UTF-8, sorted keys, separators ``,`` ``:``)
16+H   sum(len)    data sections, contiguous in section-table order
...    32          SHA-256 of every preceding byte (content digest)
...    32 (signed) key id = SHA-256 of the raw 32-byte Ed25519 public key
...    64 (signed) Ed25519 signature of ``SIGNATURE_DOMAIN + content digest``
====== =========== ============================================================================

Header JSON (v1), short keys because a beam payload is ~2 KB in total:
``{"c": num_classes, "g": [group...], "l": labels section | null, "o": [graph sha256 hex, graph size] | null,
"p": provenance {...}, "s": [[offset, length, crc32 hex8], ...], "t": task {...}}``; a group is
``{"id": name, "k": kind, "b": bits, "n": N, "d": D, "r": role (omitted for "samples"), "x": data section
(iff bits > 0), "q": {param: [section, dtype, shape]}, "e": {extra: [section, dtype, shape]}, "m": meta}``
(``q``/``e``/``m`` omitted when empty). Section offsets are relative to the start of the data area.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from edge_sdk import codecs
from edge_sdk.bitpack import packed_size, row_bytes
from edge_sdk.errors import ConfigError
from edge_sdk.payload.errors import BadOffsets, HeaderInvalid, LimitExceeded

MAGIC = b"\x89EPL\r\n\x1a\n"
FORMAT_MAJOR = 1
FORMAT_MINOR = 0
#: (major, minor) versions this reader accepts
SUPPORTED_VERSIONS = frozenset({(1, 0), (2, 0)})
#: quantizer kinds a v1.0 payload may hold (the affine kinds came with v2.0)
V1_KINDS = ("none", "float16", "float32", "symmetric_per_sample", "uniform_clip", "codebook")
PREFIX_SIZE = 16
DIGEST_SIZE = 32
KEY_ID_SIZE = 32
SIGNATURE_SIZE = 64
FLAG_SIGNED = 0x0001
KNOWN_FLAGS = FLAG_SIGNED
SIGNATURE_DOMAIN = b"edge-sdk payload v1 ed25519\x00"
CRC_HEX_DIGITS = 8

# ------------------------------------------------------------------------------------------ limits
HEADER_MAX_BYTES = 1 << 20  #: 1 MiB hard cap on the header, checked before it is read
MAX_GROUPS = 4096
MAX_SECTIONS = 65536
MAX_N = 1 << 24  #: samples per group
MAX_TOTAL_ROWS = 1 << 24  #: samples summed over all groups (bounds decoded label/row arrays)
MAX_D = 1 << 24  #: values per sample
MAX_VALUES = 1 << 34  #: n*d per group, and elements of one extra array
MAX_CLASSES = 1 << 16  #: num_classes (labels use at most 16 bits)
MAX_NDIM = 8  #: dimensions of an extra array
MAX_NAME_CHARS = 256
MAX_SECTION_BYTES = 1 << 40
MAX_JSON_DEPTH = 32  #: nesting of the header JSON (the header object itself is depth 1), checked before parsing
MAX_GRAPH_BYTES = (1 << 31) - 1  #: declared training-graph size: protobuf's ceiling for one serialized ONNX model

ROLES = ("samples", "soft_labels")
PARAM_DTYPES = ("f2", "f4")
EXTRA_DTYPES = ("u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "f2", "f4", "f8")
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
_HEX8 = re.compile(r"[0-9a-f]{8}\Z")
_PLACEHOLDER_CRC = "0" * CRC_HEX_DIGITS


def dtype_code(dtype: Any) -> str:
    """numpy dtype -> the format's little-endian code (``f4``, ``u1``, ...)."""
    dt = np.dtype(dtype)
    code = f"{dt.kind}{dt.itemsize}"
    if code not in EXTRA_DTYPES:
        raise ConfigError(f"dtype {dt} cannot be stored; use one of {EXTRA_DTYPES}")
    return code


def np_dtype(code: str) -> np.dtype:
    return np.dtype("<" + code)


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)


def json_depth(data: bytes) -> int:
    """Deepest nesting of ``[`` / ``{`` in JSON text ``data`` (brackets inside strings ignored), computed
    without parsing, so that a deep document is refused before a recursive parser sees it."""
    bare = np.frombuffer(_JSON_STRING.sub(b'""', data), np.uint8)
    step = np.isin(bare, (ord("["), ord("{"))).astype(np.int32) - np.isin(bare, (ord("]"), ord("}")))
    return int(np.cumsum(step).max(initial=0))


def canonical_json(obj: Any) -> bytes:
    """The one JSON encoding of the header: sorted keys, no whitespace, UTF-8, no NaN/Infinity."""
    try:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"header content is not JSON-serialisable (plain dict/list/str/int/float): {exc}") from exc


def _no_dupes(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise HeaderInvalid("header JSON has duplicate keys")
    return out


def _no_constants(name: str) -> Any:
    raise HeaderInvalid(f"header JSON contains {name}, which is not allowed")


def decode_header(hbytes: bytes) -> Any:
    """Strict JSON decode of header bytes (payload v1 header, task blob, manifest) (depth <= MAX_JSON_DEPTH, UTF-8, no duplicates, no NaN/Infinity,
    canonical)."""
    depth = json_depth(hbytes)
    if depth > MAX_JSON_DEPTH:
        raise LimitExceeded(f"header JSON nests {depth} levels deep, limit {MAX_JSON_DEPTH}")
    try:
        text = hbytes.decode("utf-8")
        obj = json.loads(text, object_pairs_hook=_no_dupes, parse_constant=_no_constants)
    except HeaderInvalid:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise HeaderInvalid(f"header is not valid UTF-8 JSON: {str(exc)[:120]}") from None
    try:
        canon = canonical_json(obj)
    except (ConfigError, ValueError, RecursionError) as exc:
        raise HeaderInvalid(f"header JSON cannot be re-encoded canonically: {str(exc)[:120]}") from None
    if canon != hbytes:
        raise HeaderInvalid("header JSON is not canonical (sorted keys, no whitespace, ',' ':' separators, UTF-8)")
    return obj


def crc_hex(crc: int) -> str:
    return f"{crc & 0xFFFFFFFF:08x}"


# ------------------------------------------------------------------------------------------ layout
@dataclass(frozen=True)
class GroupLayout:
    """Everything about a group that determines the payload bytes except the values themselves.

    ``param_shapes``: {name: shape} (from :func:`edge_sdk.codecs.param_shapes`); ``param_dtypes``:
    {name: "f4"|"f2"} (default f4); ``extra_shapes``: {name: (shape, dtype)}; ``labeled``: whether the
    group's hard labels are stored (only role "samples" with bits > 0 can be).
    """

    name: str
    role: str
    kind: str
    bits: int
    n: int
    d: int
    param_shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    extra_shapes: Mapping[str, tuple[tuple[int, ...], Any]] = field(default_factory=dict)
    meta: Mapping[str, Any] = field(default_factory=dict)
    param_dtypes: Mapping[str, str] = field(default_factory=dict)
    labeled: bool = True

    @classmethod
    def for_kind(cls, name: str, kind: str, bits: int, n: int, d: int, *, role: str = "samples",
                 per_feature: bool = False, **kw: Any) -> GroupLayout:
        """Layout with the parameter shapes ``codecs.param_shapes`` gives for this kind."""
        try:
            shapes = codecs.param_shapes(kind, bits, n, d, per_feature)
        except codecs.CodecError as exc:
            raise ConfigError(str(exc)) from exc
        return cls(name=name, role=role, kind=kind, bits=bits, n=n, d=d, param_shapes=shapes, **kw)

    @property
    def stores_labels(self) -> bool:
        return self.labeled and self.role == "samples" and self.bits > 0

    def data_nbytes(self) -> int:
        if self.bits == 0:
            return 0
        if self.kind in codecs.RAW_KINDS:
            return self.n * self.d * (self.bits // 8)
        return self.n * row_bytes(self.d, self.bits)


def _shape_ok(shape: Sequence[int]) -> tuple[int, ...]:
    try:
        out = tuple(int(s) for s in shape)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"shape must be a sequence of ints, got {shape!r}") from exc
    if any(s < 0 for s in out) or len(out) > MAX_NDIM:
        raise ConfigError(f"shape {out} must have <= {MAX_NDIM} non-negative dims")
    return out


def expected_param_shapes(kind: str, bits: int, n: int, d: int) -> dict[str, tuple[tuple[int, ...], ...]]:
    """{param: allowed shapes} for a kind (uniform_clip's alpha is per group [1] or per feature [D])."""
    out: dict[str, tuple[tuple[int, ...], ...]] = {}
    for name, shape in codecs.param_shapes(kind, bits, n, d, False).items():
        out[name] = (shape, (d,)) if kind == "uniform_clip" else (shape,)
    return out


def check_layouts(layouts: Sequence[GroupLayout], num_classes: int, kinds: Sequence[str] = V1_KINDS) -> None:
    """Writer-side rules (raise ConfigError): same rules the reader enforces on the header. ``kinds``: the
    quantizer kinds the format version allows (v1: :data:`V1_KINDS`)."""
    if not isinstance(num_classes, int) or not 1 <= num_classes <= MAX_CLASSES:
        raise ConfigError(f"num_classes must be an int in 1..{MAX_CLASSES}, got {num_classes!r}")
    if len(layouts) > MAX_GROUPS:
        raise ConfigError(f"at most {MAX_GROUPS} groups, got {len(layouts)}")
    names: set[str] = set()
    sample_d: set[int] = set()
    n_samples = n_soft = 0
    labeled = set()
    if sum(g.n for g in layouts) > MAX_TOTAL_ROWS:
        raise ConfigError(f"groups hold more than {MAX_TOTAL_ROWS} samples in total")
    for g in layouts:
        if not isinstance(g.name, str) or not 1 <= len(g.name) <= MAX_NAME_CHARS or g.name in names:
            raise ConfigError(f"group names must be unique non-empty strings <= {MAX_NAME_CHARS} chars: {g.name!r}")
        names.add(g.name)
        if g.role not in ROLES:
            raise ConfigError(f"group {g.name!r}: role must be one of {ROLES}, got {g.role!r}")
        try:
            codecs.check_kind_bits(g.kind, g.bits)
        except codecs.CodecError as exc:
            raise ConfigError(f"group {g.name!r}: {exc}") from exc
        if g.kind not in kinds:
            raise ConfigError(f"group {g.name!r}: kind {g.kind!r} needs payload format v2 (write_payload_v2)")
        if not (0 <= g.n <= MAX_N and 0 <= g.d <= MAX_D and g.n * g.d <= MAX_VALUES):
            raise ConfigError(f"group {g.name!r}: n={g.n}, d={g.d} outside limits (n <= {MAX_N}, d <= {MAX_D}, n*d <= {MAX_VALUES})")
        allowed = expected_param_shapes(g.kind, g.bits, g.n, g.d)
        if set(g.param_shapes) != set(allowed):
            raise ConfigError(f"group {g.name!r} ({g.kind}): params must be {sorted(allowed)}, got {sorted(g.param_shapes)}")
        for p, shp in g.param_shapes.items():
            if tuple(shp) not in allowed[p]:
                raise ConfigError(f"group {g.name!r}: param {p!r} shape {tuple(shp)} not in {allowed[p]}")
            if g.param_dtypes.get(p, "f4") not in PARAM_DTYPES:
                raise ConfigError(f"group {g.name!r}: param {p!r} dtype must be float32 or float16")
        for e, (shp, dt) in g.extra_shapes.items():
            if not isinstance(e, str) or not 1 <= len(e) <= MAX_NAME_CHARS:
                raise ConfigError(f"group {g.name!r}: extra names must be non-empty strings")
            shp = _shape_ok(shp)
            if int(np.prod(shp, dtype=object)) > MAX_VALUES:
                raise ConfigError(f"group {g.name!r}: extra {e!r} too large")
            dtype_code(dt)
        if g.role == "soft_labels":
            if g.d != num_classes or g.bits == 0:
                raise ConfigError(f"soft-label group {g.name!r} needs d == num_classes ({num_classes}) and bits > 0")
            n_soft += g.n
        elif g.bits > 0:
            sample_d.add(g.d)
            n_samples += g.n
            labeled.add(g.labeled)
    if len(sample_d) > 1:
        raise ConfigError(f"all sample groups with bits > 0 must share D; got {sorted(sample_d)}")
    if len(labeled) > 1:
        raise ConfigError("either every sample group with bits > 0 has labels, or none has")
    if n_soft and n_soft != n_samples:
        raise ConfigError(f"soft labels cover {n_soft} rows but there are {n_samples} samples (must align)")


@dataclass
class Plan:
    """The header (with placeholder CRCs) and the section sizes, in data order."""

    header: dict[str, Any]
    section_sizes: list[int]

    def header_bytes(self, crcs: Sequence[int] | None = None) -> bytes:
        if crcs is not None:
            for entry, crc in zip(self.header["s"], crcs, strict=True):
                entry[2] = crc_hex(crc)
        return canonical_json(self.header)


def plan_payload(layouts: Sequence[GroupLayout], num_classes: int, task: Mapping[str, Any],
                 provenance: Mapping[str, Any], graph: Mapping[str, Any] | None) -> Plan:
    """Lay out the sections and build the header: the single code path of writer and size function."""
    check_layouts(layouts, num_classes)
    if not isinstance(task, Mapping) or not isinstance(provenance, Mapping):
        raise ConfigError("task and provenance must be dicts")
    sizes: list[int] = []

    def add(nbytes: int) -> int:
        sizes.append(int(nbytes))
        return len(sizes) - 1

    groups = []
    n_labels = 0
    any_labels = False
    for g in layouts:
        h: dict[str, Any] = {"id": g.name, "k": g.kind, "b": int(g.bits), "n": int(g.n), "d": int(g.d)}
        if g.role != "samples":
            h["r"] = g.role
        if g.bits > 0:
            h["x"] = add(g.data_nbytes())
        if g.param_shapes:
            q = {}
            for p in sorted(g.param_shapes):
                shp = [int(s) for s in g.param_shapes[p]]
                dt = g.param_dtypes.get(p, "f4")
                q[p] = [add(int(np.prod(shp, dtype=object)) * np_dtype(dt).itemsize), dt, shp]
            h["q"] = q
        if g.extra_shapes:
            e = {}
            for name in sorted(g.extra_shapes):
                shp_t, dt = g.extra_shapes[name]
                shp = list(_shape_ok(shp_t))
                code = dtype_code(dt)
                e[name] = [add(int(np.prod(shp, dtype=object)) * np_dtype(code).itemsize), code, shp]
            h["e"] = e
        if g.meta:
            if not isinstance(g.meta, Mapping):
                raise ConfigError(f"group {g.name!r}: meta must be a dict")
            h["m"] = dict(g.meta)
        if g.stores_labels:
            any_labels = True
            n_labels += g.n
        groups.append(h)
    label_sec = add(packed_size(n_labels, codecs.label_bits(num_classes))) if any_labels else None
    if graph is not None:
        try:
            gsha, gsize = str(graph["sha256"]).lower(), int(graph["size"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError("graph must be None or {'sha256': hex, 'size': int}") from exc
        if not _HEX64.match(gsha) or not 1 <= gsize <= MAX_GRAPH_BYTES:
            raise ConfigError(f"graph sha256 must be 64 hex chars and size in 1..{MAX_GRAPH_BYTES}")
        graph_h: list[Any] | None = [gsha, gsize]
    else:
        graph_h = None
    if len(sizes) > MAX_SECTIONS:
        raise ConfigError(f"at most {MAX_SECTIONS} sections, got {len(sizes)}")
    offs = np.concatenate([[0], np.cumsum(sizes, dtype=object)]).tolist() if sizes else [0]
    header = {
        "c": int(num_classes),
        "g": groups,
        "l": label_sec,
        "o": graph_h,
        "p": dict(provenance),
        "s": [[int(offs[i]), sizes[i], _PLACEHOLDER_CRC] for i in range(len(sizes))],
        "t": dict(task),
    }
    hb = canonical_json(header)
    if len(hb) > HEADER_MAX_BYTES:
        raise ConfigError(f"header is {len(hb)} bytes; the format caps it at {HEADER_MAX_BYTES} (shrink task/provenance/meta)")
    if json_depth(hb) > MAX_JSON_DEPTH:
        raise ConfigError(f"header JSON nests deeper than {MAX_JSON_DEPTH} levels (flatten task/provenance/meta)")
    return Plan(header=header, section_sizes=sizes)


def file_size(header_len: int, data_len: int, signed: bool) -> int:
    return PREFIX_SIZE + header_len + data_len + DIGEST_SIZE + (KEY_ID_SIZE + SIGNATURE_SIZE if signed else 0)


# ------------------------------------------------------------------------------------ reader schema
@dataclass(frozen=True)
class ArrayRef:
    section: int
    dtype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class GroupDesc:
    """A validated group entry of the header."""

    index: int
    name: str
    role: str
    kind: str
    bits: int
    n: int
    d: int
    data: int | None
    params: dict[str, ArrayRef]
    extras: dict[str, ArrayRef]
    meta: dict[str, Any]
    label_start: int | None  # first index into the label stream, or None when no labels are stored


@dataclass(frozen=True)
class HeaderDesc:
    num_classes: int
    groups: list[GroupDesc]
    labels: int | None
    n_labels: int
    graph: dict[str, Any] | None
    provenance: dict[str, Any]
    task: dict[str, Any]
    sections: list[tuple[int, int, int]]  # (offset, length, crc)

    @property
    def data_len(self) -> int:
        return sum(s[1] for s in self.sections)


def _int(v: Any, what: str, lo: int = 0, hi: int | None = None) -> int:
    if type(v) is not int:
        raise HeaderInvalid(f"{what} must be an integer, got {type(v).__name__}")
    if v < lo:
        raise HeaderInvalid(f"{what} must be >= {lo}, got {v}")
    if hi is not None and v > hi:
        raise LimitExceeded(f"{what} = {v} exceeds the limit {hi}")
    return v


#: optional group keys whose default value the canonical form omits (a present key never holds its default)
_DEFAULTS: dict[str, Any] = {"r": "samples", "q": {}, "e": {}, "m": {}}


def _name(v: Any, what: str) -> str:
    if not isinstance(v, str) or not v:
        raise HeaderInvalid(f"{what} must be a non-empty string")
    if len(v) > MAX_NAME_CHARS:
        raise LimitExceeded(f"{what} has {len(v)} characters, limit {MAX_NAME_CHARS}")
    return v


def _dict(v: Any, what: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise HeaderInvalid(f"{what} must be a JSON object, got {type(v).__name__}")
    return v


def _keys(d: dict[str, Any], required: set[str], optional: set[str], what: str) -> None:
    missing = required - d.keys()
    extra = d.keys() - required - optional
    if missing or extra:
        raise HeaderInvalid(f"{what}: missing keys {sorted(missing)}, unknown keys {sorted(extra)}")


def _array_ref(v: Any, what: str, nsec: int, dtypes: Sequence[str]) -> ArrayRef:
    if not isinstance(v, list) or len(v) != 3:
        raise HeaderInvalid(f"{what} must be [section, dtype, shape]")
    sec = _int(v[0], f"{what} section", 0)
    if sec >= nsec:
        raise BadOffsets(f"{what} names section {sec}, but the table has {nsec}")
    if v[1] not in dtypes:
        raise HeaderInvalid(f"{what} dtype {v[1]!r} not in {list(dtypes)}")
    if not isinstance(v[2], list):
        raise HeaderInvalid(f"{what} shape must be a list of ints")
    if len(v[2]) > MAX_NDIM:
        raise LimitExceeded(f"{what} has {len(v[2])} dimensions, limit {MAX_NDIM}")
    shape = tuple(_int(s, f"{what} shape", 0, MAX_VALUES) for s in v[2])
    count = 1
    for s in shape:
        count *= s  # python ints: no overflow
    if count > MAX_VALUES:
        raise LimitExceeded(f"{what} has {count} elements, limit {MAX_VALUES}")
    return ArrayRef(sec, v[1], shape)


def parse_header_v1(h: Any) -> HeaderDesc:
    """Validate a decoded v1 header against the schema and limits; raise a PayloadError subclass."""
    h = _dict(h, "header")
    _keys(h, {"c", "g", "l", "o", "p", "s", "t"}, set(), "header")
    c = _int(h["c"], "num_classes (c)", 1, MAX_CLASSES)
    if not isinstance(h["s"], list):
        raise HeaderInvalid("section table (s) must be a list")
    if len(h["s"]) > MAX_SECTIONS:
        raise LimitExceeded(f"{len(h['s'])} sections, limit {MAX_SECTIONS}")
    sections = []
    pos = 0
    for i, s in enumerate(h["s"]):
        if not isinstance(s, list) or len(s) != 3:
            raise HeaderInvalid(f"section {i} must be [offset, length, crc32hex]")
        off = _int(s[0], f"section {i} offset", 0, MAX_SECTION_BYTES)
        ln = _int(s[1], f"section {i} length", 0, MAX_SECTION_BYTES)
        if not isinstance(s[2], str) or not _HEX8.match(s[2]):
            raise HeaderInvalid(f"section {i} crc must be 8 lowercase hex digits")
        if off != pos:
            raise BadOffsets(f"section {i} starts at {off}, expected {pos} (sections must be contiguous, in order)")
        pos += ln
        sections.append((off, ln, int(s[2], 16)))
    nsec = len(sections)
    if not isinstance(h["g"], list):
        raise HeaderInvalid("groups (g) must be a list")
    if len(h["g"]) > MAX_GROUPS:
        raise LimitExceeded(f"{len(h['g'])} groups, limit {MAX_GROUPS}")
    refs: dict[int, int] = {}  # section -> expected length

    def use(sec: int, nbytes: int, what: str) -> None:
        if sec in refs:
            raise BadOffsets(f"section {sec} is used twice ({what})")
        if sections[sec][1] != nbytes:
            raise BadOffsets(f"{what}: section {sec} has {sections[sec][1]} bytes, its shape needs {nbytes}")
        refs[sec] = nbytes

    groups: list[GroupDesc] = []
    names: set[str] = set()
    n_label = total_rows = 0
    n_samples = n_soft = 0
    sample_d: set[int] = set()
    for gi, g in enumerate(h["g"]):
        what = f"group {gi}"
        g = _dict(g, what)
        _keys(g, {"id", "k", "b", "n", "d"}, {"r", "x", "q", "e", "m"}, what)
        name = _name(g["id"], f"{what} id")
        if name in names:
            raise HeaderInvalid(f"{what}: id {name!r} is used by another group (ids must be unique)")
        names.add(name)
        what = f"group {name!r}"
        kind, bits = g["k"], g["b"]
        if not isinstance(kind, str) or type(bits) is not int:
            raise HeaderInvalid(f"{what}: kind must be a string and bits an int")
        try:
            codecs.check_kind_bits(kind, bits)
        except codecs.CodecError as exc:
            raise HeaderInvalid(f"{what}: {exc}") from exc
        if kind not in V1_KINDS:
            raise HeaderInvalid(f"{what}: kind {kind!r} is not a v1.0 kind (it needs format v2.0)")
        n = _int(g["n"], f"{what} n", 0, MAX_N)
        total_rows += n
        if total_rows > MAX_TOTAL_ROWS:
            raise LimitExceeded(f"groups hold more than {MAX_TOTAL_ROWS} samples in total")
        d = _int(g["d"], f"{what} d", 0, MAX_D)
        if n * d > MAX_VALUES:
            raise LimitExceeded(f"{what}: n*d = {n * d} exceeds {MAX_VALUES}")
        for key, default in _DEFAULTS.items():
            if key in g and g[key] == default:
                raise HeaderInvalid(f"{what}: key {key!r} holds its default {default!r}; the canonical form omits it")
        role = g.get("r", "samples")
        if role not in ROLES:
            raise HeaderInvalid(f"{what}: role must be one of {ROLES}")
        data = None
        if bits > 0:
            if "x" not in g:
                raise HeaderInvalid(f"{what}: bits > 0 needs a data section (x)")
            data = _int(g["x"], f"{what} x", 0)
            if data >= nsec:
                raise BadOffsets(f"{what}: data section {data} does not exist ({nsec} sections)")
            per = n * d * (bits // 8) if kind in codecs.RAW_KINDS else n * row_bytes(d, bits)
            use(data, per, f"{what} data")
        elif "x" in g:
            raise HeaderInvalid(f"{what}: bits = 0 groups have no data section")
        allowed = expected_param_shapes(kind, bits, n, d)
        q = _dict(g.get("q", {}), f"{what} params")
        if set(q) != set(allowed):
            raise HeaderInvalid(f"{what}: params must be {sorted(allowed)}, got {sorted(q)}")
        params = {}
        for p, v in q.items():
            ref = _array_ref(v, f"{what} param {p!r}", nsec, PARAM_DTYPES)
            if ref.shape not in allowed[p]:
                raise HeaderInvalid(f"{what}: param {p!r} shape {list(ref.shape)} not in {[list(s) for s in allowed[p]]}")
            use(ref.section, _nbytes(ref), f"{what} param {p!r}")
            params[p] = ref
        extras = {}
        for e, v in _dict(g.get("e", {}), f"{what} extras").items():
            _name(e, f"{what} extra name")
            ref = _array_ref(v, f"{what} extra {e!r}", nsec, EXTRA_DTYPES)
            use(ref.section, _nbytes(ref), f"{what} extra {e!r}")
            extras[e] = ref
        meta = _dict(g.get("m", {}), f"{what} meta")
        label_start = None
        if role == "soft_labels":
            if d != c or bits == 0:
                raise HeaderInvalid(f"{what}: soft labels need d == num_classes ({c}) and bits > 0")
            n_soft += n
        elif bits > 0:
            sample_d.add(d)
            n_samples += n
            label_start = n_label
            n_label += n
        groups.append(GroupDesc(gi, name, role, kind, bits, n, d, data, params, extras, meta, label_start))
    if len(sample_d) > 1:
        raise HeaderInvalid(f"sample groups have different D {sorted(sample_d)}")
    if n_soft and n_soft != n_samples:
        raise HeaderInvalid(f"soft labels cover {n_soft} rows, samples {n_samples}")
    lab = h["l"]
    if lab is not None:
        lab = _int(lab, "labels section (l)", 0)
        if lab >= nsec:
            raise BadOffsets(f"labels section {lab} does not exist")
        use(lab, packed_size(n_label, codecs.label_bits(c)), "labels")
    else:
        groups = [replace(g, label_start=None) for g in groups]
        n_label = 0
    if len(refs) != nsec:
        unused = sorted(set(range(nsec)) - refs.keys())
        raise BadOffsets(f"sections {unused[:5]} are not used by any group")
    o = h["o"]
    graph = None
    if o is not None:
        if not (isinstance(o, list) and len(o) == 2 and isinstance(o[0], str) and _HEX64.match(o[0])):
            raise HeaderInvalid("graph (o) must be null or [sha256 hex, size]")
        graph = {"sha256": o[0], "size": _int(o[1], "graph size", 1, MAX_GRAPH_BYTES)}
    return HeaderDesc(c, groups, lab, n_label, graph, _dict(h["p"], "provenance (p)"), _dict(h["t"], "task (t)"),
                      sections)


def _nbytes(ref: ArrayRef) -> int:
    count = 1
    for s in ref.shape:
        count *= s
    return count * np_dtype(ref.dtype).itemsize


#: the header schema of each accepted (major, minor) version; a new version adds its parser here and its rules
#: to docs/payload-format.md (rules are numbered per version)
#: v2.0's binary header is parsed by edge_sdk.payload.format_v2.parse_header_v2 (the reader dispatches on the major)
HEADER_PARSERS = {(1, 0): parse_header_v1}
parse_header = parse_header_v1

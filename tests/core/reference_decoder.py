"""A second, independent payload reader (v1.0 and v2.0), written from docs/payload-format.md alone.

It imports nothing from ``edge_sdk`` (only numpy, json, hashlib, zlib), so that it checks the *page*: if the
spec leaves out a detail, this reader and the package disagree and ``test_reference_decoder.py`` fails. It
favours plainness over speed (per-row bit unpacking with ``np.unpackbits``, rules checked in the order the page
lists them) and raises :class:`RefError` whose ``name`` is the error class the page names for the rule.

Use: ``decode(data: bytes) -> RefPayload`` (everything decoded and every rule checked).
"""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# --- "Byte layout" -------------------------------------------------------------------------------------------
MAGIC = bytes.fromhex("89 45 50 4c 0d 0a 1a 0a")
PREFIX = 16
DIGEST = 32
KEY_ID = 32
SIGNATURE = 64
VERSIONS = {(1, 0), (2, 0)}
# --- "v2 byte layout" / "v2 limits" --------------------------------------------------------------------------
KEY_ID_V2 = 8
SIGNATURE_DOMAIN_V2 = b"edge-sdk payload v2 ed25519" + b"\x00"
HEADER_MAX_BYTES_V2 = 65536
TASK_BLOB_MAX_BYTES = 1048576
MAX_STEPS = 100000000
MAX_BATCH = 1048576

# --- "Limits" ------------------------------------------------------------------------------------------------
HEADER_MAX_BYTES = 1048576
MAX_GROUPS = 4096
MAX_SECTIONS = 65536
MAX_N = 16777216
MAX_TOTAL_ROWS = 16777216
MAX_D = 16777216
MAX_VALUES = 17179869184
MAX_CLASSES = 65536
MAX_NDIM = 8
MAX_NAME_CHARS = 256
MAX_SECTION_BYTES = 1099511627776
MAX_JSON_DEPTH = 32
MAX_GRAPH_BYTES = 2147483647

# --- "Quantizer kinds" ---------------------------------------------------------------------------------------
BITS_V1 = {"none": [0], "float16": [16], "float32": [32], "symmetric_per_sample": list(range(2, 9)),
           "uniform_clip": list(range(2, 9)), "codebook": list(range(1, 9))}
BITS = {**BITS_V1, "affine_set": list(range(1, 9)), "affine_feature": list(range(1, 9)),
        "affine_sample": list(range(1, 9))}
# --- "v2 header (binary)" ------------------------------------------------------------------------------------
KIND_CODES = ["none", "float16", "float32", "symmetric_per_sample", "uniform_clip", "codebook", "affine_set",
              "affine_feature", "affine_sample"]
ITEMSIZE = {"u1": 1, "i1": 1, "u2": 2, "i2": 2, "u4": 4, "i4": 4, "u8": 8, "i8": 8, "f2": 2, "f4": 4, "f8": 8}


class RefError(Exception):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name


def fail(name: str, message: str) -> None:
    raise RefError(name, message)


@dataclass
class RefGroup:
    name: str
    kind: str
    bits: int
    n: int
    d: int
    role: str
    values: np.ndarray  # float32 [n, d] ([n, 0] for none)
    codes: np.ndarray | None  # uint [n, d] for quantized kinds
    params: dict[str, np.ndarray]
    extras: dict[str, np.ndarray]
    meta: dict[str, Any]
    labels: np.ndarray | None


@dataclass
class RefPayload:
    num_classes: int
    groups: list[RefGroup]
    task: dict[str, Any]
    provenance: dict[str, Any]
    graph: list[Any] | None
    signed: bool
    sha256: str
    samples: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    labels: np.ndarray | None = None


# --- JSON ----------------------------------------------------------------------------------------------------
def depth_of(text: bytes) -> int:
    """Nesting of [ and { outside strings (a character scanner, as the page describes)."""
    depth = best = 0
    in_str = esc = False
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == 0x5C:  # backslash
                esc = True
            elif ch == 0x22:
                in_str = False
        elif ch == 0x22:
            in_str = True
        elif ch in (0x5B, 0x7B):
            depth += 1
            best = max(best, depth)
        elif ch in (0x5D, 0x7D):
            depth -= 1
    return best


def parse_json(hb: bytes) -> Any:
    if depth_of(hb) > MAX_JSON_DEPTH:
        fail("LimitExceeded", "header JSON too deep")

    def pairs(kv: list[tuple[str, Any]]) -> dict[str, Any]:
        if len({k for k, _ in kv}) != len(kv):
            fail("HeaderInvalid", "duplicate key")
        return dict(kv)

    def const(name: str) -> Any:
        fail("HeaderInvalid", f"constant {name}")

    try:
        obj = json.loads(hb.decode("utf-8"), object_pairs_hook=pairs, parse_constant=const)
    except RefError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError):
        fail("HeaderInvalid", "not UTF-8 JSON")
    try:
        canon = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    except (ValueError, UnicodeEncodeError):
        fail("HeaderInvalid", "cannot re-encode")
    if canon != hb:
        fail("HeaderInvalid", "not canonical")
    return obj


# --- schema (R06, R07, R13) ----------------------------------------------------------------------------------
def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def count(v: Any, what: str, hi: int | None = None, lo: int = 0) -> int:
    if not is_int(v) or v < lo:
        fail("HeaderInvalid", f"{what} must be an int >= {lo}")
    if hi is not None and v > hi:
        fail("LimitExceeded", f"{what} above {hi}")
    return v


def obj(v: Any, what: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        fail("HeaderInvalid", f"{what} must be an object")
    return v


def name_ok(v: Any, what: str) -> str:
    if not isinstance(v, str) or not v:
        fail("HeaderInvalid", f"{what} must be a non-empty string")
    if len(v) > MAX_NAME_CHARS:
        fail("LimitExceeded", f"{what} too long")
    return v


def param_shapes(kind: str, bits: int, n: int, d: int) -> dict[str, list[tuple[int, ...]]]:
    if kind == "symmetric_per_sample":
        return {"scale": [(n,)]}
    if kind == "uniform_clip":
        return {"alpha": [(1,), (d,)]}
    if kind == "codebook":
        return {"levels": [(2 ** bits,)]}
    if kind == "affine_set":
        return {"lo": [(1,)], "hi": [(1,)]}
    if kind == "affine_feature":
        return {"lo": [(d,)], "hi": [(d,)]}
    if kind == "affine_sample":
        return {"lo": [(n,)], "hi": [(n,)]}
    return {}


def row_len(d: int, b: int) -> int:
    return (d * b + 7) // 8


def label_width(c: int) -> int:
    return (c - 1).bit_length()  # ceil(log2 C); 0 when C = 1


def array_ref(v: Any, what: str, nsec: int, dtypes: tuple[str, ...]) -> tuple[int, str, tuple[int, ...]]:
    if not isinstance(v, list) or len(v) != 3:
        fail("HeaderInvalid", f"{what} must be [section, dtype, shape]")
    sec = count(v[0], what)
    if sec >= nsec:
        fail("BadOffsets", f"{what}: no section {sec}")
    if v[1] not in dtypes:
        fail("HeaderInvalid", f"{what}: dtype")
    if not isinstance(v[2], list):
        fail("HeaderInvalid", f"{what}: shape")
    if len(v[2]) > MAX_NDIM:
        fail("LimitExceeded", f"{what}: ndim")
    shape = tuple(count(s, what, MAX_VALUES) for s in v[2])
    if int(np.prod(shape, dtype=object)) > MAX_VALUES:
        fail("LimitExceeded", f"{what}: elements")
    return sec, v[1], shape


def check_schema(h: Any) -> dict[str, Any]:
    h = obj(h, "header")
    if set(h) != {"c", "g", "l", "o", "p", "s", "t"}:
        fail("HeaderInvalid", "header keys")
    c = count(h["c"], "c", MAX_CLASSES, 1)
    if not isinstance(h["s"], list):
        fail("HeaderInvalid", "s")
    if len(h["s"]) > MAX_SECTIONS:
        fail("LimitExceeded", "sections")
    sections, pos = [], 0
    for e in h["s"]:
        if not isinstance(e, list) or len(e) != 3:
            fail("HeaderInvalid", "section entry")
        off = count(e[0], "offset", MAX_SECTION_BYTES)
        ln = count(e[1], "length", MAX_SECTION_BYTES)
        crc = e[2]
        if not (isinstance(crc, str) and len(crc) == 8 and all(ch in "0123456789abcdef" for ch in crc)):
            fail("HeaderInvalid", "crc")
        if off != pos:
            fail("BadOffsets", "not contiguous")
        pos += ln
        sections.append((off, ln, int(crc, 16)))
    nsec = len(sections)
    if not isinstance(h["g"], list):
        fail("HeaderInvalid", "g")
    if len(h["g"]) > MAX_GROUPS:
        fail("LimitExceeded", "groups")
    used: set[int] = set()

    def use(sec: int, nbytes: int) -> None:
        if sec in used:
            fail("BadOffsets", "section used twice")
        if sections[sec][1] != nbytes:
            fail("BadOffsets", "length != shape")
        used.add(sec)

    groups, ids, rows, n_lab, n_soft, dims = [], set(), 0, 0, 0, set()
    for g in h["g"]:
        g = obj(g, "group")
        if not {"id", "k", "b", "n", "d"} <= set(g) <= {"id", "k", "b", "n", "d", "r", "x", "q", "e", "m"}:
            fail("HeaderInvalid", "group keys")
        gid = name_ok(g["id"], "id")
        if gid in ids:
            fail("HeaderInvalid", "duplicate id")
        ids.add(gid)
        kind, bits = g["k"], g["b"]
        if not isinstance(kind, str) or kind not in BITS_V1 or not is_int(bits) or bits not in BITS_V1[kind]:
            fail("HeaderInvalid", "kind/bits")
        n = count(g["n"], "n", MAX_N)
        rows += n
        if rows > MAX_TOTAL_ROWS:
            fail("LimitExceeded", "total rows")
        d = count(g["d"], "d", MAX_D)
        if n * d > MAX_VALUES:
            fail("LimitExceeded", "n*d")
        for key, default in (("r", "samples"), ("q", {}), ("e", {}), ("m", {})):
            if key in g and g[key] == default:
                fail("HeaderInvalid", f"explicit default {key}")
        role = g.get("r", "samples")
        if role not in ("samples", "soft_labels"):
            fail("HeaderInvalid", "role")
        x = None
        if bits > 0:
            if "x" not in g:
                fail("HeaderInvalid", "x missing")
            x = count(g["x"], "x")
            if x >= nsec:
                fail("BadOffsets", "x")
            use(x, n * d * bits // 8 if kind in ("float16", "float32") else n * row_len(d, bits))
        elif "x" in g:
            fail("HeaderInvalid", "x with b = 0")
        allowed = param_shapes(kind, bits, n, d)
        q = obj(g.get("q", {}), "q")
        if set(q) != set(allowed):
            fail("HeaderInvalid", "param names")
        params = {}
        for pname, v in q.items():
            sec, dt, shape = array_ref(v, pname, nsec, ("f4", "f2"))
            if shape not in allowed[pname]:
                fail("HeaderInvalid", "param shape")
            use(sec, int(np.prod(shape, dtype=object)) * ITEMSIZE[dt])
            params[pname] = (sec, dt, shape)
        extras = {}
        for ename, v in obj(g.get("e", {}), "e").items():
            name_ok(ename, "extra name")
            sec, dt, shape = array_ref(v, ename, nsec, tuple(ITEMSIZE))
            use(sec, int(np.prod(shape, dtype=object)) * ITEMSIZE[dt])
            extras[ename] = (sec, dt, shape)
        meta = obj(g.get("m", {}), "m")
        labelled = False
        if role == "soft_labels":
            if d != c or bits == 0:
                fail("HeaderInvalid", "soft labels need d == C and b > 0")
            n_soft += n
        elif bits > 0:
            dims.add(d)
            labelled = True
            n_lab += n
        groups.append(dict(id=gid, kind=kind, bits=bits, n=n, d=d, role=role, x=x, params=params, extras=extras,
                           meta=meta, labelled=labelled))
    if len(dims) > 1:
        fail("HeaderInvalid", "samples groups differ in D")
    if n_soft and n_soft != n_lab:
        fail("HeaderInvalid", "soft rows != sample rows")
    lab = h["l"]
    if lab is not None:
        lab = count(lab, "l")
        if lab >= nsec:
            fail("BadOffsets", "l")
        use(lab, (n_lab * label_width(c) + 7) // 8)
    if len(used) != nsec:
        fail("BadOffsets", "unused section")
    o = h["o"]
    if o is not None:
        if not (isinstance(o, list) and len(o) == 2 and isinstance(o[0], str) and len(o[0]) == 64
                and all(ch in "0123456789abcdef" for ch in o[0])):
            fail("HeaderInvalid", "o")
        count(o[1], "graph size", MAX_GRAPH_BYTES, 1)
    return dict(c=c, sections=sections, groups=groups, labels=lab, n_labels=n_lab, graph=o,
                p=obj(h["p"], "p"), t=obj(h["t"], "t"))


# --- bits ----------------------------------------------------------------------------------------------------
def unpack_lsb_first(data: np.ndarray, width: int, count_: int) -> tuple[np.ndarray, np.ndarray]:
    """(values uint32 [count], padding bits) of one stream: value i = stream bits [i*w, (i+1)*w), LSB first;
    stream bit k = bit (k mod 8) of byte k // 8."""
    bits = np.unpackbits(data, bitorder="little")
    used = bits[: count_ * width].reshape(count_, width).astype(np.uint32)
    values = (used << np.arange(width, dtype=np.uint32)).sum(axis=1, dtype=np.uint32)
    return values, bits[count_ * width:]


# --- decode --------------------------------------------------------------------------------------------------
def decode(buf: bytes) -> RefPayload:
    if len(buf) < 8 and MAGIC.startswith(buf):
        fail("Truncated", "shorter than the magic")
    if buf[:8] != MAGIC:
        fail("BadMagic", "magic")
    if len(buf) < PREFIX:
        fail("Truncated", "prefix")
    if (buf[8], buf[9]) not in VERSIONS:
        fail("UnsupportedVersion", "version")
    if buf[8] == 2:
        return decode_v2(buf)
    flags = int.from_bytes(buf[10:12], "little")
    if flags & ~1:
        fail("HeaderInvalid", "flags")
    signed = bool(flags & 1)
    hlen = int.from_bytes(buf[12:16], "little")
    if hlen > HEADER_MAX_BYTES:
        fail("HeaderTooLarge", "header length")
    if hlen == 0:
        fail("HeaderInvalid", "header length 0")
    trailer = DIGEST + (KEY_ID + SIGNATURE if signed else 0)
    if len(buf) < PREFIX + hlen + trailer:
        fail("Truncated", "header/trailer")
    h = check_schema(parse_json(bytes(buf[PREFIX:PREFIX + hlen])))
    data_len = sum(s[1] for s in h["sections"])
    want = PREFIX + hlen + data_len + trailer
    if len(buf) < want:
        fail("Truncated", "size")
    if len(buf) > want:
        fail("TrailingBytes", "size")
    end = PREFIX + hlen + data_len
    digest = hashlib.sha256(buf[:end]).digest()
    if digest != buf[end:end + DIGEST]:
        fail("DigestMismatch", "digest")
    base = PREFIX + hlen

    def section(i: int) -> bytes:
        off, ln, crc = h["sections"][i]
        raw = bytes(buf[base + off: base + off + ln])
        if zlib.crc32(raw) != crc:
            fail("ChecksumMismatch", f"section {i}")
        return raw

    def array(ref: tuple[int, str, tuple[int, ...]]) -> np.ndarray:
        sec, dt, shape = ref
        return np.frombuffer(section(sec), "<" + dt).reshape(shape).copy()

    groups = []
    c = h["c"]
    for g in h["groups"]:
        params = {k: array(r) for k, r in g["params"].items()}
        extras = {k: array(r) for k, r in g["extras"].items()}
        values, codes = group_values(g, params, lambda g=g: section(g["x"]))
        groups.append(RefGroup(g["id"], g["kind"], g["bits"], g["n"], g["d"], g["role"], values, codes,
                               params, extras, g["meta"], None))
    labels = None
    if h["labels"] is not None:
        w = label_width(c)
        labels, pad = unpack_lsb_first(np.frombuffer(section(h["labels"]), np.uint8), w, h["n_labels"])
        if pad.any():
            fail("InvalidValue", "label padding")
        if labels.size and labels.max() >= c:
            fail("InvalidValue", "label >= C")
        at = 0
        for rg, g in zip(groups, h["groups"], strict=True):
            if g["labelled"]:
                rg.labels = labels[at: at + rg.n].astype(np.int64)
                at += rg.n
    sample_groups = [rg for rg, g in zip(groups, h["groups"], strict=True) if g["labelled"]]
    samples = (np.concatenate([rg.values for rg in sample_groups]) if sample_groups
               else np.zeros((0, 0), np.float32))
    return RefPayload(c, groups, h["t"], h["p"], h["graph"], signed, digest.hex(), samples,
                      None if labels is None else labels.astype(np.int64))


def group_values(g: dict[str, Any], params: dict[str, np.ndarray], data: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """"Quantizer kinds": value rules (R17, R18) and the float32 dequantization of one group."""
    n, d, b, kind = g["n"], g["d"], g["bits"], g["kind"]
    p32 = {k: v.astype(np.float32) for k, v in params.items()}  # f2 -> f4 widening is exact
    for k, v in p32.items():
        if not np.all(np.isfinite(v)):
            fail("InvalidValue", f"{k} not finite")
    if "scale" in p32 and np.any(p32["scale"] < 0):
        fail("InvalidValue", "scale < 0")
    if "scale" in p32:
        with np.errstate(over="ignore"):
            if not np.all(np.isfinite(p32["scale"] * np.float32(2 ** (b - 1) - 1))):
                fail("InvalidValue", "scale * Q overflows")
    if "alpha" in p32 and np.any(p32["alpha"] <= 0):
        fail("InvalidValue", "alpha <= 0")
    if "lo" in p32:
        if np.any(p32["hi"] < p32["lo"]):
            fail("InvalidValue", "hi < lo")
        with np.errstate(over="ignore"):
            if not np.all(np.isfinite(p32["hi"] - p32["lo"])):
                fail("InvalidValue", "hi - lo overflows")
    codes = None
    if kind == "none":
        values = np.zeros((n, 0), np.float32)
    elif kind in ("float16", "float32"):
        raw = np.frombuffer(data(), "<f2" if kind == "float16" else "<f4").reshape(n, d)
        values = raw.astype(np.float32)
        if not np.all(np.isfinite(values)):
            fail("InvalidValue", "raw value not finite")
    else:
        rl = row_len(d, b)
        packed = np.frombuffer(data(), np.uint8).reshape(n, rl)
        codes = np.zeros((n, d), np.uint32)
        for i in range(n):
            codes[i], pad = unpack_lsb_first(packed[i], b, d)
            if pad.any():
                fail("InvalidValue", f"row {i} padding")
        q = 2 ** (b - 1) - 1
        if kind in ("symmetric_per_sample", "uniform_clip") and codes.size and codes.max() > 2 * q:
            fail("InvalidValue", "code off the grid")
        t = (codes.astype(np.int64) - q).astype(np.float32)  # exact
        if kind.startswith("affine_"):
            shape = (n, 1) if kind == "affine_sample" else (1, -1)
            lo, hi = p32["lo"].reshape(shape), p32["hi"].reshape(shape)
            step = (hi - lo) / np.float32(2 ** b - 1)
            values = lo + codes.astype(np.float32) * step
        elif kind == "symmetric_per_sample":
            values = p32["scale"].reshape(n, 1) * t
        elif kind == "uniform_clip":
            a = p32["alpha"]
            a = np.broadcast_to(a.reshape(1, -1), (1, d))
            values = a * (t / np.float32(q))
        else:
            values = p32["levels"][codes.astype(np.int64)]
    return values.astype(np.float32, copy=False), codes


# --- "Version 2.0" -------------------------------------------------------------------------------------------
class Cursor:
    def __init__(self, b: bytes) -> None:
        self.b, self.i = b, 0

    def take(self, k: int) -> bytes:
        if self.i + k > len(self.b):
            fail("HeaderInvalid", "header ends early")
        out = self.b[self.i: self.i + k]
        self.i += k
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def f4(self) -> float:
        v = float(np.frombuffer(self.take(4), "<f4")[0])
        if not np.isfinite(v):
            fail("HeaderInvalid", "float not finite")
        return v

    def varint(self, hi: int) -> int:
        v = 0
        for i in range(10):
            byte = self.u8()
            v |= (byte & 0x7F) << (7 * i)
            if byte < 0x80:
                if i > 0 and byte == 0:
                    fail("HeaderInvalid", "varint not minimal")
                if v > hi:
                    fail("LimitExceeded", "varint above its limit")
                return v
        fail("HeaderInvalid", "varint longer than 10 bytes")
        return 0


def decode_v2(buf: bytes) -> RefPayload:
    flags = int.from_bytes(buf[10:12], "little")
    if flags & ~7 or (flags & 4 and not flags & 2):  # bit 2 (label smoothing) only with bit 1 (recipe)
        fail("HeaderInvalid", "flags")
    signed = bool(flags & 1)
    hlen = int.from_bytes(buf[12:16], "little")
    if hlen > HEADER_MAX_BYTES_V2:
        fail("HeaderTooLarge", "header length")
    if hlen == 0:
        fail("HeaderInvalid", "header length 0")
    trailer = KEY_ID_V2 + SIGNATURE if signed else DIGEST
    if len(buf) < PREFIX + hlen + trailer:
        fail("Truncated", "header/trailer")
    cur = Cursor(bytes(buf[PREFIX:PREFIX + hlen]))
    task_digest = cur.take(32)
    c = int.from_bytes(cur.take(2), "little") + 1
    mode = cur.u8()
    if mode > 2:
        fail("HeaderInvalid", "label mode")
    ng = cur.varint(MAX_GROUPS)
    groups, sizes, rows, dims, n_lab, n_soft = [], [], 0, set(), 0, 0
    for _ in range(ng):
        role, kc, b = cur.u8(), cur.u8(), cur.u8()
        if role > 1 or kc >= len(KIND_CODES):
            fail("HeaderInvalid", "role/kind code")
        kind = KIND_CODES[kc]
        if b not in BITS[kind]:
            fail("HeaderInvalid", "bits")
        n, d = cur.varint(MAX_N), cur.varint(MAX_D)
        rows += n
        if rows > MAX_TOTAL_ROWS:
            fail("LimitExceeded", "total rows")
        if n * d > MAX_VALUES:
            fail("LimitExceeded", "n*d")
        shapes = {k: v[0] for k, v in param_shapes(kind, b, n, d).items()}
        if kind == "uniform_clip":
            a = cur.u8()
            if a > 1 or (a == 1 and d == 1):
                fail("HeaderInvalid", "alpha shape")
            shapes["alpha"] = (d,) if a else (1,)
        x = None
        if b > 0:
            x = len(sizes)
            sizes.append(n * d * b // 8 if kind in ("float16", "float32") else n * row_len(d, b))
        params = {}
        for pname in sorted(shapes):
            e = cur.u8()
            if e > 3:
                fail("HeaderInvalid", "encoding")
            enc = ["f4", "f2", "q8", "c4"][e]
            m = int(np.prod(shapes[pname], dtype=object))
            params[pname] = (len(sizes), enc, shapes[pname])
            sizes.append({"f4": 4 * m, "f2": 2 * m, "q8": 8 + m, "c4": 4}[enc])
        labelled = role == 0 and b > 0
        if role == 1:
            if d != c or b == 0:
                fail("HeaderInvalid", "soft labels need d == C and b > 0")
            n_soft += n
        elif b > 0:
            dims.add(d)
            n_lab += n
        groups.append(dict(kind=kind, bits=b, n=n, d=d, role=["samples", "soft_labels"][role], x=x, params=params,
                           labelled=labelled))
    if len(dims) > 1:
        fail("HeaderInvalid", "samples groups differ in D")
    if n_soft and n_soft != n_lab:
        fail("HeaderInvalid", "soft rows != sample rows")
    recipe = None
    if flags & 2:
        recipe = {"optimizer": cur.u8(), "schedule": cur.u8()}
        if recipe["optimizer"] > 1 or recipe["schedule"] > 2:
            fail("HeaderInvalid", "recipe codes")
        recipe["steps"], recipe["batch_size"] = cur.varint(MAX_STEPS), cur.varint(MAX_BATCH)
        recipe["lr"], recipe["weight_decay"] = cur.f4(), cur.f4()
        checks = [recipe["steps"] >= 1, recipe["batch_size"] >= 1, recipe["lr"] > 0, recipe["weight_decay"] >= 0]
        if recipe["optimizer"] == 0:
            recipe["momentum"] = cur.f4()
            checks.append(0 <= recipe["momentum"] < 1)
        else:
            recipe["beta1"], recipe["beta2"], recipe["eps"] = cur.f4(), cur.f4(), cur.f4()
            checks += [0 <= recipe["beta1"] < 1, 0 <= recipe["beta2"] < 1, 0 < recipe["eps"] <= 1]
        if recipe["schedule"] == 2:
            recipe["decay_every"], recipe["gamma"] = cur.varint(MAX_STEPS), cur.f4()
            checks += [recipe["decay_every"] >= 1, recipe["gamma"] > 0]
        if n_soft:
            recipe["soft_weight"] = cur.f4()
            checks.append(0 <= recipe["soft_weight"] <= 1)
        if flags & 4:
            recipe["label_smoothing"] = cur.f4()
            checks.append(0 < recipe["label_smoothing"] < 1)
        if not all(checks):
            fail("HeaderInvalid", "recipe out of range")
    if cur.i != len(cur.b):
        fail("HeaderInvalid", "trailing header bytes")
    labelled = [g for g in groups if g["labelled"]]
    if mode != 0 and not labelled:
        fail("HeaderInvalid", "label mode without labelled groups")
    label_secs = []
    if mode == 1:
        label_secs.append(len(sizes))
        sizes.append((n_lab * label_width(c) + 7) // 8)
    elif mode == 2:
        for g in labelled:
            label_secs.append(len(sizes))
            sizes.append((c * g["n"].bit_length() + 7) // 8)
    data_len = sum(sizes)
    want = PREFIX + hlen + data_len + trailer
    if len(buf) < want:
        fail("Truncated", "size")
    if len(buf) > want:
        fail("TrailingBytes", "size")
    end = PREFIX + hlen + data_len
    digest = hashlib.sha256(buf[:end]).digest()
    if not signed and digest != buf[end:end + DIGEST]:
        fail("DigestMismatch", "digest")
    offs = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(int) + PREFIX + hlen

    def section(i: int) -> bytes:
        return bytes(buf[offs[i]: offs[i + 1]])

    def param(ref: tuple[int, str, tuple[int, ...]]) -> np.ndarray:
        sec, enc, shape = ref
        raw = section(sec)
        if enc in ("f4", "f2"):
            return np.frombuffer(raw, "<" + enc).reshape(shape).copy()
        if enc == "c4":
            v = np.frombuffer(raw, "<f4")[0]
            if not np.isfinite(v):
                fail("InvalidValue", "c4 not finite")
            return np.full(shape, v, np.float32)
        base, step = np.frombuffer(raw[:8], "<f4")
        if not (np.isfinite(base) and np.isfinite(step) and step >= 0):
            fail("InvalidValue", "q8 base/step")
        return (base + np.frombuffer(raw[8:], np.uint8).astype(np.float32) * step).reshape(shape)

    out = []
    for k, g in enumerate(groups):
        params = {name: param(r) for name, r in g["params"].items()}
        values, codes = group_values(g, params, lambda g=g: section(g["x"]))
        out.append(RefGroup(f"g{k}", g["kind"], g["bits"], g["n"], g["d"], g["role"], values, codes, params, {}, {},
                            None))
    labels = None
    if mode == 1:
        labels, pad = unpack_lsb_first(np.frombuffer(section(label_secs[0]), np.uint8), label_width(c), n_lab)
        if pad.any():
            fail("InvalidValue", "label padding")
        if labels.size and labels.max() >= c:
            fail("InvalidValue", "label >= C")
    elif mode == 2:
        parts = []
        for g, sec in zip(labelled, label_secs, strict=True):
            w = g["n"].bit_length()
            counts, pad = unpack_lsb_first(np.frombuffer(section(sec), np.uint8), w, c)
            if pad.any():
                fail("InvalidValue", "count padding")
            if int(counts.sum()) != g["n"]:
                fail("InvalidValue", "class counts do not sum to N")
            parts.append(np.repeat(np.arange(c), counts.astype(np.int64)))
        labels = np.concatenate(parts)
    if labels is not None:
        at = 0
        for rg, g in zip(out, groups, strict=True):
            if g["labelled"]:
                rg.labels = labels[at: at + rg.n].astype(np.int64)
                at += rg.n
    sample_groups = [rg for rg, g in zip(out, groups, strict=True) if g["labelled"]]
    samples = (np.concatenate([rg.values for rg in sample_groups]) if sample_groups
               else np.zeros((0, 0), np.float32))
    task = {"task_digest": None if task_digest == bytes(32) else task_digest.hex(), "recipe": recipe}
    return RefPayload(c, out, task, {}, None, signed, digest.hex(), samples,
                      None if labels is None else labels.astype(np.int64))

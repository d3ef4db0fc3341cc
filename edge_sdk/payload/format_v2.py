"""Payload format v2 (lean): the binary header, its parser and the one code path that lays out a v2 payload.

v2 keeps v1's prefix (magic, version, flags, header length), its data sections (row-aligned codes, raw values,
parameter arrays, labels) and its value rules, and changes what costs bytes on every payload
(docs/payload-format.md, "Version 2"):

* the header is a small fixed binary structure instead of canonical JSON; the task spec, the model spec and
  the training graph's digest travel once per release in a **task blob** (:mod:`edge_sdk.payload.taskblob`)
  that the payload names by its SHA-256, and the device caches like the graph; the training recipe (tuned per
  payload) is a compact binary record in the header; no provenance (it lives in report.json and the release
  manifest), no per-section CRC32 (the content digest or the signature is verified on open anyway), no group
  names, no extras or metadata;
* parameters may be stored as float32 (``f4``), float16 (``f2``), an 8-bit grid (``q8``: float32 base and step,
  then one byte per value) or one float32 constant for the whole array (``c4``);
* hard labels are either one packed stream (``packed``, as v1) or, with the rows of every group sorted by class,
  per-class counts (``counts``: ``C`` counts of ``bit_length(N)`` bits per group), which costs ``C * log2 N``
  bits instead of ``N * log2 C``;
* signed files carry an 8-byte key id and the 64-byte Ed25519 signature of ``SIGNATURE_DOMAIN_V2`` + the
  SHA-256 of the content, and no stored digest (the reader computes it); unsigned files end with the 32-byte
  SHA-256 as in v1.

Header (binary, little-endian; ``varint`` = unsigned LEB128, minimal length)::

    task digest         32 B   SHA-256 of the task blob; 32 zero bytes = none
    num_classes - 1     u16
    label mode          u8     0 none, 1 packed, 2 counts
    group count         varint
    per group           role u8 (0 samples, 1 soft_labels), kind u8 (index in KIND_CODES), bits u8, n varint,
                        d varint, uniform_clip only: alpha shape u8 (0 = [1], 1 = [D]); then for each parameter
                        of the kind in sorted name order its encoding u8 (0 f4, 1 f2, 2 q8, 3 c4)
    recipe              (present iff flag bit 1) optimizer u8 (0 sgd, 1 adam), schedule u8 (0 constant, 1 cosine,
                        2 step), steps varint, batch_size varint, lr f4, weight_decay f4;
                        sgd: momentum f4; adam: beta1 f4, beta2 f4, eps f4; schedule step: decay_every varint,
                        gamma f4; soft_weight f4 iff a soft_labels group exists; label_smoothing f4 iff flag
                        bit 2 (edge-sdk >= 0.3.0; the value is then > 0, a recipe without label smoothing never
                        sets the bit, so its bytes are those of edge-sdk 0.2)

Sections (implied, contiguous, in this order): for each group its data (bits > 0), then its parameters in
sorted name order; then the labels (packed: one stream; counts: one count stream per labeled group).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_sdk import codecs
from edge_sdk.bitpack import packed_size, row_bytes
from edge_sdk.errors import ConfigError, SchemaError
from edge_sdk.modelspec import MAX_BATCH, MAX_STEPS, TrainRecipe
from edge_sdk.payload.errors import HeaderInvalid, LimitExceeded
from edge_sdk.payload.format import (
    FLAG_SIGNED,
    MAX_CLASSES,
    MAX_D,
    MAX_GROUPS,
    MAX_N,
    MAX_TOTAL_ROWS,
    MAX_VALUES,
    ArrayRef,
    GroupDesc,
    GroupLayout,
    HeaderDesc,
    check_layouts,
    expected_param_shapes,
)

FORMAT_MAJOR_V2 = 2
FORMAT_MINOR_V2 = 0
#: bit 1 of the flags: the header carries a training recipe
FLAG_RECIPE = 0x0002
#: bit 2 of the flags: the recipe record ends with ``label_smoothing`` f4 (> 0); only with FLAG_RECIPE. Readers of
#: edge-sdk 0.2 refuse the unknown bit, so a payload that smooths labels never trains without it
FLAG_LABEL_SMOOTHING = 0x0004
#: the flag bits a v2 file may set
FLAGS_V2 = FLAG_SIGNED | FLAG_RECIPE | FLAG_LABEL_SMOOTHING
TASK_DIGEST_SIZE = 32
KEY_ID_SIZE_V2 = 8
SIGNATURE_SIZE_V2 = 64
SIGNATURE_DOMAIN_V2 = b"edge-sdk payload v2 ed25519\x00"
#: the v2 header is small; anything longer is refused before it is read
HEADER_MAX_BYTES_V2 = 1 << 16

KIND_CODES = ("none", "float16", "float32", "symmetric_per_sample", "uniform_clip", "codebook",
              "affine_set", "affine_feature", "affine_sample")
ROLE_CODES = ("samples", "soft_labels")
PARAM_ENCODINGS = ("f4", "f2", "q8", "c4")
LABEL_MODES = ("none", "packed", "counts")
OPTIMIZER_CODES = ("sgd", "adam")
SCHEDULE_CODES = ("constant", "cosine", "step")
#: recipe fields each optimizer / schedule stores (the rest take the recipe defaults)
RECIPE_OPT_FIELDS = {"sgd": ("momentum",), "adam": ("beta1", "beta2", "eps")}
#: the recipe's version, bounds and defaults are edge_sdk.modelspec's (one definition): a field the record does not
#: store takes the TrainRecipe default, and the decoded recipe is validated by TrainRecipe (RECIPE_BOUNDS)
_RECIPE_DEFAULTS = TrainRecipe()


# ----------------------------------------------------------------------------------------- varints
def varint(v: int) -> bytes:
    """Unsigned LEB128 of ``v`` (minimal length)."""
    if v < 0:
        raise ConfigError(f"varint of a negative number {v}")
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


class _Cursor:
    """Bounded reader over the header bytes: every read checks the remaining length first."""

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.buf):
            raise HeaderInvalid(f"header ends inside {what} (needs {n} more bytes at offset {self.pos})")
        b = self.buf[self.pos: self.pos + n]
        self.pos += n
        return b

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def u16(self, what: str) -> int:
        return int.from_bytes(self.take(2, what), "little")

    def f4(self, what: str) -> float:
        v = struct.unpack("<f", self.take(4, what))[0]
        if not math.isfinite(v):
            raise HeaderInvalid(f"{what} is not finite")
        return float(v)

    def varint(self, what: str, hi: int) -> int:
        """A minimal LEB128 integer <= ``hi`` (at most 10 bytes are looked at)."""
        v = shift = 0
        for i in range(10):
            b = self.u8(what)
            v |= (b & 0x7F) << shift
            if not b & 0x80:
                if i and b == 0:
                    raise HeaderInvalid(f"{what}: varint is not minimal (trailing zero byte)")
                if v > hi:
                    raise LimitExceeded(f"{what} = {v} exceeds the limit {hi}")
                return v
            shift += 7
        raise HeaderInvalid(f"{what}: varint longer than 10 bytes")


def _f4(v: float) -> bytes:
    return struct.pack("<f", v)


def f4_exact(v: float) -> float:
    """``v`` rounded to float32 (what a v2 header stores)."""
    return float(np.float32(v))


# ----------------------------------------------------------------------------------------- recipe
def _as_recipe(recipe: Mapping[str, Any] | TrainRecipe) -> TrainRecipe:
    """A :class:`edge_sdk.modelspec.TrainRecipe` or any of its dict forms (``to_dict()`` / ``to_payload()``,
    validated by ``TrainRecipe.from_dict``) as a TrainRecipe; ConfigError for what cannot be stored."""
    try:
        return recipe if isinstance(recipe, TrainRecipe) else TrainRecipe.from_dict(recipe, "recipe")
    except SchemaError as exc:
        raise ConfigError(f"recipe cannot be stored in a v2 header: {exc}") from exc


def recipe_flags(recipe: TrainRecipe) -> int:
    """The flag bits a recipe record needs: FLAG_RECIPE (+ FLAG_LABEL_SMOOTHING when it smooths labels)."""
    return FLAG_RECIPE | (FLAG_LABEL_SMOOTHING if recipe.label_smoothing > 0 else 0)


def encode_recipe(recipe: Mapping[str, Any] | TrainRecipe, has_soft: bool) -> bytes:
    """Binary recipe record (module docstring) of a recipe (:func:`_as_recipe`); floats are stored as float32. A
    recipe with ``label_smoothing > 0`` ends with it (the header then sets :data:`FLAG_LABEL_SMOOTHING`)."""
    r = _as_recipe(recipe)
    out = bytearray([OPTIMIZER_CODES.index(r.optimizer), SCHEDULE_CODES.index(r.schedule)])
    out += varint(int(r.steps)) + varint(int(r.batch_size))
    out += _f4(float(r.lr)) + _f4(float(r.weight_decay))
    for f in RECIPE_OPT_FIELDS[r.optimizer]:
        out += _f4(float(getattr(r, f)))
    if r.schedule == "step":
        out += varint(int(r.decay_every)) + _f4(float(r.gamma))
    if has_soft:
        out += _f4(float(r.soft_weight))
    smoothing = r.label_smoothing > 0
    if smoothing:
        out += _f4(float(r.label_smoothing))
    try:  # the writer refuses what a reader would refuse (float32)
        decode_recipe(_Cursor(bytes(out)), has_soft, smoothing)
    except (HeaderInvalid, LimitExceeded) as exc:
        raise ConfigError(f"recipe cannot be stored: {exc}") from exc
    return bytes(out)


def stored_recipe(recipe: Mapping[str, Any] | TrainRecipe, has_soft: bool = False) -> TrainRecipe:
    """The recipe exactly as a v2 payload stores it (floats rounded to float32): what a device will follow, so a
    server evaluates with this one."""
    r = _as_recipe(recipe)
    return TrainRecipe.from_dict(decode_recipe(_Cursor(encode_recipe(r, has_soft)), has_soft, r.label_smoothing > 0),
                                 "recipe")


def decode_recipe(cur: _Cursor, has_soft: bool, smoothing: bool = False) -> dict[str, Any]:
    """Parse a recipe record and validate it with :class:`~edge_sdk.modelspec.TrainRecipe` (``RECIPE_BOUNDS``) ->
    the full form ``{"version": 1, ...}`` (``TrainRecipe.to_dict``; fields the record does not store at their
    TrainRecipe defaults, floats widened from float32). ``smoothing``: the header's FLAG_LABEL_SMOOTHING (the
    record ends with ``label_smoothing``, which must then be > 0)."""
    opt = cur.u8("recipe optimizer")
    sch = cur.u8("recipe schedule")
    if opt >= len(OPTIMIZER_CODES) or sch >= len(SCHEDULE_CODES):
        raise HeaderInvalid(f"recipe optimizer code {opt} / schedule code {sch} unknown")
    r: dict[str, Any] = _RECIPE_DEFAULTS.to_dict()
    r["optimizer"], r["schedule"] = OPTIMIZER_CODES[opt], SCHEDULE_CODES[sch]
    r["steps"] = cur.varint("recipe steps", MAX_STEPS)
    r["batch_size"] = cur.varint("recipe batch_size", MAX_BATCH)
    r["lr"] = cur.f4("recipe lr")
    r["weight_decay"] = cur.f4("recipe weight_decay")
    for f in RECIPE_OPT_FIELDS[r["optimizer"]]:
        r[f] = cur.f4(f"recipe {f}")
    if r["schedule"] == "step":
        r["decay_every"] = cur.varint("recipe decay_every", MAX_STEPS)
        r["gamma"] = cur.f4("recipe gamma")
    if has_soft:
        r["soft_weight"] = cur.f4("recipe soft_weight")
    if smoothing:
        r["label_smoothing"] = cur.f4("recipe label_smoothing")
        if not r["label_smoothing"] > 0:  # one encoding per recipe: no smoothing never sets the flag
            raise HeaderInvalid(f"flag bit 2 is set but the recipe's label_smoothing is {r['label_smoothing']} "
                                "(it must be > 0; a recipe without label smoothing leaves the bit clear)")
    try:
        return TrainRecipe.from_dict(r, "header recipe").to_dict()
    except SchemaError as exc:
        raise HeaderInvalid(f"recipe out of range: {exc}") from None


# ----------------------------------------------------------------------------------------- layout
def label_count_bits(n: int) -> int:
    """Bits per class count of a group of ``n`` rows: ``bit_length(n)`` (0 when n = 0)."""
    return int(n).bit_length()


def param_nbytes(encoding: str, count: int) -> int:
    if encoding == "f4":
        return 4 * count
    if encoding == "f2":
        return 2 * count
    if encoding == "q8":
        return 8 + count
    if encoding == "c4":
        return 4
    raise ConfigError(f"parameter encoding must be one of {PARAM_ENCODINGS}, got {encoding!r}")


def _layout_param_encoding(g: GroupLayout, p: str) -> str:
    enc = g.param_dtypes.get(p, "f4")
    if enc not in PARAM_ENCODINGS:
        raise ConfigError(f"group {g.name!r}: param {p!r} encoding must be one of {PARAM_ENCODINGS}, got {enc!r}")
    return enc


@dataclass
class PlanV2:
    header: bytes
    section_sizes: list[int]
    flags: int


def plan_payload_v2(layouts: Sequence[GroupLayout], num_classes: int, *, task_digest: bytes | None,
                    recipe: Mapping[str, Any] | None, label_mode: str) -> PlanV2:
    """The v2 header bytes and section sizes for ``layouts`` (the single code path of writer and size function).
    ``label_mode``: ``packed`` or ``counts`` (ignored when no group stores labels -> ``none``)."""
    v2_layouts = []
    for g in layouts:  # v1's checks with v2's parameter encodings mapped to v1 dtypes
        for p in g.param_shapes:
            _layout_param_encoding(g, p)
        v2_layouts.append(GroupLayout(g.name, g.role, g.kind, g.bits, g.n, g.d, g.param_shapes, {}, {},
                                      {p: "f4" for p in g.param_shapes}, g.labeled))
        if g.extra_shapes or g.meta:
            raise ConfigError(f"group {g.name!r}: payload v2 stores no extras or metadata")
    check_layouts(v2_layouts, num_classes, kinds=KIND_CODES)
    if num_classes > MAX_CLASSES:
        raise ConfigError(f"num_classes must be <= {MAX_CLASSES}")
    if task_digest is not None and len(task_digest) != TASK_DIGEST_SIZE:
        raise ConfigError(f"task digest must be {TASK_DIGEST_SIZE} raw bytes")
    labeled = [g for g in layouts if g.stores_labels]
    mode = label_mode if labeled else "none"
    if mode not in ("packed", "counts", "none"):
        raise ConfigError(f"label_mode must be 'packed' or 'counts', got {label_mode!r}")
    has_soft = any(g.role == "soft_labels" for g in layouts)
    out = bytearray(task_digest or bytes(TASK_DIGEST_SIZE))
    out += (num_classes - 1).to_bytes(2, "little")
    out.append(LABEL_MODES.index(mode))
    flags = 0
    out += varint(len(layouts))
    sizes: list[int] = []
    for g in layouts:
        out += bytes([ROLE_CODES.index(g.role), KIND_CODES.index(g.kind), g.bits])
        out += varint(g.n) + varint(g.d)
        if g.kind == "uniform_clip":
            out.append(1 if tuple(g.param_shapes["alpha"]) == (g.d,) and g.d != 1 else 0)
        if g.bits > 0:
            sizes.append(g.data_nbytes())
        for p in sorted(g.param_shapes):
            enc = _layout_param_encoding(g, p)
            out.append(PARAM_ENCODINGS.index(enc))
            sizes.append(param_nbytes(enc, int(np.prod(g.param_shapes[p], dtype=object))))
    if recipe is not None:
        r = _as_recipe(recipe)
        out += encode_recipe(r, has_soft)
        flags |= recipe_flags(r)
    if mode == "packed":
        sizes.append(packed_size(sum(g.n for g in labeled), codecs.label_bits(num_classes)))
    elif mode == "counts":
        sizes.extend(packed_size(num_classes, label_count_bits(g.n)) for g in labeled)
    if len(out) > HEADER_MAX_BYTES_V2:
        raise ConfigError(f"v2 header would be {len(out)} bytes, above {HEADER_MAX_BYTES_V2}")
    return PlanV2(bytes(out), sizes, flags)


# ----------------------------------------------------------------------------------------- parser
@dataclass(frozen=True)
class HeaderV2:
    """What a v2 header adds to :class:`HeaderDesc`."""

    desc: HeaderDesc
    task_digest: bytes | None
    recipe: dict[str, Any] | None
    label_mode: str
    #: counts mode: per labeled group index, (section, bits per count)
    count_sections: dict[int, tuple[int, int]]


def parse_header_v2(hbytes: bytes, flags: int) -> HeaderV2:
    """Validate a v2 header (binary) against the schema and limits; raise a PayloadError subclass."""
    cur = _Cursor(hbytes)
    td = cur.take(TASK_DIGEST_SIZE, "task digest")
    task_digest = None if td == bytes(TASK_DIGEST_SIZE) else td
    c = cur.u16("num_classes") + 1
    mode_code = cur.u8("label mode")
    if mode_code >= len(LABEL_MODES):
        raise HeaderInvalid(f"label mode {mode_code} unknown")
    mode = LABEL_MODES[mode_code]
    ngroups = cur.varint("group count", MAX_GROUPS)
    sizes: list[int] = []
    groups: list[GroupDesc] = []
    raw_groups = []
    total = n_samples = n_soft = 0
    sample_d: set[int] = set()
    for gi in range(ngroups):
        what = f"group {gi}"
        role_c, kind_c, bits = cur.u8(f"{what} role"), cur.u8(f"{what} kind"), cur.u8(f"{what} bits")
        if role_c >= len(ROLE_CODES) or kind_c >= len(KIND_CODES):
            raise HeaderInvalid(f"{what}: role code {role_c} / kind code {kind_c} unknown")
        role, kind = ROLE_CODES[role_c], KIND_CODES[kind_c]
        try:
            codecs.check_kind_bits(kind, bits)
        except codecs.CodecError as exc:
            raise HeaderInvalid(f"{what}: {exc}") from exc
        n = cur.varint(f"{what} n", MAX_N)
        d = cur.varint(f"{what} d", MAX_D)
        total += n
        if total > MAX_TOTAL_ROWS:
            raise LimitExceeded(f"groups hold more than {MAX_TOTAL_ROWS} samples in total")
        if n * d > MAX_VALUES:
            raise LimitExceeded(f"{what}: n*d = {n * d} exceeds {MAX_VALUES}")
        allowed = expected_param_shapes(kind, bits, n, d)
        shapes = {p: s[0] for p, s in allowed.items()}
        if kind == "uniform_clip":
            pf = cur.u8(f"{what} alpha shape")
            if pf > 1 or (pf == 1 and d == 1):
                raise HeaderInvalid(f"{what}: alpha shape code {pf} invalid (0 = [1], 1 = [D] with D > 1)")
            shapes["alpha"] = (d,) if pf else (1,)
        data = None
        if bits > 0:
            data = len(sizes)
            sizes.append(n * d * (bits // 8) if kind in codecs.RAW_KINDS else n * row_bytes(d, bits))
        params = {}
        for p in sorted(shapes):
            e = cur.u8(f"{what} param {p!r} encoding")
            if e >= len(PARAM_ENCODINGS):
                raise HeaderInvalid(f"{what}: param {p!r} encoding code {e} unknown")
            enc = PARAM_ENCODINGS[e]
            count = int(np.prod(shapes[p], dtype=object))
            params[p] = ArrayRef(len(sizes), enc, tuple(shapes[p]))
            sizes.append(param_nbytes(enc, count))
        if role == "soft_labels":
            if d != c or bits == 0:
                raise HeaderInvalid(f"{what}: soft labels need d == num_classes ({c}) and bits > 0")
            n_soft += n
        elif bits > 0:
            sample_d.add(d)
            n_samples += n
        raw_groups.append((gi, role, kind, bits, n, d, data, params))
    if len(sample_d) > 1:
        raise HeaderInvalid(f"sample groups have different D {sorted(sample_d)}")
    if n_soft and n_soft != n_samples:
        raise HeaderInvalid(f"soft labels cover {n_soft} rows, samples {n_samples}")
    has_soft = any(r[1] == "soft_labels" for r in raw_groups)
    if flags & FLAG_LABEL_SMOOTHING and not flags & FLAG_RECIPE:
        raise HeaderInvalid("flag bit 2 (label smoothing) is set without bit 1 (recipe)")
    recipe = decode_recipe(cur, has_soft, bool(flags & FLAG_LABEL_SMOOTHING)) if flags & FLAG_RECIPE else None
    if cur.pos != len(hbytes):
        raise HeaderInvalid(f"header has {len(hbytes) - cur.pos} unparsed trailing bytes")
    labeled = [r for r in raw_groups if r[1] == "samples" and r[3] > 0]
    label_sec = None
    count_sections: dict[int, tuple[int, int]] = {}
    n_label = 0
    if mode == "packed":
        label_sec = len(sizes)
        n_label = sum(r[4] for r in labeled)
        sizes.append(packed_size(n_label, codecs.label_bits(c)))
    elif mode == "counts":
        for r in labeled:
            w = label_count_bits(r[4])
            count_sections[r[0]] = (len(sizes), w)
            sizes.append(packed_size(c, w))
        n_label = sum(r[4] for r in labeled)
    if mode != "none" and not labeled:
        raise HeaderInvalid(f"label mode {mode!r} but no sample group with bits > 0")
    start = 0
    for gi, role, kind, bits, n, d, data, params in raw_groups:
        ls = None
        if mode != "none" and role == "samples" and bits > 0:
            ls = start
            start += n
        groups.append(GroupDesc(gi, f"g{gi}", role, kind, bits, n, d, data, params, {}, {}, ls))
    offs = 0
    sections = []
    for s in sizes:
        sections.append((offs, s, None))
        offs += s
    desc = HeaderDesc(c, groups, label_sec, n_label, None, {}, {}, sections)  # type: ignore[arg-type]
    return HeaderV2(desc, task_digest, recipe, mode, count_sections)

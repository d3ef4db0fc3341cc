"""Reading payloads: :func:`read_payload` -> :class:`Payload` (memory-mapped, lazy).

On open the reader checks, in order: magic, version, flags, header length cap, header bytes present,
JSON nesting depth, canonical JSON + schema + limits, exact file size (no truncation, no trailing bytes), the
SHA-256 content digest (streamed over the mapped file), then the signature. Section bytes are not touched until
a group decodes them; the first time a section is read its CRC32 is verified, and then the value rules of its
contents (zero padding bits, codes on the quantizer's grid, finite parameters and raw values, labels < C).
Every failure on untrusted bytes is a :class:`~edge_sdk.payload.errors.PayloadError`.

Memory: decoding works in blocks of :data:`DECODE_BLOCK_VALUES` values, so :meth:`GroupView.dequantize` and
:meth:`Payload.samples` allocate the float32 output (4 bytes per value) plus a bounded working buffer, and
:meth:`GroupView.codes` 1 byte per value (docs/payload-format.md, "Decoding memory").
"""

from __future__ import annotations

import contextlib
import hashlib
import mmap
import os
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edge_sdk import codecs
from edge_sdk.bitpack import packed_size, row_bytes, unpack_rows, unpack_uint
from edge_sdk.errors import ConfigError
from edge_sdk.payload.errors import (
    BadMagic,
    ChecksumMismatch,
    DigestMismatch,
    HeaderInvalid,
    HeaderTooLarge,
    InvalidValue,
    SignatureRequired,
    TrailingBytes,
    Truncated,
    UnsupportedVersion,
)
from edge_sdk.payload.format import (
    DIGEST_SIZE,
    FLAG_SIGNED,
    HEADER_MAX_BYTES,
    HEADER_PARSERS,
    KEY_ID_SIZE,
    KNOWN_FLAGS,
    MAGIC,
    PREFIX_SIZE,
    SIGNATURE_SIZE,
    SUPPORTED_VERSIONS,
    GroupDesc,
    HeaderDesc,
    decode_header,
    file_size,
    np_dtype,
)
from edge_sdk.payload.signing import trusted_key_map, verify_digest

_HASH_CHUNK = 1 << 20
#: values unpacked / checked / dequantized per block: the working buffers stay O(this), whatever N x D is
DECODE_BLOCK_VALUES = 1 << 16


class GroupView:
    """Lazy view of one group; nothing is decoded until a method is called."""

    def __init__(self, payload: Payload, desc: GroupDesc) -> None:
        self._p = payload
        self.desc = desc
        self.index, self.name, self.role, self.kind = desc.index, desc.name, desc.role, desc.kind
        self.bits, self.n, self.d, self.meta = desc.bits, desc.n, desc.d, desc.meta

    def __repr__(self) -> str:
        return f"GroupView({self.name!r}, role={self.role}, kind={self.kind}, bits={self.bits}, n={self.n}, d={self.d})"

    @property
    def nbytes(self) -> int:
        """Bytes of the group's sections (data + params + extras; labels excluded)."""
        secs = [self.desc.data] if self.desc.data is not None else []
        secs += [r.section for r in self.desc.params.values()] + [r.section for r in self.desc.extras.values()]
        return sum(self._p._desc.sections[s][1] for s in secs)

    def _rows_per_block(self) -> int:
        return max(1, DECODE_BLOCK_VALUES // max(1, self.d))

    def _data(self) -> np.ndarray:
        """uint8 view of the data section: CRC32 (R10) and the value rules (R11, R17, R18) checked once."""
        assert self.desc.data is not None
        raw = self._p._section(self.desc.data)
        if self.desc.data not in self._p._valid:
            self._check_data(raw)
            self._p._valid.add(self.desc.data)
        return raw

    def _check_data(self, raw: np.ndarray) -> None:
        n, d, bits, what = self.n, self.d, self.bits, f"group {self.name!r}"
        step = self._rows_per_block()
        if self.kind in codecs.RAW_KINDS:  # R18: raw values are finite
            vals = raw.view("<f2" if self.kind == "float16" else "<f4").reshape(n, d)
            for s in range(0, n, step):
                if not np.isfinite(vals[s: s + step]).all():
                    bad = s + int(np.flatnonzero(~np.isfinite(vals[s: s + step]).all(axis=1))[0])
                    raise InvalidValue(f"{what}: row {bad} holds NaN or inf (raw values must be finite, R18)")
            return
        rb = row_bytes(d, bits)
        rows = raw.reshape(n, rb)
        pad = 8 * rb - d * bits
        if pad:  # R11: the last `pad` bits of each row are zero
            mask = (0xFF << (8 - pad)) & 0xFF
            bad_rows = np.flatnonzero(rows[:, -1] & mask)
            if bad_rows.size:
                raise InvalidValue(f"{what}: row {int(bad_rows[0])} has non-zero padding bits (R11)")
        top = codecs.code_max(self.kind, bits)
        if top < (1 << bits) - 1:  # R17: symmetric grids never use code 2**bits - 1
            for s in range(0, n, step):
                c = unpack_rows(rows[s: s + step], bits, d)
                if int(c.max(initial=0)) > top:
                    r = s + int(np.flatnonzero((c > top).any(axis=1))[0])
                    raise InvalidValue(f"{what}: row {r} holds code {(1 << bits) - 1}, outside the {self.kind} "
                                       f"grid [0, {top}] (R17)")

    def packed_rows(self) -> np.ndarray:
        """uint8 [N, row_bytes(D, bits)] packed codes (a read-only view of the file)."""
        if self.kind in codecs.RAW_KINDS:
            raise ConfigError(f"group {self.name!r} holds raw {self.kind} values: use values() or dequantize()")
        if self.desc.data is None:
            return np.zeros((self.n, 0), np.uint8)
        return self._data().reshape(self.n, row_bytes(self.d, self.bits))

    def codes(self) -> np.ndarray:
        """uint8 [N, D] codes (kind "none": [N, 0]); 1 byte per value plus a bounded working buffer."""
        if self.desc.data is None:
            return np.zeros((self.n, 0), np.uint8)
        rows = self.packed_rows()
        out = np.empty((self.n, self.d), np.uint8)
        step = self._rows_per_block()
        for s in range(0, self.n, step):
            out[s: s + step] = unpack_rows(rows[s: s + step], self.bits, self.d)
        return out

    def values(self) -> np.ndarray:
        """Raw kinds: float16/float32 [N, D] values (a read-only view of the file)."""
        if self.kind not in codecs.RAW_KINDS:
            raise ConfigError(f"group {self.name!r} is quantized ({self.kind}): use codes() or dequantize()")
        return self._data().view("<f2" if self.kind == "float16" else "<f4").reshape(self.n, self.d)

    def _param_views(self) -> dict[str, np.ndarray]:
        """{name: read-only view of the file} of the quantizer parameters, checked once (R10, R18)."""
        out = {k: self._p._array(r, copy=False) for k, r in self.desc.params.items()}
        key = ("params", self.index)
        if key not in self._p._valid:
            problem = codecs.param_problem(self.kind, self.bits, out)
            if problem is not None:
                raise InvalidValue(f"group {self.name!r}: {problem} (R18)")
            self._p._valid.add(key)
        return out

    def params(self) -> dict[str, np.ndarray]:
        """{name: array} quantizer parameters as stored (float32, or float16), copies; checked (R18)."""
        return {k: v.copy() for k, v in self._param_views().items()}

    def extra_names(self) -> list[str]:
        return sorted(self.desc.extras)

    def extra(self, name: str) -> np.ndarray:
        """The extra array ``name`` (dtype and shape from the header), a copy."""
        ref = self.desc.extras.get(name)
        if ref is None:
            raise ConfigError(f"group {self.name!r} has no extra {name!r}; it has {self.extra_names()}")
        return self._p._array(ref)

    def validate(self) -> None:
        """Check every section of the group (CRC32 and value rules) without decoding it."""
        if self.desc.data is not None:
            self._data()
        self._param_views()
        for e in self.extra_names():
            self._p._section(self.desc.extras[e].section)

    def dequantize(self, out: np.ndarray | None = None) -> np.ndarray:
        """float32 [N, D] values per ``edge_sdk.codecs.dequantize`` (kind "none": [N, 0]).

        ``out``: float32 [N, D] to fill (e.g. rows of a larger array); otherwise a new array. Work is done in
        blocks, so nothing but the output grows with N x D."""
        if self.kind == "none":
            return np.zeros((self.n, 0), np.float32)
        if out is None:
            out = np.empty((self.n, self.d), np.float32)
        elif out.shape != (self.n, self.d) or out.dtype != np.float32:
            raise ConfigError(f"out must be float32 [{self.n}, {self.d}], got {out.dtype} {out.shape}")
        step = self._rows_per_block()
        if self.kind in codecs.RAW_KINDS:
            vals = self.values()
            for s in range(0, self.n, step):
                out[s: s + step] = vals[s: s + step]
            return out
        rows = self.packed_rows()
        params = self._param_views()
        per_sample = self.kind in ("symmetric_per_sample", "affine_sample")
        for s in range(0, self.n, step):
            block = {k: (v[s: s + step] if per_sample else v) for k, v in params.items()}
            codecs.dequantize(unpack_rows(rows[s: s + step], self.bits, self.d), self.kind, self.bits, block,
                              out=out[s: s + step])
        return out

    def labels(self) -> np.ndarray | None:
        """int64 [N] hard labels, or None when the group stores none (bits = 0, soft labels, unlabeled)."""
        if self.desc.label_start is None:
            return None
        allv = self._p._all_labels()
        return allv[self.desc.label_start: self.desc.label_start + self.n].copy()


class Payload:
    """An opened, verified payload. Use as a context manager or call :meth:`close`."""

    def __init__(self, buf: memoryview, mm: mmap.mmap | None, path: Path | None, trusted_keys: Any,
                 require_signature: bool, task_blob: Any = None) -> None:
        self._buf = buf
        self._mm = mm
        self.path = path
        self._task_blob_arg = task_blob
        self._task_blob: Any = None
        self.task_digest: str | None = None  # v2: hex SHA-256 of the task blob the payload names
        self.recipe: dict[str, Any] | None = None  # v2: the recipe record; v1: task["train"] if present
        self.label_mode = "packed"
        self._v2: Any = None
        self._checked: set[int] = set()  # sections whose CRC32 was verified
        self._valid: set[Any] = set()  # data sections / ("params", group) whose value rules were verified
        self._labels_cache: np.ndarray | None = None
        self._parse(trusted_keys, require_signature)

    # ------------------------------------------------------------------------------------ parsing
    def _parse(self, trusted_keys: Any, require_signature: bool) -> None:
        buf = self._buf
        size = len(buf)
        self.size = size
        head = bytes(buf[:PREFIX_SIZE])
        if head[:8] != MAGIC[: min(8, len(head))]:
            raise BadMagic(f"not an edge-sdk payload: first bytes {head[:8].hex()} != magic {MAGIC.hex()}")
        if size < PREFIX_SIZE:
            raise Truncated(f"file is {size} bytes, shorter than the {PREFIX_SIZE}-byte prefix")
        self.version = (head[8], head[9])
        if self.version not in SUPPORTED_VERSIONS:
            raise UnsupportedVersion(
                f"payload format {head[8]}.{head[9]} is not supported by this reader (accepts "
                f"{sorted(SUPPORTED_VERSIONS)}); upgrade edge-sdk or re-export the payload"
            )
        self.flags = int.from_bytes(head[10:12], "little")
        if self.version[0] == 2:
            self._parse_v2(trusted_keys, require_signature)
            return
        if self.flags & ~KNOWN_FLAGS:
            raise HeaderInvalid(f"unknown flag bits 0x{self.flags & ~KNOWN_FLAGS:04x} set (v1 defines only bit 0)")
        self.signed = bool(self.flags & FLAG_SIGNED)
        hlen = int.from_bytes(head[12:16], "little")
        if hlen > HEADER_MAX_BYTES:
            raise HeaderTooLarge(f"header length {hlen} exceeds the cap of {HEADER_MAX_BYTES} bytes")
        if hlen == 0:
            raise HeaderInvalid("header length is 0")
        trailer = DIGEST_SIZE + (KEY_ID_SIZE + SIGNATURE_SIZE if self.signed else 0)
        if size < PREFIX_SIZE + hlen + trailer:
            raise Truncated(f"file is {size} bytes; header ({hlen}) and trailer ({trailer}) need {PREFIX_SIZE + hlen + trailer}")
        self.header_len = hlen
        self.header = decode_header(bytes(buf[PREFIX_SIZE: PREFIX_SIZE + hlen]))
        self._desc: HeaderDesc = HEADER_PARSERS[self.version](self.header)
        expected = file_size(hlen, self._desc.data_len, self.signed)
        if size < expected:
            raise Truncated(f"file is {size} bytes, the header declares {expected}")
        if size > expected:
            raise TrailingBytes(f"file is {size} bytes, {size - expected} more than the {expected} declared")
        self.data_start = PREFIX_SIZE + hlen
        self.content_end = self.data_start + self._desc.data_len
        h = hashlib.sha256()
        for s in range(0, self.content_end, _HASH_CHUNK):
            h.update(buf[s: min(s + _HASH_CHUNK, self.content_end)])
        digest = h.digest()
        stored = bytes(buf[self.content_end: self.content_end + DIGEST_SIZE])
        if digest != stored:
            raise DigestMismatch(f"content SHA-256 {digest.hex()} != stored {stored.hex()} (the file is corrupted or "
                                 "was altered; fetch it again)")
        self.sha256 = digest.hex()
        self.key_id: str | None = None
        if self.signed:
            t = self.content_end + DIGEST_SIZE
            kid = bytes(buf[t: t + KEY_ID_SIZE])
            sig = bytes(buf[t + KEY_ID_SIZE: t + KEY_ID_SIZE + SIGNATURE_SIZE])
            self.key_id = kid.hex()
        if require_signature and not self.signed:
            raise SignatureRequired("payload is unsigned but a signature is required (sign it with `edge-sdk payload sign`)")
        if trusted_keys is not None and self.signed:
            verify_digest(trusted_key_map(trusted_keys), kid, sig, digest)
            self.signature_status = "verified"
        elif self.signed:
            if require_signature:
                raise ConfigError("require_signature=True needs trusted_keys to verify against")
            self.signature_status = "unverified"
        else:
            self.signature_status = "unsigned"
        self.groups = [GroupView(self, g) for g in self._desc.groups]
        train = self._desc.task.get("train") if isinstance(self._desc.task, dict) else None
        self.recipe = train if isinstance(train, dict) else None
        self.label_mode = "packed" if self._desc.labels is not None else "none"

    def _parse_v2(self, trusted_keys: Any, require_signature: bool) -> None:
        from edge_sdk.payload.format_v2 import (
            FLAGS_V2,
            HEADER_MAX_BYTES_V2,
            KEY_ID_SIZE_V2,
            SIGNATURE_DOMAIN_V2,
            SIGNATURE_SIZE_V2,
            parse_header_v2,
        )

        buf, size = self._buf, self.size
        if self.flags & ~FLAGS_V2:
            raise HeaderInvalid(f"unknown flag bits 0x{self.flags & ~FLAGS_V2:04x} set (v2 defines bits 0, 1 and 2)")
        self.signed = bool(self.flags & FLAG_SIGNED)
        hlen = int.from_bytes(bytes(buf[12:16]), "little")
        if hlen > HEADER_MAX_BYTES_V2:
            raise HeaderTooLarge(f"header length {hlen} exceeds the v2 cap of {HEADER_MAX_BYTES_V2} bytes")
        if hlen == 0:
            raise HeaderInvalid("header length is 0")
        trailer = KEY_ID_SIZE_V2 + SIGNATURE_SIZE_V2 if self.signed else DIGEST_SIZE
        if size < PREFIX_SIZE + hlen + trailer:
            raise Truncated(f"file is {size} bytes; header ({hlen}) and trailer ({trailer}) need {PREFIX_SIZE + hlen + trailer}")
        self.header_len = hlen
        hv = parse_header_v2(bytes(buf[PREFIX_SIZE: PREFIX_SIZE + hlen]), self.flags)
        self._v2 = hv
        self._desc = hv.desc
        expected = PREFIX_SIZE + hlen + self._desc.data_len + trailer
        if size < expected:
            raise Truncated(f"file is {size} bytes, the header declares {expected}")
        if size > expected:
            raise TrailingBytes(f"file is {size} bytes, {size - expected} more than the {expected} declared")
        self.data_start = PREFIX_SIZE + hlen
        self.content_end = self.data_start + self._desc.data_len
        h = hashlib.sha256()
        for s in range(0, self.content_end, _HASH_CHUNK):
            h.update(buf[s: min(s + _HASH_CHUNK, self.content_end)])
        digest = h.digest()
        self.sha256 = digest.hex()
        self.key_id = None
        if not self.signed:
            stored = bytes(buf[self.content_end: self.content_end + DIGEST_SIZE])
            if digest != stored:
                raise DigestMismatch(f"content SHA-256 {digest.hex()} != stored {stored.hex()} (the file is corrupted "
                                     "or was altered; fetch it again)")
        else:
            t = self.content_end
            kid = bytes(buf[t: t + KEY_ID_SIZE_V2])
            sig = bytes(buf[t + KEY_ID_SIZE_V2: t + KEY_ID_SIZE_V2 + SIGNATURE_SIZE_V2])
            self.key_id = kid.hex()
        if require_signature and not self.signed:
            raise SignatureRequired("payload is unsigned but a signature is required (sign it with `edge-sdk payload sign`)")
        if trusted_keys is not None and self.signed:
            from cryptography.exceptions import InvalidSignature

            from edge_sdk.payload.errors import BadSignature, UntrustedKey

            keys = trusted_key_map(trusted_keys)
            pub = next((k for kid_hex, k in keys.items() if kid_hex[: 2 * KEY_ID_SIZE_V2] == kid.hex()), None)
            if pub is None:
                raise UntrustedKey(f"payload is signed by key {kid.hex()}..., which is not among the {len(keys)} "
                                   "trusted key(s); pass the signer's public key")
            try:
                pub.verify(sig, SIGNATURE_DOMAIN_V2 + digest)
            except InvalidSignature:
                raise BadSignature(f"Ed25519 signature by key {kid.hex()}... does not verify (payload tampered or "
                                   "re-signed)") from None
            self.signature_status = "verified"
        elif self.signed:
            if require_signature:
                raise ConfigError("require_signature=True needs trusted_keys to verify against")
            self.signature_status = "unverified"
        else:
            self.signature_status = "unsigned"
        self.task_digest = hv.task_digest.hex() if hv.task_digest is not None else None
        self.recipe = hv.recipe
        self.label_mode = hv.label_mode
        self.header = {"version": "2.0", "task_digest": self.task_digest, "num_classes": self._desc.num_classes,
                       "label_mode": hv.label_mode, "recipe": hv.recipe,
                       "groups": [{"role": g.role, "kind": g.kind, "bits": g.bits, "n": g.n, "d": g.d,
                                   "params": {k: {"encoding": r.dtype, "shape": list(r.shape)} for k, r in g.params.items()}}
                                  for g in self._desc.groups]}
        self.groups = [GroupView(self, g) for g in self._desc.groups]

    # ----------------------------------------------------------------------------------- metadata
    @property
    def num_classes(self) -> int:
        return self._desc.num_classes

    def task_blob(self) -> Any:
        """v2: the :class:`~edge_sdk.payload.taskblob.TaskBlob` the payload names (given with ``task_blob=`` or
        found beside the payload); raises TaskBlobMissing / TaskMismatch. v1: None."""
        if self._v2 is None or self._v2.task_digest is None:
            return None
        if self._task_blob is None:
            from edge_sdk.payload.taskblob import find_task_blob

            self._task_blob = find_task_blob(self._v2.task_digest, self.path, self._task_blob_arg)
        return self._task_blob

    @property
    def task(self) -> dict[str, Any]:
        """The task dict (v1: the header's ``t``; v2: the task blob's ``task`` plus ``train`` = the recipe)."""
        if self._v2 is None:
            return self._desc.task
        blob = self.task_blob()
        t = dict(blob.task) if blob is not None else {}
        if self.recipe is not None:
            t["train"] = dict(self.recipe)
        return t

    @property
    def provenance(self) -> dict[str, Any]:
        return self._desc.provenance

    @property
    def graph(self) -> dict[str, Any] | None:
        if self._v2 is not None:
            blob = self.task_blob()
            return blob.graph if blob is not None else None
        return self._desc.graph

    @property
    def sections(self) -> list[dict[str, Any]]:
        """[{index, offset (absolute, bytes), length, crc32 (hex)}] in file order."""
        return [{"index": i, "offset": self.data_start + o, "length": ln, "crc32": None if c is None else f"{c:08x}"}
                for i, (o, ln, c) in enumerate(self._desc.sections)]

    @property
    def labels_section(self) -> int | None:
        return self._desc.labels

    def group(self, name: str) -> GroupView:
        for g in self.groups:
            if g.name == name:
                return g
        raise ConfigError(f"payload has no group {name!r}; groups: {[g.name for g in self.groups]}")

    def raw_content(self) -> memoryview:
        """prefix + header + data bytes (what the content digest covers)."""
        return self._buf[: self.content_end]

    # ------------------------------------------------------------------------------------ sections
    def _section(self, i: int) -> np.ndarray:
        """uint8 view of section ``i``; its CRC32 is verified on first access."""
        off, ln, crc = self._desc.sections[i]
        if ln == 0:
            view = np.zeros(0, np.uint8)
        else:
            view = np.frombuffer(self._buf, np.uint8, count=ln, offset=self.data_start + off)
        if i not in self._checked and crc is not None:  # v2 sections carry no CRC (digest/signature checked on open)
            got = zlib.crc32(view.data)
            if got != crc:
                raise ChecksumMismatch(f"section {i} CRC32 {got:08x} != header {crc:08x} (corrupted data)")
            self._checked.add(i)
        return view

    def _array(self, ref: Any, copy: bool = True) -> np.ndarray:
        raw = self._section(ref.section)
        if ref.dtype == "q8":  # v2: f4 base, f4 step, then one code per value: base + code * step
            base, step = raw[:8].view("<f4")
            if not (np.isfinite(base) and np.isfinite(step) and step >= 0):
                raise InvalidValue(f"q8 parameter (section {ref.section}) has base {base}, step {step}: both must be "
                                   "finite and step >= 0 (R21)")
            return (base + raw[8:].astype(np.float32) * step).reshape(ref.shape)
        if ref.dtype == "c4":  # v2: one float32 for the whole array
            v = raw.view("<f4")[0]
            if not np.isfinite(v):
                raise InvalidValue(f"c4 parameter (section {ref.section}) is not finite (R21)")
            return np.full(ref.shape, v, np.float32)
        view = raw.view(np_dtype(ref.dtype)).reshape(ref.shape)
        return view.copy() if copy else view

    def verify_sections(self) -> None:
        """Check every section once without decoding it: CRC32 (R10), padding bits (R11), labels < C (R12), codes
        on the grid (R17), finite parameters and raw values (R18). ``payload verify`` and ``sign`` run this."""
        for i in range(len(self._desc.sections)):
            self._section(i)
        for g in self.groups:
            g.validate()
        self._all_labels()

    def _all_labels(self) -> np.ndarray:
        if self._labels_cache is None and self._v2 is not None and self._v2.label_mode == "counts":
            self._labels_cache = self._labels_from_counts()
        if self._labels_cache is None:
            lab = self._desc.labels
            if lab is None:
                self._labels_cache = np.zeros(0, np.int64)
            else:
                c, n = self._desc.num_classes, self._desc.n_labels
                lb = codecs.label_bits(c)
                raw = self._section(lab)
                pad = 8 * packed_size(n, lb) - n * lb
                if pad and raw[-1] & ((0xFF << (8 - pad)) & 0xFF):
                    raise InvalidValue("the label stream has non-zero padding bits after its last label (R11)")
                v = np.empty(n, np.int64)
                step = DECODE_BLOCK_VALUES  # a multiple of 8, so every block starts on a byte boundary
                for s in range(0, n, step):
                    k = min(step, n - s)
                    v[s: s + k] = unpack_uint(raw[s * lb // 8:], lb, k)
                if n and int(v.max()) >= c:
                    raise InvalidValue(f"hard label {int(v.max())} at index {int(v.argmax())} >= num_classes {c} (R12)")
                self._labels_cache = v
        return self._labels_cache

    def _labels_from_counts(self) -> np.ndarray:
        """v2 ``counts``: each labeled group's rows are in class order; its C counts (``bit_length(N)`` bits each)
        must sum to N (R20) and have zero padding bits (R11)."""
        c = self._desc.num_classes
        parts = []
        for g in self._desc.groups:
            if g.label_start is None:
                continue
            sec, w = self._v2.count_sections[g.index]
            raw = self._section(sec)
            if w == 0:
                parts.append(np.zeros(0, np.int64))
                continue
            pad = 8 * packed_size(c, w) - c * w
            if pad and raw[-1] & ((0xFF << (8 - pad)) & 0xFF):
                raise InvalidValue(f"group {g.name!r}: the class-count stream has non-zero padding bits (R11)")
            counts = unpack_uint(raw, w, c).astype(np.int64)
            if int(counts.sum()) != g.n:
                raise InvalidValue(f"group {g.name!r}: class counts sum to {int(counts.sum())}, the group has {g.n} "
                                   "rows (R20)")
            parts.append(np.repeat(np.arange(c, dtype=np.int64), counts))
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    # ---------------------------------------------------------------------------------- decoding
    def sample_groups(self) -> list[GroupView]:
        return [g for g in self.groups if g.role == "samples" and g.bits > 0]

    def samples(self) -> tuple[np.ndarray, np.ndarray | None]:
        """(X float32 [N_total, D], y int64 [N_total] or None) of all sample groups with bits > 0, in order."""
        gs = self.sample_groups()
        if not gs:
            return np.zeros((0, 0), np.float32), (np.zeros(0, np.int64) if self.label_mode != "none" else None)
        x = self._stack(gs)
        if self.label_mode == "none":
            return x, None
        return x, self._all_labels().copy()

    def soft_labels(self) -> np.ndarray | None:
        """float32 [N_total, C] soft labels (rows align with :meth:`samples`), or None."""
        gs = [g for g in self.groups if g.role == "soft_labels"]
        if not gs:
            return None
        return self._stack(gs)

    @staticmethod
    def _stack(gs: list[GroupView]) -> np.ndarray:
        """Dequantize groups of one D into one float32 [sum N, D] array, each straight into its rows."""
        out = np.empty((sum(g.n for g in gs), gs[0].d), np.float32)
        row = 0
        for g in gs:
            g.dequantize(out=out[row: row + g.n])
            row += g.n
        return out

    def decode_all(self) -> None:
        """Decode everything once (CLI ``verify``; fuzzing): sections, labels, every group's arrays."""
        self.verify_sections()
        for g in self.groups:
            g.params()
            for e in g.extra_names():
                g.extra(e)
            g.dequantize()
            g.labels()
        self.samples()
        self.soft_labels()

    # ---------------------------------------------------------------------------------- lifetime
    def close(self) -> None:
        """Release the memory map (arrays still referencing it keep it alive until collected)."""
        self._labels_cache = None
        if self._mm is not None:
            with contextlib.suppress(BufferError):
                self._buf.release()
            with contextlib.suppress(BufferError):
                self._mm.close()
            self._mm = None

    def __enter__(self) -> Payload:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_payload(src: str | os.PathLike | bytes | bytearray | memoryview,
                 trusted_keys: Mapping[str, Any] | Iterable[Any] | None = None,
                 require_signature: bool = False, task_blob: Any = None) -> Payload:
    """Open and verify a payload from a path (memory-mapped) or from bytes.

    ``trusted_keys``: dict {key id hex: public key} or list of public keys (Ed25519PublicKey, 32 raw bytes,
    or key file paths). With keys, a signed payload must verify (UntrustedKey / BadSignature);
    ``require_signature=True`` rejects unsigned payloads (SignatureRequired). ``task_blob`` (v2 only): the task
    blob bytes or path; otherwise it is looked up beside the payload when ``.task`` is first used.
    """
    if isinstance(src, (bytes, bytearray, memoryview)):
        mv = memoryview(src)
        if mv.ndim != 1 or mv.itemsize != 1:
            mv = mv.cast("B")
        return Payload(mv, None, None, trusted_keys, require_signature, task_blob)
    path = Path(src)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            raise Truncated(f"{path} is empty")
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    buf = memoryview(mm)
    try:
        return Payload(buf, mm, path, trusted_keys, require_signature, task_blob)
    except BaseException:
        buf.release()
        mm.close()
        raise


"""Vectorised numpy bit packing of unsigned codes (widths 1..8), the byte layout of payload format v1.

Bit order (docs/payload-format.md, "Bit order"): value ``i`` of a stream occupies stream bits
``[i*b, (i+1)*b)``, least-significant bit of the value first; stream bit ``k`` is bit ``k mod 8`` of byte
``k // 8`` (LSB-first, the order of ``np.packbits(..., bitorder="little")``). The last byte of a stream is
padded with zero bits. Sample codes are packed *row-aligned*: each row of ``D`` values is its own stream of
``row_bytes(D, b) = ceil(D*b/8)`` bytes (so each sample starts on a byte boundary, costing at most 7 bits
per sample); labels are one contiguous stream (:func:`pack_uint` also covers widths 9..16 for more than
256 classes).

Implementation: ``8/gcd(8, b)`` values of ``b`` bits fill exactly ``b/gcd(8, b)`` bytes (a *group*, see
:func:`group_shape`), so a stream is processed as whole groups. Strategies measured by
``tools/bench_bitpack.py`` (kept: the fastest on the dev machine):

* ``b = 8``: a copy; ``b = 1``: ``np.unpackbits``/``np.packbits`` (little bit order);
* ``b = 2..7``: every group is read as one little-endian word (uint8 for b = 2, 4; uint32 for b = 3, 6;
  uint64 for b = 5, 7; zero-widened) and value ``j`` is ``(word >> j*b) & (2**b - 1)``: a loop over the
  <= 8 positions of a group, vectorised over groups. Packing is the reverse (shift-or passes, then the
  low bytes of every word). Rejected (slower or no faster in the strategy table that
  ``tools/bench_bitpack.py`` prints): a 256-entry lookup-table gather (b = 1, 2, 4), ``np.unpackbits`` +
  ``np.packbits`` re-assembly (any b), and a broadcast ``words[:, None] >> shifts`` over a 2-D block.

Work is done in blocks of :data:`BLOCK_GROUPS` groups so that temporaries stay in cache.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from edge_sdk.errors import ConfigError

#: groups processed per block; temporaries are <= 8 bytes x this (128 KiB), so they stay in L2
BLOCK_GROUPS = 1 << 14
MAX_BITS = 8


def row_bytes(d: int, bits: int) -> int:
    """Bytes of one row-aligned packed row of ``d`` values at ``bits`` bits: ``ceil(d*bits/8)``."""
    if d < 0 or bits < 0:
        raise ConfigError(f"row_bytes needs d >= 0 and bits >= 0, got d={d}, bits={bits}")
    return (d * bits + 7) // 8


def packed_size(count: int, bits: int) -> int:
    """Bytes of a contiguous stream of ``count`` values at ``bits`` bits: ``ceil(count*bits/8)``."""
    return row_bytes(count, bits)


def _check_bits(bits: int, hi: int = MAX_BITS) -> None:
    if not isinstance(bits, (int, np.integer)) or isinstance(bits, bool) or not 0 <= bits <= hi:
        raise ConfigError(f"bit width must be an integer in 0..{hi}, got {bits!r}")


def _as_codes(values: np.ndarray, bits: int, dtype: Any = np.uint8) -> np.ndarray:
    v = np.asarray(values)
    if v.dtype.kind not in "ui":
        raise ConfigError(f"codes must be an unsigned integer array, got dtype {v.dtype}")
    if v.size:
        lo, hi = int(v.min()), int(v.max())
        if lo < 0 or hi >= (1 << bits):
            raise ConfigError(
                f"codes must lie in [0, {(1 << bits) - 1}] for {bits} bits; got range [{lo}, {hi}]"
            )
    return np.ascontiguousarray(v, dtype=dtype)


# ------------------------------------------------------------------------------------------ unpack
def group_shape(bits: int) -> tuple[int, int]:
    """(values, bytes) of the smallest whole-byte group at ``bits`` bits: 8/gcd(8, b) values in b/gcd bytes."""
    g = math.gcd(8, bits)
    return 8 // g, bits // g


def _word_dtype(nbytes: int) -> type:
    return np.uint8 if nbytes == 1 else (np.uint32 if nbytes <= 4 else np.uint64)


def _unpack_groups(buf: np.ndarray, bits: int, groups: int, out: np.ndarray) -> None:
    """Unpack ``groups`` whole groups (see :func:`group_shape`) from ``buf`` into ``out`` (b = 2..7).

    Each group is read as one little-endian word (uint8 / uint32 / uint64, zero-widened), and value ``j``
    of the group is ``(word >> j*b) & (2**b - 1)``: a loop over the <= 8 positions, vectorised over groups.
    """
    vpg, bpg = group_shape(bits)
    wdt = _word_dtype(bpg)
    wsize = np.dtype(wdt).itemsize
    mask = wdt((1 << bits) - 1)
    g = buf[: groups * bpg].reshape(groups, bpg)
    o = out.reshape(groups, vpg)
    step = BLOCK_GROUPS
    first = min(step, groups)
    wide = np.zeros((first, wsize), np.uint8) if wsize != bpg else None
    tmp: np.ndarray = np.empty(first, wdt)
    shifts = [wdt(j * bits) for j in range(vpg)]
    for s in range(0, groups, step):
        e = min(s + step, groups)
        k = e - s
        if wide is None:
            w = g[s:e].reshape(k)
        else:
            wide[:k, :bpg] = g[s:e]
            w = wide[:k].view(wdt).reshape(k)
        t = tmp[:k]
        for j in range(vpg):
            np.right_shift(w, shifts[j], out=t)
            np.bitwise_and(t, mask, out=t)
            o[s:e, j] = t


def unpack(buf: np.ndarray | bytes, bits: int, count: int) -> np.ndarray:
    """Packed stream -> uint8 [count] codes (see the module docstring for the bit order).

    ``buf`` must hold at least ``ceil(count*bits/8)`` bytes; extra bytes are ignored.
    """
    _check_bits(bits)
    if count < 0:
        raise ConfigError(f"count must be >= 0, got {count}")
    b = np.frombuffer(buf, np.uint8) if isinstance(buf, (bytes, bytearray, memoryview)) else np.asarray(buf)
    b = b.reshape(-1)
    if b.dtype != np.uint8:
        raise ConfigError(f"packed buffer must be uint8, got {b.dtype}")
    need = packed_size(count, bits)
    if b.size < need:
        raise ConfigError(f"packed buffer has {b.size} bytes, {need} needed for {count} values at {bits} bits")
    if bits == 0 or count == 0:
        return np.zeros(count, np.uint8)
    if bits == 8:
        return b[:count].copy()
    if bits == 1:
        return np.unpackbits(b[:need], count=count, bitorder="little")
    vpg, bpg = group_shape(bits)
    groups = -(-count // vpg)
    if groups * bpg > need:  # last group incomplete: widen with zero bytes
        tail = np.zeros(groups * bpg, np.uint8)
        tail[:need] = b[:need]
        b = tail
    out = np.empty(groups * vpg, np.uint8)
    _unpack_groups(b, bits, groups, out)
    return out if groups * vpg == count else out[:count].copy()


# -------------------------------------------------------------------------------------------- pack
def _pack_groups(v: np.ndarray, bits: int, groups: int, out: np.ndarray) -> None:
    """Pack ``v`` [groups*vpg] codes into ``out`` [groups*bpg] bytes (b = 2..7), 8 shift-or passes."""
    vpg, bpg = group_shape(bits)
    wdt = _word_dtype(bpg)
    wsize = np.dtype(wdt).itemsize
    vv = v.reshape(groups, vpg)
    o = out.reshape(groups, bpg)
    step = BLOCK_GROUPS
    first = min(step, groups)
    acc: np.ndarray = np.empty(first, wdt)
    tmp: np.ndarray = np.empty(first, wdt)
    for s in range(0, groups, step):
        e = min(s + step, groups)
        k = e - s
        a, t = acc[:k], tmp[:k]
        a[:] = vv[s:e, 0]
        for j in range(1, vpg):
            t[:] = vv[s:e, j]
            np.left_shift(t, wdt(j * bits), out=t)
            np.bitwise_or(a, t, out=a)
        o[s:e] = a.view(np.uint8).reshape(k, wsize)[:, :bpg]


def pack(values: np.ndarray, bits: int) -> np.ndarray:
    """uint8 [M] codes in ``[0, 2**bits)`` -> uint8 [ceil(M*bits/8)] stream (zero-padded last byte)."""
    _check_bits(bits)
    v = _as_codes(values, bits).reshape(-1)
    m = v.size
    if bits == 0 or m == 0:
        return np.zeros(packed_size(m, bits), np.uint8)
    if bits == 8:
        return v.copy()
    if bits == 1:
        return np.packbits(v, bitorder="little")
    vpg, bpg = group_shape(bits)
    groups = -(-m // vpg)
    if groups * vpg != m:
        padded = np.zeros(groups * vpg, np.uint8)
        padded[:m] = v
        v = padded
    out = np.empty(groups * bpg, np.uint8)
    _pack_groups(v, bits, groups, out)
    need = packed_size(m, bits)
    return out if out.size == need else out[:need].copy()


# ---------------------------------------------------------------------------------------- row-wise
def pack_rows(codes: np.ndarray, bits: int) -> np.ndarray:
    """uint8 [N, D] codes -> uint8 [N, row_bytes(D, bits)]: each row packed as its own stream."""
    _check_bits(bits)
    c = np.asarray(codes)
    if c.ndim != 2:
        raise ConfigError(f"codes must be 2-D [N, D], got shape {c.shape}")
    c = _as_codes(c, bits)
    n, d = c.shape
    rb = row_bytes(d, bits)
    if bits == 0 or n == 0 or d == 0:
        return np.zeros((n, rb), np.uint8)
    if (d * bits) % 8 == 0:  # rows end on byte boundaries: the row-aligned layout is one stream
        return pack(c.reshape(-1), bits).reshape(n, rb)
    # pad each row to a multiple of 8 values (whole groups), pack as one stream, drop pad bytes
    d8 = -(-d // 8) * 8
    padded = np.zeros((n, d8), np.uint8)
    padded[:, :d] = c
    full = pack(padded.reshape(-1), bits).reshape(n, d8 * bits // 8)
    return np.ascontiguousarray(full[:, :rb])


def unpack_rows(packed: np.ndarray, bits: int, d: int) -> np.ndarray:
    """uint8 [N, row_bytes(d, bits)] -> uint8 [N, d] codes (inverse of :func:`pack_rows`)."""
    _check_bits(bits)
    p = np.asarray(packed)
    if p.ndim != 2 or p.dtype != np.uint8:
        raise ConfigError(f"packed rows must be uint8 [N, row_bytes], got {p.dtype} {p.shape}")
    n = p.shape[0]
    rb = row_bytes(d, bits)
    if p.shape[1] != rb:
        raise ConfigError(f"packed rows have {p.shape[1]} bytes, row_bytes({d}, {bits}) = {rb}")
    if bits == 0 or n == 0 or d == 0:
        return np.zeros((n, d), np.uint8)
    if (d * bits) % 8 == 0:
        return unpack(np.ascontiguousarray(p).reshape(-1), bits, n * d).reshape(n, d)
    d8 = -(-d // 8) * 8
    wide = np.zeros((n, d8 * bits // 8), np.uint8)
    wide[:, :rb] = p
    full = unpack(wide.reshape(-1), bits, n * d8).reshape(n, d8)
    return np.ascontiguousarray(full[:, :d])


# ------------------------------------------------------------------------------ wide (labels > 8 b)
def pack_uint(values: np.ndarray, bits: int) -> np.ndarray:
    """Like :func:`pack` for widths 0..16 (labels of more than 256 classes); same bit order."""
    _check_bits(bits, 16)
    if bits <= 8:
        return pack(_as_codes(values, bits), bits)
    v = _as_codes(values, bits, np.dtype("<u2")).reshape(-1)
    allbits = np.unpackbits(v.view(np.uint8), bitorder="little").reshape(-1, 16)[:, :bits]
    return np.packbits(allbits.reshape(-1), bitorder="little")


def unpack_uint(buf: np.ndarray | bytes, bits: int, count: int) -> np.ndarray:
    """Inverse of :func:`pack_uint`: stream -> uint16 [count] (uint8 widths are widened)."""
    _check_bits(bits, 16)
    if bits <= 8:
        return unpack(buf, bits, count).astype(np.uint16)
    b = np.frombuffer(buf, np.uint8) if isinstance(buf, (bytes, bytearray, memoryview)) else np.asarray(buf)
    b = b.reshape(-1)
    need = packed_size(count, bits)
    if b.size < need or b.dtype != np.uint8:
        raise ConfigError(f"packed buffer has {b.size} bytes ({b.dtype}), {need} uint8 needed")
    allbits = np.unpackbits(b[:need], count=count * bits, bitorder="little").reshape(count, bits)
    wide = np.zeros((count, 16), np.uint8)
    wide[:, :bits] = allbits
    return np.packbits(wide, axis=1, bitorder="little").view("<u2").reshape(count).astype(np.uint16)

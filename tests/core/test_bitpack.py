"""Bit packing (edge_sdk.bitpack) against an independent bit-by-bit reference of the documented order."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_sdk import bitpack
from edge_sdk.errors import ConfigError


def ref_pack(values, bits: int) -> bytes:
    """Reference: stream bit k = bit (k mod 8) of byte k//8; value i at bits [i*b, (i+1)*b), LSB first."""
    values = [int(v) for v in values]
    nbits = len(values) * bits
    out = bytearray((nbits + 7) // 8)
    for i, v in enumerate(values):
        for j in range(bits):
            if (v >> j) & 1:
                k = i * bits + j
                out[k // 8] |= 1 << (k % 8)
    return bytes(out)


def test_documented_examples():
    assert bitpack.pack(np.array([1, 0, 1], np.uint8), 3).tobytes() == b"\x41\x00"
    assert bitpack.pack(np.array([1, 0, 1], np.uint8), 1).tobytes() == b"\x05"
    assert bitpack.pack(np.array([2, 1], np.uint8), 2).tobytes() == b"\x06"
    assert bitpack.pack(np.array([1] * 9, np.uint8), 1).tobytes() == b"\xff\x01"


@pytest.mark.parametrize("bits", range(0, 9))
@pytest.mark.parametrize("m", [0, 1, 7, 8, 9, 23, 24, 25, 64, 1001])
def test_pack_matches_reference(bits, m):
    rng = np.random.default_rng(bits * 1000 + m)
    v = rng.integers(0, 1 << bits, m, dtype=np.uint8) if bits else np.zeros(m, np.uint8)
    p = bitpack.pack(v, bits)
    assert p.dtype == np.uint8 and p.size == bitpack.packed_size(m, bits)
    assert p.tobytes() == ref_pack(v, bits)
    assert np.array_equal(bitpack.unpack(p, bits, m), v)
    assert np.array_equal(bitpack.unpack(p.tobytes(), bits, m), v)


@settings(max_examples=150, deadline=None)
@given(bits=st.integers(0, 8), n=st.integers(0, 20), d=st.integers(0, 40), seed=st.integers(0, 2**32 - 1))
def test_rows_roundtrip_and_reference(bits, n, d, seed):
    rng = np.random.default_rng(seed)
    c = rng.integers(0, 1 << bits, (n, d), dtype=np.uint8) if bits else np.zeros((n, d), np.uint8)
    pr = bitpack.pack_rows(c, bits)
    assert pr.shape == (n, bitpack.row_bytes(d, bits)) == (n, (d * bits + 7) // 8)
    for i in range(n):
        assert pr[i].tobytes() == ref_pack(c[i], bits)
    assert np.array_equal(bitpack.unpack_rows(pr, bits, d), c)


def test_row_padding_bits_are_zero_and_cost_at_most_7_bits():
    for bits in range(1, 9):
        for d in range(1, 20):
            c = np.full((3, d), (1 << bits) - 1, np.uint8)
            pr = bitpack.pack_rows(c, bits)
            pad = 8 * pr.shape[1] - d * bits
            assert 0 <= pad <= 7
            if pad:
                assert np.all(pr[:, -1] >> (8 - pad) == 0)


@pytest.mark.parametrize("bits", range(9, 17))
def test_pack_uint_wide_labels(bits):
    rng = np.random.default_rng(bits)
    v = rng.integers(0, 1 << bits, 41).astype(np.uint16)
    p = bitpack.pack_uint(v, bits)
    assert p.tobytes() == ref_pack(v, bits)
    assert np.array_equal(bitpack.unpack_uint(p, bits, 41), v)


def test_large_block_boundaries():
    rng = np.random.default_rng(7)
    m = bitpack.BLOCK_GROUPS * 8 * 2 + 13  # crosses several processing blocks
    for bits in range(1, 9):
        v = rng.integers(0, 1 << bits, m, dtype=np.uint8)
        assert np.array_equal(bitpack.unpack(bitpack.pack(v, bits), bits, m), v)


def test_errors():
    with pytest.raises(ConfigError, match="codes must lie"):
        bitpack.pack(np.array([4], np.uint8), 2)
    with pytest.raises(ConfigError, match="bit width"):
        bitpack.pack(np.array([1], np.uint8), 9)
    with pytest.raises(ConfigError, match="unsigned integer"):
        bitpack.pack(np.array([1.0]), 2)
    with pytest.raises(ConfigError, match="needed"):
        bitpack.unpack(np.zeros(1, np.uint8), 3, 8)
    with pytest.raises(ConfigError, match="row_bytes"):
        bitpack.unpack_rows(np.zeros((2, 3), np.uint8), 3, 5)
    with pytest.raises(ConfigError, match="2-D"):
        bitpack.pack_rows(np.zeros(3, np.uint8), 3)

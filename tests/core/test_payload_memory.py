"""Decoding memory stays within the documented bound (docs/payload-format.md, "Decoding memory") at a size where
it matters: an 8 MiB section of 1-bit codes (67,108,864 values). Peak numpy bytes are read from tracemalloc
(numpy reports its buffers to it), so the figure is exact and independent of the machine's load."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from edge_sdk.payload import SampleGroup, read_payload, write_payload

OVERHEAD = 2 << 20  # the documented "about 2 MiB" of working buffers


def _peak(fn):
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    out = fn()
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return out, peak


@pytest.mark.parametrize("kind, bits, n, d", [("codebook", 1, 8192, 8192), ("symmetric_per_sample", 3, 1 << 20, 13)])
def test_decode_memory_bound(tmp_path, kind, bits, n, d):
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 2 if bits == 1 else 7, size=(n, d), dtype=np.uint8)
    params = ({"levels": np.array([-1.0, 1.0], np.float32)} if kind == "codebook"
              else {"scale": rng.uniform(0.1, 1, n).astype(np.float32)})
    path = tmp_path / "big.epl"
    write_payload(path, [SampleGroup("g", kind, bits, data=codes, params=params, labels=np.zeros(n, np.int64))], 2)
    values = n * d
    with read_payload(path) as p:
        p.verify_sections()
        x, peak = _peak(lambda: p.groups[0].dequantize())
        assert peak <= 4 * values + OVERHEAD, peak / values
        if kind == "codebook":
            assert np.array_equal(x, np.where(codes == 1, np.float32(1), np.float32(-1)))
        del x
        (xs, _), peak = _peak(p.samples)
        assert peak <= 4 * values + 8 * n + OVERHEAD, peak / values  # + the int64 labels
        del xs
        c, peak = _peak(p.groups[0].codes)
        assert peak <= values + OVERHEAD and np.array_equal(c, codes)

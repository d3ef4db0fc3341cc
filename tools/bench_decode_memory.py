#!/usr/bin/env python3
"""Decoding memory and speed of the payload reader (docs/payload-format.md, "Decoding memory").

For payloads whose data section is 8 MiB, opened from a file (memory-mapped), measure the peak of the bytes
numpy allocates (``tracemalloc``, which numpy reports its buffers to) while decoding, per decoded value, and
the decode rate. ``blocked`` is the reader (``GroupView.dequantize`` / ``Payload.samples`` / ``codes``: blocks of
``DECODE_BLOCK_VALUES``); ``whole-array`` unpacks every code first and then dequantizes (what the reader did
before issue 12), for comparison in the same run. Run: ``.venv/bin/python tools/bench_decode_memory.py [--out DIR]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edge_sdk import codecs
from edge_sdk.bitpack import unpack_rows
from edge_sdk.payload import SampleGroup, read_payload, write_payload
from edge_sdk.payload.reader import DECODE_BLOCK_VALUES

SECTION_BYTES = 8 << 20
CASES = [("codebook", 1, 8192), ("symmetric_per_sample", 3, 13), ("uniform_clip", 4, 64), ("float16", 16, 64)]


def _payload(path: Path, kind: str, bits: int, d: int) -> int:
    """Write a payload with an 8 MiB data section; return N * D."""
    rng = np.random.default_rng(0)
    row = d * 2 if kind == "float16" else -(-d * bits // 8)
    n = SECTION_BYTES // row
    if kind == "float16":
        g = SampleGroup("g", kind, 16, data=rng.normal(size=(n, d)).astype(np.float16))
    else:
        top = codecs.code_max(kind, bits)
        codes = rng.integers(0, top + 1, size=(n, d), dtype=np.uint8)
        params = {"codebook": {"levels": rng.normal(size=1 << bits).astype(np.float32)},
                  "symmetric_per_sample": {"scale": rng.uniform(0.1, 1, n).astype(np.float32)},
                  "uniform_clip": {"alpha": np.ones(d, np.float32)}}[kind]
        g = SampleGroup("g", kind, bits, data=codes, params=params)
    write_payload(path, [g], 2)
    return n * d


def _peak(fn: Callable[[], Any]) -> tuple[int, float]:
    """(peak traced bytes above the start, seconds) of one call; the result is dropped after the peak."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    del out
    return peak, dt


def _whole_array(p: Any) -> np.ndarray:
    g = p.groups[0]
    if g.kind in codecs.RAW_KINDS:
        return g.values().astype(np.float32)
    return codecs.dequantize(unpack_rows(g.packed_rows(), g.bits, g.d), g.kind, g.bits, g.params())


def measure(tmp: Path) -> list[dict[str, Any]]:
    rows = []
    for kind, bits, d in CASES:
        path = tmp / f"{kind}.epl"
        values = _payload(path, kind, bits, d)
        with read_payload(path) as p:
            p.verify_sections()  # value rules checked once, outside the measurement
            p.groups[0].params()
            ops: dict[str, Callable[[], Any]] = {
                "dequantize (blocked)": lambda p=p: p.groups[0].dequantize(),
                "samples (blocked)": lambda p=p: p.samples(),
                "dequantize (whole-array)": lambda p=p: _whole_array(p),
            }
            if kind != "float16":
                ops["codes (blocked)"] = lambda p=p: p.groups[0].codes()
            for op, fn in ops.items():
                fn()  # warm-up
                peak, dt = _peak(fn)
                rows.append({"kind": kind, "bits": bits, "d": d, "values": values, "op": op,
                             "peak_bytes": peak, "bytes_per_value": peak / values,
                             "overhead_bytes": peak - values * (1 if op.startswith("codes") else 4),
                             "m_values_per_s": values / dt / 1e6})
    return rows


def main(out_dir: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as t:
        rows = measure(Path(t))
    print(f"decode memory: 8 MiB data section per payload, DECODE_BLOCK_VALUES = {DECODE_BLOCK_VALUES}; "
          "peak = numpy bytes traced by tracemalloc during the call")
    print(f"{'kind':<22}{'bits':>5}{'D':>6}{'values':>11}  {'op':<26}{'bytes/value':>12}{'overhead MiB':>13}"
          f"{'M values/s':>12}")
    for r in rows:
        print(f"{r['kind']:<22}{r['bits']:>5}{r['d']:>6}{r['values']:>11}  {r['op']:<26}{r['bytes_per_value']:>12.3f}"
              f"{r['overhead_bytes'] / 2**20:>13.2f}{r['m_values_per_s']:>12.1f}")
    res = {"block_values": DECODE_BLOCK_VALUES, "section_bytes": SECTION_BYTES, "rows": rows}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "decode_memory.json").write_text(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("bench-results"))
    main(ap.parse_args().out)

"""Benchmark of edge_sdk.bitpack: M values/s of pack, unpack, unpack_rows per width 1..8, next to a plain
``np.copy`` of the decoded uint8 array in the same run (ratio = copy time / op time, i.e. how close the op
is to a memory copy). Pure numpy, one thread; best of ``--repeat`` runs, timed with the thread's CPU time
(``time.thread_time``) so that other processes on a shared machine do not distort the per-core figure;
``--wall`` times wall-clock instead. A second table compares the unpack strategies that were tried.

    .venv/bin/python tools/bench_bitpack.py --out DIR   # prints a table, writes DIR/bitpack.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402

from edge_sdk import bitpack  # noqa: E402

DEFAULT_COUNT = 1 << 22  # values per run (4 Mi)
ROW_D = 203  # values per row for unpack_rows (not a multiple of 8: exercises the padded-row path)


#: timer: CPU time of this thread (the figure is "on one core" and does not count time the shared machine
#: gives to other processes); ``--wall`` switches to wall-clock time
TIMER = time.thread_time


def _best(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = TIMER()
        fn()
        best = min(best, TIMER() - t0)
    return max(best, 1e-9)


# ----------------------------------------------------------- rejected unpack strategies (for comparison)
def _unpack_lut(buf: np.ndarray, bits: int, count: int) -> np.ndarray:
    """b = 1, 2, 4: gather from a [256, 8/b] table of the values of every byte."""
    per = 8 // bits
    b = np.arange(256, dtype=np.uint16)
    lut = np.stack([(b >> (j * bits)) & ((1 << bits) - 1) for j in range(per)], axis=1).astype(np.uint8)
    return lut[buf[: count // per]].reshape(-1)


def _unpack_bits_repack(buf: np.ndarray, bits: int, count: int) -> np.ndarray:
    """Any b: np.unpackbits to one byte per bit, widen to 8 bits per value, np.packbits per value."""
    allbits = np.unpackbits(buf, count=count * bits, bitorder="little").reshape(count, bits)
    wide = np.zeros((count, 8), np.uint8)
    wide[:, :bits] = allbits
    return np.packbits(wide, axis=1, bitorder="little").reshape(-1)


def _unpack_broadcast(buf: np.ndarray, bits: int, count: int) -> np.ndarray:
    """b = 2..7: the kept word strategy, but one 2-D broadcast shift per block instead of a loop."""
    vpg, bpg = bitpack.group_shape(bits)
    wdt = np.uint8 if bpg == 1 else (np.uint32 if bpg <= 4 else np.uint64)
    ws = np.dtype(wdt).itemsize
    groups = count // vpg
    g = buf[: groups * bpg].reshape(groups, bpg)
    out = np.empty((groups, vpg), np.uint8)
    sh = (np.arange(vpg) * bits).astype(wdt)
    step = bitpack.BLOCK_GROUPS
    wide = np.zeros((step, ws), np.uint8)
    tmp = np.empty((step, vpg), wdt)
    for s in range(0, groups, step):
        e = min(s + step, groups)
        k = e - s
        if ws == bpg:
            w = g[s:e]
        else:
            wide[:k, :bpg] = g[s:e]
            w = wide[:k].view(wdt)
        t = tmp[:k]
        np.right_shift(w, sh, out=t)
        np.bitwise_and(t, wdt((1 << bits) - 1), out=t)
        out[s:e] = t
    return out.reshape(-1)


STRATEGIES = {
    "kept (bitpack.unpack)": (range(1, 9), bitpack.unpack),
    "lut": ((1, 2, 4), _unpack_lut),
    "unpackbits+packbits": (range(1, 9), _unpack_bits_repack),
    "broadcast-2d": (range(2, 8), _unpack_broadcast),
}


def compare_strategies(count: int, repeat: int) -> list[dict]:
    """M values/s of each unpack strategy per width (all verified against the kept one)."""
    rng = np.random.default_rng(1)
    out = []
    for bits in range(1, 9):
        v = rng.integers(0, 1 << bits, count, dtype=np.uint8)
        packed = bitpack.pack(v, bits)
        row = {"bits": bits}
        for name, (widths, fn) in STRATEGIES.items():
            if bits not in widths:
                continue
            assert np.array_equal(fn(packed, bits, count), v), name
            row[name] = count / _best(lambda f=fn, p=packed, b=bits: f(p, b, count), repeat) / 1e6
        out.append(row)
    return out


def main(out_dir: Path, count: int = DEFAULT_COUNT, repeat: int = 7) -> dict:
    rng = np.random.default_rng(0)
    rows = []
    for bits in range(1, 9):
        v = rng.integers(0, 1 << bits, count, dtype=np.uint8)
        packed = bitpack.pack(v, bits)
        n_rows = count // ROW_D
        codes = v[: n_rows * ROW_D].reshape(n_rows, ROW_D)
        prow = bitpack.pack_rows(codes, bits)
        assert np.array_equal(bitpack.unpack(packed, bits, count), v)
        assert np.array_equal(bitpack.unpack_rows(prow, bits, ROW_D), codes)
        t_copy = _best(lambda v=v: np.copy(v), repeat)
        t_pack = _best(lambda v=v, b=bits: bitpack.pack(v, b), repeat)
        t_unpack = _best(lambda p=packed, b=bits: bitpack.unpack(p, b, count), repeat)
        t_rows = _best(lambda p=prow, b=bits: bitpack.unpack_rows(p, b, ROW_D), repeat)
        rows.append({
            "bits": bits,
            "copy_mvals_s": count / t_copy / 1e6,
            "pack_mvals_s": count / t_pack / 1e6,
            "unpack_mvals_s": count / t_unpack / 1e6,
            "unpack_rows_mvals_s": codes.size / t_rows / 1e6,
            "unpack_vs_copy": t_copy / t_unpack,
            "unpack_rows_vs_copy": (t_copy * codes.size / count) / t_rows,
        })
    print(f"bitpack, {count} values, rows of D={ROW_D}, best of {repeat}, {TIMER.__name__} "
          "(M values/s; ratio = copy time / op time)")
    print(f"{'bits':>4} {'copy':>9} {'pack':>9} {'unpack':>9} {'unpack_rows':>12} {'unpack/copy':>12} {'rows/copy':>10}")
    for r in rows:
        print(f"{r['bits']:>4} {r['copy_mvals_s']:>9.0f} {r['pack_mvals_s']:>9.0f} {r['unpack_mvals_s']:>9.0f} "
              f"{r['unpack_rows_mvals_s']:>12.0f} {r['unpack_vs_copy']:>12.3f} {r['unpack_rows_vs_copy']:>10.3f}")
    strat = compare_strategies(count // 4, max(3, repeat // 2))
    print(f"\nunpack strategies, {count // 4} values (M values/s)")
    print(f"{'bits':>4} " + " ".join(f"{n:>22}" for n in STRATEGIES))
    for r in strat:
        print(f"{r['bits']:>4} " + " ".join(f"{r[n]:>22.0f}" if n in r else f"{'-':>22}" for n in STRATEGIES))
    result = {
        "name": "bitpack",
        "strategies": strat,
        "count": count,
        "row_d": ROW_D,
        "repeat": repeat,
        "timer": TIMER.__name__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "min_unpack_mvals_s": min(r["unpack_mvals_s"] for r in rows),
        "rows": rows,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bitpack.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("bench-results"))
    ap.add_argument("--count", type=int, default=DEFAULT_COUNT)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--wall", action="store_true", help="time wall-clock instead of thread CPU time")
    a = ap.parse_args()
    if a.wall:
        TIMER = time.perf_counter
    main(a.out, a.count, a.repeat)

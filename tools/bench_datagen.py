"""Benchmark: TR 38.901 beam-data generation throughput (rows/s) per preset, on the CPU and on CUDA if present.

    .venv/bin/python tools/bench_datagen.py --out bench-results [--rows 2000] [--threads 1]

Each measurement runs ``generate_dataset`` into a temporary file (chunks of 1,000 rows; BM-Case2: whole
trajectories of 100 steps) after a warm-up chunk, and reports rows per second of the whole call (generation +
HDF5 write). Writes ``<out>/datagen.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

PRESETS = ("uma-fr2-case1", "umi-fr2-case1", "uma-fr2-case1-64beams", "uma-fr2-case2")


def _one(preset: str, rows: int, device: str) -> dict:
    from edge_sdk.server.datagen.generate import generate_dataset

    with tempfile.TemporaryDirectory() as d:
        generate_dataset(preset, samples=100, seed=0,
                         out=Path(d) / "warm.h5", device=device, batch=1000, progress=False)
        t0 = time.perf_counter()
        r = generate_dataset(preset, samples=rows, seed=1, out=Path(d) / "b.h5", device=device, batch=1000,
                             progress=False)
        secs = time.perf_counter() - t0
        size = r.path.stat().st_size
    return {"preset": preset, "device": device, "rows": rows, "seconds": round(secs, 3),
            "rows_per_s": round(rows / secs, 1), "bytes_per_row": round(size / rows, 1)}


def main(out_dir: Path, rows: int = 2000, threads: int = 1) -> dict:
    import torch

    from edge_sdk.atomic import atomic_write_text

    torch.set_num_threads(threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    results = []
    for dev in devices:
        for preset in PRESETS:
            n = rows - rows % 100 if preset.endswith("case2") else rows
            results.append(_one(preset, max(n, 100), dev))
    print(f"{'preset':24} {'device':6} {'rows':>6} {'rows/s':>8} {'B/row':>6}")
    for r in results:
        print(f"{r['preset']:24} {r['device']:6} {r['rows']:6d} {r['rows_per_s']:8.1f} {r['bytes_per_row']:6.0f}")
    out = {"name": "datagen", "torch_threads": threads, "machine": platform.processor() or platform.machine(),
           "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None, "results": results}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "datagen.json", json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("bench-results"))
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    main(a.out, a.rows, a.threads)

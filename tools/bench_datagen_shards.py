"""Benchmark: sharded data generation, rows/s of 1 process vs K shards on a local process pool and on Ray.

    python tools/bench_datagen_shards.py --out bench-results [--rows 16000] [--preset uma-fr2-case1]

Every configuration runs as its own ``edge-sdk data generate`` subprocess (the same command a user types, so
interpreter start-up, imports, worker start-up and stitching are all counted) on the same rows, seed and chunk
size, one after the other on a quiet machine (run it alone: ``/work/bin/cpujob -n 2 ...`` here):

* ``1 process, 1 thread``  -- the reference of the ``--shards 4`` target (OMP/MKL/torch threads = 1);
* ``1 process, all threads`` -- torch's intra-op threads on every core;
* ``--shards 2 / 4 --backend local`` -- a spawn process pool of min(K, CPUs) workers, one thread each;
* ``--shards 4 --backend ray`` -- a private local Ray cluster with one CPU per core; the Ray overhead is its wall
  time minus that of ``--shards 4 --backend local``.

Prints a table and writes ``<out>/datagen_shards.json``. Target (issue 14): ``--shards 4 --backend local`` on 2
cores >= 1.7x the rows/s of one single-threaded process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET = 1.7


def _cli() -> list[str]:
    exe = Path(sys.executable).with_name("edge-sdk")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "edge_sdk.cli"]


def _run(args: list[str], threads: int | None) -> float:
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        if threads is None:
            env.pop(k, None)
        else:
            env[k] = str(threads)
    t0 = time.perf_counter()
    subprocess.run([*_cli(), "data", "generate", *args], check=True, env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main(out_dir: Path, rows: int = 16000, preset: str = "uma-fr2-case1", batch: int = 500,
         with_ray: bool = True) -> dict:
    from edge_sdk.atomic import atomic_write_text

    cpus = os.cpu_count() or 1
    base = ["--preset", preset, "--samples", str(rows), "--seed", "3", "--batch", str(batch), "--device", "cpu"]
    configs: list[tuple[str, list[str], int | None]] = [
        ("1 process, 1 thread", [], 1),
        (f"1 process, {cpus} threads", [], None),
        ("--shards 2 --backend local", ["--shards", "2", "--backend", "local"], 1),
        ("--shards 4 --backend local", ["--shards", "4", "--backend", "local"], 1),
    ]
    try:
        import ray  # noqa: F401

        if with_ray:
            configs.append(("--shards 4 --backend ray", ["--shards", "4", "--backend", "ray"], 1))
    except ImportError:
        print("ray not installed: skipping the Ray configuration (pip install 'edge-sdk[fleet]')")
    results = []
    tmp = Path(tempfile.mkdtemp(prefix="bench-shards-"))
    try:
        for name, extra, threads in configs:
            d = tmp / f"run{len(results)}"
            d.mkdir()
            secs = _run([*base, *extra, "--out", str(d / "data.h5")], threads)
            results.append({"config": name, "seconds": round(secs, 2), "rows_per_s": round(rows / secs, 1)})
            shutil.rmtree(d)
            print(f"{name:32s} {secs:7.1f} s  {rows / secs:7.1f} rows/s", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ref = results[0]["rows_per_s"]
    for r in results:
        r["speedup_vs_1_process"] = round(r["rows_per_s"] / ref, 2)
    by = {r["config"]: r for r in results}
    local4 = by["--shards 4 --backend local"]
    out = {"preset": preset, "rows": rows, "batch": batch, "cpus": cpus, "machine": platform.processor() or
           platform.machine(), "python": platform.python_version(), "results": results,
           "target_speedup": TARGET, "shards4_local_speedup": local4["speedup_vs_1_process"],
           "target_met": local4["speedup_vs_1_process"] >= TARGET}
    if "--shards 4 --backend ray" in by:
        out["ray_overhead_s"] = round(by["--shards 4 --backend ray"]["seconds"] - local4["seconds"], 2)
    print(f"\n{'configuration':32s} {'s':>7s} {'rows/s':>8s} {'x 1 proc':>9s}")
    for r in results:
        print(f"{r['config']:32s} {r['seconds']:7.1f} {r['rows_per_s']:8.1f} {r['speedup_vs_1_process']:9.2f}")
    print(f"--shards 4 --backend local: {local4['speedup_vs_1_process']:.2f}x one process (target >= {TARGET}x)"
          + (f"; Ray overhead {out['ray_overhead_s']:.1f} s" if "ray_overhead_s" in out else ""))
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "datagen_shards.json", json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("bench-results"))
    ap.add_argument("--rows", type=int, default=16000)
    ap.add_argument("--preset", default="uma-fr2-case1")
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--no-ray", action="store_true")
    a = ap.parse_args()
    main(a.out, rows=a.rows, preset=a.preset, batch=a.batch, with_ray=not a.no_ray)

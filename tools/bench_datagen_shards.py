"""Benchmark: sharded data generation, rows/s of 1 process vs K shards on a local process pool and on Ray.

    python tools/bench_datagen_shards.py --out bench-results [--rows 8000 --rows 64000] [--batch 1000] [--preset P]

Every configuration runs as its own ``edge-sdk data generate`` subprocess (the same command a user types, so
interpreter start-up, imports, worker start-up and teardown and stitching are all counted) on the same rows, seed
and chunk size, one after the other on a quiet machine (run it alone: ``/work/bin/cpujob -n 2 ...`` here):

* ``1 process, 1 thread``  -- the reference of the ``--shards 4`` target (OMP/MKL/torch threads = 1);
* ``1 process, all threads`` -- torch's default intra-op threads (one per core), what a plain run gets;
* ``--shards 2 / 4 --backend local`` -- a spawn process pool of min(K, CPUs) workers, one thread each;
* ``--shards 4 --backend ray`` -- a private local Ray cluster with one CPU per core; the Ray overhead is its wall
  time minus that of ``--shards 4 --backend local``.

Default sizes: 8,000 and 64,000 rows in the CLI's 1,000-row chunks (~8 min on 2 cores). 64,000 rows is a run
someone shards (the per-process start-up, torch + Sionna imports, is then a few percent of it) and decides the
target; 8,000 rows shows the start-up-bound case, and the two give each configuration's fixed start-up seconds
and steady rows/s (a straight-line fit).
Each configuration also reports the CPU that *other* processes used meanwhile (``other cores``: the processes
already running when it started, from /proc; Linux only): a figure above 0.1 cores means the machine was not
quiet and the timings are not trustworthy (on 2 cores a competing process slows torch 10-24x).

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
from collections.abc import Sequence
from pathlib import Path

TARGET = 1.7


def _cli() -> list[str]:
    exe = Path(sys.executable).with_name("edge-sdk")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "edge_sdk.cli"]


def _process_times() -> dict[int, tuple[int, float]] | None:
    """pid -> (start time, CPU seconds) of every process now running (Linux /proc; None elsewhere)."""
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        return None
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for d in proc.iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        out[int(d.name)] = (int(fields[19]), (int(fields[11]) + int(fields[12])) / tick)
    return out


def _other_cpu(before: dict[int, tuple[int, float]] | None, after: dict[int, tuple[int, float]] | None) -> float | None:
    """CPU seconds used meanwhile by the processes that were already running before the configuration started
    (so neither the run's own processes -- pool workers, Ray's raylet and workers -- nor this script count)."""
    if before is None or after is None:
        return None
    me = os.getpid()
    return sum(a[1] - b[1] for pid, b in before.items()
               if pid != me and (a := after.get(pid)) is not None and a[0] == b[0])


def _run(args: list[str], threads: int | None) -> tuple[float, float | None]:
    """Wall seconds of one ``edge-sdk data generate`` and the cores other processes kept busy meanwhile."""
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        if threads is None:
            env.pop(k, None)
        else:
            env[k] = str(threads)
    p0, t0 = _process_times(), time.perf_counter()
    subprocess.run([*_cli(), "data", "generate", *args], check=True, env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    cpu = _other_cpu(p0, _process_times())
    other = None if cpu is None else cpu / wall
    return wall, other


def _configs(cpus: int, with_ray: bool) -> list[tuple[str, list[str], int | None]]:
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
    return configs


def _one_size(rows: int, preset: str, batch: int, configs: list[tuple[str, list[str], int | None]]) -> dict:
    """Every configuration on ``rows`` rows, one after the other; ratios to the first two."""
    base = ["--preset", preset, "--samples", str(rows), "--seed", "3", "--batch", str(batch), "--device", "cpu"]
    results = []
    tmp = Path(tempfile.mkdtemp(prefix="bench-shards-"))
    try:
        for name, extra, threads in configs:
            d = tmp / f"run{len(results)}"
            d.mkdir()
            secs, other = _run([*base, *extra, "--out", str(d / "data.h5")], threads)
            results.append({"config": name, "seconds": round(secs, 2), "rows_per_s": round(rows / secs, 1),
                            "other_cores": None if other is None else round(other, 3)})
            shutil.rmtree(d)
            print(f"{rows:7d} rows  {name:30s} {secs:7.1f} s  {rows / secs:7.1f} rows/s  other processes "
                  f"{_cores(other)} cores", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ref, ref_all = results[0]["rows_per_s"], results[1]["rows_per_s"]
    for r in results:
        r["speedup_vs_1_process"] = round(r["rows_per_s"] / ref, 2)
        r["speedup_vs_all_threads"] = round(r["rows_per_s"] / ref_all, 2)
    by = {r["config"]: r for r in results}
    local4 = by["--shards 4 --backend local"]
    out: dict = {"rows": rows, "results": results, "shards4_local_speedup": local4["speedup_vs_1_process"]}
    if "--shards 4 --backend ray" in by:
        out["ray_overhead_s"] = round(by["--shards 4 --backend ray"]["seconds"] - local4["seconds"], 2)
    return out


def _fit(sizes: list[dict]) -> list[dict]:
    """Per configuration, seconds = start-up + rows / rate fitted through the smallest and the largest run:
    the fixed cost (interpreter, imports, workers' start-up and exit, stitching) and the steady rows/s."""
    lo, hi = sizes[0], sizes[-1]
    fits = []
    for a, b in zip(lo["results"], hi["results"], strict=True):
        dt = b["seconds"] - a["seconds"]
        rate = (hi["rows"] - lo["rows"]) / dt if dt > 0 else float("nan")
        fits.append({"config": a["config"], "startup_s": round(a["seconds"] - lo["rows"] / rate, 2),
                     "steady_rows_per_s": round(rate, 1)})
    return fits


def main(out_dir: Path, rows: int | Sequence[int] = (8000, 64000), preset: str = "uma-fr2-case1",
         batch: int = 1000, with_ray: bool = True) -> dict:
    from edge_sdk.atomic import atomic_write_text

    cpus = os.cpu_count() or 1
    configs = _configs(cpus, with_ray)
    sizes = [_one_size(n, preset, batch, configs) for n in sorted({rows} if isinstance(rows, int) else set(rows))]
    largest = sizes[-1]
    others = [r["other_cores"] for sz in sizes for r in sz["results"] if r["other_cores"] is not None]
    out = {"preset": preset, "batch": batch, "cpus": cpus, "machine": platform.processor() or platform.machine(),
           "python": platform.python_version(), "sizes": sizes, "target_speedup": TARGET,
           "target_rows": largest["rows"], "shards4_local_speedup": largest["shards4_local_speedup"],
           "target_met": largest["shards4_local_speedup"] >= TARGET,
           "max_other_cores": max(others) if others else None}
    if len(sizes) > 1:
        out["fit"] = _fit(sizes)
    for sz in sizes:
        print(f"\n{sz['rows']} rows, {batch}-row chunks")
        print(f"{'configuration':32s} {'s':>7s} {'rows/s':>8s} {'x 1 thread':>10s} {'x all thr.':>10s} "
              f"{'other cores':>11s}")
        for r in sz["results"]:
            print(f"{r['config']:32s} {r['seconds']:7.1f} {r['rows_per_s']:8.1f} {r['speedup_vs_1_process']:10.2f} "
                  f"{r['speedup_vs_all_threads']:10.2f} {_cores(r['other_cores']):>11s}")
        print(f"--shards 4 --backend local: {sz['shards4_local_speedup']:.2f}x one process"
              + (f"; Ray overhead {sz['ray_overhead_s']:.1f} s" if "ray_overhead_s" in sz else ""))
    if "fit" in out:
        print(f"\nseconds = start-up + rows / steady rate (fit through {sizes[0]['rows']} and {largest['rows']} rows)")
        print(f"{'configuration':32s} {'start-up s':>10s} {'steady rows/s':>13s}")
        for f in out["fit"]:
            print(f"{f['config']:32s} {f['startup_s']:10.1f} {f['steady_rows_per_s']:13.1f}")
    print(f"\ntarget: --shards 4 --backend local >= {TARGET}x one process at {largest['rows']} rows: "
          f"{largest['shards4_local_speedup']:.2f}x ({'met' if out['target_met'] else 'NOT met'})")
    if out["max_other_cores"] is not None and out["max_other_cores"] > 0.1:
        print(f"WARNING: other processes used up to {out['max_other_cores']:.2f} cores during the runs: "
              "the machine was not quiet, rerun alone")
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "datagen_shards.json", json.dumps(out, indent=1))
    return out


def _cores(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("bench-results"))
    ap.add_argument("--rows", type=int, action="append",
                    help="rows of a run; repeatable (default 8000 and 64000: start-up fitted from the two)")
    ap.add_argument("--preset", default="uma-fr2-case1")
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--no-ray", action="store_true")
    a = ap.parse_args()
    main(a.out, rows=a.rows or (8000, 64000), preset=a.preset, batch=a.batch, with_ray=not a.no_ray)

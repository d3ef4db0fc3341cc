#!/usr/bin/env python3
"""Benchmark: 200 concurrent device fetches of one release from a real `edge-sdk serve` on loopback, with and
without random disconnects; every cache verified identical to the store.

Setup per scenario: a store with a two-tier beam release (the device fixture payloads: ~14 KB per fetch, "demo
size") or the same release plus a 1 MiB release-level blob ("1 MiB"); `edge-sdk serve` in its own process
(access log to a file, as in production); for the disconnect runs, a TCP proxy in a third process that cuts
each connection with probability ``--drop-p`` after a uniformly random number of bytes of its server->client
stream (up to the release's size); 200 client threads in this process, each running `edge_sdk.device.fetch.fetch_release`
into its own cache, started together. Reported: fetches/s, blob bytes delivered per second, p50/p99 seconds per
fetch, retries, bytes on the wire vs bytes needed, server peak RSS (VmHWM of the server process), and CPU
milliseconds per fetch of the server process and of the client process (all 200 client threads).

Run: ``python tools/bench_transfer.py --out bench-results`` (or `make bench`); numbers for docs come from
``/work/bin/cpujob -n 2 make bench`` (quiet machine).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "device" / "data" / "beam_adam"
CHANNEL = "beam-uma/stable"


# ------------------------------------------------------------------------------------------ the release
def make_release(root: Path, bulk_bytes: int) -> Path:
    """A store holding a two-tier release (the device fixture payload and a 64-sample subset of it)."""
    import numpy as np

    from edge_sdk.payload import SampleGroup, read_payload, write_payload
    from edge_sdk.release import Store, publish

    big, small = root / "src" / "big", root / "src" / "small"
    big.mkdir(parents=True)
    small.mkdir(parents=True)
    shutil.copy(FIXTURE / "payload.bin", big / "payload.epl")
    shutil.copy(FIXTURE / "graph.onnx", big / "graph.onnx")
    with read_payload(big / "payload.epl") as p:
        groups = [SampleGroup(name=g.name, kind=g.kind, bits=g.bits, data=np.array(g.codes()[:64]),
                              params={n: (v[:64] if v.ndim and v.shape[0] == g.n else v) for n, v in g.params().items()},
                              labels=np.array(g.labels()[:64]), role=g.role) for g in p.groups]
        write_payload(small / "payload.epl", groups, num_classes=p.num_classes, task=dict(p.task),
                      provenance=dict(p.provenance), graph=dict(p.graph))
    extra = []
    if bulk_bytes:
        (root / "bulk.bin").write_bytes(random.Random(0).randbytes(bulk_bytes))
        extra = [("bulk-data", root / "bulk.bin")]
    store = Store(root / "store", create=True)
    publish(store, [big / "payload.epl", small / "payload.epl"], channel=CHANNEL, graphs=[FIXTURE / "graph.onnx"],
            tier_names=["big", "small"], extra=extra)
    return store.root


# ------------------------------------------------------------------------------------------ the chaos proxy
def _proxy_main(target_port: int, drop_p: float, max_cut: int, seed: int) -> None:
    """Run the cutting proxy until killed; prints its port on the first line of stdout."""
    rng = random.Random(seed)

    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, cut: int | None) -> None:
        sent = 0
        try:
            while True:
                data = await reader.read(65536 if cut is None else max(1, min(65536, cut - sent)))
                if not data:
                    break
                writer.write(data)
                await writer.drain()
                sent += len(data)
                if cut is not None and sent >= cut:
                    break
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def handle(creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        try:
            ureader, uwriter = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            cwriter.close()
            return
        cut = rng.randint(0, max_cut) if rng.random() < drop_p else None
        await asyncio.gather(pump(creader, uwriter, None), pump(ureader, cwriter, cut))

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=2048)
        print(server.sockets[0].getsockname()[1], flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


# ------------------------------------------------------------------------------------------ one scenario
def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/<pid>/stat, clock ticks)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _vmhwm_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def run_scenario(name: str, bulk_bytes: int, clients: int, drop_p: float, work: Path) -> dict[str, Any]:
    from edge_sdk.device.fetch import FetchConfig, fetch_release
    from edge_sdk.release import Store

    root = work / name
    root.mkdir(parents=True)
    store_dir = make_release(root, bulk_bytes)
    ready = root / "ready.json"
    server = subprocess.Popen([sys.executable, "-m", "edge_sdk.cli", "serve", "--store", str(store_dir), "--port", "0",
                               "--ready-file", str(ready), "--access-log", str(root / "access.log"),
                               "--max-connections", "4096"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    proxy = None
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {server.stderr.read() if server.stderr else ''}")
            time.sleep(0.05)
        url = json.loads(ready.read_text())["url"]
        if drop_p > 0:
            proxy = subprocess.Popen([sys.executable, __file__, "--proxy", url.rsplit(":", 1)[1], str(drop_p),
                                      str(bulk_bytes or 16384)], stdout=subprocess.PIPE, text=True)
            assert proxy.stdout is not None
            url = f"http://127.0.0.1:{int(proxy.stdout.readline())}"
        barrier = threading.Barrier(clients)
        results: list[dict[str, Any]] = [{} for _ in range(clients)]

        def client(i: int) -> None:
            cfg = FetchConfig(url=url, channel=CHANNEL, cache=root / "caches" / f"c{i}", retries=30,
                              backoff_base_s=0.05, backoff_max_s=1.0, read_timeout_s=60)
            barrier.wait()
            t0 = time.perf_counter()
            try:
                rep = fetch_release(cfg)
                results[i] = {"ok": True, "s": time.perf_counter() - t0, "wire": rep.bytes_on_wire,
                              "needed": rep.bytes_needed, "retries": rep.retries, "restarts": rep.restarts}
            except Exception as exc:  # noqa: BLE001 - counted as a failed fetch
                results[i] = {"ok": False, "s": time.perf_counter() - t0, "error": f"{type(exc).__name__}: {exc}"}

        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        srv_cpu0, cli_cpu0 = _cpu_s(server.pid), time.process_time()
        t_start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
        wall = time.perf_counter() - t_start
        srv_cpu, cli_cpu = _cpu_s(server.pid) - srv_cpu0, time.process_time() - cli_cpu0
        peak_rss = _vmhwm_mb(server.pid)
    finally:
        server.terminate()
        server.wait(60)
        if proxy is not None:
            proxy.terminate()
            proxy.wait(10)
    # every cache must hold exactly the blobs of the tier it took, byte-identical to the store
    store = Store(store_dir)
    reference: set[str] | None = None
    identical = True
    for i in range(clients):
        if not results[i].get("ok"):
            identical = False
            continue
        blobs = {}
        for p in (root / "caches" / f"c{i}" / "blobs" / "sha256").rglob("*"):
            if p.is_file():
                data = p.read_bytes()
                ok = hashlib.sha256(data).hexdigest() == p.name and data == store.blob_path("sha256:" + p.name).read_bytes()
                identical &= ok
                blobs["sha256:" + p.name] = len(data)
        if reference is None:
            reference = set(blobs)
        identical &= set(blobs) == reference
    ok = [r for r in results if r.get("ok")]
    times = sorted(r["s"] for r in ok)
    needed = sum(r["needed"] for r in ok)
    shutil.rmtree(root / "caches", ignore_errors=True)
    return {
        "scenario": name, "clients": clients, "drop_p": drop_p, "release_bytes_per_fetch": ok[0]["needed"] if ok else None,
        "ok": len(ok), "failed": clients - len(ok), "errors": sorted({r["error"] for r in results if "error" in r})[:5],
        "caches_identical": bool(identical and len(ok) == clients), "wall_s": wall,
        "fetches_per_s": len(ok) / wall, "blob_mb_per_s": needed / wall / 1e6,
        "p50_s": statistics.median(times) if times else None,
        "p99_s": times[min(len(times) - 1, int(round(0.99 * (len(times) - 1))))] if times else None,
        "retries": sum(r["retries"] for r in ok), "restarts": sum(r["restarts"] for r in ok),
        "wire_over_needed": (sum(r["wire"] for r in ok) / needed) if needed else None,
        "server_peak_rss_mb": peak_rss,
        "server_cpu_ms_per_fetch": 1000 * srv_cpu / max(1, len(ok)),
        "clients_cpu_ms_per_fetch": 1000 * cli_cpu / max(1, len(ok)),
    }


def main(out_dir: Path, clients: int = 200, drop_p: float = 0.3) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-transfer-") as tmp:
        for name, bulk, p in (("demo-size", 0, 0.0), ("demo-size+drops", 0, drop_p),
                              ("1MiB", 1 << 20, 0.0), ("1MiB+drops", 1 << 20, drop_p)):
            print(f"  {name}: {clients} clients ...", flush=True)
            rows.append(run_scenario(name, bulk, clients, p, Path(tmp)))
    print(f"\n{'scenario':<18} {'bytes/fetch':>11} {'ok':>5} {'identical':>9} {'fetch/s':>8} {'MB/s':>7} "
          f"{'p50 s':>7} {'p99 s':>7} {'retries':>7} {'wire/need':>9} {'srv RSS MB':>10} {'srv CPU ms/f':>12} "
          f"{'cli CPU ms/f':>12}")
    for r in rows:
        print(f"{r['scenario']:<18} {r['release_bytes_per_fetch'] or 0:>11,} {r['ok']:>5} {str(r['caches_identical']):>9} "
              f"{r['fetches_per_s']:>8.1f} {r['blob_mb_per_s']:>7.2f} {r['p50_s'] or 0:>7.3f} {r['p99_s'] or 0:>7.3f} "
              f"{r['retries']:>7} {r['wire_over_needed'] or 0:>9.3f} {r['server_peak_rss_mb']:>10.1f} "
              f"{r['server_cpu_ms_per_fetch']:>12.2f} {r['clients_cpu_ms_per_fetch']:>12.2f}")
    result = {"name": "transfer", "clients": clients, "drop_p": drop_p, "cpu_count": os.cpu_count(), "rows": rows}
    (out_dir / "transfer.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--proxy":  # the cutting proxy, in its own process
        _proxy_main(int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), seed=1)
        sys.exit(0)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("bench-results"))
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--drop-p", type=float, default=0.3)
    a = ap.parse_args()
    res = main(a.out, a.clients, a.drop_p)
    sys.exit(0 if all(r["caches_identical"] for r in res["rows"]) else 1)

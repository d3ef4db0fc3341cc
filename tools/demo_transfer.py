"""The transfer section of `make demo` (called by tools/demo.py; runs standalone on a finished demo folder).

On the release the demo published (tiers 36x and 180x, signed manifest, `runs/demo/store`):

1. `edge-sdk token add`: a read token for the device (the token file keeps only its SHA-256);
2. `edge-sdk serve` on a free loopback port, with token auth;
3. device (torch made unimportable): `edge-sdk device fetch` with a byte budget the 36x tier does not fit, so it
   takes 180x; the first attempt is rate-capped and killed with SIGKILL part-way through the graph, the second
   resumes the graph from the bytes on disk (Range + If-Range) and verifies every blob before caching it;
4. device: `edge-sdk device train --release CACHE` trains the fetched tier and evaluates it on local measurements;
5. device: the next poll with the same budget downloads only what is not cached yet (nothing, or a better tier
   whose graph is already cached).

Usage: python tools/demo_transfer.py --demo-dir runs/demo   (after `python tools/demo.py`)
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EDGE_SDK = [sys.executable, "-m", "edge_sdk.cli"]


def _run(cmd: list[Any], label: str, device_runner: str | None = None, capture: bool = False,
         echo: bool = True) -> str:
    """Run a CLI step (printed first); ``device_runner``: in a process where torch cannot be imported;
    ``capture``: return stdout (printed too unless ``echo`` is False)."""
    full = [sys.executable, "-c", device_runner, *cmd[3:]] if device_runner else cmd
    print(f"\n$ {' '.join(str(c) for c in cmd)}", flush=True)
    res = subprocess.run([str(c) for c in full], cwd=ROOT, capture_output=capture, text=True)
    if res.returncode != 0:
        sys.exit(f"demo: step '{label}' failed with exit code {res.returncode}: {res.stderr if capture else ''}")
    if capture and echo:
        print(res.stdout, end="")
    return res.stdout if capture else ""


def transfer_demo(out: Path, store: Path, channel: str, pub: Path, test_h5: Path, device_runner: str) -> dict[str, Any]:
    """Serve ``store`` and fetch ``channel`` as a device would; returns the summary (:func:`print_transfer`)."""
    t0 = time.perf_counter()
    cache, tokens, token_file = out / "device-cache", out / "tokens.json", out / "device.token"
    for p in (cache, out / "device-release"):
        shutil.rmtree(p, ignore_errors=True)
    tokens.unlink(missing_ok=True)
    _run([*EDGE_SDK, "token", "add", "--tokens", tokens, "--name", "device-1", "--scope", f"read:{channel}",
          "--out", token_file], "token add", capture=True, echo=False)
    print(f"   (the token is in {token_file}; {tokens} keeps only its SHA-256)")
    manifest = json.loads(_run([*EDGE_SDK, "store", "show", "--store", store, "--channel", channel], "store show",
                               capture=True, echo=False))
    tiers = {t["name"]: t for t in manifest["body"]["tiers"]}
    t36, t180 = tiers["36x"], tiers["180x"]
    cost36 = t36["payload"]["size"] + t36["graph"]["size"]
    cost180 = t180["payload"]["size"] + t180["graph"]["size"]
    budget = (cost36 + cost180) // 2  # fits 180x, not 36x
    ready, log = out / "serve-ready.json", out / "serve-access.log"
    ready.unlink(missing_ok=True)
    log.unlink(missing_ok=True)
    print(f"\n$ edge-sdk serve --store {store} --port 0 --tokens {tokens} --access-log {log} &", flush=True)
    server = subprocess.Popen([*EDGE_SDK, "serve", "--store", str(store), "--port", "0", "--tokens", str(tokens),
                               "--ready-file", str(ready), "--access-log", str(log)], cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            if server.poll() is not None or time.monotonic() > deadline:
                sys.exit("demo: edge-sdk serve did not start")
            time.sleep(0.05)
        url = json.loads(ready.read_text())["url"]
        fetch = [*EDGE_SDK, "device", "fetch", "--url", url, "--channel", channel, "--cache", cache, "--token-file",
                 token_file, "--trusted-key", pub, "--budget", str(budget)]
        # forced interruption: a rate-capped fetch killed with SIGKILL part-way through the graph
        cmd = [*fetch, "--max-rate", "3KiB/s", "--quiet"]
        print(f"\n$ {' '.join(str(c) for c in cmd)}   # killed with SIGKILL part-way", flush=True)
        proc = subprocess.Popen([sys.executable, "-c", device_runner, *[str(c) for c in cmd[3:]]], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        graph_part = cache / "partial" / f"{t180['graph']['digest'][7:]}.partial"
        deadline = time.monotonic() + 120
        have = 0
        while time.monotonic() < deadline and proc.poll() is None:
            have = graph_part.stat().st_size if graph_part.exists() else 0
            if have >= 3000:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        print(f"   killed with {have:,} of the graph's {t180['graph']['size']:,} bytes on disk (CACHE/partial/)")
        report1 = out / "fetch-1.json"
        _run([*fetch, "--report", report1], "device fetch (resume)", device_runner)
        r1 = json.loads(report1.read_text())
        train_dir = out / "device-release"
        _run([*EDGE_SDK, "device", "train", "--release", cache, "--trusted-key", pub, "--eval", test_h5, "--quiet",
              "--out", train_dir],  # no training flags: the device follows the payload's recipe (seed 0)
             "device train --release", device_runner)
        trained = json.loads((train_dir / "report.json").read_text())
        report2 = out / "fetch-2.json"
        _run([*fetch, "--report", report2, "--quiet"], "device fetch (next poll)", device_runner)
        r2 = json.loads(report2.read_text())
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
    sent = [json.loads(x) for x in log.read_text().splitlines()]
    return {"channel": channel, "release": manifest["body"]["release"], "budget": budget, "costs": {
        "36x": cost36, "180x": cost180}, "fetch_1": r1, "fetch_2": r2, "killed_with_bytes": have,
        "graph_bytes": t180["graph"]["size"], "device": {"tier": trained["release"]["tier"], "kpis": trained["kpis"],
                                                         "steps": trained["steps"]},
        "expected_kpis": t180["kpis"], "server_responses": len(sent),
        "server_body_bytes": sum(e["bytes"] for e in sent), "seconds": time.perf_counter() - t0}


def print_transfer(t: dict[str, Any]) -> None:
    """The transfer table of the demo."""
    print("\n" + "=" * 112)
    print(f"transfer: release {t['release']} on {t['channel']} (signed manifest), `edge-sdk serve` on loopback with "
          "token auth, a torch-free device fetching it")
    print("=" * 112)
    print(f"tier bytes a fresh device must fetch: 36x {t['costs']['36x']:,} B, 180x {t['costs']['180x']:,} B; "
          f"device budget {t['budget']:,} B")
    print(f"{'device fetch':<38} {'tier':>5} {'on wire B':>10} {'needed B':>9} {'resumed B':>10} "
          f"{'saved by cache B':>16} {'retries':>7}")
    for label, r in (("1: after a SIGKILL part-way, resumed", t["fetch_1"]), ("2: next poll, same budget", t["fetch_2"])):
        print(f"{label:<38} {r['tier']:>5} {r['bytes_on_wire']:>10,} {r['bytes_needed']:>9,} "
              f"{r['bytes_resumed']:>10,} {r['bytes_saved_by_cache']:>16,} {r['retries']:>7}")
    k, e = t["device"]["kpis"], t["expected_kpis"]
    print(f"the killed fetch left {t['killed_with_bytes']:,} of the graph's {t['graph_bytes']:,} bytes; the resume "
          "asked only for the rest, and every blob was verified (SHA-256, signed manifest) before it was cached")
    print(f"device trained the {t['device']['tier']} tier from its cache: Top-1 {100 * k['top1']:.1f} % (the server's "
          f"expected {100 * e['top1']:.1f} %, 3 seeds), {t['device']['steps']} steps; the server sent "
          f"{t['server_responses']} responses, {t['server_body_bytes']:,} body bytes in all")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--demo-dir", type=Path, default=ROOT / "runs" / "demo")
    ap.add_argument("--channel", default="beam-uma/demo")
    a = ap.parse_args()
    sys.path.insert(0, str(ROOT / "tools"))
    from demo import DEVICE_RUNNER

    d = a.demo_dir
    print_transfer(transfer_demo(d, d / "store", a.channel, d / "keys" / "server.pub",
                                 ROOT / "datasets" / "3gpp" / "reference" / "test.h5", DEVICE_RUNNER))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A payload format v2 release end to end, every step a real command on small data: `edge-sdk distill
--payload-format 2` (two tiers, one task blob) -> `edge-sdk store add` (signed) -> `edge-sdk serve` on loopback ->
`edge-sdk device fetch` killed mid-graph and resumed -> a second tier that takes graph and task blob from the
cache -> `edge-sdk device train --release CACHE` with no flags, which repeats the server's seed-0 evaluation run.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from serve_helpers import access_log, start_serve, stop

ROOT = Path(__file__).resolve().parents[2]
REF = ROOT / "datasets" / "3gpp" / "reference"
CHANNEL = "beam-uma/stable"


def cli(*args: object, timeout: float = 300) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "edge_sdk.cli", *map(str, args)], capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


@pytest.fixture(scope="module")
def v2_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two v2 tiers of one task and graph: k-means rows through a 4-bit codebook at 180x and 36x (one seed, a
    30-step recipe: a few seconds each)."""
    root = tmp_path_factory.mktemp("v2runs")
    runs = {}
    for comp in ("180x", "36x"):
        out = root / comp
        cli("distill", "--data", REF / "train.h5", "--test", REF / "test.h5", "--method", "kmeans", "--quantizer",
            "codebook", "--bits", "4", "--compression", comp, "--payload-format", "2", "--seeds", "1", "--steps", "30",
            "--no-progress", "--out", out)
        runs[comp] = out
    return runs


def test_v2_release_distill_publish_serve_fetch_resume_train(v2_runs, tmp_path):
    r180, r36 = v2_runs["180x"], v2_runs["36x"]
    task = (r180 / "task.json").read_bytes()
    assert task == (r36 / "task.json").read_bytes()  # same task spec and graph: one blob for both tiers
    task_digest = "sha256:" + hashlib.sha256(task).hexdigest()
    keys, store = tmp_path / "keys", tmp_path / "store"
    cli("payload", "keygen", "--out-dir", keys, "--name", "pub")
    added = json.loads(cli("store", "add", "--store", store, "--channel", CHANNEL, r36 / "payload.epl",
                           r180 / "payload.epl", "--sign", keys / "pub.key", "--json").stdout)
    assert added["extra"] == [{"digest": task_digest, "size": len(task), "type": "task"}]
    tiers = {t["name"]: t for t in added["tiers"]}
    t180, t36 = tiers["180x"], tiers["36x"]
    assert t180["graph"] == t36["graph"] and t180["extra"] == t36["extra"] == []
    proc, url = start_serve(store, tmp_path)
    try:
        cache = tmp_path / "cache"
        fetch = ["device", "fetch", "--url", url, "--channel", CHANNEL, "--cache", cache, "--trusted-key",
                 keys / "pub.pub", "--tier", "180x"]
        # a rate-capped fetch killed part-way through the graph (the payload is already in the cache)
        part = cache / "partial" / f"{t180['graph']['digest'][7:]}.partial"
        p = subprocess.Popen([sys.executable, "-m", "edge_sdk.cli", *map(str, fetch), "--max-rate", "2048", "--quiet"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60
            while not (part.exists() and part.stat().st_size >= 1024):
                assert p.poll() is None and time.monotonic() < deadline, p.stderr.read() if p.stderr else ""
                time.sleep(0.01)
        finally:
            p.send_signal(signal.SIGKILL)
            p.wait(30)
        have = part.stat().st_size
        out = cli(*fetch, "--report", tmp_path / "f1.json").stdout
        rep = json.loads((tmp_path / "f1.json").read_text())
        blobs = {b["role"]: b for b in rep["blobs"]}
        assert rep["tier"] == "180x" and rep["signature"] == "verified" and rep["bytes_resumed"] == have
        assert blobs["graph"]["status"] == "resumed" and blobs["graph"]["wire_bytes"] == t180["graph"]["size"] - have
        assert blobs["task"]["status"] == "downloaded" and blobs["task"]["digest"] == task_digest
        task_path = cache / "blobs" / "sha256" / task_digest[7:9] / task_digest[7:]
        assert rep["task"] == str(task_path) and task_path.read_bytes() == task and f"task {task_path}" in out
        # the second tier: only its payload crosses the wire
        cli("device", "fetch", "--url", url, "--channel", CHANNEL, "--cache", cache, "--trusted-key", keys / "pub.pub",
            "--tier", "36x", "--report", tmp_path / "f2.json")
        rep2 = json.loads((tmp_path / "f2.json").read_text())
        assert rep2["bytes_needed"] == t36["payload"]["size"]
        assert rep2["bytes_saved_by_cache"] == t36["graph"]["size"] + len(task)
        served = [e for e in access_log(tmp_path / "serve-access.log") if e["path"] == f"/v1/blobs/{task_digest}"]
        assert [e["status"] for e in served] == [200] and served[0]["bytes"] == len(task)
    finally:
        stop(proc)
    # train on the fetched tier with no flags: the payload's recipe, seed 0 = the server's first evaluation run
    trained = tmp_path / "trained"
    cli("device", "train", "--release", cache, "--eval", REF / "test.h5", "--quiet", "--out", trained)
    dev = json.loads((trained / "report.json").read_text())
    server = json.loads((r36 / "report.json").read_text())
    assert dev["release"]["tier"] == "36x" and dev["release"]["task"] == str(task_path)
    assert dev["steps"] >= 30
    assert abs(dev["kpis"]["top1"] - server["kpis"]["top1"]["per_seed"][0]) <= 0.005

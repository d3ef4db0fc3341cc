"""The device side of a transfer with the base install only: `edge-sdk device fetch` (a budget that selects a
tier, a forced interruption, a resume) and `edge-sdk device train --release CACHE`, with torch unimportable.

Also runs in the torch-free device venvs of `make test-device-minimal`: the server (which needs the `serve`
extra) is started with the project's main interpreter (.venv), the device commands with this one."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHANNEL = "beam-uma/stable"
NO_TORCH = ("import sys\nsys.modules['torch'] = None\nfrom edge_sdk.cli.main import main\nrc = main(sys.argv[1:])\n"
            "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\nsys.exit(rc)\n")


def _server_python() -> str:
    for py in (sys.executable, str(ROOT / ".venv" / "bin" / "python")):
        ok = subprocess.run([py, "-c", "import starlette, uvicorn, edge_sdk.serve.app"], capture_output=True,
                            timeout=120) if Path(py).exists() else None
        if ok is not None and ok.returncode == 0:
            return py
    pytest.skip("no interpreter with the serve extra (starlette, uvicorn) to run the server")


def device(*args: object, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    """A device command with torch unimportable, run outside the source tree (so that the installed package, not
    the repository's folders, is imported: in the device-only venvs that is the point)."""
    r = subprocess.run([sys.executable, "-c", NO_TORCH, *map(str, args)], capture_output=True, text=True, timeout=300,
                       cwd=cwd)
    assert not check or r.returncode == 0, r.stderr
    return r


@pytest.mark.parametrize("fmt", [1, 2])
def test_fetch_budget_interrupt_resume_train(tmp_path: Path, request, fmt: int):
    """Payload format 1, and 2: the release then carries the payloads' task blob (one, release-level), which the
    fetch caches by digest beside the graph and the training finds there with no flag."""
    release_files = request.getfixturevalue("release_files" if fmt == 1 else "release_files_v2")
    py = _server_python()
    store, keys = tmp_path / "store", tmp_path / "keys"
    r = subprocess.run([py, "-m", "edge_sdk.cli", "payload", "keygen", "--out-dir", keys, "--name", "pub"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([py, "-m", "edge_sdk.cli", "store", "add", "--store", store, "--channel", CHANNEL,
                        release_files.big, release_files.small, "--sign", keys / "pub.key", "--json"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    added = json.loads(r.stdout)
    tiers = {t["name"]: t for t in added["tiers"]}  # "4KiB" (big) and "1KiB" (small)
    big, small = tiers["4KiB"], tiers["1KiB"]
    task_bytes = sum(b["size"] for b in added["extra"] if b["type"] == "task")
    assert [b["type"] for b in added["extra"]] == ([] if fmt == 1 else ["task"])
    ready = tmp_path / "ready.json"
    server = subprocess.Popen([py, "-m", "edge_sdk.cli", "serve", "--store", store, "--port", "0", "--ready-file",
                               ready, "--access-log", tmp_path / "access.log"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert server.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        url = json.loads(ready.read_text())["url"]
        cache = tmp_path / "cache"
        budget = small["payload"]["size"] + small["graph"]["size"] + task_bytes + 100  # the small tier fits, the big not
        fetch = ["device", "fetch", "--url", url, "--channel", CHANNEL, "--cache", cache, "--trusted-key",
                 keys / "pub.pub", "--budget", budget]
        # forced interruption: a rate-capped fetch killed part-way through the graph
        part = cache / "partial" / f"{small['graph']['digest'][7:]}.partial"
        proc = subprocess.Popen([sys.executable, "-c", NO_TORCH, *map(str, fetch), "--max-rate", "4096", "--quiet"],
                                cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60
            while not (part.exists() and part.stat().st_size >= 2048):
                assert proc.poll() is None and time.monotonic() < deadline, \
                    f"fetch ended before the interruption: {proc.stderr.read() if proc.stderr else ''}"
                time.sleep(0.01)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
        have = part.stat().st_size
        device(*fetch, "--report", tmp_path / "fetch.json", cwd=tmp_path)
        rep = json.loads((tmp_path / "fetch.json").read_text())
        assert rep["tier"] == "1KiB" and rep["bytes_resumed"] == have and rep["signature"] == "verified"
        assert rep["bytes_needed"] + rep["bytes_saved_by_cache"] == budget - 100  # the payload came before the kill
        if fmt == 2:  # the task blob is cached by digest, next to the graph
            t = next(b for b in rep["blobs"] if b["role"] == "task")
            assert t["status"] == "downloaded" and rep["task"] == str(cache / "blobs" / "sha256" / t["digest"][7:9]
                                                                     / t["digest"][7:])
        else:
            assert rep["task"] == "" and all(b["role"] != "task" for b in rep["blobs"])
        g = next(b for b in rep["blobs"] if b["role"] == "graph")
        assert g["status"] == "resumed" and g["wire_bytes"] == small["graph"]["size"] - have
        for b in rep["blobs"]:
            p = cache / "blobs" / "sha256" / b["digest"][7:9] / b["digest"][7:]
            assert hashlib.sha256(p.read_bytes()).hexdigest() == b["digest"][7:]
        # train from the cache, torch never imported; the manifest's signature is checked again (the payload
        # itself is unsigned: the signed manifest pins it by digest)
        out = tmp_path / "trained"
        r = device("device", "train", "--release", cache, "--trusted-key", keys / "pub.pub", "--epochs", "1",
                   "--quiet", "--eval", release_files.local_h5, "--out", out, cwd=tmp_path)
        trained = json.loads((out / "report.json").read_text())
        assert trained["release"]["tier"] == "1KiB" and trained["release"]["signature"] == "verified"
        assert trained["release"]["expected_kpis"]["top1"] == pytest.approx(0.55)
        assert trained["release"]["task"] == (rep["task"] or None)
        assert 0.0 <= trained["kpis"]["top1"] <= 1.0 and (out / "model.onnx").stat().st_size > 0
        # a bigger budget takes the better tier; the cached graph is not sent again
        device(*fetch[:-1], big["payload"]["size"] + 10, "--report", tmp_path / "fetch2.json", cwd=tmp_path)
        rep2 = json.loads((tmp_path / "fetch2.json").read_text())
        assert rep2["tier"] == "4KiB" and rep2["bytes_saved_by_cache"] == big["graph"]["size"] + task_bytes
        assert rep2["bytes_needed"] == big["payload"]["size"]
        # both releases stay trainable: a manifest file inside the cache names one explicitly
        mpath = cache / "blobs" / "sha256" / rep2["manifest"][7:9] / rep2["manifest"][7:]
        device("device", "train", "--release", mpath, "--epochs", "1", "--quiet", "--out", tmp_path / "t2", cwd=tmp_path)
        assert json.loads((tmp_path / "t2" / "report.json").read_text())["release"]["tier"] == "4KiB"
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()


def test_train_release_errors(tmp_path: Path, release_files):
    r = device("device", "train", "--release", tmp_path, "--out", tmp_path / "o", cwd=tmp_path, check=False)
    assert r.returncode == 6 and "StoreError" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = device("device", "train", "--out", tmp_path / "o", cwd=tmp_path, check=False)
    assert r.returncode == 2 and "--release" in r.stderr

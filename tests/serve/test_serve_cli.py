"""`edge-sdk serve` and `edge-sdk token` as a user runs them (subprocess): start on port 0 with a ready file,
serve, graceful shutdown on SIGTERM with a transfer in flight; token add/ls/revoke; one-line errors."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import urllib3
from serve_helpers import BULK_BYTES, make_store, start_serve

EXE = Path(sys.executable).parent / "edge-sdk"


def test_token_cli(tmp_path: Path):
    tokens = tmp_path / "tokens.json"
    r = subprocess.run([str(EXE), "token", "add", "--tokens", str(tokens), "--name", "fleet-a", "--scope",
                        "read:beam-uma/*", "--out", str(tmp_path / "fleet-a.token")], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    assert token.startswith("edt_") and len(token) == 47
    assert (tmp_path / "fleet-a.token").read_text().strip() == token
    assert (tokens.stat().st_mode & 0o777) == 0o600 and token not in tokens.read_text()
    r = subprocess.run([str(EXE), "token", "ls", "--tokens", str(tokens)], capture_output=True, text=True, timeout=60)
    assert "fleet-a" in r.stdout and "read:beam-uma/*" in r.stdout and token not in r.stdout
    for args, err in ((["add", "--name", "fleet-a", "--scope", "admin"], "exists"),
                      (["add", "--name", "x", "--scope", "write:all"], "invalid scope"),
                      (["add", "--name", "y", "--scope", "read:../etc"], "invalid scope"),
                      (["revoke", "--name", "nobody"], "no token named")):
        r = subprocess.run([str(EXE), "token", *args, "--tokens", str(tokens)], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 2 and err in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = subprocess.run([str(EXE), "token", "revoke", "--tokens", str(tokens), "--name", "fleet-a"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "[]" in tokens.read_text().replace("\n", "").replace(" ", "")


def test_graceful_shutdown_with_transfer_in_flight_H10(tmp_path: Path, release_files):
    store, m = make_store(tmp_path, release_files)
    proc, url = start_serve(store.root, tmp_path)
    try:
        bulk = m.release.extra[0]
        got: dict[str, object] = {}

        def slow_download() -> None:
            pm = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=5, read=20))
            r = pm.request("GET", f"{url}/v1/blobs/{bulk.digest}", preload_content=False)
            data = b""
            while chunk := r.read(64 * 1024):
                data += chunk
                time.sleep(0.03)  # ~2 MiB/s: the 1 MiB blob takes about half a second
            got["data"] = data

        th = threading.Thread(target=slow_download)
        th.start()
        time.sleep(0.15)
        proc.send_signal(signal.SIGTERM)
        th.join(30)
        assert got.get("data") == store.blob_path(bulk.digest).read_bytes()  # finished despite the SIGTERM
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "serving http://127.0.0.1:" in out and "stopped" in out
        assert len(got["data"]) == BULK_BYTES  # type: ignore[arg-type]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    log = [json.loads(x) for x in (tmp_path / "serve-access.log").read_text().splitlines()]
    assert any(e["path"] == f"/v1/blobs/{bulk.digest}" and e["bytes"] == BULK_BYTES for e in log)


def test_serve_cli_errors(tmp_path: Path, release_files):
    store, _ = make_store(tmp_path, release_files)
    cases = [
        (["--store", str(tmp_path)], "StoreError"),  # not a store
        (["--store", str(store.root), "--tls-cert", str(tmp_path / "bulk.bin")], "ConfigError"),  # no key
        (["--store", str(store.root), "--max-upload", "lots"], "ConfigError"),
    ]
    for args, err in cases:
        r = subprocess.run([str(EXE), "serve", *args, "--port", "0"], capture_output=True, text=True, timeout=60)
        assert r.returncode != 0 and r.stderr.strip().startswith(f"error: {err}:"), (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1
    # the port is taken
    proc, url = start_serve(store.root, tmp_path)
    try:
        port = url.rsplit(":", 1)[1]
        r = subprocess.run([str(EXE), "serve", "--store", str(store.root), "--port", port], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 2 and "cannot listen" in r.stderr
    finally:
        proc.terminate()
        proc.wait(30)

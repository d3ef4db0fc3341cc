"""`edge-sdk store add|ls|show|verify|gc|set-channel` end to end through the console script (subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

EXE = Path(sys.executable).parent / "edge-sdk"
if not EXE.exists():  # pragma: no cover
    EXE = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "edge-sdk"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(EXE), *args], capture_output=True, text=True, timeout=120)


def test_store_cli_flow(tmp_path: Path, release_files):
    keys = tmp_path / "keys"
    assert run("payload", "keygen", "--out-dir", str(keys), "--name", "pub").returncode == 0
    store = tmp_path / "store"
    r = run("store", "add", "--store", str(store), "--channel", "beam-uma/stable", str(release_files.small),
            str(release_files.big), "--sign", str(keys / "pub.key"), "--release", "r1", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["release"] == "r1" and [t["name"] for t in out["tiers"]] == ["4KiB", "1KiB"]
    assert len(out["new_blobs"]) == 3
    digest = out["manifest"]
    r = run("store", "ls", "--store", str(store))
    assert r.returncode == 0 and "beam-uma/stable" in r.stdout and "4KiB" in r.stdout and "signature unverified" in r.stdout
    ls = json.loads(run("store", "ls", "--store", str(store), "--json").stdout)
    assert ls["blobs"] == 4 and ls["channels"][0]["manifest"] == digest
    assert ls["channels"][0]["signature"] == "unverified"
    show = json.loads(run("store", "show", "--store", str(store), "--channel", "beam-uma/stable").stdout)
    assert show["manifest"] == digest and show["body"]["release"] == "r1" and show["signature"] == "unverified"
    r = run("store", "verify", "--store", str(store), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["ok"] is True
    # a second release with only the small tier; the first stays in the history, so gc removes nothing
    r = run("store", "add", "--store", str(store), "--channel", "beam-uma/stable", str(release_files.small),
            "--release", "r2", "--tier-name", "small")
    assert r.returncode == 0, r.stderr
    assert "channel beam-uma/stable ->" in r.stdout and "small" in r.stdout
    gc = json.loads(run("store", "gc", "--store", str(store), "--grace", "0", "--json").stdout)
    assert gc["removed"] == []
    # roll back with set-channel (the signature is required and checked)
    r = run("store", "set-channel", "--store", str(store), "--channel", "beam-uma/stable", "--manifest", digest,
            "--trusted-key", str(keys / "pub.pub"))
    assert r.returncode == 0 and digest in r.stdout


def test_store_cli_errors_are_one_line(tmp_path: Path, release_files):
    store = tmp_path / "store"
    cases = [
        (["store", "ls", "--store", str(tmp_path / "nope")], 6, "StoreError"),
        (["store", "add", "--store", str(store), "--channel", "Bad Name", str(release_files.big)], 6,
         "InvalidChannelName"),
        (["store", "show", "--store", str(store), "--manifest", "sha256:xyz"], 6, "StoreError"),
        (["store", "gc", "--store", str(store), "--grace", "soon"], 6, "StoreError"),
    ]
    assert run("store", "add", "--store", str(store), "--channel", "c", str(release_files.big)).returncode == 0
    cases[2] = (["store", "show", "--store", str(store), "--manifest", "sha256:xyz"], 6, "InvalidDigest")
    cases[3] = (["store", "gc", "--store", str(store), "--grace", "soon"], 2, "ConfigError")
    for args, code, err in cases:
        r = run(*args)
        assert r.returncode == code, (args, r.returncode, r.stderr)
        lines = [x for x in r.stderr.splitlines() if x.strip()]
        assert len(lines) == 1 and lines[0].startswith(f"error: {err}:"), (args, r.stderr)

"""`edge-sdk payload inspect|verify|keygen|sign` through the installed console script (subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge_sdk.payload import SampleGroup, write_payload

ROOT = Path(__file__).resolve().parents[2]
EXE = Path(sys.executable).parent / "edge-sdk"
if not EXE.exists():  # pragma: no cover
    EXE = ROOT / ".venv" / "bin" / "edge-sdk"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(EXE), "payload", *args], capture_output=True, text=True, timeout=60)


@pytest.fixture
def payload(tmp_path):
    g = SampleGroup("b3", "codebook", 3, data=np.arange(40, dtype=np.uint8).reshape(5, 8) % 8,
                    params={"levels": np.linspace(-1, 1, 8).astype(np.float32)}, labels=np.arange(5) % 4)
    path = tmp_path / "p.epl"
    write_payload(path, [g], 4, {"kind": "beam"}, {"method": "test"}, {"sha256": "cd" * 32, "size": 77})
    return path


def test_sign_and_verify_flow(tmp_path, payload):
    r = run("keygen", "--out-dir", str(tmp_path / "keys"))
    assert r.returncode == 0, r.stderr
    key, pub = tmp_path / "keys" / "payload_signing.key", tmp_path / "keys" / "payload_signing.pub"
    assert key.exists() and pub.exists() and "key id:" in r.stdout
    r = run("verify", str(payload))
    assert r.returncode == 0 and r.stdout.startswith("OK") and "unsigned" in r.stdout
    r = run("verify", str(payload), "--public-key", str(pub))  # keys given: a signature is required
    assert r.returncode == 4 and r.stderr.startswith("error: SignatureRequired:") and "Traceback" not in r.stderr
    r = run("sign", str(payload), "--key", str(key))
    assert r.returncode == 0, r.stderr
    r = run("verify", str(payload), "--public-key", str(pub))
    assert r.returncode == 0 and "verified" in r.stdout
    r = run("inspect", str(payload), "--json")
    info = json.loads(r.stdout)
    assert info["signed"] and info["signature_status"] == "unverified" and info["size"] == payload.stat().st_size
    # tampered signed payload
    b = bytearray(payload.read_bytes())
    b[-120] ^= 1
    payload.write_bytes(bytes(b))
    r = run("verify", str(payload), "--public-key", str(pub))
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_inspect_text_and_json(payload):
    r = run("inspect", str(payload))
    assert r.returncode == 0, r.stderr
    assert "codebook" in r.stdout and "cdcdcd" in r.stdout and "unsigned" in r.stdout
    info = json.loads(run("inspect", str(payload), "--json").stdout)
    assert info["groups"][0] == {"name": "b3", "role": "samples", "kind": "codebook", "bits": 3, "n": 5, "d": 8,
                                 "bytes": 15 + 32, "row_bytes": 3, "labeled": True, "meta": {},
                                 "params": {"levels": ["f4", [8]]}, "extra": {}}
    z = info["sizes"]
    assert z["prefix"] + z["header"] + z["data"] + z["digest"] + z["signature"] == info["size"]
    assert info["graph"] == {"sha256": "cd" * 32, "size": 77} and info["num_classes"] == 4


@pytest.mark.parametrize("mutate, err", [
    (lambda b: b[:-1], "Truncated"),
    (lambda b: b + b"x", "TrailingBytes"),
    (lambda b: b"GARBAGE!" + b[8:], "BadMagic"),
    (lambda b: b[:-40] + bytes([b[-40] ^ 1]) + b[-39:], "DigestMismatch"),
])
def test_verify_names_the_problem(tmp_path, payload, mutate, err):
    bad = tmp_path / "bad.epl"
    bad.write_bytes(mutate(payload.read_bytes()))
    r = run("verify", str(bad))
    assert r.returncode == 4
    assert r.stderr.startswith(f"error: {err}:") and len(r.stderr.strip().splitlines()) == 1


def test_missing_file(tmp_path):
    r = run("verify", str(tmp_path / "nope.epl"))
    assert r.returncode != 0 and "Traceback" not in r.stderr


def _key_id(stdout: str) -> str:
    return stdout.strip().splitlines()[-1].removeprefix("key id: ")


def test_keygen_never_replaces_a_key_without_force(tmp_path):
    keys = tmp_path / "keys"
    r = run("keygen", "--out-dir", str(keys))
    assert r.returncode == 0, r.stderr
    key, pub = keys / "payload_signing.key", keys / "payload_signing.pub"
    before = key.read_bytes(), pub.read_bytes()
    first_id = _key_id(r.stdout)
    r = run("keygen", "--out-dir", str(keys))  # the repeated command must not lose the fleet's key
    assert r.returncode == 2
    assert r.stderr.startswith("error: KeyFileExists:") and "--force" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and r.stdout == ""
    assert (key.read_bytes(), pub.read_bytes()) == before
    assert sorted(p.name for p in keys.iterdir()) == ["payload_signing.key", "payload_signing.pub"]  # no temp left
    # only the public half present: still refused, and no private key appears beside it
    key.unlink()
    r = run("keygen", "--out-dir", str(keys))
    assert r.returncode == 2 and "payload_signing.pub already exists" in r.stderr and not key.exists()
    # --force replaces both halves: a new key id, private key mode 0600
    r = run("keygen", "--out-dir", str(keys), "--force")
    assert r.returncode == 0, r.stderr
    assert _key_id(r.stdout) != first_id and key.stat().st_mode & 0o777 == 0o600


def test_save_private_key_refuses_existing_file(tmp_path):
    from edge_sdk.payload import KeyFileExists, generate_keypair, load_private_key, save_private_key

    priv, _ = generate_keypair()
    other, _ = generate_keypair()
    p = save_private_key(tmp_path / "k.pem", priv)
    with pytest.raises(KeyFileExists, match="overwrite=True"):
        save_private_key(p, other)
    assert load_private_key(p).private_bytes_raw() == priv.private_bytes_raw()
    save_private_key(p, other, overwrite=True)
    assert load_private_key(p).private_bytes_raw() == other.private_bytes_raw()
    assert [x.name for x in tmp_path.iterdir()] == ["k.pem"]


def test_inspect_cuts_long_fields_visibly(tmp_path):
    g = SampleGroup("a_group_name_longer_than_sixteen", "float16", 16, data=np.zeros((2, 4), np.float32),
                    labels=np.array([0, 1]))
    task = {"kind": "beam", "model": {"kind": "mlp", "input_dim": 4, "num_classes": 2, "hidden": list(range(100))}}
    path = tmp_path / "long.epl"
    write_payload(path, [g], 2, task, {"method": "test"})
    r = run("inspect", str(path))
    assert r.returncode == 0, r.stderr
    (task_line,) = [ln for ln in r.stdout.splitlines() if ln.startswith("  task: ")]
    full = json.dumps(json.loads(run("inspect", str(path), "--json").stdout)["task"], sort_keys=True)
    shown = task_line.removeprefix("  task: ")
    assert len(shown) == 200 and len(full) > 200
    kept, note = shown.split("... [", 1)
    assert full.startswith(kept) and note == f"{len(full) - len(kept)} more chars; --json shows all]"
    assert "a_group_name_..." in r.stdout  # the groups table cuts names visibly too

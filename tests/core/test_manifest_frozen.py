"""The frozen manifest v1 sample (tests/data/manifest_v1_sample.erm) must load forever, with exactly the content
recorded in tests/data/manifest_v1_sample.json, and the writer must reproduce it byte for byte (canonical
body + deterministic Ed25519). Never regenerate these files for a v1 reader change. (``python
tests/core/test_manifest_frozen.py --regenerate`` exists only to create them once, and for a new version
under a new name.)"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data"
SAMPLE = DATA / "manifest_v1_sample.erm"
EXPECTED = DATA / "manifest_v1_sample.json"
PUBKEY = DATA / "manifest_v1_sample.pub"
#: seed of the (public, test-only) signing key of the sample
KEY_SEED = hashlib.sha256(b"edge-sdk manifest v1 frozen sample test key").digest()


def _d(label: str) -> str:
    return "sha256:" + hashlib.sha256(label.encode()).hexdigest()


def sample_release():
    from edge_sdk.release import BlobRef, Identity, Release, Tier

    ident = Identity(task="beam", task_digest=_d("task"),
                     model={"depth": 3, "hidden": [128, 128], "in_shape": [], "input_dim": 8, "kind": "mlp",
                            "num_classes": 32, "width": 64})
    graph = BlobRef(_d("graph"), 7573)
    tiers = (
        Tier("36x", BlobRef(_d("payload-36x"), 10667), graph, 36.0, {"top1": 0.6649, "top1_1db": 0.8721}),
        Tier("180x", BlobRef(_d("payload-180x"), 2133), graph, 180.02, {"top1": 0.5801, "top1_1db": 0.8043},
             (BlobRef(_d("eval-180x"), 512, "eval-report"),)),
    )
    return Release(release="beam-uma-2026-11-29", created="2026-11-29T12:00:00Z", min_runtime="0.1.0",
                   identity=ident, tiers=tiers, extra=(BlobRef(_d("model-card"), 1200, "model-card"),))


def _decoded(m) -> dict:
    return {"digest": m.digest, "size": m.size, "content_sha256": m.content_sha256, "signed": m.signed,
            "key_id": m.key_id, "version": list(m.version), "body": m.release.to_json()}


def _key():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.from_private_bytes(KEY_SEED)


def test_frozen_manifest_loads_forever():
    from edge_sdk.release import read_manifest

    m = read_manifest(SAMPLE.read_bytes(), trusted_keys=[PUBKEY], require_signature=True)
    assert m.signature_status == "verified"
    assert _decoded(m) == json.loads(EXPECTED.read_text())


def test_writer_reproduces_frozen_bytes_M13():
    """Canonical body + deterministic signature: the same release always encodes to the same bytes/digest."""
    from edge_sdk.release import encode_manifest, read_manifest

    data = encode_manifest(sample_release(), _key())
    assert data == SAMPLE.read_bytes()
    assert read_manifest(data).release == sample_release()


def regenerate() -> None:  # pragma: no cover - run by hand once
    from edge_sdk.payload import save_public_key
    from edge_sdk.release import encode_manifest, read_manifest

    key = _key()
    data = encode_manifest(sample_release(), key)
    SAMPLE.write_bytes(data)
    save_public_key(PUBKEY, key.public_key())
    m = read_manifest(data, trusted_keys=[key.public_key()])
    EXPECTED.write_text(json.dumps(_decoded(m), indent=1, sort_keys=True) + "\n")
    print(f"wrote {SAMPLE} ({len(data)} bytes), {EXPECTED}, {PUBKEY}")


if __name__ == "__main__":  # pragma: no cover
    if "--regenerate" in sys.argv:
        regenerate()

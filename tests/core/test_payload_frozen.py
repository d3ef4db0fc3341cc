"""The frozen v1 sample (tests/data/payload_v1_sample.epl) must load forever, with exactly the decoded
content recorded in tests/data/payload_v1_sample.json. Never regenerate these files for a v1 reader
change: a v1 reader that cannot read them is broken. (``python tests/core/test_payload_frozen.py
--regenerate`` exists only to create them once, and for a new format version under a new name.)
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1] / "data"
SAMPLE = DATA / "payload_v1_sample.epl"
EXPECTED = DATA / "payload_v1_sample.json"
PUBKEY = DATA / "payload_v1_sample.pub"
#: seed of the (public, test-only) signing key of the sample; Ed25519 signatures are deterministic
KEY_SEED = hashlib.sha256(b"edge-sdk payload v1 frozen sample test key").digest()


def _decoded(p) -> dict:
    groups = []
    for g in p.groups:
        e = {"name": g.name, "role": g.role, "kind": g.kind, "bits": g.bits, "n": g.n, "d": g.d, "meta": g.meta,
             "params": {k: {"dtype": str(v.dtype), "values": v.astype(np.float64).tolist()} for k, v in g.params().items()},
             "extra": {k: {"dtype": str(g.extra(k).dtype), "shape": list(g.extra(k).shape),
                           "values": g.extra(k).astype(np.float64).reshape(-1).tolist()} for k in g.extra_names()},
             "labels": None if g.labels() is None else g.labels().tolist(),
             "dequantized": g.dequantize().astype(np.float64).tolist()}
        if g.kind not in ("float16", "float32"):
            e["codes"] = g.codes().tolist()
        groups.append(e)
    x, y = p.samples()
    soft = p.soft_labels()
    return {"size": p.size, "sha256": p.sha256, "signed": p.signed, "key_id": p.key_id, "num_classes": p.num_classes,
            "task": p.task, "provenance": p.provenance, "graph": p.graph, "groups": groups,
            "samples_shape": list(x.shape), "samples_labels": None if y is None else y.tolist(),
            "soft_labels_shape": None if soft is None else list(soft.shape),
            "file_sha256": hashlib.sha256(SAMPLE.read_bytes()).hexdigest()}


def test_frozen_sample_loads_forever():
    from edge_sdk.payload import read_payload

    expected = json.loads(EXPECTED.read_text())
    with read_payload(SAMPLE, trusted_keys=[PUBKEY], require_signature=True) as p:
        assert p.signature_status == "verified"
        got = _decoded(p)
    assert got == expected


def regenerate() -> None:  # pragma: no cover - run by hand once
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from edge_sdk import codecs
    from edge_sdk.payload import SampleGroup, read_payload, save_public_key, write_payload

    rng = np.random.default_rng(20261123)
    x = rng.normal(size=(12, 10)).astype(np.float32)
    c = 6
    c1, p1 = codecs.quantize(x[:5], "symmetric_per_sample", 4)
    c2, p2 = codecs.quantize(x[5:9], "codebook", 3, {"levels": np.linspace(-2, 2, 8).astype(np.float32)})
    c3, p3 = codecs.quantize(x[9:11], "uniform_clip", 2, {"alpha": np.full(10, 1.5, np.float32)})
    groups = [
        SampleGroup("s4", "symmetric_per_sample", 4, data=c1, params=p1, labels=rng.integers(0, c, 5),
                    extra={"weight": np.linspace(0, 1, 5).astype(np.float32)}, meta={"ipc": 1}),
        SampleGroup("cb3", "codebook", 3, data=c2, params={"levels": p2["levels"].astype(np.float16)},
                    labels=rng.integers(0, c, 4)),
        SampleGroup("uc2", "uniform_clip", 2, data=c3, params=p3, labels=rng.integers(0, c, 2)),
        SampleGroup("dropped", "none", 0, n=3, d=10),
        SampleGroup("raw", "float16", 16, data=x[11:], labels=rng.integers(0, c, 1)),
        SampleGroup("soft", "codebook", 2, data=rng.integers(0, 4, (12, c)).astype(np.uint8),
                    params={"levels": np.array([0, 0.25, 0.5, 1], np.float32)}, role="soft_labels"),
    ]
    key = Ed25519PrivateKey.from_private_bytes(KEY_SEED)
    task = {"kind": "beam", "model": {"kind": "mlp", "input_dim": 10, "num_classes": c, "hidden": [16]}}
    prov = {"method": "frozen-sample", "seed": 20261123, "library_version": "0.1.0"}
    write_payload(SAMPLE, groups, c, task, prov, {"sha256": hashlib.sha256(b"graph").hexdigest(), "size": 5},
                  signing_key=key)
    save_public_key(PUBKEY, key.public_key(), "raw")
    with read_payload(SAMPLE, trusted_keys=[PUBKEY]) as p:
        EXPECTED.write_text(json.dumps(_decoded(p), indent=1, sort_keys=True) + "\n")


if __name__ == "__main__" and "--regenerate" in sys.argv:
    regenerate()

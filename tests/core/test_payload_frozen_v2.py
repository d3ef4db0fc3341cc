"""The frozen v2.0 sample (tests/data/payload_v2_sample.epl with its task blob payload_v2_sample.task.json) must
load forever, with exactly the decoded content recorded in payload_v2_sample.json. Never regenerate these files
for a reader change: a v2.0 reader that cannot read them is broken. (``python tests/core/test_payload_frozen_v2.py
--regenerate`` exists only to create them once.) The same holds for the sample of flag bit 2 (a recipe with label
smoothing, edge-sdk 0.3.0; unsigned, packed labels, a soft-label group, SGD with a step schedule):
payload_v2_smoothing_sample.epl / .json (``--regenerate-smoothing``)."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1] / "data"
SAMPLE = DATA / "payload_v2_sample.epl"
BLOB = DATA / "payload_v2_sample.task.json"
EXPECTED = DATA / "payload_v2_sample.json"
SMOOTHING_SAMPLE = DATA / "payload_v2_smoothing_sample.epl"
SMOOTHING_EXPECTED = DATA / "payload_v2_smoothing_sample.json"
PUBKEY = DATA / "payload_v2_sample.pub"
KEY_SEED = hashlib.sha256(b"edge-sdk payload v2 frozen sample test key").digest()


def _decoded(p, sample: Path = SAMPLE) -> dict:
    groups = []
    for g in p.groups:
        e = {"name": g.name, "role": g.role, "kind": g.kind, "bits": g.bits, "n": g.n, "d": g.d,
             "params": {k: v.astype(np.float64).tolist() for k, v in g.params().items()},
             "labels": None if g.labels() is None else g.labels().tolist(),
             "dequantized": g.dequantize().astype(np.float64).tolist()}
        if g.kind not in ("float16", "float32", "none"):
            e["codes"] = g.codes().tolist()
        groups.append(e)
    x, y = p.samples()
    return {"size": p.size, "sha256": p.sha256, "signed": p.signed, "key_id": p.key_id, "version": list(p.version),
            "num_classes": p.num_classes, "task_digest": p.task_digest, "task": p.task, "graph": p.graph,
            "recipe": p.recipe, "label_mode": p.label_mode, "groups": groups, "samples_shape": list(x.shape),
            "samples_labels": None if y is None else y.tolist(),
            "file_sha256": hashlib.sha256(sample.read_bytes()).hexdigest()}


def test_frozen_v2_sample_loads_forever():
    from edge_sdk.payload import read_payload

    expected = json.loads(EXPECTED.read_text())
    with read_payload(SAMPLE, trusted_keys=[PUBKEY], require_signature=True, task_blob=BLOB) as p:
        assert p.signature_status == "verified"
        got = _decoded(p)
    # the decoded recipe is the full form (TrainRecipe.to_dict), which gains the fields later versions add at their
    # defaults (0.3.0: label_smoothing 0.0): the recorded fields must come back unchanged, the new ones at default
    from edge_sdk.modelspec import TrainRecipe

    new = {k: v for k, v in got["recipe"].items() if k not in expected["recipe"]}
    assert new == {k: v for k, v in TrainRecipe().to_dict().items() if k in new} and set(new) <= {"label_smoothing"}
    got["recipe"] = {k: v for k, v in got["recipe"].items() if k in expected["recipe"]}
    got["task"]["train"] = {k: v for k, v in got["task"]["train"].items() if k in expected["task"]["train"]}
    assert got == expected


def test_frozen_v2_label_smoothing_sample_loads_forever():
    """Flag bit 2: the recipe record ends with label_smoothing (after soft_weight); the decoded content is frozen."""
    from edge_sdk.payload import read_payload
    from edge_sdk.payload.format_v2 import FLAG_LABEL_SMOOTHING

    expected = json.loads(SMOOTHING_EXPECTED.read_text())
    with read_payload(SMOOTHING_SAMPLE) as p:
        assert p.flags & FLAG_LABEL_SMOOTHING and p.signature_status == "unsigned"
        got = _decoded(p, SMOOTHING_SAMPLE)
    assert got == expected
    assert got["recipe"]["label_smoothing"] == np.float32(0.15) and got["recipe"]["soft_weight"] == np.float32(0.25)


def regenerate_smoothing() -> None:  # pragma: no cover - run by hand once
    from edge_sdk import codecs
    from edge_sdk.payload import SampleGroup, read_payload, write_payload_v2

    rng = np.random.default_rng(20261130)
    x = rng.normal(size=(6, 4)).astype(np.float32)
    c = 3
    c1, p1 = codecs.quantize(x, "codebook", 2, {"levels": np.array([-1.0, -0.3, 0.2, 1.1], np.float32)})
    soft = rng.normal(size=(6, c)).astype(np.float32)
    c2, p2 = codecs.quantize(soft, "codebook", 2, {"levels": np.array([-2.0, -0.5, 0.5, 2.0], np.float32)})
    groups = [SampleGroup("x", "codebook", 2, data=c1, params=p1, labels=rng.integers(0, c, 6)),
              SampleGroup("s", "codebook", 2, data=c2, params=p2, role="soft_labels")]
    recipe = {"version": 1, "optimizer": "sgd", "lr": 0.05, "schedule": "step", "steps": 40, "batch_size": 4,
              "momentum": 0.8, "weight_decay": 0.001, "decay_every": 10, "gamma": 0.5, "soft_weight": 0.25,
              "label_smoothing": 0.15}
    write_payload_v2(SMOOTHING_SAMPLE, groups, c, task_digest=None, recipe=recipe,
                     label_mode="packed")
    with read_payload(SMOOTHING_SAMPLE) as p:
        SMOOTHING_EXPECTED.write_text(json.dumps(_decoded(p, SMOOTHING_SAMPLE), indent=1, sort_keys=True) + "\n")


def regenerate() -> None:  # pragma: no cover - run by hand once
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from edge_sdk import codecs
    from edge_sdk.payload import Q8Param, SampleGroup, read_payload, save_public_key, write_payload_v2
    from edge_sdk.payload.taskblob import write_task_blob

    rng = np.random.default_rng(20261129)
    x = rng.normal(size=(14, 8)).astype(np.float32)
    x -= x.max(1, keepdims=True)  # one-signed rows, as beam inputs
    c = 5
    pa = codecs.affine_params_for(x[:6], "affine_sample")
    lo = Q8Param.fit(pa["lo"], "down")
    c1, _ = codecs.quantize(x[:6], "affine_sample", 3, {"lo": lo.values(), "hi": pa["hi"]})
    pf = {k: v.astype(np.float16) for k, v in codecs.affine_params_for(x[6:10], "affine_feature").items()}
    c2, _ = codecs.quantize(x[6:10], "affine_feature", 2, {k: v.astype(np.float32) for k, v in pf.items()})
    c3, p3 = codecs.quantize(x[10:13], "codebook", 1, {"levels": np.array([-1.5, -0.2], np.float32)})
    c4, p4 = codecs.quantize(x[13:], "symmetric_per_sample", 4)
    groups = [
        SampleGroup("a", "affine_sample", 3, data=c1, params={"lo": lo, "hi": pa["hi"]}, labels=rng.integers(0, c, 6),
                    param_encodings={"hi": "c4"}),
        SampleGroup("b", "affine_feature", 2, data=c2, params=pf, labels=rng.integers(0, c, 4)),
        SampleGroup("c", "codebook", 1, data=c3, params=p3, labels=rng.integers(0, c, 3)),
        SampleGroup("dropped", "none", 0, n=2, d=8),
        SampleGroup("d", "symmetric_per_sample", 4, data=c4, params=p4, labels=rng.integers(0, c, 1)),
    ]
    task = {"kind": "beam", "model": {"kind": "mlp", "input_dim": 8, "num_classes": c, "hidden": [16]}}
    blob = write_task_blob(BLOB, task, {"sha256": hashlib.sha256(b"graph").hexdigest(), "size": 5})
    recipe = {"version": 1, "optimizer": "adam", "lr": 0.003, "schedule": "cosine", "steps": 1500, "batch_size": 32,
              "weight_decay": 0.0}
    key = Ed25519PrivateKey.from_private_bytes(KEY_SEED)
    write_payload_v2(SAMPLE, groups, c, task_digest=blob.digest, recipe=recipe, label_mode="counts", signing_key=key)
    save_public_key(PUBKEY, key.public_key(), "raw")
    with read_payload(SAMPLE, trusted_keys=[PUBKEY], task_blob=BLOB) as p:
        EXPECTED.write_text(json.dumps(_decoded(p), indent=1, sort_keys=True) + "\n")


if __name__ == "__main__" and "--regenerate" in sys.argv:
    regenerate()
if __name__ == "__main__" and "--regenerate-smoothing" in sys.argv:
    regenerate_smoothing()

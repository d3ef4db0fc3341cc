"""Payload format v2.0 (docs/payload-format.md, "Version 2.0"): round trips of every kind, width, parameter
encoding and label mode; the exact size (R16); the rules R19-R24 each with crafted bytes; the task blob; the
spec tables against the code; the overhead figures the spec quotes."""

from __future__ import annotations

import hashlib
import json
import re
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_sdk import codecs
from edge_sdk.errors import ConfigError
from edge_sdk.payload import (
    Q8Param,
    SampleGroup,
    encode_payload,
    encode_payload_v2,
    generate_keypair,
    payload_size,
    payload_size_v2,
    read_payload,
    sign_payload,
    write_payload_v2,
)
from edge_sdk.payload import errors as E
from edge_sdk.payload import format_v2 as F2
from edge_sdk.payload.taskblob import TASK_BLOB_MAX_BYTES, encode_task_blob, parse_task_blob, write_task_blob

ROOT = Path(__file__).resolve().parents[2]
SPEC = (ROOT / "docs" / "payload-format.md").read_text()
TASK = {"kind": "beam", "beam": {"n_tx": 32}, "model": {"kind": "mlp", "input_dim": 8, "num_classes": 32,
                                                         "hidden": [128, 128]}}
RECIPE = {"version": 1, "optimizer": "adam", "lr": 0.003, "schedule": "cosine", "steps": 3000, "batch_size": 128,
          "weight_decay": 0.0}
ALL_KINDS = codecs.QUANTIZER_KINDS
PER_SAMPLE = ("symmetric_per_sample", "affine_sample")


def _group(rng, kind, bits, n, d, c, *, f16=False, q8=False, c4=False, per_feature=False, role="samples", name="g"):
    x = (rng.normal(size=(n, d)) * rng.uniform(0.1, 5)).astype(np.float32)
    if kind == "none":
        return SampleGroup(name, "none", 0, n=n, d=d)
    if kind in codecs.RAW_KINDS:
        return SampleGroup(name, kind, codecs.RAW_KINDS[kind], data=x, labels=rng.integers(0, c, n) if role == "samples" else None,
                           role=role)
    params = None
    if kind == "uniform_clip":
        params = {"alpha": (np.abs(x).max(0, initial=0) if per_feature and d > 1
                            else np.abs(x).max(initial=0, keepdims=True).reshape(1)).astype(np.float32) + 0.1}
    elif kind == "codebook":
        params = {"levels": rng.normal(size=1 << bits).astype(np.float32)}
    elif kind in codecs.AFFINE_KINDS:
        params = codecs.affine_params_for(x, kind)
    codes, p = codecs.quantize(x, kind, bits, params)
    enc: dict = {}
    if q8 and kind in PER_SAMPLE:
        pname = "scale" if kind == "symmetric_per_sample" else "lo"
        q = Q8Param.fit(p[pname], "up" if pname == "scale" else "down")
        p = {**p, pname: q.values()}
        codes, _ = codecs.quantize(x, kind, bits, p)
        p = {**p, pname: q}
    if c4 and kind == "affine_sample":
        x = x - x.max(1, keepdims=True)  # rows normalised by their maximum: hi = 0 for every row
        p = codecs.affine_params_for(x, kind)
        codes, p = codecs.quantize(x, kind, bits, p)
        enc["hi"] = "c4"
    if f16 and not q8 and not enc:
        p = {k: (v.astype(np.float16) if not isinstance(v, Q8Param) else v) for k, v in p.items()}
        codes, _ = codecs.quantize(x, kind, bits, {k: np.asarray(v, np.float32) for k, v in p.items()}) \
            if kind not in ("symmetric_per_sample",) else (codes, None)
    return SampleGroup(name, kind, bits, data=codes, params=p, role=role, param_encodings=enc,
                       labels=rng.integers(0, c, n) if role == "samples" else None)


def _decoded_expected(g: SampleGroup) -> np.ndarray:
    if g.kind == "none":
        return np.zeros((g.n, 0), np.float32)
    if g.kind in codecs.RAW_KINDS:
        return np.asarray(g.data, np.float32)
    return codecs.dequantize(g.data, g.kind, g.bits, {k: np.asarray(v, np.float32) for k, v in g.params.items()})


@st.composite
def v2_cases(draw):
    c = draw(st.integers(1, 300))
    d = draw(st.integers(1, 13))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    groups = []
    for i in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(ALL_KINDS))
        bits = draw(st.sampled_from(codecs.ALLOWED_BITS[kind]))
        groups.append(_group(rng, kind, bits, draw(st.integers(0, 9)), d if kind != "none" else draw(st.integers(0, 4)),
                             c, f16=draw(st.booleans()), q8=draw(st.booleans()), c4=draw(st.booleans()),
                             per_feature=draw(st.booleans()), name=f"g{i}"))
    mode = draw(st.sampled_from(["packed", "counts"]))
    recipe = draw(st.sampled_from([None, RECIPE, {**RECIPE, "optimizer": "sgd", "lr": 0.05, "schedule": "step",
                                                  "momentum": 0.8, "decay_every": 7, "gamma": 0.5}]))
    digest = hashlib.sha256(bytes([c % 256])).digest() if draw(st.booleans()) else None
    return groups, c, mode, recipe, digest, draw(st.booleans())


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=v2_cases())
def test_roundtrip_every_kind_encoding_and_label_mode_R16(case):
    groups, c, mode, recipe, digest, signed = case
    key, pub = generate_keypair() if signed else (None, None)
    data = encode_payload_v2(groups, c, task_digest=digest, recipe=recipe, label_mode=mode, signing_key=key)
    assert len(data) == payload_size_v2(groups, c, task_digest=digest, recipe=recipe, label_mode=mode, signed=signed)
    with read_payload(data, trusted_keys=[pub] if signed else None) as p:
        assert p.version == (2, 0) and p.signed == signed
        assert p.signature_status == ("verified" if signed else "unsigned")
        assert p.task_digest == (digest.hex() if digest else None)
        p.decode_all()
        labeled = any(g.role == "samples" and g.bits > 0 for g in groups)
        assert p.label_mode == (mode if labeled else "none")
        for g, gv in zip(groups, p.groups, strict=True):
            assert (gv.kind, gv.bits, gv.n, gv.d, gv.role) == (g.kind, g.bits, g.n, g.d, g.role)
            want = _decoded_expected(g)
            got = gv.dequantize()
            if g.labels is not None and mode == "counts" and g.bits > 0:
                order = np.argsort(g.labels, kind="stable")
                want = want[order]
                np.testing.assert_array_equal(gv.labels(), np.sort(g.labels))
            elif g.labels is not None and g.bits > 0:
                np.testing.assert_array_equal(gv.labels(), g.labels)
            np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
        if recipe is not None:
            assert p.recipe["optimizer"] == recipe["optimizer"] and p.recipe["steps"] == recipe["steps"]
            assert p.recipe["lr"] == F2.f4_exact(recipe["lr"])
        else:
            assert p.recipe is None


def test_file_roundtrip_task_blob_and_signing(tmp_path):
    rng = np.random.default_rng(1)
    g = _group(rng, "affine_feature", 4, 50, 8, 32)
    blob = write_task_blob(tmp_path / "task.json", TASK, {"sha256": "ab" * 32, "size": 7464})
    key, pub = generate_keypair()
    info = write_payload_v2(tmp_path / "payload.epl", [g], 32, task_digest=blob.digest, recipe=RECIPE)
    assert info.size == (tmp_path / "payload.epl").stat().st_size
    signed = sign_payload(tmp_path / "payload.epl", key)
    assert signed.size == info.size - 32 + 72 and signed.key_id == info.key_id is None or signed.key_id
    with read_payload(tmp_path / "payload.epl", trusted_keys=[pub], require_signature=True) as p:
        assert p.signature_status == "verified" and len(p.key_id) == 16
        assert p.task == {**TASK, "train": p.recipe}
        assert p.graph == {"sha256": "ab" * 32, "size": 7464}
        x, y = p.samples()
        assert x.shape == (50, 8) and np.all(np.diff(y) >= 0)  # counts mode: rows in class order


def test_q8_fit_bounds_the_values():
    rng = np.random.default_rng(2)
    for _ in range(50):
        v = (rng.normal(size=rng.integers(1, 300)) * 10 ** rng.uniform(-3, 3)).astype(np.float32)
        dn, up, ne = Q8Param.fit(v, "down"), Q8Param.fit(v, "up"), Q8Param.fit(v, "nearest")
        assert np.all(dn.values() <= v) and np.all(up.values() >= v)
        assert np.abs(ne.values() - v).max() <= (v.max() - v.min()) / 255 * 0.51 + 1e-6 * np.abs(v).max()
    assert np.all(Q8Param.fit(np.full(4, 2.5, np.float32)).values() == 2.5)
    with pytest.raises(ConfigError):
        Q8Param(0.0, -1.0, np.zeros(2, np.uint8))
    with pytest.raises(ConfigError):
        Q8Param(0.0, 1.0, np.array([300]))


def test_v1_writer_refuses_v2_features():
    rng = np.random.default_rng(3)
    g = _group(rng, "affine_set", 2, 4, 3, 5)
    with pytest.raises(ConfigError, match="v2"):
        encode_payload([g], 5)
    g = _group(rng, "symmetric_per_sample", 3, 4, 3, 5, q8=True)
    with pytest.raises(ConfigError):
        encode_payload([g], 5)


def test_writer_rejects_bad_v2_input():
    rng = np.random.default_rng(4)
    g = _group(rng, "codebook", 2, 6, 3, 5)
    soft = SampleGroup("s", "float32", 32, data=np.zeros((6, 5), np.float32), role="soft_labels")
    with pytest.raises(ConfigError, match="packed"):
        encode_payload_v2([g, soft], 5, label_mode="counts")
    encode_payload_v2([g, soft], 5, label_mode="packed", recipe={**RECIPE, "soft_weight": 0.5})
    with pytest.raises(ConfigError):
        encode_payload_v2([g], 5, recipe={**RECIPE, "lr": -1.0})
    with pytest.raises(ConfigError):
        encode_payload_v2([g], 5, task_digest=b"short")
    with pytest.raises(ConfigError, match="c4"):
        SampleGroup("g", "affine_sample", 2, data=np.zeros((2, 3), np.uint8),
                    params={"lo": np.array([0, 1], np.float32), "hi": np.array([1, 2], np.float32)},
                    param_encodings={"hi": "c4"})
    with pytest.raises(ConfigError):
        encode_payload_v2([SampleGroup("g", "codebook", 1, data=np.zeros((1, 1), np.uint8),
                                       params={"levels": np.zeros(2, np.float32)}, extra={"w": np.zeros(1)})], 2)


# ------------------------------------------------------------------------------------------ crafted bytes
def _base(mode="counts", recipe=RECIPE, kind="affine_sample", q8=True) -> bytes:
    rng = np.random.default_rng(5)
    g = _group(rng, kind, 3, 6, 4, 3, q8=q8)
    return encode_payload_v2([g], 3, task_digest=hashlib.sha256(b"t").digest(), recipe=recipe, label_mode=mode)


def _parts(b: bytes):
    hlen = int.from_bytes(b[12:16], "little")
    return bytearray(b[:16]), bytes(b[16:16 + hlen]), bytes(b[16 + hlen:-32])


def _assemble(pre: bytes | bytearray, hb: bytes, data: bytes) -> bytes:
    pre = bytearray(pre)
    pre[12:16] = len(hb).to_bytes(4, "little")
    body = bytes(pre) + hb + data
    return body + hashlib.sha256(body).digest()


def _open(b: bytes, blob=None):
    with read_payload(b, task_blob=blob) as p:
        p.decode_all()
        return p


def test_valid_v2_base():
    p = _open(_base())
    assert p.label_mode == "counts"


def test_R19_header_exact_minimal_known():
    pre, hb, data = _parts(_base())
    with pytest.raises(E.HeaderInvalid, match="trailing"):
        _open(_assemble(pre, hb + b"\0", data))
    # group 0 starts after digest(32) + classes(2) + label mode(1) + group count(1): role, kind, bits, n, d
    g0 = 36
    assert hb[g0 + 1] == F2.KIND_CODES.index("affine_sample")
    bad = bytearray(hb)
    bad[g0 + 1] = 99
    with pytest.raises(E.HeaderInvalid, match="kind code"):
        _open(_assemble(pre, bytes(bad), data))
    nonmin = hb[:g0 + 3] + bytes([0x86, 0x00]) + hb[g0 + 4:]  # n = 6 as a 2-byte varint
    with pytest.raises(E.HeaderInvalid, match="minimal"):
        _open(_assemble(pre, nonmin, data))
    huge = hb[:g0 + 3] + F2.varint(1 << 40) + hb[g0 + 4:]
    with pytest.raises(E.LimitExceeded):
        _open(_assemble(pre, huge, data))
    bad = bytearray(hb)
    bad[34] = 7  # label mode
    with pytest.raises(E.HeaderInvalid, match="label mode"):
        _open(_assemble(pre, bytes(bad), data))
    flags = bytearray(pre)
    flags[10] |= 0x08  # bits 0-2 are defined (2: label smoothing)
    with pytest.raises(E.HeaderInvalid, match="flag"):
        _open(_assemble(flags, hb, data))
    with pytest.raises(E.HeaderInvalid, match="ends inside"):
        _open(_assemble(pre, hb[:40], data))
    big = bytearray(pre)
    big[12:16] = (F2.HEADER_MAX_BYTES_V2 + 1).to_bytes(4, "little")
    with pytest.raises(E.HeaderTooLarge):
        _open(bytes(big) + hb + data + bytes(32))


def test_R19_v1_header_naming_an_affine_kind():
    rng = np.random.default_rng(6)
    g = _group(rng, "codebook", 2, 3, 2, 4)
    b = encode_payload([g], 4)
    hlen = int.from_bytes(b[12:16], "little")
    h = json.loads(b[16:16 + hlen])
    h["g"][0]["k"] = "affine_set"
    h["g"][0]["q"] = {"hi": h["g"][0]["q"]["levels"], "lo": h["g"][0]["q"]["levels"]}
    hb = json.dumps(h, sort_keys=True, separators=(",", ":")).encode()
    body = b[:12] + len(hb).to_bytes(4, "little") + hb + b[16 + hlen:-32]
    with pytest.raises(E.PayloadError):
        read_payload(body + hashlib.sha256(body).digest())


def test_R20_class_counts_sum_to_n():
    pre, hb, data = _parts(_base())
    # counts: 3 classes x bit_length(6) = 3 bits = 9 bits -> the last 2 bytes of the data area
    counts = np.frombuffer(data[-2:], np.uint8)
    bad = bytearray(data)
    bad[-2] = int(counts[0]) ^ 0x01  # change the count of class 0 by one
    with pytest.raises(E.InvalidValue, match="R20"):
        _open(_assemble(pre, hb, bytes(bad)))
    bad = bytearray(data)
    bad[-1] = int(counts[1]) | 0x80  # a padding bit
    with pytest.raises(E.InvalidValue, match="R11"):
        _open(_assemble(pre, hb, bytes(bad)))


def test_R21_parameter_encodings():
    pre, hb, data = _parts(_base())
    # sections: codes (6 rows x ceil(4*3/8)=2 B = 12), hi (f4 6 values = 24), lo (q8: 8 + 6), counts (2)
    lo_at = 12 + 24
    for base, step, _what in ((np.nan, 1.0, "NaN"), (0.0, -1.0, "step"), (np.inf, 0.0, "NaN")):
        bad = bytearray(data)
        bad[lo_at: lo_at + 8] = struct.pack("<ff", base, step)
        with pytest.raises(E.InvalidValue):
            _open(_assemble(pre, hb, bytes(bad)))
    # decoded lo above hi breaks R18
    bad = bytearray(data)
    bad[lo_at: lo_at + 8] = struct.pack("<ff", 1e6, 0.0)
    with pytest.raises(E.InvalidValue, match="hi"):
        _open(_assemble(pre, hb, bytes(bad)))


def test_R22_signed_and_unsigned_trailers(tmp_path):
    key, pub = generate_keypair()
    other, other_pub = generate_keypair()
    b = bytes(_base())
    body = b[:-32]
    with pytest.raises(E.DigestMismatch):
        read_payload(body + bytes(32))
    rng = np.random.default_rng(7)
    g = _group(rng, "codebook", 3, 5, 4, 3)
    s = encode_payload_v2([g], 3, signing_key=key)
    assert s[10] & 1 and len(s) == payload_size_v2([g], 3, signed=True)
    with read_payload(s) as p:
        assert p.signature_status == "unverified" and p.key_id == hashlib.sha256(
            pub.public_bytes_raw()).hexdigest()[:16]
    with pytest.raises(E.UntrustedKey):
        read_payload(s, trusted_keys=[other_pub])
    tampered = bytearray(s)
    tampered[20] ^= 1
    with pytest.raises((E.BadSignature, E.PayloadError)):
        read_payload(bytes(tampered), trusted_keys=[pub])
    flipped_sig = s[:-1] + bytes([s[-1] ^ 1])
    with pytest.raises(E.BadSignature):
        read_payload(flipped_sig, trusted_keys=[pub])
    with pytest.raises(E.SignatureRequired):
        read_payload(b, require_signature=True)
    # a v1 signature over the same content never verifies as v2 (different domain)
    assert F2.SIGNATURE_DOMAIN_V2 != b"edge-sdk payload v1 ed25519\x00" and len(F2.SIGNATURE_DOMAIN_V2) == 28


def test_R23_task_blob(tmp_path):
    rng = np.random.default_rng(8)
    g = _group(rng, "codebook", 2, 4, 3, 5)
    blob = encode_task_blob(TASK, None)
    digest = hashlib.sha256(blob).digest()
    b = encode_payload_v2([g], 5, task_digest=digest)
    with read_payload(b) as p:
        with pytest.raises(E.TaskBlobMissing, match=digest.hex()):
            _ = p.task
    with read_payload(b, task_blob=blob) as p:
        assert p.task == TASK and p.graph is None
    with read_payload(b, task_blob=encode_task_blob({**TASK, "x": 1})) as p:
        with pytest.raises(E.TaskMismatch):
            _ = p.task
    (tmp_path / "p.epl").write_bytes(b)
    (tmp_path / "task.json").write_bytes(encode_task_blob({**TASK, "x": 1}))  # another payload's blob
    with read_payload(tmp_path / "p.epl") as p, pytest.raises(E.TaskBlobMissing):
        _ = p.task
    (tmp_path / f"sha256-{digest.hex()}").write_bytes(blob)
    with read_payload(tmp_path / "p.epl") as p:
        assert p.task == TASK
    # a payload that is a blob of a store or device cache finds the task blob by digest in the same tree
    tree = tmp_path / "cache" / "blobs" / "sha256"
    ph = hashlib.sha256(b).hexdigest()
    (tree / ph[:2]).mkdir(parents=True)
    (tree / ph[:2] / ph).write_bytes(b)
    with read_payload(tree / ph[:2] / ph) as p, pytest.raises(E.TaskBlobMissing):
        _ = p.task
    (tree / digest.hex()[:2]).mkdir(exist_ok=True)
    (tree / digest.hex()[:2] / digest.hex()).write_bytes(blob)
    with read_payload(tree / ph[:2] / ph) as p:
        assert p.task == TASK
    (tree / digest.hex()[:2] / digest.hex()).write_bytes(blob.replace(b"beam", b"BEAM"))  # corrupt copy
    with read_payload(tree / ph[:2] / ph) as p, pytest.raises(E.TaskMismatch):
        _ = p.task
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / ph).write_bytes(b)  # a hex name outside a blob tree: no tree lookup
    (tmp_path / digest.hex()[:2]).mkdir()
    (tmp_path / digest.hex()[:2] / digest.hex()).write_bytes(blob)
    with read_payload(tmp_path / "elsewhere" / ph) as p, pytest.raises(E.TaskBlobMissing):
        _ = p.task
    # blob rules
    assert parse_task_blob(blob).task == TASK
    for bad in (b'{"graph":null,"schema":"edge-sdk.task/2","task":{}}', b'{"graph":null,"task":{}}',
                b'{"graph":["xy",5],"schema":"edge-sdk.task/1","task":{}}', b'{"schema":"edge-sdk.task/1", "task":{}}',
                b'{"graph":null,"schema":"edge-sdk.task/1","task":[]}'):
        with pytest.raises(E.HeaderInvalid):
            parse_task_blob(bad)
    with pytest.raises(E.LimitExceeded):
        parse_task_blob(b"[" * 40 + b"]" * 40)
    with pytest.raises(E.LimitExceeded):
        parse_task_blob(b" " * (TASK_BLOB_MAX_BYTES + 1))
    with pytest.raises(ConfigError):
        encode_task_blob(TASK, {"sha256": "zz", "size": 1})
    assert "train" not in json.loads(encode_task_blob({**TASK, "train": RECIPE}))["task"]


def test_R24_recipe_ranges():
    pre, hb, data = _parts(_base())
    # the recipe is the last record: optimizer, schedule, steps (2 B), batch (1 B), lr f4, wd f4, adam 3 x f4
    rec = F2.encode_recipe(RECIPE, False)
    assert hb.endswith(rec)
    at = len(hb) - len(rec)
    lr = 2 + len(F2.varint(RECIPE["steps"])) + len(F2.varint(RECIPE["batch_size"]))  # lr, wd, beta1, beta2, eps
    for off, val in ((lr, struct.pack("<f", -0.1)), (lr, struct.pack("<f", float("nan"))), (lr + 4, struct.pack("<f", -1.0)),
                     (lr + 8, struct.pack("<f", 1.0)), (lr + 16, struct.pack("<f", 0.0))):
        bad = bytearray(hb)
        bad[at + off: at + off + 4] = val
        with pytest.raises(E.HeaderInvalid):
            _open(_assemble(pre, bytes(bad), data))
    bad = bytearray(hb)
    bad[at] = 5  # optimizer code
    with pytest.raises(E.HeaderInvalid):
        _open(_assemble(pre, bytes(bad), data))
    zero_steps = hb[:at + 2] + F2.varint(0) + hb[at + 4:]
    with pytest.raises(E.HeaderInvalid):
        _open(_assemble(pre, zero_steps, data))
    with pytest.raises(E.LimitExceeded):
        _open(_assemble(pre, hb[:at + 2] + F2.varint(F2.MAX_STEPS + 1) + hb[at + 4:], data))
    sgd = {**RECIPE, "optimizer": "sgd", "schedule": "step", "momentum": 0.5, "decay_every": 300, "gamma": 0.25}
    out = F2.decode_recipe(F2._Cursor(F2.encode_recipe(sgd, True)), True)
    assert (out["momentum"], out["decay_every"], out["gamma"], out["soft_weight"]) == (0.5, 300, 0.25, 1.0)


def test_v2_recipe_record_is_the_train_recipe():
    """One recipe definition: the record takes a TrainRecipe or any of its dict forms, unstored fields come back
    at the TrainRecipe defaults, and its bounds are edge_sdk.modelspec.RECIPE_BOUNDS."""
    from edge_sdk.modelspec import TrainRecipe

    r = TrainRecipe(optimizer="sgd", lr=0.25, schedule="step", steps=700, batch_size=64, momentum=0.5,
                    weight_decay=0.0, decay_every=100, gamma=2.0)
    rec = F2.encode_recipe(r, False)
    assert rec == F2.encode_recipe(r.to_dict(), False) == F2.encode_recipe(r.to_payload(), False)
    assert TrainRecipe.from_dict(F2.decode_recipe(F2._Cursor(rec), False)) == r  # values exact in float32
    with pytest.raises(ConfigError, match="recipe.momentum"):
        F2.encode_recipe({**RECIPE, "optimizer": "sgd", "momentum": 1.0}, False)
    with pytest.raises(ConfigError, match="recipe has unknown key"):
        F2.encode_recipe({**RECIPE, "epochs": 3}, False)


def test_label_smoothing_record_and_flag():
    """Flag bit 2 iff the recipe smooths labels; the record then ends with label_smoothing f4; a recipe without it
    keeps the bytes of edge-sdk 0.2 (no flag, no field)."""
    from edge_sdk.modelspec import TrainRecipe

    plain = _base()
    assert int.from_bytes(plain[10:12], "little") & F2.FLAG_LABEL_SMOOTHING == 0
    smooth = _base(recipe={**RECIPE, "label_smoothing": 0.2})
    flags = int.from_bytes(smooth[10:12], "little")
    assert flags & F2.FLAG_LABEL_SMOOTHING and flags & F2.FLAG_RECIPE
    assert len(smooth) == len(plain) + 4
    with _open(smooth) as p:
        r = TrainRecipe.from_dict(p.recipe)
    assert r.label_smoothing == F2.f4_exact(0.2) and r == F2.stored_recipe({**RECIPE, "label_smoothing": 0.2})
    rec = F2.encode_recipe({**RECIPE, "label_smoothing": 0.2}, True)  # after soft_weight
    out = F2.decode_recipe(F2._Cursor(rec), True, True)
    assert out["soft_weight"] == 1.0 and out["label_smoothing"] == F2.f4_exact(0.2)
    pre, hb, data = _parts(smooth)
    with pytest.raises(E.HeaderInvalid, match="label_smoothing"):  # the flag promises the field
        _open(_assemble(pre, hb[:-4], data))
    pre[10:12] = (flags & ~F2.FLAG_RECIPE).to_bytes(2, "little")
    with pytest.raises(E.HeaderInvalid, match="without bit 1"):
        _open(_assemble(pre, hb, data))


def test_truncated_and_trailing_v2():
    b = _base()
    with pytest.raises(E.Truncated):
        read_payload(b[:-1])
    with pytest.raises(E.TrailingBytes):
        read_payload(b + b"\0")


# ------------------------------------------------------------------------------------------ spec tables
def _sub(title: str) -> str:
    m = re.search(rf"^### {re.escape(title)}\n(.*?)(?=^##|\Z)", SPEC, re.S | re.M)
    assert m, title
    return m.group(1)


def _rows(title: str, which: int = 0) -> list[list[str]]:
    tables, cur = [], []
    for line in _sub(title).splitlines():
        if line.startswith("|"):
            if not line.startswith("| ---"):
                cur.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif cur:
            tables.append(cur[1:])
            cur = []
    if cur:
        tables.append(cur[1:])
    return tables[which]


def test_v2_byte_table_and_limits_match_code():
    from edge_sdk.payload.format import DIGEST_SIZE, MAGIC

    consts = {}
    for _o, _s, _f, const in _rows("v2 byte layout"):
        for name, value in re.findall(r"`(\w+)` = `?(\d+)`?", const):
            consts[name] = int(value)
    mods = {"DIGEST_SIZE": DIGEST_SIZE}
    for name, value in consts.items():
        assert getattr(F2, name, mods.get(name)) == value, name
    assert "`MAGIC`" in _sub("v2 byte layout") and MAGIC.startswith(b"\x89EPL")
    assert f"`{F2.SIGNATURE_DOMAIN_V2[:-1].decode()}`" in _sub("v2 byte layout")
    from edge_sdk.payload import taskblob

    for name, value in _rows("v2 limits"):
        name = name.strip("`")
        assert getattr(F2, name, getattr(taskblob, name, None)) == int(value), name


def test_v2_enum_codes_documented():
    text = _sub("v2 header (binary)")
    codes = re.search(r"Kind codes: (.*?)\.", text, re.S).group(1)
    assert [m[1] for m in re.findall(r"(\d+) `(\w+)`", codes)] == list(F2.KIND_CODES)
    assert set(F2.KIND_CODES) == set(codecs.QUANTIZER_KINDS)
    enc = _rows("v2 sections")
    assert [(int(r[0]), r[1].strip("`")) for r in enc] == list(enumerate(F2.PARAM_ENCODINGS))
    assert "0 `none` (no hard labels), 1 `packed`, 2 `counts`" in text
    assert F2.LABEL_MODES == ("none", "packed", "counts")
    rec = {r[0]: r[1] for r in _rows("v2 header (binary)", 2)}
    assert "0 `sgd`, 1 `adam`" in rec["optimizer"] and "0 `constant`, 1 `cosine`, 2 `step`" in rec["schedule"]


def _overhead(kind="codebook", bits=4, n=419, d=8, c=32, recipe=RECIPE, signed=True) -> dict:
    """Fixed overhead (file size minus codes, params and labels) of one payload in each encoding."""
    import zlib

    from edge_sdk.payload.format import canonical_json
    from edge_sdk.payload.writer import SampleGroup as SG

    rng = np.random.default_rng(0)
    g = SG("samples", kind, bits, data=rng.integers(0, 1 << bits, (n, d)).astype(np.uint8),
           params={"levels": np.linspace(-6, 0, 1 << bits).astype(np.float32)}, labels=rng.integers(0, c, n))
    codes = n * ((d * bits + 7) // 8)
    params = (1 << bits) * 4
    packed = (n * codecs.label_bits(c) + 7) // 8
    counts = (c * n.bit_length() + 7) // 8
    graph = {"sha256": "ab" * 32, "size": 7464}
    task_v1 = {**json.loads((ROOT / "tests/data/beam_task_sample.json").read_text()), "train": recipe}
    prov = {"tool": "edge-sdk distill", "version": "0.1.0", "method": "quadd-kip", "dataset": "beam", "seed": 0}
    v1 = payload_size([g], c, task_v1, prov, graph, signed=signed) - codes - params - packed
    blob = encode_task_blob(task_v1, graph)
    v2 = payload_size_v2([g], c, task_digest=hashlib.sha256(blob).digest(), recipe=recipe, label_mode="counts",
                         signed=signed) - codes - params - counts
    inline = v2 - 32 + 4 + len(zlib.compress(canonical_json({"graph": [graph["sha256"], graph["size"]],
                                                              "task": task_v1}), 9))
    return {"v1": v1, "v2": v2, "inline": inline, "blob": len(blob)}


def test_overhead_doc():
    """The overhead table of the spec is what the code produces, and v2 meets the <= 160 B goal (issue #11)."""
    o = _overhead()
    text = _sub("Overhead")
    nums = [int(x) for x in re.findall(r"\*\*(\d+)\*\* bytes", text)]
    assert nums == [o["v1"], o["inline"], o["v2"]], (nums, o)
    assert f"task blob itself is {o['blob']} bytes" in text
    assert o["v2"] <= 160
    # SGD recipe and 1 label per group: smaller still
    assert _overhead(recipe={**RECIPE, "optimizer": "sgd"})["v2"] < o["v2"]

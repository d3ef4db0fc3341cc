"""The spec page suffices for a bit-identical reader: ``reference_decoder.py`` (written from
docs/payload-format.md, no imports from edge_sdk) against the package, bit for bit, on every quantizer kind and
width; on the frozen sample; on the attack files (same error class); and on mutated files (both readers accept
or both reject, and what they accept decodes alike)."""

from __future__ import annotations

import ast
import copy
import hashlib
import json
import zlib
from pathlib import Path

import numpy as np
import pytest
import reference_decoder as ref  # tests/core is on sys.path (pytest rootdir mode)

from edge_sdk import codecs
from edge_sdk.payload import PayloadError, SampleGroup, encode_payload, generate_keypair, read_payload
from edge_sdk.payload.format import V1_KINDS

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "data"


def test_reference_decoder_is_independent():
    tree = ast.parse((HERE / "reference_decoder.py").read_text())
    mods = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    mods |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert mods <= {"__future__", "hashlib", "json", "zlib", "dataclasses", "typing", "numpy"}, mods


def _bits_equal(a: np.ndarray, b: np.ndarray) -> None:
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype, (a.shape, b.shape, a.dtype, b.dtype)
    assert np.array_equal(a.view(np.uint8), b.view(np.uint8))


def _compare(data: bytes) -> ref.RefPayload:
    r = ref.decode(data)
    with read_payload(data) as p:
        p.decode_all()
        assert r.num_classes == p.num_classes and r.sha256 == p.sha256 and r.task == p.task
        assert len(r.groups) == len(p.groups)
        for rg, g in zip(r.groups, p.groups, strict=True):
            assert (rg.name, rg.kind, rg.bits, rg.n, rg.d, rg.role) == (g.name, g.kind, g.bits, g.n, g.d, g.role)
            _bits_equal(rg.values, g.dequantize())
            if rg.codes is not None:
                assert np.array_equal(rg.codes, g.codes())
            ps = g.params()
            assert set(ps) == set(rg.params)
            for k in ps:
                _bits_equal(rg.params[k], ps[k])
            for k in g.extra_names():
                _bits_equal(rg.extras[k], g.extra(k))
            lab = g.labels()
            assert (lab is None) == (rg.labels is None)
            if lab is not None:
                assert np.array_equal(lab, rg.labels)
        x, y = p.samples()
        _bits_equal(r.samples, x)
        assert (y is None) == (r.labels is None) and (y is None or np.array_equal(y, r.labels))
    return r


def _params_for(kind, bits, x, rng, f16, per_feature):
    if kind == "uniform_clip":
        a = (np.abs(x).max(axis=0) if per_feature else np.abs(x).max(keepdims=True)).astype(np.float32) * 0.8 + 1e-3
        return {"alpha": a.astype(np.float16) if f16 else a}
    if kind == "codebook":
        lv = rng.normal(size=1 << bits).astype(np.float32)
        return {"levels": lv.astype(np.float16) if f16 else lv}
    return None


CASES = [(k, b) for k in V1_KINDS for b in codecs.ALLOWED_BITS[k]]


@pytest.mark.parametrize("kind, bits", CASES)
def test_bit_identical_every_kind_and_width(kind, bits):
    rng = np.random.default_rng(bits * 31 + len(kind))
    for d, n, c, f16, per_feature in [(13, 9, 5, False, False), (8, 4, 2, True, True), (3, 17, 300, False, True),
                                      (1, 2, 1, True, False)]:
        x = (rng.normal(size=(n, d)) * rng.uniform(0.1, 30)).astype(np.float32)
        x[0] = 0.0  # an all-zero row: scale 0
        if kind == "none":
            g = SampleGroup("g", "none", 0, n=n, d=d)
            other = SampleGroup("s", "float32", 32, data=x, labels=rng.integers(0, c, n))
            _compare(encode_payload([g, other], c, {"kind": "beam"}))
            continue
        params = _params_for(kind, bits, x, rng, f16, per_feature)
        codes, p = codecs.quantize(x, kind, bits, params)
        if kind == "symmetric_per_sample" and f16:
            p = {"scale": p["scale"].astype(np.float16)}
        g = SampleGroup("g", kind, bits, data=codes, params=p, labels=rng.integers(0, c, n),
                        extra={"w": rng.normal(size=(n, 2))})
        if c >= 2 and kind != "none":  # soft labels of the same rows, in a second group
            soft = SampleGroup("soft", "codebook", 2, data=rng.integers(0, 4, (n, c)).astype(np.uint8),
                               params={"levels": np.array([0, 0.25, 0.5, 1], np.float32)}, role="soft_labels")
            groups = [g, soft]
        else:
            groups = [g]
        _compare(encode_payload(groups, c, {"kind": "beam", "x": 1.5}, {"method": "ref"}))


def test_bit_identical_on_the_frozen_sample():
    r = _compare((DATA / "payload_v1_sample.epl").read_bytes())
    assert r.signed


def test_signed_and_unlabelled_payloads():
    priv, _ = generate_keypair()
    x = np.random.default_rng(3).normal(size=(5, 6)).astype(np.float32)
    codes, p = codecs.quantize(x, "symmetric_per_sample", 4)
    b = encode_payload([SampleGroup("a", "symmetric_per_sample", 4, data=codes, params=p)], 3, signing_key=priv)
    r = _compare(b)
    assert r.signed and r.labels is None


MANIFEST = json.loads((DATA / "payload_attacks" / "manifest.json").read_text())


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_attack_files_same_error(name):
    with pytest.raises(ref.RefError) as exc:
        ref.decode((DATA / "payload_attacks" / name).read_bytes())
    assert exc.value.name == MANIFEST[name]["error"]


# ------------------------------------------------------------------------------------- differential fuzz
def _fix(b: bytes, header: dict | None, data: bytes) -> bytes:
    hlen = int.from_bytes(b[12:16], "little")
    h = json.loads(b[16:16 + hlen]) if header is None else header
    for sec in h["s"]:
        if isinstance(sec, list) and len(sec) == 3 and all(isinstance(v, int) for v in sec[:2]):
            sec[2] = f"{zlib.crc32(data[sec[0]:sec[0] + sec[1]]):08x}"
    hb = json.dumps(h, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    pre = bytearray(b[:16])
    pre[12:16] = len(hb).to_bytes(4, "little")
    body = bytes(pre) + hb + data
    return body + hashlib.sha256(body).digest()


def _mutants(seed: int, count: int):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(7, 11)).astype(np.float32)
    c1, p1 = codecs.quantize(x, "symmetric_per_sample", 3)
    c2, p2 = codecs.quantize(x[:3], "uniform_clip", 2, {"alpha": np.ones(11, np.float32)})
    c3, p3 = codecs.quantize(x[:2], "codebook", 1, {"levels": np.array([-1, 1], np.float16)})
    base = encode_payload([
        SampleGroup("a", "symmetric_per_sample", 3, data=c1, params=p1, labels=rng.integers(0, 5, 7)),
        SampleGroup("b", "uniform_clip", 2, data=c2, params=p2, labels=rng.integers(0, 5, 3)),
        SampleGroup("c", "codebook", 1, data=c3, params=p3, labels=rng.integers(0, 5, 2)),
        SampleGroup("r", "float16", 16, data=x[:2], labels=rng.integers(0, 5, 2)),
    ], 5, {"kind": "beam"}, {"m": 1})
    hlen = int.from_bytes(base[12:16], "little")
    header, data = json.loads(base[16:16 + hlen]), base[16 + hlen:-32]
    for _ in range(count):
        op = rng.integers(0, 3)
        if op == 0:  # flip data bits behind fixed-up CRCs: only the value rules can object
            d = bytearray(data)
            for _ in range(int(rng.integers(1, 4))):
                d[int(rng.integers(0, len(d)))] ^= 1 << int(rng.integers(0, 8))
            yield _fix(base, None, bytes(d))
        elif op == 1:  # rewrite one header number
            h = copy.deepcopy(header)
            g = h["g"][int(rng.integers(0, len(h["g"])))]
            key = ["n", "d", "b", "x"][int(rng.integers(0, 4))]
            if key in g:
                g[key] = int(g[key]) + int(rng.choice([-1, 1, 8, 1 << 20]))
            yield _fix(base, h, data)
        else:  # rewrite a header key/value
            h = copy.deepcopy(header)
            g = h["g"][int(rng.integers(0, len(h["g"])))]
            choice = int(rng.integers(0, 6))
            if choice == 0:
                g["r"] = ["samples", "soft_labels"][int(rng.integers(0, 2))]
            elif choice == 1:
                g["m"] = {} if rng.integers(0, 2) else {"k": 1}
            elif choice == 2:
                g["k"] = str(rng.choice(list(V1_KINDS)))
            elif choice == 3:
                h["c"] = int(rng.integers(1, 9))
            elif choice == 4:
                h["o"] = ["0" * 64, int(rng.choice([0, 1, 1 << 31, (1 << 31) - 1]))]
            else:
                h["l"] = None
            yield _fix(base, h, data)


def test_differential_mutations_agree():
    accepted = rejected = 0
    for b in _mutants(7, 400):
        try:
            r = ref.decode(b)
        except ref.RefError as exc:
            with pytest.raises(PayloadError) as pkg:
                with read_payload(b) as p:
                    p.decode_all()
            assert type(pkg.value).__name__ == exc.name, (exc, pkg.value)
            rejected += 1
            continue
        del r
        _compare(b)
        accepted += 1
    assert accepted >= 40 and rejected >= 100, (accepted, rejected)


# ------------------------------------------------------------------------------------- version 2.0
def _compare_v2(data: bytes) -> ref.RefPayload:
    r = ref.decode(data)
    with read_payload(data) as p:
        p.decode_all()
        assert r.num_classes == p.num_classes and r.sha256 == p.sha256 and r.signed == p.signed
        assert r.task["task_digest"] == p.task_digest
        rec = r.task["recipe"]
        assert (rec is None) == (p.recipe is None)
        if rec is not None:
            opt = ["sgd", "adam"][rec.pop("optimizer")]
            sch = ["constant", "cosine", "step"][rec.pop("schedule")]
            assert (opt, sch) == (p.recipe["optimizer"], p.recipe["schedule"])
            for k, v in rec.items():
                assert p.recipe[k] == v, k
        assert len(r.groups) == len(p.groups)
        for rg, g in zip(r.groups, p.groups, strict=True):
            assert (rg.name, rg.kind, rg.bits, rg.n, rg.d, rg.role) == (g.name, g.kind, g.bits, g.n, g.d, g.role)
            _bits_equal(rg.values, g.dequantize())
            ps = g.params()
            for k in ps:
                _bits_equal(rg.params[k].astype(np.float32), ps[k].astype(np.float32))
            lab = g.labels()
            assert (lab is None) == (rg.labels is None)
            if lab is not None:
                assert np.array_equal(lab, rg.labels)
        x, y = p.samples()
        _bits_equal(r.samples, x)
    return r


@pytest.mark.parametrize("kind, bits", [(k, b) for k in codecs.QUANTIZER_KINDS for b in codecs.ALLOWED_BITS[k]])
def test_v2_bit_identical_every_kind_width_encoding_and_label_mode(kind, bits):
    from edge_sdk.payload import Q8Param, encode_payload_v2

    rng = np.random.default_rng(bits * 17 + len(kind))
    recipe = {"version": 1, "optimizer": "sgd", "lr": 0.05, "schedule": "step", "steps": 900, "batch_size": 64,
              "momentum": 0.9, "weight_decay": 5e-4, "decay_every": 300, "gamma": 0.5}
    for d, n, c, variant, mode in [(13, 9, 5, "f4", "packed"), (8, 40, 32, "q8", "counts"), (3, 17, 300, "f2", "counts"),
                                   (1, 2, 1, "c4", "packed")]:
        x = (rng.normal(size=(n, d)) * rng.uniform(0.1, 30)).astype(np.float32)
        if kind == "none":
            groups = [SampleGroup("z", "none", 0, n=n, d=d),
                      SampleGroup("s", "float32", 32, data=x, labels=rng.integers(0, c, n))]
        else:
            params = _params_for(kind, bits, x, rng, False, variant == "f2") if kind in ("uniform_clip", "codebook") \
                else None
            if kind == "affine_sample" and variant == "c4":
                x = x - x.max(1, keepdims=True)
            codes, p = codecs.quantize(x, kind, bits, params)
            enc = {}
            if variant == "q8" and kind in ("symmetric_per_sample", "affine_sample"):
                name = "scale" if kind == "symmetric_per_sample" else "lo"
                q = Q8Param.fit(p[name], "up" if name == "scale" else "down")
                codes, _ = codecs.quantize(x, kind, bits, {**p, name: q.values()})
                p = {**p, name: q}
            elif variant == "f2" and p:
                p = {k: v.astype(np.float16) for k, v in p.items()}
                codes, _ = codecs.quantize(x, kind, bits, {k: v.astype(np.float32) for k, v in p.items()}) \
                    if kind != "symmetric_per_sample" else (codes, None)
            elif variant == "c4" and kind == "affine_sample":
                enc = {"hi": "c4"}
            groups = [SampleGroup("g", kind, bits, data=codes, params=p, labels=rng.integers(0, c, n),
                                  param_encodings=enc)]
        key = generate_keypair()[0] if variant == "q8" else None
        _compare_v2(encode_payload_v2(groups, c, task_digest=hashlib.sha256(bytes([bits])).digest() if c > 2 else None,
                                      recipe=recipe if mode == "counts" else None, label_mode=mode, signing_key=key))


def test_v2_differential_mutations_agree():
    from test_payload_attacks import _v2_base

    base = _v2_base()
    hlen = int.from_bytes(base[12:16], "little")
    rng = np.random.default_rng(11)
    accepted = rejected = 0
    for _ in range(600):
        body = bytearray(base[:-32])
        for _ in range(int(rng.integers(1, 4))):
            i = int(rng.integers(16, len(body)))
            body[i] ^= 1 << int(rng.integers(0, 8))
        if rng.integers(0, 4) == 0:  # also change the header length field
            body[12:16] = (hlen + int(rng.integers(-3, 4))).to_bytes(4, "little", signed=True)
        b = bytes(body) + hashlib.sha256(bytes(body)).digest()
        try:
            ref.decode(b)
        except ref.RefError as exc:
            with pytest.raises(PayloadError) as pkg:
                with read_payload(b) as p:
                    p.decode_all()
            assert type(pkg.value).__name__ == exc.name, (exc, pkg.value, b.hex())
            rejected += 1
            continue
        _compare_v2(b)
        accepted += 1
    assert accepted >= 30 and rejected >= 150, (accepted, rejected)


def test_v2_bit_identical_on_the_frozen_sample():
    r = _compare_v2((DATA / "payload_v2_sample.epl").read_bytes())
    assert r.signed and r.labels is not None
    s = _compare_v2((DATA / "payload_v2_smoothing_sample.epl").read_bytes())  # flag bit 2: label smoothing
    assert not s.signed and abs(s.task["recipe"]["label_smoothing"] - 0.15) < 1e-7

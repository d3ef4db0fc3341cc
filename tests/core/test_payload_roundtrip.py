"""Payload v1 round trips (hypothesis), exact size accounting, exact bytes of a tiny payload, atomic writes."""

from __future__ import annotations

import hashlib
import json
import os
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_sdk import codecs
from edge_sdk.errors import ConfigError
from edge_sdk.payload import (
    GroupLayout,
    SampleGroup,
    encode_payload,
    payload_size,
    read_payload,
    write_payload,
)
from edge_sdk.payload.format import V1_KINDS

QUANT = ["symmetric_per_sample", "uniform_clip", "codebook"]


def make_group(rng, name, kind, bits, n, d, *, role="samples", labels_c=None, f16=False, per_feature=False,
               extra=None, meta=None):
    x = rng.normal(size=(n, d)).astype(np.float32)
    params = None
    if kind in ("uniform_clip",):
        params = {"alpha": (rng.random(d if per_feature else 1) + 0.1).astype(np.float32)}
    elif kind == "codebook":
        params = {"levels": rng.normal(size=1 << bits).astype(np.float32)}
    if kind == "none":
        g = SampleGroup(name, kind, bits, n=n, d=d, role=role, extra=extra or {}, meta=meta or {})
    else:
        data, params = codecs.quantize(x, kind, bits, params)
        if f16:
            params = {k: v.astype(np.float16) for k, v in params.items()}
        g = SampleGroup(name, kind, bits, data=data, params=params, role=role, extra=extra or {}, meta=meta or {})
    if labels_c is not None and role == "samples":
        g.labels = rng.integers(0, labels_c, n)
    return g


@st.composite
def payload_cases(draw):
    c = draw(st.integers(1, 300))
    d = draw(st.integers(0, 19))
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    labeled = draw(st.booleans())
    groups = []
    for i in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(V1_KINDS))
        bits = draw(st.sampled_from(codecs.ALLOWED_BITS[kind]))
        n = draw(st.integers(0, 9))
        gd = draw(st.integers(0, 7)) if kind == "none" else d
        extra = {}
        if draw(st.booleans()):
            dt = draw(st.sampled_from(["u1", "i2", "u4", "i8", "f2", "f4", "f8"]))
            shp = tuple(draw(st.lists(st.integers(0, 4), max_size=3)))
            extra["w"] = (rng.integers(0, 100, shp)).astype("<" + dt)
        meta = {"i": i, "s": "é"} if draw(st.booleans()) else {}
        groups.append(make_group(rng, f"g{i}", kind, bits, n, gd, labels_c=c if labeled else None,
                                 f16=draw(st.booleans()), per_feature=draw(st.booleans()), extra=extra, meta=meta))
    n_samples = sum(g.n for g in groups if g.bits > 0)
    if draw(st.booleans()) and n_samples:
        kind = draw(st.sampled_from(["float16", "float32", *QUANT]))
        bits = draw(st.sampled_from([b for b in codecs.ALLOWED_BITS[kind] if b > 0]))
        groups.append(make_group(rng, "soft", kind, bits, n_samples, c, role="soft_labels"))
    graph = {"sha256": hashlib.sha256(bytes([seed % 256])).hexdigest(), "size": seed % 100000 + 1} if draw(st.booleans()) else None
    task = {"kind": "beam", "x": draw(st.floats(allow_nan=False, allow_infinity=False))}
    return groups, c, task, {"method": "test", "seed": seed}, graph


def check_payload(p, groups, c, task, prov, graph):
    assert p.num_classes == c and p.task == task and p.provenance == prov and p.graph == graph
    assert [g.name for g in p.groups] == [g.name for g in groups]
    has_labels = any(g.labels is not None for g in groups if g.role == "samples" and g.bits > 0)
    for gv, g in zip(p.groups, groups, strict=True):
        assert (gv.kind, gv.bits, gv.n, gv.d, gv.role, gv.meta) == (g.kind, g.bits, g.n, g.d, g.role, g.meta)
        params = gv.params()
        assert params.keys() == g.params.keys()
        for k in params:
            assert params[k].dtype == g.params[k].dtype and np.array_equal(params[k], g.params[k])
        assert gv.extra_names() == sorted(g.extra)
        for k, v in g.extra.items():
            got = gv.extra(k)
            assert got.dtype == v.dtype and got.shape == v.shape and np.array_equal(got, v)
        if g.kind in codecs.RAW_KINDS:
            assert np.array_equal(gv.values(), g.data)
            assert np.array_equal(gv.dequantize(), g.data.astype(np.float32))
        elif g.kind != "none":
            assert np.array_equal(gv.codes(), g.data)
            want = codecs.dequantize(g.data, g.kind, g.bits, g.params)
            assert np.array_equal(gv.dequantize(), want)
        else:
            assert gv.codes().shape == (g.n, 0) and gv.dequantize().shape == (g.n, 0)
        if has_labels and g.role == "samples" and g.bits > 0:
            assert np.array_equal(gv.labels(), g.labels) and gv.labels().dtype == np.int64
        else:
            assert gv.labels() is None
    x, y = p.samples()
    sg = [g for g in groups if g.role == "samples" and g.bits > 0]
    if sg:
        assert x.dtype == np.float32 and x.shape == (sum(g.n for g in sg), sg[0].d)
        if has_labels:
            assert np.array_equal(y, np.concatenate([g.labels for g in sg]))
    soft = [g for g in groups if g.role == "soft_labels"]
    if soft:
        assert p.soft_labels().shape == (x.shape[0], c)
    else:
        assert p.soft_labels() is None


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=payload_cases(), signed=st.booleans())
def test_roundtrip_bytes_and_size_R16(case, signed, signing_key):
    groups, c, task, prov, graph = case
    key = signing_key[0] if signed else None
    b = encode_payload(groups, c, task, prov, graph, signing_key=key)
    assert len(b) == payload_size(groups, c, task, prov, graph, signed=signed)
    assert len(b) == payload_size([g.layout() for g in groups], c, task, prov, graph, signed=signed)
    with read_payload(b, trusted_keys=[signing_key[1]] if signed else None) as p:
        assert p.signature_status == ("verified" if signed else "unsigned")
        assert p.size == len(b) and p.sha256 == hashlib.sha256(b[: len(b) - 32 - (96 if signed else 0)]).hexdigest()
        check_payload(p, groups, c, task, prov, graph)
        p.decode_all()


@pytest.fixture(scope="module")
def signing_key():
    from edge_sdk.payload import generate_keypair

    return generate_keypair()


@pytest.mark.parametrize("kind", V1_KINDS)
@pytest.mark.parametrize("n", [0, 1, 5])
def test_file_roundtrip_each_kind_and_size_R16(tmp_path, kind, n):
    rng = np.random.default_rng(n)
    c = 7
    groups = []
    for b in codecs.ALLOWED_BITS[kind]:
        groups.append(make_group(rng, f"{kind}{b}", kind, b, n, 11 if kind != "none" else 3, labels_c=c))
    task, prov = {"kind": "image"}, {"m": 1}
    info = write_payload(tmp_path / "p.epl", groups, c, task, prov)
    assert info.size == os.path.getsize(tmp_path / "p.epl") == payload_size(groups, c, task, prov)
    with read_payload(tmp_path / "p.epl") as p:
        assert p.sha256 == info.sha256
        check_payload(p, groups, c, task, prov, None)


def test_size_from_layouts_only_R16(tmp_path):
    """payload_size needs no data: GroupLayout.for_kind gives the same size as the written file."""
    rng = np.random.default_rng(1)
    specs = [("a", "codebook", 3, 320, 16), ("b", "symmetric_per_sample", 4, 17, 16), ("z", "none", 0, 50, 16),
             ("r", "float16", 16, 3, 16), ("u", "uniform_clip", 5, 9, 16)]
    groups = [make_group(rng, *s, labels_c=32) for s in specs]
    layouts = [GroupLayout.for_kind(nm, k, b, n, d) for nm, k, b, n, d in specs]
    want = payload_size(layouts, 32, {"kind": "beam"}, {}, None)
    assert want == write_payload(tmp_path / "x.epl", groups, 32, {"kind": "beam"}, {}).size
    assert want + 96 == payload_size(layouts, 32, {"kind": "beam"}, {}, None, signed=True)


def test_exact_bytes_of_tiny_payload():
    """Hand-computed bytes: 1-bit codebook codes [[1,0,1],[0,1,1]], levels [-1, 1], labels [2, 1] (C=3)."""
    g = SampleGroup("g", "codebook", 1, data=np.array([[1, 0, 1], [0, 1, 1]], np.uint8),
                    params={"levels": np.array([-1.0, 1.0], np.float32)}, labels=np.array([2, 1]))
    b = encode_payload([g], 3)
    codes = bytes.fromhex("05 06")  # row 0: bits 1,0,1 -> 0b101; row 1: 0,1,1 -> 0b110 (row-aligned)
    levels = bytes.fromhex("000080bf 0000803f")  # float32 LE -1.0, 1.0
    labels = bytes.fromhex("06")  # 2 bits: 2 -> bits 0,1 = 0,1; 1 -> bits 2,3 = 1,0 -> 0b0110
    crc = [f"{zlib.crc32(s):08x}" for s in (codes, levels, labels)]
    header = ('{"c":3,"g":[{"b":1,"d":3,"id":"g","k":"codebook","n":2,"q":{"levels":[1,"f4",[2]]},"x":0}],'
              f'"l":2,"o":null,"p":{{}},"s":[[0,2,"{crc[0]}"],[2,8,"{crc[1]}"],[10,1,"{crc[2]}"]],"t":{{}}}}').encode()
    prefix = bytes.fromhex("89 45 50 4c 0d 0a 1a 0a 01 00 00 00") + len(header).to_bytes(4, "little")
    body = prefix + header + codes + levels + labels
    assert b == body + hashlib.sha256(body).digest()
    assert len(header) == 178


def test_write_is_atomic_R15(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    g = make_group(rng, "a", "codebook", 2, 4, 5, labels_c=3)
    path = tmp_path / "p.epl"
    write_payload(path, [g], 3)
    before = path.read_bytes()
    calls = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real_fsync(fd)))

    def boom(src, dst):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk gone"):
        write_payload(path, [make_group(rng, "b", "codebook", 3, 9, 5, labels_c=3)], 3)
    assert path.read_bytes() == before  # old file intact
    assert sorted(os.listdir(tmp_path)) == ["p.epl"]  # temp file removed
    assert calls  # file fsynced before the rename
    monkeypatch.undo()
    write_payload(path, [make_group(rng, "b", "codebook", 3, 9, 5, labels_c=3)], 3)
    assert sorted(os.listdir(tmp_path)) == ["p.epl"] and path.read_bytes() != before


def test_padding_bits_zero_in_payload_R11():
    g = SampleGroup("g", "codebook", 3, data=np.full((4, 5), 7, np.uint8), params={"levels": np.zeros(8, np.float32)})
    with read_payload(encode_payload([g], 2)) as p:
        rows = p.groups[0].packed_rows()
        assert rows.shape == (4, 2) and np.all(rows[:, 1] == 0x7F)  # 15 bits used, bit 15 zero


def test_writer_rejects_bad_input_R12_R13():
    rng = np.random.default_rng(0)
    a = make_group(rng, "a", "codebook", 2, 3, 4, labels_c=3)
    with pytest.raises(ConfigError, match="labels must lie"):
        encode_payload([a], 2)
    b = make_group(rng, "b", "codebook", 2, 3, 5, labels_c=3)
    with pytest.raises(ConfigError, match="share D"):
        encode_payload([a, b], 3)
    nolab = make_group(rng, "c", "codebook", 2, 3, 4)
    with pytest.raises(ConfigError, match="labels for all or none"):
        encode_payload([a, nolab], 3)
    soft = make_group(rng, "s", "float16", 16, 2, 3, role="soft_labels")
    with pytest.raises(ConfigError, match="soft labels cover"):
        encode_payload([a, soft], 3)
    with pytest.raises(ConfigError, match="unique"):
        encode_payload([a, a], 3)
    with pytest.raises(ConfigError, match="params must be"):
        SampleGroup("x", "codebook", 2, data=np.zeros((1, 1), np.uint8))
    with pytest.raises(ConfigError, match="does not support"):
        SampleGroup("x", "codebook", 9, data=np.zeros((1, 1), np.uint8))
    with pytest.raises(ConfigError, match="codes at 1 bits must lie"):
        encode_payload([SampleGroup("x", "codebook", 1, data=np.full((1, 1), 2, np.uint8),
                                    params={"levels": np.zeros(2, np.float32)})], 2)
    with pytest.raises(ConfigError, match="JSON"):
        encode_payload([], 2, task={"x": float("nan")})


def test_header_json_is_canonical_and_compact():
    rng = np.random.default_rng(0)
    b = encode_payload([make_group(rng, "a", "codebook", 2, 3, 4, labels_c=3)], 3, {"z": 1, "a": [1, 2]}, {"é": "ü"})
    hlen = int.from_bytes(b[12:16], "little")
    h = b[16: 16 + hlen]
    assert h == json.dumps(json.loads(h), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert b" " not in h.replace(b" ", b"")


def test_make_provenance():
    from edge_sdk import __version__
    from edge_sdk.payload import make_provenance

    p = make_provenance("adq", budget="180x", seed=3, extra_field=[1])
    assert p == {"method": "adq", "budget": "180x", "seed": 3, "library_version": __version__, "extra_field": [1]}

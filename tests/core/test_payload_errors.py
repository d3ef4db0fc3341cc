"""Every reader failure mode from crafted bytes: one typed PayloadError per MUST rule (docs/payload-format.md)."""

from __future__ import annotations

import copy
import hashlib
import json

import numpy as np
import pytest

from edge_sdk import codecs
from edge_sdk.errors import ConfigError, EdgeSdkError
from edge_sdk.payload import (
    SampleGroup,
    encode_payload,
    generate_keypair,
    read_payload,
    sign_payload,
    write_payload,
)
from edge_sdk.payload import errors as E
from edge_sdk.payload.format import HEADER_MAX_BYTES, MAX_N, MAX_TOTAL_ROWS


def base_groups(c=5):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 13)).astype(np.float32)
    codes, params = codecs.quantize(x, "symmetric_per_sample", 3)
    g1 = SampleGroup("a", "symmetric_per_sample", 3, data=codes, params=params, labels=rng.integers(0, c, 6),
                     extra={"w": np.arange(6, dtype=np.float32)})
    g2 = SampleGroup("drop", "none", 0, n=4, d=13)
    return [g1, g2]


@pytest.fixture
def payload():
    return encode_payload(base_groups(), 5, {"kind": "beam"}, {"m": "x"})


def split(b: bytes, signed: bool = False):
    hlen = int.from_bytes(b[12:16], "little")
    tail = 32 + (96 if signed else 0)
    return b[:16], json.loads(b[16:16 + hlen]), b[16 + hlen: len(b) - tail]


def rebuild(b: bytes, header=None, prefix=None, data=None, fix_digest=True) -> bytes:
    """Re-assemble a payload with a rewritten header/prefix/data, fixing header length and digest."""
    p0, h0, d0 = split(b)
    hb = json.dumps(header if header is not None else h0, sort_keys=True, separators=(",", ":"),
                    ensure_ascii=False).encode()
    pre = bytearray(prefix if prefix is not None else p0)
    pre[12:16] = len(hb).to_bytes(4, "little")
    body = bytes(pre) + hb + (data if data is not None else d0)
    return body + (hashlib.sha256(body).digest() if fix_digest else b[-32:])


def test_valid_base(payload):
    with read_payload(payload) as p:
        p.decode_all()


def test_R01_bad_magic(payload):
    with pytest.raises(E.BadMagic):
        read_payload(b"PK\x03\x04" + payload[4:])
    with pytest.raises(E.BadMagic):
        read_payload(b"x")
    with pytest.raises(E.Truncated):
        read_payload(payload[:5])  # a prefix of the magic: truncated, not foreign


@pytest.mark.parametrize("ver", [(3, 0), (0, 9), (1, 1), (2, 1), (255, 255)])
def test_R02_unsupported_version(payload, ver):
    b = bytearray(payload)
    b[8], b[9] = ver
    with pytest.raises(E.UnsupportedVersion, match="not supported"):
        read_payload(bytes(b))


def test_R03_unknown_flags(payload):
    pre = bytearray(payload[:16])
    pre[10:12] = (0x0002).to_bytes(2, "little")
    with pytest.raises(E.HeaderInvalid, match="unknown flag"):
        read_payload(rebuild(payload, prefix=pre))


def test_R04_header_too_large_checked_before_reading(payload):
    b = bytearray(payload[:16])
    b[12:16] = (HEADER_MAX_BYTES + 1).to_bytes(4, "little")
    with pytest.raises(E.HeaderTooLarge):
        read_payload(bytes(b))  # the 16-byte prefix alone: the cap is checked before any header byte
    b[12:16] = (0xFFFFFFFF).to_bytes(4, "little")
    with pytest.raises(E.HeaderTooLarge):
        read_payload(bytes(b))


@pytest.mark.parametrize("bad", [
    b'{"c":5, "g":[]}',  # whitespace
    b'{"g":[],"c":5}',  # unsorted
    b'{"c":5,"c":6}',  # duplicate keys
    b'{"c":NaN}',
    b'\xff\xfe',
    b'[' * 30,  # unterminated, within the depth limit
    b'{"c":' + b"9" * 5000 + b"}",
    b'{"c":1e999}',
])
def test_R05_header_not_canonical_json(payload, bad):
    pre = bytearray(payload[:16])
    pre[12:16] = len(bad).to_bytes(4, "little")
    body = bytes(pre) + bad
    with pytest.raises(E.HeaderInvalid):
        read_payload(body + hashlib.sha256(body).digest())


def _mut(payload, fn):
    h = copy.deepcopy(split(payload)[1])
    fn(h)
    return rebuild(payload, header=h)


@pytest.mark.parametrize("fn, err", [
    (lambda h: h.pop("t"), E.HeaderInvalid),
    (lambda h: h.update(zz=1), E.HeaderInvalid),
    (lambda h: h.update(c=0), E.HeaderInvalid),
    (lambda h: h.update(c=True), E.HeaderInvalid),
    (lambda h: h.update(c=1 << 40), E.LimitExceeded),
    (lambda h: h["g"][0].update(k="gzip"), E.HeaderInvalid),
    (lambda h: h["g"][0].update(b=9), E.HeaderInvalid),
    (lambda h: h["g"][0].update(b="3"), E.HeaderInvalid),
    (lambda h: h["g"][0].update(n=-1), E.HeaderInvalid),
    (lambda h: h["g"][0].update(n=MAX_N + 1), E.LimitExceeded),
    (lambda h: h["g"][1].update(n=MAX_TOTAL_ROWS), E.LimitExceeded),
    (lambda h: h["g"][0].update(d=1 << 30), E.LimitExceeded),
    (lambda h: h["g"][0].update(r="teacher"), E.HeaderInvalid),
    (lambda h: h["g"][0].update(id=h["g"][1]["id"]), E.HeaderInvalid),
    (lambda h: h["g"][0]["q"].update(alpha=[1, "f4", [1]]), E.HeaderInvalid),
    (lambda h: h["g"][0]["q"]["scale"].__setitem__(1, "f8"), E.HeaderInvalid),
    (lambda h: h["g"][0]["e"]["w"].__setitem__(1, "O"), E.HeaderInvalid),
    (lambda h: h["g"][0]["e"]["w"].__setitem__(2, [1 << 20] * 8), E.LimitExceeded),
    (lambda h: h["g"][0]["e"]["w"].__setitem__(2, [1] * 9), E.LimitExceeded),
    (lambda h: h["g"][1].update(x=0), E.HeaderInvalid),
    (lambda h: h["g"].append(h["g"][0] | {"id": "b", "d": 12}), E.PayloadError),
    (lambda h: h.update(o=["zz", 3]), E.HeaderInvalid),
    (lambda h: h["s"][0].__setitem__(2, "ABCDEF01"), E.HeaderInvalid),
    (lambda h: h.update(g={}), E.HeaderInvalid),
])
def test_R06_schema_and_limits(payload, fn, err):
    with pytest.raises(err):
        read_payload(_mut(payload, fn))


def test_R06_huge_counts_never_allocate(payload):
    """n*d far beyond memory is rejected from the header alone (LimitExceeded), before any allocation."""
    def fn(h):
        h["g"][0].update(n=MAX_N, d=1 << 24)
    with pytest.raises(E.LimitExceeded):
        read_payload(_mut(payload, fn))


@pytest.mark.parametrize("fn", [
    lambda h: h["s"][1].__setitem__(0, h["s"][1][0] + 1),  # gap
    lambda h: h["s"][1].__setitem__(0, 0),  # overlap
    lambda h: h["s"][0].__setitem__(1, h["s"][0][1] - 1),  # length != shape (and then a gap)
    lambda h: h["g"][0].update(x=1),  # section used twice
    lambda h: h["g"][0]["q"]["scale"].__setitem__(0, 99),  # no such section
    lambda h: h.update(l=None),  # labels section unused
    lambda h: h["g"][0]["e"]["w"].__setitem__(2, [5]),  # shape does not match length
])
def test_R07_bad_offsets(payload, fn):
    with pytest.raises(E.BadOffsets):
        read_payload(_mut(payload, fn))


def test_R08_truncated_and_trailing(payload):
    for cut in (0, 10, 16, 17, len(payload) // 2, len(payload) - 1):
        with pytest.raises(E.PayloadError):
            read_payload(payload[:cut])
    with pytest.raises(E.Truncated):
        read_payload(payload[:-1])
    with pytest.raises(E.TrailingBytes):
        read_payload(payload + b"\0")


def test_R08_empty_file(tmp_path):
    (tmp_path / "e.epl").write_bytes(b"")
    with pytest.raises(E.Truncated):
        read_payload(tmp_path / "e.epl")


def test_R09_digest_mismatch(payload):
    for pos in (20, len(payload) - 40, len(payload) - 1):
        b = bytearray(payload)
        b[pos] ^= 0x10
        with pytest.raises(E.PayloadError):
            read_payload(bytes(b))
    b = bytearray(payload)
    b[-40] ^= 1  # a data byte: only the digest can see it on open
    with pytest.raises(E.DigestMismatch):
        read_payload(bytes(b))


def test_R10_section_crc_checked_on_first_read(payload):
    _, h, data = split(payload)
    d = bytearray(data)
    d[0] ^= 0xFF  # codes of group "a"; digest fixed so that open succeeds
    b = rebuild(payload, data=bytes(d))
    p = read_payload(b)
    p.groups[1].dequantize()  # other groups still readable
    p.groups[0].params()
    with pytest.raises(E.ChecksumMismatch):
        p.groups[0].codes()


def test_R12_label_out_of_range():
    rng = np.random.default_rng(0)
    g = SampleGroup("a", "codebook", 1, data=np.zeros((2, 3), np.uint8), params={"levels": np.zeros(2, np.float32)},
                    labels=np.array([3, 0]))
    b = encode_payload([g], 4)
    b2 = _mut(b, lambda h: h.update(c=3))  # same 2-bit labels, now 3 >= C
    p = read_payload(b2)
    with pytest.raises(E.InvalidValue):
        p.groups[0].labels()
    del rng


def test_R13_soft_labels_and_shared_d(payload):
    def fn(h):
        h["g"][0].update(r="soft_labels")
    with pytest.raises(E.HeaderInvalid, match="soft labels need"):
        read_payload(_mut(payload, fn))


@pytest.fixture(scope="module")
def keys():
    return generate_keypair(), generate_keypair()


def test_R14_signatures(tmp_path, keys):
    (priv, pub), (priv2, pub2) = keys
    path = tmp_path / "s.epl"
    write_payload(path, base_groups(), 5)
    with pytest.raises(E.SignatureRequired):
        read_payload(path, trusted_keys=[pub], require_signature=True)
    assert read_payload(path, trusted_keys=[pub]).signature_status == "unsigned"
    info = sign_payload(path, priv)
    assert info.size == path.stat().st_size
    p = read_payload(path, trusted_keys=[pub], require_signature=True)
    assert p.signature_status == "verified" and p.signed and p.key_id == info.key_id
    p.decode_all()
    p.close()
    assert read_payload(path).signature_status == "unverified"
    with pytest.raises(E.UntrustedKey):
        read_payload(path, trusted_keys=[pub2])
    from edge_sdk.payload.signing import key_id, raw_public
    assert read_payload(path, trusted_keys={key_id(pub): raw_public(pub)}).signature_status == "verified"
    good = path.read_bytes()
    bad_sig = bytearray(good)
    bad_sig[-1] ^= 1
    with pytest.raises(E.BadSignature):
        read_payload(bytes(bad_sig), trusted_keys=[pub])
    # tampered content with a recomputed digest: the signature no longer matches
    tam = bytearray(good)
    tam[-200] ^= 1
    body = bytes(tam[:-128])
    tam = body + hashlib.sha256(body).digest() + bytes(tam[-96:])
    with pytest.raises(E.BadSignature):
        read_payload(tam, trusted_keys=[pub])
    # stripping the signature (clearing the flag) is caught when a signature is required
    pre = bytearray(good[:16])
    pre[10:12] = b"\0\0"
    body = bytes(pre) + good[16:-128]
    stripped = body + hashlib.sha256(body).digest()
    assert read_payload(stripped).signature_status == "unsigned"
    with pytest.raises(E.SignatureRequired):
        read_payload(stripped, trusted_keys=[pub], require_signature=True)
    with pytest.raises(ConfigError):
        read_payload(path, require_signature=True)


def test_key_files_roundtrip(tmp_path, keys):
    from edge_sdk.payload import load_private_key, load_public_key, save_private_key, save_public_key
    from edge_sdk.payload.signing import key_id

    (priv, pub), _ = keys
    for fmt in ("pem", "raw"):
        kp = save_private_key(tmp_path / f"k.{fmt}", priv, fmt)
        pp = save_public_key(tmp_path / f"p.{fmt}", pub, fmt)
        assert oct(kp.stat().st_mode & 0o777) == "0o600"
        assert key_id(load_private_key(kp)) == key_id(pub) == key_id(load_public_key(pp))
    (tmp_path / "junk").write_bytes(b"hello")
    with pytest.raises(ConfigError):
        load_public_key(tmp_path / "junk")


def test_errors_are_one_family():
    for name in E.__all__:
        cls = getattr(E, name)
        assert issubclass(cls, E.PayloadError) and issubclass(cls, EdgeSdkError)


# ------------------------------------------------------------------ value rules behind the checksums (R11 R17 R18)
def _fix_crcs(b: bytes, data: bytes) -> bytes:
    """``b`` with its data area replaced by ``data`` and every CRC and the digest recomputed: only the value
    rules behind the checksums can catch the change."""
    import zlib

    h = copy.deepcopy(split(b)[1])
    for sec in h["s"]:
        sec[2] = f"{zlib.crc32(data[sec[0]:sec[0] + sec[1]]):08x}"
    return rebuild(b, header=h, data=data)


def _labelled(kind="symmetric_per_sample", bits=3, n=6, d=13, c=5):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, d)).astype(np.float32)
    params = {"alpha": np.ones(1, np.float32)} if kind == "uniform_clip" else (
        {"levels": np.linspace(-1, 1, 1 << bits).astype(np.float32)} if kind == "codebook" else None)
    codes, params = codecs.quantize(x, kind, bits, params)
    return encode_payload([SampleGroup("a", kind, bits, data=codes, params=params, labels=rng.integers(0, c, n))], c)


@pytest.mark.parametrize("kind, bits, d", [("symmetric_per_sample", 3, 13), ("codebook", 1, 5), ("uniform_clip", 5, 3)])
def test_R11_code_padding_bits_rejected_by_reader_and_signer(tmp_path, keys, kind, bits, d):
    b = _labelled(kind, bits, d=d)
    _, h, data = split(b)
    rb = (d * bits + 7) // 8
    assert 8 * rb > d * bits  # the rows have padding bits
    row = 4
    off = h["s"][h["g"][0]["x"]][0] + row * rb + rb - 1
    bad = bytearray(data)
    bad[off] |= 0x80  # the top bit of a row's last byte is always padding here
    mutated = _fix_crcs(b, bytes(bad))
    for decode in (lambda p: p.groups[0].codes(), lambda p: p.groups[0].packed_rows(),
                   lambda p: p.groups[0].dequantize(), lambda p: p.samples(), lambda p: p.verify_sections()):
        with read_payload(mutated) as p, pytest.raises(E.InvalidValue, match=f"row {row} has non-zero padding"):
            decode(p)
    path = tmp_path / "pad.epl"
    path.write_bytes(mutated)
    with pytest.raises(E.InvalidValue):
        sign_payload(path, keys[0][0])
    assert path.read_bytes() == mutated  # nothing written


def test_R11_label_padding_bits_rejected_by_reader_and_signer(tmp_path, keys):
    b = _labelled(n=6, c=5)  # 6 labels x 3 bits = 18 bits in 3 bytes: 6 padding bits
    _, h, data = split(b)
    sec = h["s"][h["l"]]
    bad = bytearray(data)
    bad[sec[0] + sec[1] - 1] |= 0x40
    mutated = _fix_crcs(b, bytes(bad))
    with read_payload(mutated) as p:
        p.groups[0].dequantize()  # the samples are fine
        with pytest.raises(E.InvalidValue, match="label stream has non-zero padding"):
            p.groups[0].labels()
    path = tmp_path / "lab.epl"
    path.write_bytes(mutated)
    with pytest.raises(E.InvalidValue):
        sign_payload(path, keys[0][0])


@pytest.mark.parametrize("kind", ["symmetric_per_sample", "uniform_clip"])
@pytest.mark.parametrize("bits", [2, 3, 5, 8])
def test_R17_code_outside_the_grid(kind, bits):
    d = 7
    b = _labelled(kind, bits, d=d)
    _, h, data = split(b)
    from edge_sdk.bitpack import pack_rows, unpack_rows

    rb = (d * bits + 7) // 8
    x0 = h["s"][h["g"][0]["x"]][0]
    rows = np.frombuffer(data[x0:x0 + 6 * rb], np.uint8).reshape(6, rb)
    codes = unpack_rows(rows, bits, d)
    codes[3, 5] = (1 << bits) - 1  # the one code a symmetric grid never uses
    bad = bytearray(data)
    bad[x0:x0 + 6 * rb] = pack_rows(codes, bits).tobytes()
    mutated = _fix_crcs(b, bytes(bad))
    with read_payload(mutated) as p, pytest.raises(E.InvalidValue, match=rf"row 3 holds code {(1 << bits) - 1}"):
        p.groups[0].dequantize()
    with read_payload(mutated) as p, pytest.raises(E.InvalidValue):
        p.verify_sections()
    # the writer refuses to produce it
    with pytest.raises(ConfigError, match="must lie in"):
        SampleGroup("a", kind, bits, data=codes, params={"scale": np.ones(6, np.float32)}
                    if kind == "symmetric_per_sample" else {"alpha": np.ones(1, np.float32)})


def test_R17_codebook_uses_every_code():
    levels = np.linspace(-1, 1, 4).astype(np.float32)
    g = SampleGroup("a", "codebook", 2, data=np.array([[3, 0, 3]], np.uint8), params={"levels": levels})
    with read_payload(encode_payload([g], 2)) as p:
        assert p.groups[0].dequantize().tolist() == [[1.0, -1.0, 1.0]]


@pytest.mark.parametrize("kind, name, value", [
    ("symmetric_per_sample", "scale", np.nan), ("symmetric_per_sample", "scale", -1.0),
    ("symmetric_per_sample", "scale", 2e38),  # finite, but scale * Q overflows float32
    ("uniform_clip", "alpha", 0.0), ("uniform_clip", "alpha", np.inf), ("codebook", "levels", -np.inf),
])
def test_R18_parameters_finite_and_in_range(kind, name, value):
    b = _labelled(kind, 3)
    _, h, data = split(b)
    sec = h["s"][h["g"][0]["q"][name][0]]
    bad = bytearray(data)
    bad[sec[0]:sec[0] + 4] = np.array([value], "<f4").tobytes()
    mutated = _fix_crcs(b, bytes(bad))
    with read_payload(mutated) as p, pytest.raises(E.InvalidValue, match=name):
        p.groups[0].dequantize()
    with pytest.raises(ConfigError, match=name):
        codes = np.zeros((6, 13), np.uint8)
        with read_payload(b) as p:
            params = p.groups[0].params()
        params[name][0] = value
        SampleGroup("a", kind, 3, data=codes, params=params)


@pytest.mark.parametrize("kind", ["float16", "float32"])
def test_R18_raw_values_finite(kind):
    x = np.ones((4, 3), np.float32)
    b = encode_payload([SampleGroup("a", kind, 16 if kind == "float16" else 32, data=x, labels=np.zeros(4, int))], 2)
    _, h, data = split(b)
    sec = h["s"][h["g"][0]["x"]]
    item = 2 if kind == "float16" else 4
    bad = bytearray(data)
    bad[sec[0] + 7 * item: sec[0] + 8 * item] = np.array([np.nan], "<" + ("f2" if item == 2 else "f4")).tobytes()
    mutated = _fix_crcs(b, bytes(bad))
    with read_payload(mutated) as p, pytest.raises(E.InvalidValue, match="row 2 holds NaN"):
        p.samples()
    x[1, 1] = np.inf
    with pytest.raises(ConfigError, match="finite"):
        SampleGroup("a", kind, 16 if kind == "float16" else 32, data=x)
    with pytest.raises(ConfigError, match="finite"):  # finite float32, but beyond float16's range
        SampleGroup("a", "float16", 16, data=np.full((1, 1), 1e6, np.float32))


@pytest.mark.parametrize("key, value", [("r", "samples"), ("m", {}), ("e", {}), ("q", {})])
def test_R05_explicit_defaults_are_not_canonical(key, value):
    """One content, one byte form: a present optional key never holds its default."""
    g = SampleGroup("z", "none", 0, n=2, d=3) if key == "q" else None
    b = encode_payload([g] if g else base_groups(), 5)
    with pytest.raises(E.HeaderInvalid, match=f"key '{key}' holds its default"):
        read_payload(_mut(b, lambda h: h["g"][0].update({key: value})))


def test_R09_digest_mismatch_prints_full_digests(payload):
    b = bytearray(payload)
    b[-1] ^= 1
    with pytest.raises(E.DigestMismatch) as exc:
        read_payload(bytes(b))
    assert hashlib.sha256(payload[:-32]).hexdigest() in str(exc.value)
    assert bytes(b[-32:]).hex() in str(exc.value)


def test_R06_graph_size_bounded(payload):
    from edge_sdk.payload.format import MAX_GRAPH_BYTES

    for size, err in ((MAX_GRAPH_BYTES + 1, E.LimitExceeded), (0, E.HeaderInvalid), (-5, E.HeaderInvalid)):
        with pytest.raises(err):
            read_payload(_mut(payload, lambda h, s=size: h.update(o=["a" * 64, s])))
    with read_payload(_mut(payload, lambda h: h.update(o=["a" * 64, MAX_GRAPH_BYTES]))) as p:
        assert p.graph == {"sha256": "a" * 64, "size": MAX_GRAPH_BYTES}

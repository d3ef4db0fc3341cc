"""Release manifest v1 (docs/transfer.md): one test per MUST rule (named ``..._Mxx``), round trips, tier choice."""

from __future__ import annotations

import hashlib
import json
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_manifest_frozen import SAMPLE, _key, sample_release

from edge_sdk.errors import ConfigError
from edge_sdk.release import (
    BlobRef,
    Identity,
    ManifestBadMagic,
    ManifestBadSignature,
    ManifestDigestMismatch,
    ManifestInvalid,
    ManifestSignatureRequired,
    ManifestTooLarge,
    ManifestTrailingBytes,
    ManifestTruncated,
    ManifestUnsupportedVersion,
    ManifestUntrustedKey,
    Release,
    RuntimeTooOld,
    Tier,
    check_runtime,
    choose_tier,
    encode_manifest,
    read_manifest,
    task_digest,
    tier_costs,
)
from edge_sdk.release import manifest as M


def _d(label: str) -> str:
    return "sha256:" + hashlib.sha256(label.encode()).hexdigest()


def _reframe(body: dict | bytes, signed: bool = False, major: int = 1, minor: int = 0, flags: int | None = None) -> bytes:
    """Manifest bytes around an arbitrary body (valid digest, so the body rule is what fails)."""
    raw = body if isinstance(body, bytes) else M.canonical_json(body)
    fl = (1 if signed else 0) if flags is None else flags
    content = M.MAGIC + bytes([major, minor]) + struct.pack("<HI", fl, len(raw)) + raw
    out = content + hashlib.sha256(content).digest()
    if signed:
        key = _key()
        from edge_sdk.payload.signing import key_id

        out += bytes.fromhex(key_id(key)) + key.sign(M.SIGNATURE_DOMAIN + hashlib.sha256(content).digest())
    return out


def _body() -> dict:
    return sample_release().to_json()


# ------------------------------------------------------------------------------------------ envelope rules
def test_bad_magic_M01():
    data = bytearray(SAMPLE.read_bytes())
    data[1] ^= 0xFF
    with pytest.raises(ManifestBadMagic):
        read_manifest(bytes(data))
    with pytest.raises(ManifestBadMagic):
        read_manifest(b"\x89EPL\r\n\x1a\n")  # a payload's magic is not a manifest's
    with pytest.raises(ManifestBadMagic):
        read_manifest(b"{}")


@pytest.mark.parametrize("major,minor", [(0, 9), (1, 1), (2, 0), (255, 255)])
def test_unsupported_version_M02(major, minor):
    with pytest.raises(ManifestUnsupportedVersion):
        read_manifest(_reframe(_body(), major=major, minor=minor))


@pytest.mark.parametrize("flags", [0x0002, 0x8000, 0xFFFE])
def test_unknown_flags_M03(flags):
    with pytest.raises(ManifestInvalid, match="flag"):
        read_manifest(_reframe(_body(), flags=flags))


def test_body_length_cap_checked_first_M04():
    # a prefix declaring a body just over the cap, with no body at all: refused on the prefix alone
    prefix = M.MAGIC + bytes([1, 0]) + struct.pack("<HI", 0, M.MAX_BODY_BYTES + 1)
    with pytest.raises(ManifestTooLarge):
        read_manifest(prefix)
    with pytest.raises(ManifestTooLarge):
        read_manifest(prefix + b"\0" * 100)
    with pytest.raises(ManifestTooLarge):
        read_manifest(b"\0" * (M.MAX_MANIFEST_BYTES + 1))
    # the writer refuses to exceed it too
    rel = sample_release()
    many = tuple(BlobRef(_d(f"x{i}"), 1, "bulk") for i in range(M.MAX_EXTRA_BLOBS))
    tiers = tuple(Tier(f"t{i}", BlobRef(_d(f"p{i}"), 10), rel.tiers[0].graph, extra=many) for i in range(12))
    with pytest.raises(ConfigError, match="limit"):
        encode_manifest(Release(rel.release, rel.created, rel.min_runtime, rel.identity, tiers))


@pytest.mark.parametrize("body", [
    b'{"created": "2026-11-29T12:00:00Z"}',  # whitespace
    b'{"b":1,"a":2}',  # unsorted keys
    b'{"a":1,"a":1}',  # duplicate keys
    b'{"a":NaN}',
    b'\xff\xfe',  # not UTF-8
    b'[1,2',  # not JSON
    b'[' * 30000 + b']' * 30000,  # nesting deeper than the payload format's MAX_JSON_DEPTH (checked first)
])
def test_body_must_be_canonical_json_M05(body):
    with pytest.raises(ManifestInvalid):
        read_manifest(_reframe(body))


def _mutations():
    def drop(key):
        return lambda b: b.pop(key)

    def setk(path, value):
        def f(b):
            o = b
            for k in path[:-1]:
                o = o[k]
            o[path[-1]] = value
        return f

    return {
        "missing key": drop("tiers"),
        "unknown key": setk(["colour"], "blue"),
        "no tiers": setk(["tiers"], []),
        "too many tiers": lambda b: b.__setitem__("tiers", [dict(b["tiers"][0], name=f"t{i}", payload={
            "digest": _d(f"p{i}"), "size": 1}) for i in range(M.MAX_TIERS + 1)]),
        "bad digest": setk(["tiers", 0, "payload", "digest"], "sha256:" + "A" * 64),
        "short digest": setk(["tiers", 0, "graph", "digest"], "sha256:abc"),
        "md5 digest": setk(["tiers", 0, "graph", "digest"], "md5:" + "0" * 32),
        "negative size": setk(["tiers", 0, "payload", "size"], -1),
        "huge size": setk(["tiers", 0, "payload", "size"], 1 << 41),
        "bool size": setk(["tiers", 0, "payload", "size"], True),
        "float size": setk(["tiers", 0, "payload", "size"], 1.5),
        "bad tier name": setk(["tiers", 0, "name"], "../x"),
        "empty tier name": setk(["tiers", 0, "name"], ""),
        "bad release name": setk(["release"], "a b"),
        "bad created": setk(["created"], "2026-13-40T99:00:00Z"),
        "local created": setk(["created"], "2026-11-29T12:00:00+01:00"),
        "bad min_runtime": setk(["min_runtime"], "1.0"),
        "kpi not a number": setk(["tiers", 0, "kpis", "top1"], "high"),
        "kpi bad name": setk(["tiers", 0, "kpis"], {"Top 1": 0.5}),
        "compression zero": setk(["tiers", 0, "compression"], 0),
        "compression string": setk(["tiers", 0, "compression"], "36x"),
        "extra untyped": setk(["extra"], [{"digest": _d("a"), "size": 1}]),
        "extra bad type": setk(["extra"], [{"digest": _d("a"), "size": 1, "type": "Task Spec"}]),
        "identity missing model": lambda b: b["identity"].pop("model"),
        "identity bad task": setk(["identity", "task"], "BEAM!"),
        "identity model not object": setk(["identity", "model"], [1, 2]),
        "tiers not list": setk(["tiers"], {"a": 1}),
        "payload with type": setk(["tiers", 0, "payload"], {"digest": _d("p"), "size": 1, "type": "payload"}),
    }


@pytest.mark.parametrize("name", sorted(_mutations()))
def test_schema_and_limits_M06(name):
    body = _body()
    _mutations()[name](body)
    with pytest.raises(ManifestInvalid):
        read_manifest(_reframe(body))


def test_truncated_and_trailing_M07():
    data = SAMPLE.read_bytes()
    for cut in (0, 7, 15, 16, 100, len(data) - 1):
        with pytest.raises((ManifestTruncated, ManifestBadMagic)):
            read_manifest(data[:cut])
    with pytest.raises(ManifestTrailingBytes):
        read_manifest(data + b"\0")


def test_content_digest_M08():
    data = bytearray(SAMPLE.read_bytes())
    body_len = struct.unpack("<I", data[12:16])[0]
    data[16 + body_len + 3] ^= 1  # flip a bit of the stored digest
    with pytest.raises(ManifestDigestMismatch):
        read_manifest(bytes(data))
    # an edited body that stays valid JSON is caught by the digest too
    good = SAMPLE.read_bytes()
    edited = good.replace(b'"top1":0.6649', b'"top1":0.9649')
    assert edited != good
    with pytest.raises(ManifestDigestMismatch):
        read_manifest(edited)


def test_signature_M09():
    from edge_sdk.payload.signing import generate_keypair

    data = SAMPLE.read_bytes()
    pub = _key().public_key()
    assert read_manifest(data).signature_status == "unverified"
    assert read_manifest(data, trusted_keys=[pub]).signature_status == "verified"
    _, other = generate_keypair()
    with pytest.raises(ManifestUntrustedKey):
        read_manifest(data, trusted_keys=[other])
    # a forged signature (last byte) -> BadSignature
    forged = data[:-1] + bytes([data[-1] ^ 1])
    with pytest.raises(ManifestBadSignature):
        read_manifest(forged, trusted_keys=[pub])
    # unsigned + keys given / required -> SignatureRequired
    unsigned = encode_manifest(sample_release())
    assert read_manifest(unsigned).signature_status == "unsigned"
    with pytest.raises(ManifestSignatureRequired):
        read_manifest(unsigned, trusted_keys=[pub])
    with pytest.raises(ManifestSignatureRequired):
        read_manifest(unsigned, require_signature=True)
    # domain separation: a payload-domain signature over the same digest does not verify as a manifest's
    from edge_sdk.payload.format import SIGNATURE_DOMAIN as PAYLOAD_DOMAIN

    body_len = struct.unpack("<I", data[12:16])[0]
    content_digest = data[16 + body_len:16 + body_len + 32]
    replay = data[:-64] + _key().sign(PAYLOAD_DOMAIN + content_digest)
    with pytest.raises(ManifestBadSignature):
        read_manifest(replay, trusted_keys=[pub])


def test_blob_consistency_M10():
    rel = sample_release()
    g = rel.tiers[0].graph
    dup_name = Release(rel.release, rel.created, rel.min_runtime, rel.identity, (rel.tiers[0], rel.tiers[0]))
    same_blob = Tier("x", g, g)
    two_sizes = Tier("y", BlobRef(_d("p"), 10), BlobRef(g.digest, g.size + 1))
    reserved = Tier("z", BlobRef(_d("p"), 10), g, extra=(BlobRef(_d("q"), 1, "graph"),))
    for bad in (dup_name,
                Release(rel.release, rel.created, rel.min_runtime, rel.identity, (same_blob,)),
                Release(rel.release, rel.created, rel.min_runtime, rel.identity, (rel.tiers[0], two_sizes)),
                Release(rel.release, rel.created, rel.min_runtime, rel.identity, (reserved,))):
        with pytest.raises(ConfigError):
            encode_manifest(bad)
        with pytest.raises(ManifestInvalid):
            read_manifest(_reframe(bad.to_json()))


def test_tier_choice_M11():
    rel = sample_release()
    big, small = rel.tiers
    extra = rel.extra[0].size
    full_big = big.payload.size + big.graph.size + extra
    full_small = small.payload.size + small.graph.size + small.extra[0].size + extra
    # no budget: the first (best) tier
    assert choose_tier(rel, None).tier.name == "36x"
    assert choose_tier(rel, full_big).tier.name == "36x"
    assert choose_tier(rel, full_big - 1).tier.name == "180x"
    assert choose_tier(rel, full_small - 1) is None
    # a cached graph (and release extra) costs nothing: the best tier fits a budget it did not fit before
    cached = {big.graph.digest, rel.extra[0].digest}
    c = choose_tier(rel, big.payload.size, cached)
    assert c is not None and c.tier.name == "36x" and c.cost == big.payload.size
    assert c.saved == big.graph.size + extra
    assert [b.digest for b in c.missing] == [big.payload.digest]
    costs = tier_costs(rel, cached)
    assert [x.cost for x in costs] == [big.payload.size, small.payload.size + small.extra[0].size]


def test_min_runtime_M12():
    rel = sample_release()
    check_runtime(rel, "0.1.0")
    check_runtime(rel, "1.0.0.dev3")
    newer = Release(rel.release, rel.created, "9.0.0", rel.identity, rel.tiers, rel.extra)
    with pytest.raises(RuntimeTooOld, match="9.0.0"):
        check_runtime(newer, "0.1.0")
    with pytest.raises(RuntimeTooOld):
        check_runtime(newer)  # this package's version


def test_format_min_runtime_is_the_newest_reader_needed():
    from edge_sdk.errors import ConfigError
    from edge_sdk.release.manifest import format_min_runtime

    assert format_min_runtime([1]) == "0.1.0" and format_min_runtime([1, 2, 1]) == format_min_runtime([2]) == "0.2.0"
    assert format_min_runtime([]) == "0.0.0"
    with pytest.raises(ConfigError, match="format 3"):
        format_min_runtime([2, 3])


def test_writer_output_passes_reader_M13():
    """The writer's output always parses, and encoding is canonical (same release -> same bytes)."""
    rel = sample_release()
    a, b = encode_manifest(rel), encode_manifest(rel)
    assert a == b and read_manifest(a).release == rel
    assert a[16:16 + struct.unpack("<I", a[12:16])[0]] == M.canonical_json(rel.to_json())


def test_manifest_name_is_sha256_of_file_M14():
    data = SAMPLE.read_bytes()
    m = read_manifest(data)
    assert m.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert m.content_sha256 == hashlib.sha256(data[:16 + struct.unpack("<I", data[12:16])[0]]).hexdigest()
    assert m.ref == BlobRef(m.digest, len(data))


def test_task_digest_ignores_recipe_only():
    task = {"kind": "beam", "model": {"kind": "mlp"}, "beam": {"n_tx": 32}, "train": {"lr": 0.1}}
    assert task_digest(task) == task_digest({**task, "train": {"lr": 0.5}})
    assert task_digest(task) != task_digest({**task, "beam": {"n_tx": 64}})


# ------------------------------------------------------------------------------------------ round trips
_name = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,20}", fullmatch=True)
_digest = st.binary(min_size=1, max_size=8).map(lambda b: "sha256:" + hashlib.sha256(b).hexdigest())
_num = st.floats(allow_nan=False, allow_infinity=False, width=64)


@st.composite
def releases(draw):
    n = draw(st.integers(1, 5))
    names = draw(st.lists(_name, min_size=n, max_size=n, unique=True))
    digests = draw(st.lists(_digest, min_size=2 * n + 6, max_size=2 * n + 6, unique=True))
    graph = BlobRef(digests[-1], draw(st.integers(0, 1 << 40)))
    tiers = []
    for i, name in enumerate(names):
        extra = tuple(BlobRef(digests[2 * n + j], draw(st.integers(0, 1000)), draw(
            st.from_regex(r"[a-z0-9][a-z0-9._+-]{0,10}", fullmatch=True).filter(lambda t: t not in M.RESERVED_TYPES)))
            for j in range(draw(st.integers(0, 2))))
        kpis = draw(st.dictionaries(st.from_regex(r"[a-z0-9][a-z0-9_]{0,10}", fullmatch=True), _num, max_size=4))
        comp = draw(st.one_of(st.none(), st.floats(0.001, 1e6)))
        tiers.append(Tier(name, BlobRef(digests[i], draw(st.integers(0, 1 << 30))), graph, comp, kpis,
                          tuple(e for e in extra if e.digest != graph.digest)))
    # the same digest must have one size: rebuild extras shared between tiers with their first size
    sizes: dict[str, int] = {}
    fixed = []
    for t in tiers:
        ex = tuple(BlobRef(e.digest, sizes.setdefault(e.digest, e.size), e.type) for e in t.extra)
        fixed.append(Tier(t.name, t.payload, t.graph, t.compression, t.kpis, ex))
    model = draw(st.dictionaries(st.from_regex(r"[a-z]{1,6}", fullmatch=True), st.integers(-5, 5), max_size=4))
    return Release(release=draw(_name), created="2026-01-02T03:04:05Z",
                   min_runtime=f"{draw(st.integers(0, 99))}.{draw(st.integers(0, 99))}.{draw(st.integers(0, 99))}",
                   identity=Identity("beam", digests[-2], model), tiers=tuple(fixed))


@settings(max_examples=60, deadline=None)
@given(releases(), st.booleans())
def test_roundtrip_property(rel, signed):
    try:
        data = encode_manifest(rel, _key() if signed else None)
    except ConfigError:
        return  # e.g. an extra shared between tiers with a clash the strategy did not avoid
    m = read_manifest(data, trusted_keys=[_key().public_key()] if signed else None)
    assert m.release == rel
    assert m.signature_status == ("verified" if signed else "unsigned")
    assert encode_manifest(m.release, _key() if signed else None) == data


def test_sample_json_is_documented_example():
    """The body example in docs/transfer.md is the frozen sample's body."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "transfer.md").read_text()
    body = json.loads(SAMPLE.read_bytes()[16:16 + struct.unpack("<I", SAMPLE.read_bytes()[12:16])[0]])
    start = doc.index("```json\n", doc.index("## Manifest body")) + len("```json\n")
    assert json.loads(doc[start:doc.index("```", start)]) == body

"""The content-addressed store (docs/transfer.md, S-rules): blobs, publish, channels, verify, gc, crash safety."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from edge_sdk.errors import ConfigError
from edge_sdk.release import (
    BlobCorrupt,
    BlobNotFound,
    ChannelInvalid,
    ChannelNotFound,
    InvalidChannelName,
    InvalidDigest,
    ManifestSignatureRequired,
    Store,
    StoreError,
    blob_relpath,
    channel_relpath,
    check_channel_name,
    encode_manifest,
    parse_channel_record,
    publish,
)
from edge_sdk.release.channel import ChannelRecord

ROOT = Path(__file__).resolve().parents[2]


def _hex(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store", create=True)


# ------------------------------------------------------------------------------------------ blobs
def test_blob_named_by_sha256_S01(store: Store):
    ref = store.put_bytes(b"hello")
    assert ref.digest == "sha256:" + _hex(b"hello") and ref.size == 5
    path = store.blob_path(ref.digest)
    assert path == store.root / "blobs" / "sha256" / _hex(b"hello")[:2] / _hex(b"hello")
    assert path.read_bytes() == b"hello" and (path.stat().st_mode & 0o777) == 0o444
    assert store.read_blob(ref.digest, 100) == b"hello"
    # idempotent: the same bytes again change nothing
    assert store.put_bytes(b"hello") == ref
    assert list(store.iter_blobs()) == [(ref.digest, path)]
    # an expected digest that does not match is refused and nothing is left behind
    with pytest.raises(BlobCorrupt):
        store.put_bytes(b"hullo", expected=ref.digest)
    assert list((store.root / "tmp").iterdir()) == []


@pytest.mark.parametrize("name", [
    "sha256:" + "0" * 63, "sha256:" + "0" * 65, "sha256:" + "A" * 64, "sha512:" + "0" * 64, "../../etc/passwd",
    "sha256:../" + "0" * 61, "sha256:" + "0" * 63 + "/", "sha256:" + "0" * 63 + "\n", "", None, 5,
    "sha256:" + "0" * 62 + "%2e",
])
def test_invalid_digest_never_reaches_fs_S01(store: Store, name):
    with pytest.raises(InvalidDigest):
        store.blob_path(name)
    with pytest.raises(InvalidDigest):
        blob_relpath(name)


def test_blob_writer_limits(store: Store):
    w = store.writer(max_bytes=4)
    w.write(b"1234")
    with pytest.raises(StoreError):
        w.write(b"5")
    assert list((store.root / "tmp").iterdir()) == []


def test_not_a_store(tmp_path: Path):
    with pytest.raises(StoreError, match="not an edge-sdk store"):
        Store(tmp_path / "nope")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(StoreError, match="non-empty"):
        Store(tmp_path / "full", create=True)
    s = Store(tmp_path / "s", create=True)
    (s.root / "edge-sdk-store.json").write_text('{"format": "edge-sdk-store", "version": 2}')
    with pytest.raises(StoreError, match="version 2"):
        Store(s.root)


# ------------------------------------------------------------------------------------------ publish
def test_publish_two_tiers(store: Store, release_files):
    res = publish(store, [release_files.small, release_files.big], channel="beam-uma/stable")
    m = res.manifest
    # ranked best first by the reports' top1 (big 0.62 > small 0.55), names from the reports' budget specs
    assert [t.name for t in m.tiers] == ["4KiB", "1KiB"]
    big, small = m.tiers
    assert big.kpis["top1"] == pytest.approx(0.62) and small.kpis["rsrp_diff_mean"] == pytest.approx(1.5)
    assert big.compression == pytest.approx(65536 / release_files.big.stat().st_size)
    assert big.graph == small.graph  # one shared graph blob
    assert big.payload.digest == "sha256:" + _hex(release_files.big.read_bytes())
    assert m.release.identity.task == "beam"
    assert len(res.new_blobs) == 3  # two payloads + one graph
    rec = store.channel("beam-uma/stable")
    assert rec.manifest.digest == m.digest and rec.history == ()
    assert store.manifest(m.digest).release == m.release
    assert store.verify().ok


def test_publish_signed_and_report_of_signed_payload(store: Store, release_files, tmp_path: Path):
    from edge_sdk.payload import generate_keypair, sign_payload

    priv, pub = generate_keypair()
    sign_payload(release_files.big, priv)  # report.json still describes the unsigned file: still accepted
    res = publish(store, [release_files.big], channel="c", signing_key=priv)
    assert res.manifest.tiers[0].kpis and res.notes == []
    m = store.manifest(res.manifest.digest, trusted_keys=[pub])
    assert m.signature_status == "verified"
    # a report of another payload is ignored (with a note), not trusted
    other = tmp_path / "other"
    other.mkdir()
    (other / "payload.epl").write_bytes(release_files.small.read_bytes())
    (other / "graph.onnx").write_bytes(release_files.graph.read_bytes())
    (other / "report.json").write_text((release_files.big.parent / "report.json").read_text())
    res2 = publish(store, [other / "payload.epl"], channel="d")
    assert res2.manifest.tiers[0].kpis == {} and any("another payload" in n for n in res2.notes)


def test_publish_errors(store: Store, release_files, tmp_path: Path):
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "payload.epl").write_bytes(release_files.big.read_bytes())
    with pytest.raises(ConfigError, match="--graph"):
        publish(store, [lone / "payload.epl"], channel="c")
    # given with --graph it works, and afterwards the store itself supplies the graph
    publish(store, [lone / "payload.epl"], channel="c", graphs=[release_files.graph])
    publish(store, [lone / "payload.epl"], channel="c2")
    with pytest.raises(ConfigError, match="twice"):
        publish(store, [release_files.big, release_files.big], channel="c")
    with pytest.raises(InvalidChannelName):
        publish(store, [release_files.big], channel="../etc")
    # payloads of different models cannot share a release
    soft = ROOT / "tests" / "device" / "data" / "soft_sgd"
    with pytest.raises(ConfigError, match="different tasks or models"):
        publish(store, [release_files.big, soft / "payload.bin"], channel="c")


# ------------------------------------------------------------------------------------------ channels
@pytest.mark.parametrize("bad", ["", "/", "a/", "/a", "a//b", "..", "a/..", ".a", "A", "a b", "a\\b", "a/b/c/d/e",
                                 "x" * 65, "a/./b", "-a", "é"])
def test_channel_name_syntax_S06(bad):
    with pytest.raises(InvalidChannelName):
        check_channel_name(bad)


def test_channel_record_strict_S06(store: Store, release_files):
    assert channel_relpath("beam-uma/stable").as_posix() == "channels/beam-uma/stable.json"
    assert channel_relpath("v1.2").as_posix() == "channels/v1.2.json"
    res = publish(store, [release_files.big], channel="beam-uma/stable")
    data = store.channel_path("beam-uma/stable").read_bytes()
    rec = parse_channel_record(data, expect_name="beam-uma/stable")
    assert rec.manifest == res.manifest.ref
    with pytest.raises(ChannelInvalid, match="asked for"):
        parse_channel_record(data, expect_name="beam-uma/beta")
    for bad in (data + b" ", data.replace(b'"history":[]', b'"history":[],"x":1'), b"[]", b"\xff",
                data.replace(b'"updated":"', b'"updated":"x'), b"{" * 20000):
        with pytest.raises(ChannelInvalid):
            parse_channel_record(bad)
    with pytest.raises(ChannelNotFound):
        store.channel("beam-uma/beta")


def test_channel_points_only_at_complete_manifest_S03(store: Store, release_files):
    from edge_sdk.payload import generate_keypair

    res = publish(store, [release_files.big], channel="a")
    with pytest.raises(BlobNotFound):
        store.set_channel("b", "sha256:" + "0" * 64)  # no such manifest
    # a manifest naming a blob the store lacks cannot be stored nor pointed at
    from dataclasses import replace

    from edge_sdk.release import BlobRef

    rel = res.manifest.release
    t = replace(rel.tiers[0], payload=BlobRef("sha256:" + "1" * 64, 10))
    bad = encode_manifest(replace(rel, tiers=(t,)))
    with pytest.raises(BlobNotFound):
        store.put_manifest(bad)
    store.put_bytes(bad)  # smuggled in as a plain blob
    with pytest.raises(BlobNotFound):
        store.set_channel("b", "sha256:" + _hex(bad))
    # wrong size
    t2 = replace(rel.tiers[0], payload=BlobRef(rel.tiers[0].payload.digest, rel.tiers[0].payload.size + 1))
    bad2 = encode_manifest(replace(rel, tiers=(t2,)))
    store.put_bytes(bad2)
    with pytest.raises(BlobCorrupt):
        store.set_channel("b", "sha256:" + _hex(bad2))
    # with trusted keys the manifest must verify
    _, pub = generate_keypair()
    with pytest.raises(ManifestSignatureRequired):
        store.set_channel("b", res.manifest.digest, trusted_keys=[pub])
    with pytest.raises(ChannelNotFound):
        store.channel("b")


def test_channel_history_and_rollback(store: Store, release_files):
    r1 = publish(store, [release_files.big], channel="c", release_name="r1")
    r2 = publish(store, [release_files.small], channel="c", release_name="r2")
    rec = store.channel("c")
    assert rec.manifest.digest == r2.manifest.digest and [h.digest for h in rec.history] == [r1.manifest.digest]
    rec = store.set_channel("c", r1.manifest.digest)  # roll back
    assert rec.manifest.digest == r1.manifest.digest and [h.digest for h in rec.history] == [r2.manifest.digest]
    for i in range(12):
        rec = rec.advanced(r1.manifest.ref if i % 2 else r2.manifest.ref, "2026-01-01T00:00:00Z")
    assert len(rec.history) <= 8 and rec.manifest.digest not in [h.digest for h in rec.history]


# ------------------------------------------------------------------------------------------ verify / gc
def test_verify_reports_corruption_S04(store: Store, release_files):
    res = publish(store, [release_files.big, release_files.small], channel="c")
    assert store.verify().ok
    p = store.blob_path(res.manifest.tiers[0].payload.digest)
    os.chmod(p, 0o644)
    data = bytearray(p.read_bytes())
    data[100] ^= 1
    p.write_bytes(bytes(data))
    rep = store.verify()
    assert not rep.ok and rep.corrupt == [res.manifest.tiers[0].payload.digest]
    os.unlink(store.blob_path(res.manifest.tiers[1].payload.digest))
    rep = store.verify()
    assert any("missing" in m for m in rep.missing)
    (store.root / "blobs" / "sha256" / "zz").mkdir()
    (store.root / "blobs" / "sha256" / "zz" / "junk").write_text("x")
    (store.root / "channels" / "broken.json").write_text("{")
    rep = store.verify()
    assert rep.stray == ["blobs/sha256/zz/junk"] and any("broken" in m for m in rep.invalid)
    # the CLI exits 6
    cli = subprocess.run([sys.executable, "-m", "edge_sdk.cli", "store", "verify", "--store", str(store.root)],
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 6 and "corrupt" in cli.stdout and "BlobCorrupt" in cli.stderr


def test_gc_keeps_reachable_and_young_S05(store: Store, release_files):
    r1 = publish(store, [release_files.big], channel="c", release_name="r1")
    r2 = publish(store, [release_files.small], channel="c", release_name="r2")  # r1 stays in the history
    orphan = store.put_bytes(b"orphan")
    (store.root / "tmp" / "left.blob").write_bytes(b"x")
    rep = store.gc(grace_s=3600)
    assert rep.removed == [] and rep.kept_young == 1 and rep.removed_tmp == 0
    rep = store.gc(grace_s=0, dry_run=True)
    assert rep.removed == [orphan.digest] and store.has(orphan.digest)
    rep = store.gc(grace_s=0)
    assert rep.removed == [orphan.digest] and not store.has(orphan.digest) and rep.removed_tmp == 1
    for m in (r1.manifest, r2.manifest):
        assert store.has(m.digest) and all(store.has(b.digest) for b in m.release.blobs())
    assert store.verify().ok
    # once r1 falls out of every history it is collected, but the shared graph stays
    rec = store.channel("c")
    store._write_channel(store.channel_path("c"), ChannelRecord("c", rec.manifest, rec.updated, ()))
    rep = store.gc(grace_s=0)
    assert r1.manifest.digest in rep.removed and r1.manifest.tiers[0].payload.digest in rep.removed
    assert store.has(r2.manifest.tiers[0].graph.digest)
    assert store.verify().ok


# ------------------------------------------------------------------------------------------ crash safety
CRASH_SCRIPT = textwrap.dedent("""
    import os, sys
    from edge_sdk.release import Store, publish
    from edge_sdk.release import store as S
    point, count = sys.argv[1], int(sys.argv[2])
    calls = {"n": 0}
    def crash_at(cls, name):
        orig = getattr(cls, name)
        def wrapper(*a, **k):
            calls["n"] += 1
            if calls["n"] >= count:
                if name == "write":  # part of the bytes reach the temp file, then the process dies
                    orig(*a, **k)
                os._exit(9)
            return orig(*a, **k)
        setattr(cls, name, wrapper)
    crash_at({"blob": S.Store, "write": S.BlobWriter, "manifest": S.Store, "channel": S.Store}[point],
             {"blob": "_install", "write": "write", "manifest": "put_manifest", "channel": "_write_channel"}[point])
    publish(Store(sys.argv[3]), sys.argv[4:], channel="beam/stable", release_name="r2")
""")


@pytest.mark.parametrize("point,count", [("write", 1), ("blob", 1), ("blob", 2), ("manifest", 1), ("channel", 1)])
def test_crash_mid_add_leaves_store_consistent_S02(store: Store, release_files, point, count):
    r1 = publish(store, [release_files.big], channel="beam/stable", release_name="r1")
    res = subprocess.run([sys.executable, "-c", CRASH_SCRIPT, point, str(count), str(store.root),
                          str(release_files.small), str(release_files.big)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 9, res.stderr[-2000:]
    assert store.channel("beam/stable").manifest.digest == r1.manifest.digest  # old head, intact
    rep = store.verify()
    assert rep.ok, rep.to_json()
    store.gc(grace_s=0)
    assert store.verify().ok and list((store.root / "tmp").iterdir()) == []
    r2 = publish(store, [release_files.small, release_files.big], channel="beam/stable", release_name="r2")
    assert store.channel("beam/stable").manifest.digest == r2.manifest.digest and store.verify().ok


def test_sigkill_during_repeated_adds_S02(store: Store, release_files):
    """A real SIGKILL at an arbitrary moment of a publish loop: the channel is always a complete release."""
    loop = ("import sys\nfrom edge_sdk.release import Store, publish\ns = Store(sys.argv[1])\nprint('ready', flush=True)\n"
            "for i in range(10000):\n    publish(s, [sys.argv[2 + i % 2]], channel='c', release_name=f'r{i}')\n")
    for delay in (0.15, 0.4, 0.7):
        proc = subprocess.Popen([sys.executable, "-c", loop, str(store.root), str(release_files.big),
                                 str(release_files.small)], stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            time.sleep(delay)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        rep = store.verify()
        assert rep.ok, rep.to_json()
        try:
            rec = store.channel("c")
        except ChannelNotFound:
            continue
        m = store.manifest(rec.manifest.digest)
        assert all(store.has(b.digest) for b in m.release.blobs())

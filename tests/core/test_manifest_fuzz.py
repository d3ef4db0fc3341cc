"""Mutation fuzzing of the manifest and channel-record parsers: any bytes give a parsed value or a typed
:class:`~edge_sdk.release.errors.ReleaseError`, never another exception (and never a large allocation: the
whole input is capped before parsing)."""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_manifest_frozen import SAMPLE, _key

from edge_sdk.release import ChannelInvalid, ManifestError, parse_channel_record, read_manifest

SEED = SAMPLE.read_bytes()
RECORD = (b'{"channel":"beam-uma/stable","history":[{"digest":"sha256:' + b"1" * 64 + b'","size":9}],'
          b'"manifest":{"digest":"sha256:' + b"0" * 64 + b'","size":1308},"updated":"2026-11-29T12:00:00Z"}')


def _mutate(data: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    buf = bytearray(data)
    for kind, pos, val in edits:
        if not buf:
            buf.append(val)
            continue
        i = pos % len(buf)
        if kind == 0:
            buf[i] = val
        elif kind == 1:
            del buf[i]
        elif kind == 2:
            buf.insert(i, val)
        else:
            del buf[i:]
    return bytes(buf)


edits = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 1 << 20), st.integers(0, 255)), min_size=1, max_size=6)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits, st.booleans())
def test_manifest_mutations_raise_only_typed_errors(e, with_key):
    data = _mutate(SEED, e)
    try:
        m = read_manifest(data, trusted_keys=[_key().public_key()] if with_key else None)
    except ManifestError:
        return
    assert m.digest.startswith("sha256:") and m.tiers


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_manifest_random_bytes(data):
    try:
        read_manifest(data)
    except ManifestError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1), st.binary(max_size=64))
def test_manifest_declared_lengths(body_len, tail):
    data = SEED[:12] + struct.pack("<I", body_len) + tail
    try:
        read_manifest(data)
    except ManifestError:
        pass


@settings(max_examples=300, deadline=None)
@given(edits)
def test_channel_record_mutations_raise_only_typed_errors(e):
    try:
        parse_channel_record(_mutate(RECORD, e))
    except ChannelInvalid:
        pass


def test_channel_record_seed_parses():
    rec = parse_channel_record(RECORD, expect_name="beam-uma/stable")
    assert rec.manifest.size == 1308 and len(rec.history) == 1

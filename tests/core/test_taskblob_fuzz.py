"""Mutation fuzzing of the task blob parser (docs/payload-format.md R23), which a device runs on every task blob it
downloads (`edge-sdk device fetch`, docs/transfer.md rule F12): any byte string either parses to a task blob that
re-encodes to itself, or raises a PayloadError (the fetch's check turns that into ReleaseMismatch) — never another
exception, never a parse of something over the size or nesting limits."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_sdk.payload.errors import HeaderInvalid, LimitExceeded, PayloadError, TaskMismatch
from edge_sdk.payload.format import MAX_JSON_DEPTH
from edge_sdk.payload.taskblob import TASK_BLOB_MAX_BYTES, encode_task_blob, parse_task_blob

TASK = {"kind": "beam", "beam": {"n_tx": 32, "setb": "1/4", "scale_db": 8.6}, "model": {"kind": "mlp", "hidden": [64],
                                                                                       "input_dim": 8, "num_classes": 32}}
BASES = [encode_task_blob(TASK, {"sha256": "ab" * 32, "size": 6870}), encode_task_blob(TASK, None)]
TOKENS = [b"{", b"}", b"[", b"]", b",", b":", b'"', b"\\", b"null", b"true", b"1e999", b"NaN", b"-0", b" ", b"\x00",
          b"\xff", b'"graph"', b'"schema"', b'"task"', b'"edge-sdk.task/1"', b"9" * 40, "é".encode()]


def _check(data: bytes) -> str:
    """'ok' or the error's class name; fails the test on anything but a PayloadError."""
    try:
        blob = parse_task_blob(data, hashlib.sha256(data).digest())
    except PayloadError as exc:
        return type(exc).__name__
    # accepted: canonical, within the limits, and the writer gives back the same bytes
    assert len(data) <= TASK_BLOB_MAX_BYTES
    g = None if blob.graph is None else blob.graph
    assert encode_task_blob(blob.task, g) == data
    return "ok"


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "delete", "dup"]))
        i = draw(st.integers(0, len(data)))
        if op == "flip" and i < len(data):
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            del data[i:]
        elif op == "insert":
            data[i:i] = draw(st.sampled_from(TOKENS))
        elif op == "delete" and i < len(data):
            del data[i:i + draw(st.integers(1, 8))]
        elif op == "dup":
            j = draw(st.integers(i, len(data)))
            data[j:j] = data[i:j]
    return bytes(data)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_task_blobs_parse_or_raise_payload_errors(data):
    _check(data)


@given(st.binary(max_size=300))
@settings(max_examples=300, deadline=None)
def test_random_bytes_parse_or_raise_payload_errors(data):
    _check(data)


def test_crafted_task_blobs():
    ok = BASES[0]
    assert _check(ok) == "ok"
    deep = b'{"graph":null,"schema":"edge-sdk.task/1","task":' + b'{"a":' * (MAX_JSON_DEPTH + 5) + b"1" + \
        b"}" * (MAX_JSON_DEPTH + 6)
    assert _check(deep) == "LimitExceeded"
    assert _check(b"[" * 200_000) == "LimitExceeded"  # depth measured before the JSON parser runs
    big = b'{"graph":null,"schema":"edge-sdk.task/1","task":{"x":"' + b"a" * TASK_BLOB_MAX_BYTES + b'"}}'
    with pytest.raises(LimitExceeded):
        parse_task_blob(big)
    pretty = json.dumps(json.loads(ok), indent=1).encode()  # not canonical
    with pytest.raises(HeaderInvalid):
        parse_task_blob(pretty)
    dup = ok[:-1] + b',"task":{}}'  # a duplicate key
    with pytest.raises(HeaderInvalid):
        parse_task_blob(dup)
    for bad in (b'{"graph":null,"schema":"edge-sdk.task/1","task":[]}',
                b'{"graph":["ab",1],"schema":"edge-sdk.task/1","task":{}}',
                b'{"graph":null,"schema":"edge-sdk.task/2","task":{}}',
                b'{"graph":null,"schema":"edge-sdk.task/1","task":{},"x":1}'):
        assert _check(bad) == "HeaderInvalid", bad
    with pytest.raises(TaskMismatch):
        parse_task_blob(ok, hashlib.sha256(ok + b" ").digest())


def test_fetch_check_turns_every_rejection_into_release_mismatch(tmp_path):
    """The check `device fetch` runs on a downloaded task blob before it enters the cache."""
    from edge_sdk.device.fetch import Fetcher
    from edge_sdk.release import ReleaseMismatch
    from edge_sdk.release.digest import BlobRef

    cases = [BASES[0], BASES[0][:-1], BASES[0].replace(b"edge-sdk.task/1", b"edge-sdk.task/0"), b"[" * 5000, b"\xff"]
    seen = []
    for i, data in enumerate(cases):
        p = tmp_path / f"b{i}"
        p.write_bytes(data)
        check = Fetcher._check_task_blob(BlobRef("sha256:" + hashlib.sha256(data).hexdigest(), len(data), "task"))
        try:
            check(p)
            seen.append("ok")
        except ReleaseMismatch as exc:
            assert "not a valid task blob" in str(exc)
            seen.append("refused")
    assert seen == ["ok"] + ["refused"] * 4

"""Helpers that craft device inputs for the hardening tests (no torch; onnx only where a graph is rewritten)."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge_sdk.payload.format import canonical_json

DATA = Path(__file__).parent / "data"
ADAM = DATA / "beam_adam"
SOFT = DATA / "soft_sgd"


def split_payload(b: bytes) -> tuple[bytes, dict[str, Any], bytes]:
    """(prefix, header dict, data area) of an unsigned payload."""
    hlen = int.from_bytes(b[12:16], "little")
    assert not b[10] & 1, "unsigned payloads only"
    return b[:16], json.loads(b[16:16 + hlen]), b[16 + hlen:-32]


def join_payload(prefix: bytes, header: dict[str, Any], data: bytes) -> bytes:
    """An unsigned payload with this header: canonical JSON, header length and digest fixed, so it verifies."""
    hb = canonical_json(header)
    pre = bytearray(prefix)
    pre[12:16] = len(hb).to_bytes(4, "little")
    body = bytes(pre) + hb + data
    return body + hashlib.sha256(body).digest()


def with_header(payload: bytes, fn: Callable[[dict[str, Any]], Any]) -> bytes:
    pre, h, data = split_payload(payload)
    h = copy.deepcopy(h)
    fn(h)
    return join_payload(pre, h, data)


def graph_with_meta(graph: bytes, fn: Callable[[Any], Any], raw: str | None = None) -> bytes:
    """The graph with its ``edge_sdk.train_graph`` metadata rewritten by ``fn(meta) -> new meta`` (or set to the
    text ``raw``). Needs the ``onnx`` package (server extra)."""
    import onnx

    m = onnx.load_from_string(graph)
    for prop in m.metadata_props:
        if prop.key == "edge_sdk.train_graph":
            prop.value = raw if raw is not None else json.dumps(fn(json.loads(prop.value)))
    return m.SerializeToString()


def with_graph(payload: bytes, graph: bytes) -> bytes:
    """The payload naming ``graph`` by digest and size (unsigned, digest fixed)."""
    return with_header(payload, lambda h: h.update(o=[hashlib.sha256(graph).hexdigest(), len(graph)]))

"""The task blob of payload format v2: what every payload of a release shares, sent once and cached by digest.

A v2 payload names its task blob by SHA-256 (32 raw bytes in the header). The blob is canonical JSON
(the v1 header's encoding: sorted keys, no whitespace, UTF-8, no NaN/Infinity)::

    {"graph": [sha256 hex, size] | null, "schema": "edge-sdk.task/1", "task": {...}}

``task`` is the task dict a v1 header carries in ``t`` (``{"kind": "beam", "beam": ..., "model": ...}``) without
the training recipe (``train``), which a v2 payload stores itself; ``graph`` names the ONNX training graph of
the payloads that use this blob (v1 header key ``o``). A release carries the blob as a manifest extra blob of
type ``task`` (``edge-sdk store add`` attaches it); ``edge-sdk device fetch`` downloads it once and caches it by
digest next to the graph. A reader finds it given explicitly, beside the payload (``sha256-<hex>``, ``task.json``),
or — for a payload that is itself a blob of a store or device cache (``<root>/blobs/sha256/<2 hex>/<64 hex>``,
docs/transfer.md) — as the blob of its digest in the same tree.

Rules (docs/payload-format.md, "Version 2"): at most :data:`TASK_BLOB_MAX_BYTES` bytes, JSON nesting at most
``MAX_JSON_DEPTH``, canonical, exactly the three keys, ``schema`` equal to :data:`TASK_SCHEMA`; a reader MUST check
the blob's SHA-256 against the digest the payload names (:class:`TaskMismatch`).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_sdk.errors import ConfigError
from edge_sdk.payload.errors import HeaderInvalid, LimitExceeded, TaskBlobMissing, TaskMismatch
from edge_sdk.payload.format import MAX_GRAPH_BYTES, MAX_JSON_DEPTH, canonical_json, decode_header, json_depth

TASK_SCHEMA = "edge-sdk.task/1"
TASK_BLOB_MAX_BYTES = 1 << 20
#: file name the server writes next to a payload; ``<dir>/sha256-<hex>`` (a store-style name) is found too
TASK_BLOB_NAME = "task.json"
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")


@dataclass(frozen=True)
class TaskBlob:
    task: dict[str, Any]
    graph: dict[str, Any] | None
    data: bytes

    @property
    def digest(self) -> bytes:
        return hashlib.sha256(self.data).digest()


def encode_task_blob(task: Mapping[str, Any], graph: Mapping[str, Any] | None = None) -> bytes:
    """Canonical bytes of the task blob for ``task`` (``train`` is dropped) and the graph digest."""
    if not isinstance(task, Mapping):
        raise ConfigError("task must be a dict")
    t = {k: v for k, v in task.items() if k != "train"}
    g = None
    if graph is not None:
        try:
            g = [str(graph["sha256"]).lower(), int(graph["size"])]
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError("graph must be None or {'sha256': hex, 'size': int}") from exc
    data = canonical_json({"graph": g, "schema": TASK_SCHEMA, "task": t})
    try:
        parse_task_blob(data)  # the writer refuses what a reader would refuse
    except (HeaderInvalid, LimitExceeded) as exc:
        raise ConfigError(f"task blob would be invalid: {exc}") from exc
    return data


def parse_task_blob(data: bytes, expected_digest: bytes | None = None) -> TaskBlob:
    """Validate a task blob (rules in the module docstring); with ``expected_digest`` its SHA-256 must match."""
    if len(data) > TASK_BLOB_MAX_BYTES:
        raise LimitExceeded(f"task blob is {len(data)} bytes, limit {TASK_BLOB_MAX_BYTES}")
    if expected_digest is not None and hashlib.sha256(data).digest() != expected_digest:
        raise TaskMismatch(f"task blob sha256 {hashlib.sha256(data).hexdigest()} != {expected_digest.hex()} named by "
                           "the payload (wrong or altered task blob)")
    if json_depth(data) > MAX_JSON_DEPTH:
        raise LimitExceeded(f"task blob JSON nests deeper than {MAX_JSON_DEPTH}")
    obj = decode_header(data)
    if not isinstance(obj, dict) or set(obj) != {"graph", "schema", "task"}:
        raise HeaderInvalid("task blob must be an object with exactly the keys graph, schema, task")
    if obj["schema"] != TASK_SCHEMA:
        raise HeaderInvalid(f"task blob schema {obj['schema']!r} is not {TASK_SCHEMA!r}")
    if not isinstance(obj["task"], dict):
        raise HeaderInvalid("task blob 'task' must be an object")
    g = obj["graph"]
    graph = None
    if g is not None:
        if not (isinstance(g, list) and len(g) == 2 and isinstance(g[0], str) and _HEX64.match(g[0])
                and type(g[1]) is int and 1 <= g[1] <= MAX_GRAPH_BYTES):
            raise HeaderInvalid(f"task blob graph must be null or [sha256 hex, size in 1..{MAX_GRAPH_BYTES}]")
        graph = {"sha256": g[0], "size": g[1]}
    return TaskBlob(obj["task"], graph, bytes(data))


def write_task_blob(path: str | os.PathLike, task: Mapping[str, Any], graph: Mapping[str, Any] | None = None) -> TaskBlob:
    """Write the task blob atomically; returns it (``.digest`` is what the payload names)."""
    from edge_sdk.atomic import atomic_write_bytes

    data = encode_task_blob(task, graph)
    atomic_write_bytes(Path(path), data)
    return parse_task_blob(data)


def blob_tree_path(payload_path: str | os.PathLike, digest: bytes) -> Path | None:
    """Where the blob ``digest`` lies if ``payload_path`` is a blob of a content-addressed tree (a release store or
    a device cache: ``<root>/blobs/sha256/<hex[:2]>/<hex>``, docs/transfer.md "Store layout"); else None."""
    p = Path(payload_path)
    if _HEX64.match(p.name) and p.parent.name == p.name[:2] and p.parent.parent.name == "sha256" \
            and p.parent.parent.parent.name == "blobs":
        hx = digest.hex()
        return p.parent.parent / hx[:2] / hx
    return None


def find_task_blob(digest: bytes, payload_path: str | os.PathLike | None,
                   blob: bytes | str | os.PathLike | None = None) -> TaskBlob:
    """The task blob ``digest`` names: ``blob`` (bytes or a path) if given, else ``sha256-<hex>`` or
    ``task.json`` in the payload's directory, else (a payload inside a store or device cache) the blob of that
    digest in the same tree (:func:`blob_tree_path`). Raises :class:`TaskBlobMissing` / :class:`TaskMismatch`."""
    if isinstance(blob, (bytes, bytearray)):
        return parse_task_blob(bytes(blob), digest)
    cands: list[Path] = []
    tree = None
    if blob is not None:
        cands.append(Path(blob))
    elif payload_path is not None:
        d = Path(payload_path).parent
        cands += [d / f"sha256-{digest.hex()}", d / TASK_BLOB_NAME]
        tree = blob_tree_path(payload_path, digest)
        if tree is not None:
            cands.append(tree)
    for c in cands:
        if c.is_file():
            if c.stat().st_size > TASK_BLOB_MAX_BYTES:
                raise LimitExceeded(f"task blob {c} is {c.stat().st_size} bytes, limit {TASK_BLOB_MAX_BYTES}")
            data = c.read_bytes()
            if blob is None and c != tree and hashlib.sha256(data).digest() != digest:
                continue  # a task.json of another payload: keep looking
            return parse_task_blob(data, digest)  # a digest-named blob that does not hash to its name: TaskMismatch
    raise TaskBlobMissing(
        f"payload v2 names task blob sha256:{digest.hex()} which was not found"
        + (f" (looked for {', '.join(str(c) for c in cands)})" if cands else "")
        + "; pass it with --task / task_blob=, or fetch the release (the blob travels once per release)"
    )

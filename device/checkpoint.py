"""Training checkpoints, format v1: a safetensors file with a versioned header and a SHA-256 over everything.

Layout (docs/device.md, "Checkpoint format"): a `safetensors <https://github.com/huggingface/safetensors>`_ file
(8-byte little-endian header length, JSON header, one data buffer; parsed by the safetensors library, which
checks offsets, overlaps and coverage, and never unpickles) holding

* one float32 tensor per trained array, named ``p:<parameter>`` and ``s:<parameter>.<state>``;
* ``__metadata__`` = ``{"format": "edge-sdk-checkpoint", "version": "1", "meta": <canonical JSON>,
  "sha256": <hex>}``: ``meta`` is the trainer's JSON (digests of payload and graph, recipe, epoch, step, loss
  history), and ``sha256`` = SHA-256 of ``DIGEST_DOMAIN + meta + for each tensor in name order: name, NUL,
  little-endian float32 bytes``.

Reading (:func:`read_checkpoint`) never trusts the file: the size is bounded before anything is read (the arrays
the graph needs plus :data:`MAX_HEADER_BYTES`), names, dtypes and shapes are compared with the graph's before a
tensor is loaded, then the digest and finiteness are checked. Every failure is a
:class:`~edge_sdk.errors.CheckpointError` that says how to start over. Writing is atomic (temp file, fsync,
rename), so a killed run leaves the previous checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edge_sdk.atomic import atomic_write_bytes
from edge_sdk.errors import CheckpointError

CHECKPOINT_NAME = "checkpoint.safetensors"
FORMAT = "edge-sdk-checkpoint"
VERSION = 1
DIGEST_DOMAIN = b"edge-sdk checkpoint v1\x00"
#: the safetensors JSON header (tensor table + metadata with the loss history); 100 000 epochs of history fit
MAX_HEADER_BYTES = 16 << 20
_METADATA_KEYS = {"format", "version", "meta", "sha256"}


def _start_over(path: Path) -> str:
    return f"delete {path} (or drop --resume) to start over"


def digest(meta_json: str, tensors: Mapping[str, np.ndarray]) -> str:
    """The checkpoint digest (module docstring)."""
    h = hashlib.sha256(DIGEST_DOMAIN)
    h.update(meta_json.encode())
    for name in sorted(tensors):
        h.update(name.encode() + b"\x00")
        h.update(np.ascontiguousarray(tensors[name], "<f4").tobytes())
    return h.hexdigest()


def encode_checkpoint(meta: Mapping[str, Any], tensors: Mapping[str, np.ndarray]) -> bytes:
    """The bytes of a v1 checkpoint of ``tensors`` (float32) and the JSON-able ``meta``."""
    from safetensors.numpy import save

    arrays = {k: np.ascontiguousarray(v, "<f4") for k, v in tensors.items()}
    meta_json = json.dumps(meta, sort_keys=True, separators=(",", ":"), allow_nan=False)
    md = {"format": FORMAT, "version": str(VERSION), "meta": meta_json, "sha256": digest(meta_json, arrays)}
    return save(arrays, metadata=md)


def write_checkpoint(path: str | os.PathLike[str], meta: Mapping[str, Any], tensors: Mapping[str, np.ndarray]) -> int:
    """Write atomically; returns the file size."""
    data = encode_checkpoint(meta, tensors)
    atomic_write_bytes(Path(path), data, make_parents=True)
    return len(data)


def read_checkpoint(path: str | os.PathLike[str], expected: Mapping[str, tuple[int, ...]],
                    max_header_bytes: int = MAX_HEADER_BYTES) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(meta dict, {name: float32 array}) of a v1 checkpoint whose tensors are exactly ``expected``
    ({name: shape}); raises :class:`CheckpointError` otherwise (module docstring for the order of checks)."""
    import safetensors
    from safetensors import safe_open

    p = Path(path)
    need = sum(4 * int(np.prod(s, dtype=np.int64)) for s in expected.values())
    try:
        size = p.stat().st_size
        with open(p, "rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {p}: {exc.strerror or exc}; {_start_over(p)}") from None
    if size < 8:
        raise CheckpointError(f"checkpoint {p} is truncated ({size} bytes); {_start_over(p)}")
    hlen = int.from_bytes(head, "little")
    if hlen > max_header_bytes:
        raise CheckpointError(f"checkpoint {p} declares a {hlen}-byte header, more than the {max_header_bytes} "
                              f"allowed; it is damaged or not a checkpoint: {_start_over(p)}")
    if size != 8 + hlen + need:
        raise CheckpointError(f"checkpoint {p} is {size} bytes; a checkpoint of this graph with a {hlen}-byte header "
                              f"is {8 + hlen + need}: truncated, damaged or made for another graph; {_start_over(p)}")
    error = getattr(safetensors, "SafetensorError", Exception)
    try:
        with safe_open(str(p), framework="np") as f:
            md = f.metadata() or {}
            names = set(f.keys())
            if set(md) != _METADATA_KEYS or md.get("format") != FORMAT:
                raise CheckpointError(f"{p} is not an edge-sdk checkpoint (metadata keys {sorted(md)}); "
                                      f"{_start_over(p)}")
            if md["version"] != str(VERSION):
                raise CheckpointError(f"checkpoint {p} has format version {md['version']!r}; this edge-sdk reads "
                                      f"version {VERSION}: {_start_over(p)}")
            if names != set(expected):
                raise CheckpointError(f"checkpoint {p} holds other arrays than the graph trains (missing "
                                      f"{sorted(set(expected) - names)[:3]}, extra {sorted(names - set(expected))[:3]}); "
                                      f"{_start_over(p)}")
            for name, shape in expected.items():
                sl = f.get_slice(name)
                if sl.get_dtype() != "F32" or tuple(sl.get_shape()) != tuple(shape):
                    raise CheckpointError(f"checkpoint {p}: {name!r} is {sl.get_dtype()} {sl.get_shape()}, the graph "
                                          f"needs F32 {list(shape)}; {_start_over(p)}")
            tensors = {name: np.asarray(f.get_tensor(name), np.float32) for name in sorted(expected)}
    except CheckpointError:
        raise
    except (error, OSError, ValueError, UnicodeError) as exc:
        raise CheckpointError(f"checkpoint {p} is damaged ({str(exc)[:120]}); {_start_over(p)}") from None
    if digest(md["meta"], tensors) != md["sha256"]:
        raise CheckpointError(f"checkpoint {p} fails its SHA-256 check (bit rot or an interrupted copy); "
                              f"{_start_over(p)}")
    try:
        meta = json.loads(md["meta"])
    except (ValueError, RecursionError):
        raise CheckpointError(f"checkpoint {p} has an unreadable header; {_start_over(p)}") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint {p} has a header that is not a JSON object; {_start_over(p)}")
    for name, a in tensors.items():
        if not np.isfinite(a).all():
            raise CheckpointError(f"checkpoint {p}: {name!r} holds NaN or inf; {_start_over(p)}")
    return meta, tensors

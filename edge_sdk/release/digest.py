"""Blob names: ``sha256:<64 lowercase hex>`` of the blob's bytes, and the one place that turns a name into
a path (``blobs/sha256/<first 2 hex>/<hex>``). A name that does not match :data:`DIGEST_RE` exactly never
reaches the file system, so no request can name a path outside a store or cache."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_sdk.release.errors import InvalidDigest

ALGORITHM = "sha256"
DIGEST_RE = re.compile(r"sha256:([0-9a-f]{64})\Z")
HASH_CHUNK = 1 << 20
#: largest blob any reader accepts (1 TiB), as in the payload format's section cap
MAX_BLOB_BYTES = 1 << 40


def parse_digest(name: Any) -> str:
    """``"sha256:<hex>"`` -> ``<hex>``; anything else raises :class:`InvalidDigest`."""
    if not isinstance(name, str) or len(name) != 71:
        raise InvalidDigest(f"blob names are 'sha256:' + 64 lowercase hex digits, got {str(name)[:80]!r}")
    m = DIGEST_RE.match(name)
    if m is None:
        raise InvalidDigest(f"blob names are 'sha256:' + 64 lowercase hex digits, got {name[:80]!r}")
    return m.group(1)


def is_digest(name: Any) -> bool:
    return isinstance(name, str) and len(name) == 71 and DIGEST_RE.match(name) is not None


def digest_bytes(data: bytes | memoryview) -> str:
    """The blob name of ``data``."""
    return f"{ALGORITHM}:{hashlib.sha256(data).hexdigest()}"


def hash_file(path: str | os.PathLike) -> tuple[str, int]:
    """(blob name, size in bytes) of a file, streamed in 1 MiB chunks."""
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            h.update(chunk)
            n += len(chunk)
    return f"{ALGORITHM}:{h.hexdigest()}", n


def blob_relpath(digest: str) -> Path:
    """Relative path of a blob inside a store or cache: ``blobs/sha256/ab/ab12...``."""
    hx = parse_digest(digest)
    return Path("blobs") / ALGORITHM / hx[:2] / hx


@dataclass(frozen=True)
class BlobRef:
    """A content descriptor (like OCI's): the blob's name, its size in bytes, and for typed extra blobs its
    type (``None`` for a tier's payload and graph, whose role is their field)."""

    digest: str
    size: int
    type: str | None = None

    @property
    def hex(self) -> str:
        return parse_digest(self.digest)

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"digest": self.digest, "size": self.size}
        if self.type is not None:
            d["type"] = self.type
        return d

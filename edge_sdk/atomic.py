"""Atomic file writes: temp file in the same directory, fsync, ``os.replace``, fsync of the directory.
A reader never sees a half-written file: it sees the old file or the new one, and a failed write leaves no
temp file behind. The one implementation for every layer (core, server, device, tools)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path


def atomic_write_chunks(
    path: str | os.PathLike, chunks: Iterable[bytes | memoryview], mode: int = 0o644, make_parents: bool = False
) -> Path:
    """Write ``chunks`` to ``path`` atomically (file mode ``mode``); ``make_parents`` creates missing folders."""
    p = Path(path)
    directory = p.parent if str(p.parent) else Path(".")
    if make_parents:
        directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            for c in chunks:
                f.write(c)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    return p


def atomic_write_bytes(path: str | os.PathLike, data: bytes, mode: int = 0o644, make_parents: bool = False) -> Path:
    return atomic_write_chunks(path, [data], mode, make_parents)


def atomic_write_text(path: str | os.PathLike, text: str, mode: int = 0o644, make_parents: bool = False) -> Path:
    """UTF-8 text, atomically."""
    return atomic_write_chunks(path, [text.encode("utf-8")], mode, make_parents)

"""Atomic file writes: temp file in the same directory, fsync, ``os.replace``, fsync of the directory.
A reader never sees a half-written file: it sees the old file or the new one, and a failed write leaves no
temp file behind. The one implementation for every layer (core, server, device, tools).

API::

    from edge_sdk.atomic import atomic_write_bytes, atomic_write_text, atomic_write_chunks, atomic_path, commit_file
    atomic_write_bytes("out/report.json", data, make_parents=True)      # bytes in memory
    with atomic_path("out/table.parquet", make_parents=True) as tmp:     # a library writes the file itself
        pyarrow.parquet.write_table(table, tmp)                           # (Parquet, PNG, HDF5, ONNX ...)
    commit_file("train.h5.partial", "train.h5")                           # a temp file the caller already has

``atomic_path`` yields a fresh temp path (``.<name>.<random>.tmp`` beside the target, not yet created); when the
block ends normally the file is given mode ``mode``, fsynced and renamed onto the target, and the directory is
fsynced; when the block raises, the temp file is removed and the target is untouched.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path


def _directory(p: Path, make_parents: bool) -> Path:
    directory = p.parent if str(p.parent) else Path(".")
    if make_parents:
        directory.mkdir(parents=True, exist_ok=True)
    return directory


def _fsync_dir(directory: Path) -> None:
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - directories cannot be opened on some platforms
        return
    try:
        os.fsync(dfd)
    except OSError:  # pragma: no cover - directories cannot be fsynced on some platforms
        pass
    finally:
        os.close(dfd)


def commit_file(tmp: str | os.PathLike, path: str | os.PathLike, mode: int | None = None) -> Path:
    """Make the finished file ``tmp`` appear as ``path``: chmod ``mode`` (if given), fsync, ``os.replace``
    (same file system; ``tmp`` should sit beside ``path``), fsync of the directory. Returns ``path``."""
    src, dst = Path(tmp), Path(path)
    fd = os.open(src, os.O_RDONLY)
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(src, dst)
    _fsync_dir(dst.parent if str(dst.parent) else Path("."))
    return dst


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, mode: int = 0o644, make_parents: bool = False) -> Iterator[Path]:
    """Yield a temp path for a writer that only takes a file name; commit it onto ``path`` on success
    (module docstring)."""
    p = Path(path)
    directory = _directory(p, make_parents)
    fd, name = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=directory)
    os.close(fd)
    tmp = Path(name)
    tmp.unlink()  # the writer creates it (some, e.g. h5py in "w-" mode, refuse an existing file)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"the writer did not create {tmp} (target {p})")
        commit_file(tmp, p, mode)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_chunks(
    path: str | os.PathLike, chunks: Iterable[bytes | memoryview], mode: int = 0o644, make_parents: bool = False
) -> Path:
    """Write ``chunks`` to ``path`` atomically (file mode ``mode``); ``make_parents`` creates missing folders."""
    p = Path(path)
    directory = _directory(p, make_parents)
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
    _fsync_dir(directory)
    return p


def atomic_write_bytes(path: str | os.PathLike, data: bytes, mode: int = 0o644, make_parents: bool = False) -> Path:
    """``data`` to ``path``, atomically."""
    return atomic_write_chunks(path, [data], mode, make_parents)


def atomic_write_text(path: str | os.PathLike, text: str, mode: int = 0o644, make_parents: bool = False) -> Path:
    """UTF-8 text, atomically."""
    return atomic_write_chunks(path, [text.encode("utf-8")], mode, make_parents)

"""The content-addressed store: blobs named by their SHA-256, manifests (which are blobs), and channels.

Layout (docs/transfer.md, "Store layout")::

    STORE/edge-sdk-store.json          {"format": "edge-sdk-store", "version": 1}
    STORE/blobs/sha256/ab/ab12...      one read-only file per blob, named by the digest of its bytes
    STORE/channels/beam-uma/stable.json  channel records (canonical JSON)
    STORE/tmp/                         in-progress writes (same file system, so the final rename is atomic)
    STORE/lock                         flock(2) taken by writers of channels and by gc

Every write goes temp file -> fsync -> rename -> fsync of the folder, and the order of a publish is blobs,
then the manifest blob, then the channel record: a crash at any point leaves each channel at its old or its
new head, never at a manifest whose blobs are missing. Leftovers of a crash (temp files, unreferenced blobs)
are reported by :meth:`Store.verify` and removed by :meth:`Store.gc`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_sdk.atomic import atomic_write_bytes
from edge_sdk.release.channel import ChannelRecord, channel_relpath, check_channel_name, parse_channel_record
from edge_sdk.release.digest import (
    ALGORITHM,
    HASH_CHUNK,
    MAX_BLOB_BYTES,
    BlobRef,
    blob_relpath,
    digest_bytes,
    is_digest,
    parse_digest,
)
from edge_sdk.release.errors import (
    BlobCorrupt,
    BlobNotFound,
    ChannelInvalid,
    ChannelNotFound,
    ManifestError,
    ReleaseError,
    StoreError,
)
from edge_sdk.release.manifest import MAX_MANIFEST_BYTES, Manifest, read_manifest, utc_now

MARKER = "edge-sdk-store.json"
STORE_FORMAT = "edge-sdk-store"
STORE_VERSION = 1
#: gc keeps unreferenced blobs and temp files younger than this (a publish in progress writes blobs before it
#: moves the channel)
DEFAULT_GC_GRACE_S = 3600.0


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobWriter:
    """Streams a blob into ``tmp/``, hashing as it goes; :meth:`commit` checks the digest (and the expected one,
    if given) and renames it into place. Nothing unverified is ever visible under ``blobs/``."""

    def __init__(self, store: Store, expected: str | None = None, max_bytes: int = MAX_BLOB_BYTES) -> None:
        if expected is not None:
            parse_digest(expected)
        self.store, self.expected, self.max_bytes = store, expected, max_bytes
        self.tmp = store.root / "tmp" / f"{uuid.uuid4().hex}.blob"
        self._f = open(self.tmp, "wb")  # noqa: SIM115 - closed by commit/abort
        self._h = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes | memoryview) -> None:
        self.size += len(chunk)
        if self.size > self.max_bytes:
            self.abort()
            raise StoreError(f"blob is larger than the limit of {self.max_bytes} bytes")
        self._h.update(chunk)
        self._f.write(chunk)

    def commit(self) -> BlobRef:
        digest = f"{ALGORITHM}:{self._h.hexdigest()}"
        if self.expected is not None and digest != self.expected:
            self.abort()
            raise BlobCorrupt(f"received bytes hash to {digest[:23]}..., not the expected {self.expected[:23]}...")
        try:
            self._f.flush()
            os.fchmod(self._f.fileno(), 0o444)
            os.fsync(self._f.fileno())
            self._f.close()
            self.store._install(self.tmp, digest)
        except BaseException:
            self.abort()
            raise
        return BlobRef(digest, self.size)

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self._f.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        if exc[0] is not None:
            self.abort()


@dataclass
class VerifyReport:
    """Result of :meth:`Store.verify`. ``ok`` is False when a blob is corrupt, a referenced blob is missing, or a
    channel/manifest cannot be read."""

    blobs: int = 0
    bytes: int = 0
    corrupt: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    stray: list[str] = field(default_factory=list)
    stale_tmp: int = 0
    unreferenced: int = 0
    unreferenced_bytes: int = 0
    channels: int = 0

    @property
    def ok(self) -> bool:
        return not (self.corrupt or self.missing or self.invalid)

    def to_json(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["ok"] = self.ok
        return d


@dataclass
class GcReport:
    removed: list[str] = field(default_factory=list)
    removed_bytes: int = 0
    kept_young: int = 0
    removed_tmp: int = 0
    reachable: int = 0

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Store:
    """A store folder. ``Store(path)`` opens an existing store; ``Store(path, create=True)`` also creates it."""

    def __init__(self, root: str | os.PathLike, create: bool = False) -> None:
        self.root = Path(root)
        self._lock_depth = 0
        marker = self.root / MARKER
        if not marker.exists():
            if not create:
                raise StoreError(f"{self.root} is not an edge-sdk store (no {MARKER}); create one with "
                                 "`edge-sdk store add --store DIR ...`")
            if self.root.exists() and not self.root.is_dir():
                raise StoreError(f"{self.root} exists and is not a folder")
            if self.root.exists() and any(p.name not in (".", "..") for p in self.root.iterdir()):
                raise StoreError(f"{self.root} is a non-empty folder without {MARKER}; use an empty or new folder")
            for sub in ("blobs/" + ALGORITHM, "channels", "tmp"):
                (self.root / sub).mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(marker, json.dumps({"format": STORE_FORMAT, "version": STORE_VERSION}).encode(),
                               make_parents=True)
        try:
            info = json.loads(marker.read_bytes()[:4096])
        except (OSError, ValueError) as exc:
            raise StoreError(f"{marker} is unreadable: {exc}") from exc
        if not isinstance(info, dict) or info.get("format") != STORE_FORMAT:
            raise StoreError(f"{marker} does not describe an edge-sdk store")
        if info.get("version") != STORE_VERSION:
            raise StoreError(f"store version {info.get('version')} is not supported (this edge-sdk reads "
                             f"version {STORE_VERSION}); upgrade edge-sdk")
        for sub in ("blobs/" + ALGORITHM, "channels", "tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------------------------ locking
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive store lock (flock) for channel moves, publishes and gc; re-entrant within one
        :class:`Store` object. Blob writes need none (they are idempotent)."""
        if self._lock_depth:
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._lock_depth = 1
            yield
        finally:
            self._lock_depth = 0
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    # ------------------------------------------------------------------------------------ blobs
    def blob_path(self, digest: str) -> Path:
        """Where the blob ``digest`` lives (validated name; the file may not exist)."""
        return self.root / blob_relpath(digest)

    def has(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def blob_ref(self, digest: str) -> BlobRef:
        try:
            return BlobRef(digest, self.blob_path(digest).stat().st_size)
        except FileNotFoundError:
            raise BlobNotFound(f"the store has no blob {digest}") from None

    def read_blob(self, digest: str, max_bytes: int) -> bytes:
        """The bytes of a (small) blob, verified against its name."""
        path = self.blob_path(digest)
        try:
            with open(path, "rb") as f:
                data = f.read(max_bytes + 1)
        except FileNotFoundError:
            raise BlobNotFound(f"the store has no blob {digest}") from None
        if len(data) > max_bytes:
            raise BlobCorrupt(f"blob {digest[:23]}... is larger than {max_bytes} bytes")
        if digest_bytes(data) != digest:
            raise BlobCorrupt(f"blob {digest[:23]}... does not hash to its name (run `edge-sdk store verify`)")
        return data

    def writer(self, expected: str | None = None, max_bytes: int = MAX_BLOB_BYTES) -> BlobWriter:
        return BlobWriter(self, expected, max_bytes)

    def put_bytes(self, data: bytes, expected: str | None = None) -> BlobRef:
        with self.writer(expected) as w:
            w.write(data)
            return w.commit()

    def put_file(self, path: str | os.PathLike, expected: str | None = None) -> BlobRef:
        """Copy a file into the store (streamed, hashed, atomic); returns its :class:`BlobRef`."""
        with self.writer(expected) as w, open(path, "rb") as f:
            while chunk := f.read(HASH_CHUNK):
                w.write(chunk)
            return w.commit()

    def _install(self, tmp: Path, digest: str) -> None:
        final = self.blob_path(digest)
        fan = final.parent
        if not fan.is_dir():
            fan.mkdir(parents=True, exist_ok=True)
            fsync_dir(fan.parent)
        if final.exists() and final.stat().st_size == tmp.stat().st_size and self._hashes_to(final, digest):
            os.unlink(tmp)  # already stored (and intact): keep the old file
            return
        os.replace(tmp, final)  # new, or repairs a corrupt copy
        fsync_dir(fan)

    @staticmethod
    def _hashes_to(path: Path, digest: str) -> bool:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(HASH_CHUNK):
                h.update(chunk)
        return f"{ALGORITHM}:{h.hexdigest()}" == digest

    def iter_blobs(self) -> Iterator[tuple[str, Path]]:
        """(digest, path) of every well-named blob file; stray files are skipped (see :meth:`verify`)."""
        base = self.root / "blobs" / ALGORITHM
        for fan in sorted(base.iterdir()) if base.is_dir() else []:
            if not fan.is_dir():
                continue
            for p in sorted(fan.iterdir()):
                d = f"{ALGORITHM}:{p.name}"
                if is_digest(d) and p.name[:2] == fan.name and p.is_file():
                    yield d, p

    # ------------------------------------------------------------------------------------ manifests
    def manifest(self, digest: str, trusted_keys: Any = None, require_signature: bool = False) -> Manifest:
        """Read and verify the manifest blob ``digest``."""
        return read_manifest(self.read_blob(digest, MAX_MANIFEST_BYTES), trusted_keys, require_signature)

    def put_manifest(self, data: bytes) -> Manifest:
        """Store manifest bytes after checking they parse and every blob they name is present and of the size
        the manifest gives."""
        m = read_manifest(data)
        self.check_complete(m)
        self.put_bytes(data, expected=m.digest)
        return m

    def check_complete(self, m: Manifest) -> None:
        for b in m.release.blobs():
            try:
                size = self.blob_path(b.digest).stat().st_size
            except FileNotFoundError:
                raise BlobNotFound(f"release {m.release.release!r} names blob {b.digest} which the store lacks; "
                                   "upload it first") from None
            if size != b.size:
                raise BlobCorrupt(f"blob {b.digest[:23]}... is {size} bytes in the store, the manifest says {b.size}")

    # ------------------------------------------------------------------------------------ channels
    def channel_path(self, name: str) -> Path:
        return self.root / channel_relpath(name)

    def channel(self, name: str) -> ChannelRecord:
        """The channel's record; :class:`ChannelNotFound` if there is none."""
        path = self.channel_path(name)
        try:
            with open(path, "rb") as f:
                data = f.read(1 << 16)
        except (FileNotFoundError, NotADirectoryError):
            raise ChannelNotFound(f"the store has no channel {name!r}") from None
        return parse_channel_record(data, expect_name=name)

    def channels(self) -> list[ChannelRecord]:
        out = []
        base = self.root / "channels"
        for p in sorted(base.rglob("*.json")):
            name = p.relative_to(base).as_posix()[: -len(".json")]
            try:
                out.append(self.channel(name))
            except ReleaseError:
                continue  # reported by verify()
        return out

    def set_channel(self, name: str, manifest_digest: str, trusted_keys: Any = None) -> ChannelRecord:
        """Point channel ``name`` at a stored manifest (which must parse, verify under ``trusted_keys`` if given,
        and have all its blobs in the store). Atomic; takes the store lock."""
        check_channel_name(name)
        m = self.manifest(manifest_digest, trusted_keys, require_signature=bool(trusted_keys))
        self.check_complete(m)
        with self.lock():
            try:
                old: ChannelRecord | None = self.channel(name)
            except (ChannelNotFound, ChannelInvalid):
                old = None
            rec = old.advanced(m.ref, utc_now()) if old else ChannelRecord(name, m.ref, utc_now())
            path = self.channel_path(name)
            if not path.parent.is_dir():
                path.parent.mkdir(parents=True, exist_ok=True)
            self._write_channel(path, rec)
        return rec

    def _write_channel(self, path: Path, rec: ChannelRecord) -> None:
        atomic_write_bytes(path, rec.to_bytes())

    # ------------------------------------------------------------------------------------ verify / gc
    def reachable(self) -> tuple[set[str], list[str]]:
        """(digests reachable from every channel head and history entry, problems found on the way)."""
        keep: set[str] = set()
        problems: list[str] = []
        base = self.root / "channels"
        for p in sorted(base.rglob("*.json")):
            name = p.relative_to(base).as_posix()[: -len(".json")]
            try:
                rec = self.channel(name)
            except ReleaseError as exc:
                problems.append(f"channel file {p.relative_to(self.root)}: {exc}")
                continue
            for ref in (rec.manifest, *rec.history):
                keep.add(ref.digest)
                try:
                    m = self.manifest(ref.digest)
                except BlobNotFound:
                    problems.append(f"channel {name}: manifest {ref.digest} is missing")
                    continue
                except (ManifestError, BlobCorrupt) as exc:
                    problems.append(f"channel {name}: manifest {ref.digest[:23]}... unreadable: {exc}")
                    continue
                for b in m.release.blobs():
                    keep.add(b.digest)
                    if not self.has(b.digest):
                        problems.append(f"channel {name}: release {m.release.release!r} blob {b.digest} is missing")
        return keep, problems

    def verify(self, progress: bool = False) -> VerifyReport:
        """Re-hash every blob; check every channel, every manifest it reaches and that every blob they name is
        present. Read-only."""
        rep = VerifyReport()
        keep, problems = self.reachable()
        rep.channels = len(list((self.root / "channels").rglob("*.json")))
        for msg in problems:
            (rep.missing if "missing" in msg else rep.invalid).append(msg)
        base = self.root / "blobs" / ALGORITHM
        for p in sorted(base.rglob("*")):
            if p.is_file() and not (is_digest(f"{ALGORITHM}:{p.name}") and p.parent.parent == base
                                    and p.parent.name == p.name[:2]):
                rep.stray.append(str(p.relative_to(self.root)))
        blobs = list(self.iter_blobs())
        it: Iterable[tuple[str, Path]] = blobs
        if progress:
            from tqdm import tqdm

            it = tqdm(blobs, unit="blob", desc="verify")
        for digest, path in it:
            rep.blobs += 1
            size = path.stat().st_size
            rep.bytes += size
            if not self._hashes_to(path, digest):
                rep.corrupt.append(digest)
            if digest not in keep:
                rep.unreferenced += 1
                rep.unreferenced_bytes += size
        rep.stale_tmp = sum(1 for _ in (self.root / "tmp").iterdir())
        return rep

    def gc(self, grace_s: float = DEFAULT_GC_GRACE_S, dry_run: bool = False) -> GcReport:
        """Remove blobs no channel reaches (head or history) and temp files, both only when older than
        ``grace_s`` seconds (a concurrent publish writes its blobs before it moves the channel)."""
        rep = GcReport()
        now = time.time()
        with self.lock():
            keep, problems = self.reachable()
            rep.reachable = len(keep)
            for digest, path in list(self.iter_blobs()):
                if digest in keep:
                    continue
                st = path.stat()
                if now - st.st_mtime < grace_s:
                    rep.kept_young += 1
                    continue
                rep.removed.append(digest)
                rep.removed_bytes += st.st_size
                if not dry_run:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
                    with contextlib.suppress(OSError):
                        path.parent.rmdir()  # only succeeds when the fan-out folder is empty
            for t in list((self.root / "tmp").iterdir()):
                try:
                    if now - t.stat().st_mtime >= grace_s:
                        rep.removed_tmp += 1
                        if not dry_run:
                            os.unlink(t)
                except OSError as exc:
                    if exc.errno != errno.ENOENT:
                        raise
        return rep

"""The device's release cache: verified blobs by digest, partial downloads, and what each channel resolved to.

Layout (docs/transfer.md, "Device cache")::

    CACHE/edge-sdk-cache.json             {"format": "edge-sdk-cache", "version": 1}
    CACHE/blobs/sha256/ab/ab12...          verified blobs only (read-only files), same layout as a store
    CACHE/partial/<hex>.partial            bytes received so far of a blob being downloaded
    CACHE/partial/<hex>.json               {"digest", "size", "validator"}: the ETag the bytes came with
    CACHE/channels/<name>.json             the release a channel last resolved to (manifest, tier, created)
    CACHE/last-fetch.json                  the report of the last fetch
    CACHE/lock                             flock(2): one fetch at a time per cache

Nothing enters ``blobs/`` before its SHA-256 matched the name it was asked for (and, for a manifest, its
signature verified): a partial download lives in ``partial/`` until then, and the move is an atomic rename.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edge_sdk.atomic import atomic_write_bytes
from edge_sdk.release.channel import channel_relpath
from edge_sdk.release.digest import ALGORITHM, blob_relpath, is_digest, parse_digest
from edge_sdk.release.errors import StoreError
from edge_sdk.release.store import fsync_dir

MARKER = "edge-sdk-cache.json"
CACHE_FORMAT = "edge-sdk-cache"
CACHE_VERSION = 1
MAX_STATE_BYTES = 65536


class ReleaseCache:
    """A cache folder (created on first use)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        marker = self.root / MARKER
        if not marker.exists():
            if self.root.exists() and any(self.root.iterdir()):
                raise StoreError(f"{self.root} is a non-empty folder without {MARKER}; use an empty or new folder "
                                 "as the device cache")
            for sub in ("blobs/" + ALGORITHM, "partial", "channels"):
                (self.root / sub).mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(marker, json.dumps({"format": CACHE_FORMAT, "version": CACHE_VERSION}).encode())
        try:
            info = json.loads(marker.read_bytes()[:4096])
        except (OSError, ValueError) as exc:
            raise StoreError(f"{marker} is unreadable: {exc}") from exc
        if not isinstance(info, dict) or info.get("format") != CACHE_FORMAT or info.get("version") != CACHE_VERSION:
            raise StoreError(f"{self.root} is not an edge-sdk device cache of version {CACHE_VERSION}")
        for sub in ("blobs/" + ALGORITHM, "partial", "channels"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    @classmethod
    def find(cls, path: str | os.PathLike) -> ReleaseCache:
        """The cache that holds ``path`` (a cache folder, or a file inside one)."""
        p = Path(path).resolve()
        for d in [p, *p.parents]:
            if (d / MARKER).is_file():
                return cls(d)
        raise StoreError(f"{path} is not inside an edge-sdk device cache (no {MARKER} above it)")

    # ------------------------------------------------------------------------------------ blobs
    def path(self, digest: str) -> Path:
        return self.root / blob_relpath(digest)

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def digests(self) -> set[str]:
        """Every blob digest in the cache."""
        out = set()
        base = self.root / "blobs" / ALGORITHM
        for fan in base.iterdir():
            if fan.is_dir():
                for p in fan.iterdir():
                    d = f"{ALGORITHM}:{p.name}"
                    if is_digest(d) and p.is_file():
                        out.add(d)
        return out

    def partial_paths(self, digest: str) -> tuple[Path, Path]:
        hx = parse_digest(digest)
        return self.root / "partial" / f"{hx}.partial", self.root / "partial" / f"{hx}.json"

    def install(self, verified: Path, digest: str) -> Path:
        """Move a file whose bytes were verified to hash to ``digest`` into ``blobs/`` (atomic rename)."""
        final = self.path(digest)
        fan = final.parent
        if not fan.is_dir():
            fan.mkdir(parents=True, exist_ok=True)
            fsync_dir(fan.parent)
        os.chmod(verified, 0o444)
        os.replace(verified, final)
        fsync_dir(fan)
        return final

    def drop_partial(self, digest: str) -> None:
        for p in self.partial_paths(digest):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(p)

    # ------------------------------------------------------------------------------------ channel state
    def state(self, channel: str) -> dict[str, Any] | None:
        p = self.root / channel_relpath(channel)
        try:
            data = p.read_bytes()[:MAX_STATE_BYTES + 1]
            obj = json.loads(data)
        except (OSError, ValueError):
            return None
        return obj if isinstance(obj, dict) else None

    def set_state(self, channel: str, state: dict[str, Any]) -> None:
        atomic_write_bytes(self.root / channel_relpath(channel), json.dumps(state, indent=1, sort_keys=True).encode(),
                           make_parents=True)

    def states(self) -> dict[str, dict[str, Any]]:
        out = {}
        base = self.root / "channels"
        for p in sorted(base.rglob("*.json")):
            name = p.relative_to(base).as_posix()[: -len(".json")]
            st = self.state(name)
            if st is not None:
                out[name] = st
        return out

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """One fetch at a time per cache (flock; released when the process dies, even by SIGKILL)."""
        fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def resolve_release(path: str | os.PathLike, channel: str | None = None,
                    trusted_keys: Any = None) -> tuple[Path, Path, dict[str, Any]]:
    """(payload path, graph path, info) of a fetched release, for ``device train --release``. ``info["task"]``:
    the cached task blob of a v2 payload (None for v1).

    ``path`` is a cache folder (the release its channel last resolved to; ``channel`` picks one when the cache
    holds several) or a manifest file inside a cache (the tier the fetch chose for it, else the first tier whose
    payload and graph are both cached). With ``trusted_keys`` the manifest's signature is checked again."""
    from edge_sdk.release.digest import digest_bytes
    from edge_sdk.release.errors import BlobNotFound, ChannelNotFound
    from edge_sdk.release.manifest import MAX_MANIFEST_BYTES, read_manifest

    p = Path(path)
    cache = ReleaseCache.find(p)
    keys = list(trusted_keys) if trusted_keys else None
    if p.is_dir():
        states = cache.states()
        if channel is not None:
            if channel not in states:
                raise ChannelNotFound(f"cache {cache.root} holds no release of channel {channel!r} "
                                      f"(it has {sorted(states) or 'none'}); run `edge-sdk device fetch` first")
            state = states[channel]
        elif len(states) == 1:
            state = next(iter(states.values()))
        else:
            raise ChannelNotFound(f"cache {cache.root} holds {len(states)} channels {sorted(states)}: pick one with "
                                  "--channel" if states else f"cache {cache.root} holds no fetched release yet")
        mpath = cache.path(state["manifest"])
    else:
        mpath, state = p, {}
    with open(mpath, "rb") as f:
        data = f.read(MAX_MANIFEST_BYTES + 1)
    m = read_manifest(data, trusted_keys=keys, require_signature=bool(keys))
    if not state:
        state = next((s for s in cache.states().values() if s.get("manifest") == digest_bytes(data)), {})
    tiers = [t for t in m.tiers if t.name == state.get("tier")] or \
        [t for t in m.tiers if cache.has(t.payload.digest) and cache.has(t.graph.digest)]
    if not tiers:
        raise BlobNotFound(f"no tier of release {m.release.release!r} is complete in cache {cache.root}; fetch it first")
    t = tiers[0]
    payload, graph = cache.path(t.payload.digest), cache.path(t.graph.digest)
    # payload format v2: the task blob (extra blob of type "task", tier or release level) lies next to the graph,
    # where the payload reader finds it by digest (edge_sdk.payload.taskblob.blob_tree_path)
    tasks = [cache.path(b.digest) for b in (*t.extra, *m.release.extra) if b.type == "task"]
    for f_ in (payload, graph, *tasks):
        if not f_.is_file():
            raise BlobNotFound(f"{f_} is missing from the cache; run `edge-sdk device fetch` again")
    task = state.get("task") if state.get("tier") == t.name else None
    info = {"release": m.release.release, "manifest": m.digest, "tier": t.name, "signature": m.signature_status,
            "channel": state.get("channel"), "expected_kpis": dict(t.kpis),
            "task": str(cache.path(task)) if isinstance(task, str) and is_digest(task) else
            (str(tasks[0]) if len(tasks) == 1 else None)}
    return payload, graph, info

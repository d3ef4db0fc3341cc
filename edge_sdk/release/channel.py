"""Channels: mutable, named pointers to a release manifest (``beam-uma/stable`` -> ``sha256:...``).

A channel record is small canonical JSON, the same bytes in the store (``channels/<name>.json``) and in the
server's ``GET /v1/channels/<name>`` response::

    {"channel": "beam-uma/stable", "history": [{"digest", "size"}, ...], "manifest": {"digest", "size"},
     "updated": "2026-11-29T12:00:00Z"}

``history`` holds the previous heads, newest first, at most :data:`CHANNEL_HISTORY`: devices part-way through
a download of the previous release can still finish it, and ``store gc`` keeps those releases.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_sdk.release.digest import MAX_BLOB_BYTES, BlobRef, is_digest
from edge_sdk.release.errors import ChannelInvalid, InvalidChannelName

#: one segment: lower-case letters, digits, '.', '_', '-', starting with a letter or digit
SEGMENT_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}\Z")
MAX_SEGMENTS = 4
CHANNEL_HISTORY = 8
MAX_RECORD_BYTES = 16384
RECORD_KEYS = frozenset({"channel", "history", "manifest", "updated"})


def check_channel_name(name: Any) -> str:
    """Return ``name`` if it is a valid channel name (1-4 '/'-separated segments of ``[a-z0-9][a-z0-9._-]*``,
    each <= 64 chars), else raise :class:`InvalidChannelName`. No valid name is ``.``/``..``, absolute, or
    contains a backslash, so a channel name can never leave the channels folder."""
    if not isinstance(name, str):
        raise InvalidChannelName(f"channel names are strings, got {type(name).__name__}")
    parts = name.split("/")
    if not 1 <= len(parts) <= MAX_SEGMENTS or any(SEGMENT_RE.match(p) is None for p in parts):
        raise InvalidChannelName(
            f"invalid channel name {name[:100]!r}: use 1-{MAX_SEGMENTS} segments separated by '/', each of lower-case "
            "letters, digits, '.', '_', '-' starting with a letter or digit (e.g. beam-uma/stable)")
    return name


def channel_relpath(name: str) -> Path:
    """``channels/<segment>/.../<last segment>.json`` (name validated; ``a`` and ``a/b`` never collide: one is the
    file ``a.json``, the other lives in the folder ``a``)."""
    parts = check_channel_name(name).split("/")
    return Path("channels", *parts[:-1], parts[-1] + ".json")


@dataclass(frozen=True)
class ChannelRecord:
    """A channel's head (``manifest``), when it moved (``updated``) and its previous heads (newest first)."""

    channel: str
    manifest: BlobRef
    updated: str
    history: tuple[BlobRef, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"channel": self.channel, "history": [h.to_json() for h in self.history],
                "manifest": self.manifest.to_json(), "updated": self.updated}

    def to_bytes(self) -> bytes:
        from edge_sdk.release.manifest import canonical_json

        return canonical_json(self.to_json())

    def advanced(self, manifest: BlobRef, updated: str) -> ChannelRecord:
        """The record after pointing the channel at ``manifest`` (the old head goes into the history)."""
        if manifest.digest == self.manifest.digest:
            return ChannelRecord(self.channel, manifest, updated, self.history)
        hist = [self.manifest, *(h for h in self.history if h.digest != manifest.digest)]
        return ChannelRecord(self.channel, manifest, updated, tuple(hist[:CHANNEL_HISTORY]))


def _ref(v: Any, where: str) -> BlobRef:
    if not isinstance(v, dict) or set(v) != {"digest", "size"}:
        raise ChannelInvalid(f"channel record: {where} must be {{'digest', 'size'}}")
    if not is_digest(v["digest"]):
        raise ChannelInvalid(f"channel record: {where}.digest is not 'sha256:' + 64 hex digits")
    size = v["size"]
    if not isinstance(size, int) or isinstance(size, bool) or not 0 < size <= MAX_BLOB_BYTES:
        raise ChannelInvalid(f"channel record: {where}.size must be a positive integer")
    return BlobRef(v["digest"], size)


def parse_channel_record(data: bytes, expect_name: str | None = None) -> ChannelRecord:
    """Strictly parse a channel record (size-capped, canonical JSON, exact keys); with ``expect_name`` the record
    must name that channel (a server cannot answer for channel A with channel B's head)."""
    from edge_sdk.release.errors import ManifestInvalid
    from edge_sdk.release.manifest import CREATED_RE, _decode_body

    if len(data) > MAX_RECORD_BYTES:
        raise ChannelInvalid(f"channel record is {len(data)} bytes, more than the cap {MAX_RECORD_BYTES}")
    try:
        obj = _decode_body(bytes(data), "channel record")
    except ManifestInvalid as exc:
        raise ChannelInvalid(str(exc)) from None
    if not isinstance(obj, dict) or set(obj) != RECORD_KEYS:
        raise ChannelInvalid(f"channel record must have exactly the keys {sorted(RECORD_KEYS)}")
    try:
        name = check_channel_name(obj["channel"])
    except InvalidChannelName as exc:
        raise ChannelInvalid(f"channel record: {exc}") from None
    if expect_name is not None and name != expect_name:
        raise ChannelInvalid(f"asked for channel {expect_name!r}, the record is for {name!r}")
    upd = obj["updated"]
    if not isinstance(upd, str) or CREATED_RE.match(upd) is None:
        raise ChannelInvalid("channel record: updated must be 'YYYY-MM-DDTHH:MM:SSZ'")
    hist = obj["history"]
    if not isinstance(hist, list) or len(hist) > CHANNEL_HISTORY:
        raise ChannelInvalid(f"channel record: history must be a list of at most {CHANNEL_HISTORY} entries")
    return ChannelRecord(name, _ref(obj["manifest"], "manifest"), upd,
                         tuple(_ref(h, f"history[{i}]") for i, h in enumerate(hist)))

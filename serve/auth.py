"""Bearer tokens for ``edge-sdk serve``: a token file holding only SHA-256 hashes, scopes, constant-time checks.

Token file (JSON, written atomically with mode 0600 by ``edge-sdk token add``)::

    {"format": "edge-sdk-tokens", "version": 1,
     "tokens": [{"name": "fleet-a", "sha256": "<hex of the token>", "scopes": ["read:beam-uma/*"],
                 "created": "2026-11-29T12:00:00Z"}]}

A token is ``edt_`` + 43 url-safe base64 characters (32 random bytes, 256 bits), shown once when it is made.
Its SHA-256 is what the file keeps: 256 random bits need no slow password hash (nothing to brute-force), and a
stolen token file gives no usable token. A presented token is hashed and compared with **every** stored hash
with :func:`hmac.compare_digest` (the time taken does not depend on which, or whether any, entry matches).

Scopes: ``admin`` (upload blobs, move channels, read everything, statistics) and ``read:<pattern>`` where the
pattern is a channel name (``beam-uma/stable``), a prefix ``beam-uma/*`` (every channel under it) or ``*``.
Stdlib only: the token CLI works without the ``serve`` extra.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_sdk.errors import ConfigError
from edge_sdk.release.channel import check_channel_name
from edge_sdk.release.errors import InvalidChannelName

TOKEN_FORMAT = "edge-sdk-tokens"
TOKEN_VERSION = 1
TOKEN_PREFIX = "edt_"
TOKEN_RE = re.compile(r"edt_[A-Za-z0-9_-]{43}\Z")
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}\Z")
MAX_TOKEN_FILE_BYTES = 1 << 20
MAX_TOKENS = 10000
ADMIN = "admin"


def check_scope(scope: str) -> str:
    """``admin``, ``read:*``, ``read:<channel>`` or ``read:<channel prefix>/*``; else ConfigError."""
    if scope == ADMIN or scope == "read:*":
        return scope
    if scope.startswith("read:"):
        pat = scope[5:]
        try:
            check_channel_name(pat[:-2] if pat.endswith("/*") else pat)
            return scope
        except InvalidChannelName:
            pass
    raise ConfigError(f"invalid scope {scope!r}: use 'admin', 'read:*', 'read:<channel>' or 'read:<prefix>/*' "
                      "(e.g. read:beam-uma/*)")


def scope_allows_channel(scopes: tuple[str, ...], channel: str) -> bool:
    for s in scopes:
        if s == ADMIN or s == "read:*":
            return True
        if s.startswith("read:"):
            pat = s[5:]
            if pat == channel or (pat.endswith("/*") and channel.startswith(pat[:-1])):
                return True
    return False


@dataclass(frozen=True)
class Principal:
    """Who made a request: the token's name and scopes (``anonymous`` when the server runs without tokens)."""

    name: str
    scopes: tuple[str, ...]

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.scopes

    def may_read(self, channel: str) -> bool:
        return scope_allows_channel(self.scopes, channel)


ANONYMOUS_READER = Principal("anonymous", ("read:*",))


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def _validate_entry(e: Any, where: str) -> dict[str, Any]:
    if not isinstance(e, dict) or not {"name", "sha256", "scopes"} <= set(e):
        raise ConfigError(f"{where}: each token needs name, sha256 and scopes")
    if not isinstance(e["name"], str) or NAME_RE.match(e["name"]) is None:
        raise ConfigError(f"{where}: bad token name {str(e['name'])[:40]!r}")
    if not isinstance(e["sha256"], str) or re.fullmatch(r"[0-9a-f]{64}", e["sha256"]) is None:
        raise ConfigError(f"{where}: sha256 of token {e['name']!r} must be 64 lowercase hex digits")
    if not isinstance(e["scopes"], list) or not e["scopes"] or not all(isinstance(s, str) for s in e["scopes"]):
        raise ConfigError(f"{where}: token {e['name']!r} needs a non-empty list of scopes")
    for s in e["scopes"]:
        check_scope(s)
    return e


def read_token_file(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The entries of a token file (validated); a missing file is an empty list."""
    p = Path(path)
    if not p.exists():
        return []
    if p.stat().st_size > MAX_TOKEN_FILE_BYTES:
        raise ConfigError(f"{p} is larger than {MAX_TOKEN_FILE_BYTES} bytes; not a token file")
    try:
        obj = json.loads(p.read_bytes())
    except ValueError as exc:
        raise ConfigError(f"{p} is not a token file (invalid JSON: {exc})") from None
    if not isinstance(obj, dict) or obj.get("format") != TOKEN_FORMAT or obj.get("version") != TOKEN_VERSION:
        raise ConfigError(f"{p} is not an edge-sdk token file (format {TOKEN_FORMAT} v{TOKEN_VERSION})")
    toks = obj.get("tokens")
    if not isinstance(toks, list) or len(toks) > MAX_TOKENS:
        raise ConfigError(f"{p}: 'tokens' must be a list of at most {MAX_TOKENS} entries")
    entries = [_validate_entry(e, str(p)) for e in toks]
    if len({e["name"] for e in entries}) != len(entries):
        raise ConfigError(f"{p}: token names must be unique")
    return entries


def write_token_file(path: str | os.PathLike, entries: list[dict[str, Any]]) -> None:
    from edge_sdk.atomic import atomic_write_text

    atomic_write_text(path, json.dumps({"format": TOKEN_FORMAT, "version": TOKEN_VERSION, "tokens": entries},
                                       indent=1, sort_keys=True) + "\n", mode=0o600, make_parents=True)


def add_token(path: str | os.PathLike, name: str, scopes: list[str]) -> str:
    """Create a token with ``scopes`` under ``name`` in the token file; returns the token (shown once)."""
    if NAME_RE.match(name) is None:
        raise ConfigError(f"token name {name!r}: letters, digits, '.', '_', '@', '+', '-' (at most 64)")
    if not scopes:
        raise ConfigError("give at least one --scope (admin, read:*, read:<channel>, read:<prefix>/*)")
    for s in scopes:
        check_scope(s)
    entries = read_token_file(path)
    if any(e["name"] == name for e in entries):
        raise ConfigError(f"a token named {name!r} exists; revoke it first or pick another name")
    token = new_token()
    entries.append({"name": name, "sha256": hash_token(token), "scopes": list(scopes),
                    "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    write_token_file(path, entries)
    return token


def revoke_token(path: str | os.PathLike, name: str) -> None:
    entries = read_token_file(path)
    kept = [e for e in entries if e["name"] != name]
    if len(kept) == len(entries):
        raise ConfigError(f"no token named {name!r} in {path}")
    write_token_file(path, kept)


class TokenSet:
    """The server's view of a token file, reloaded when the file changes (checked at most once a second), so
    ``edge-sdk token revoke`` takes effect without a restart."""

    def __init__(self, path: str | os.PathLike | None) -> None:
        self.path = Path(path) if path is not None else None
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self._entries: list[tuple[bytes, Principal]] = []
        if self.path is not None:
            if not self.path.is_file():
                raise ConfigError(f"token file {self.path} does not exist; make one with `edge-sdk token add`")
            self._load()

    @property
    def enabled(self) -> bool:
        return self.path is not None

    def _load(self) -> None:
        assert self.path is not None
        st = self.path.stat()
        entries = read_token_file(self.path)
        self._entries = [(bytes.fromhex(e["sha256"]), Principal(e["name"], tuple(e["scopes"]))) for e in entries]
        self._stamp = (st.st_mtime_ns, st.st_size)

    def _maybe_reload(self) -> None:
        now = time.monotonic()
        if self.path is None or now - self._checked < 1.0:
            return
        self._checked = now
        try:
            st = self.path.stat()
            if (st.st_mtime_ns, st.st_size) != self._stamp:
                self._load()
        except (OSError, ConfigError):
            self._entries = []  # an unreadable token file admits nobody (fail closed)
            self._stamp = None

    def authenticate(self, token: str) -> Principal | None:
        """The principal of ``token``, or None. Compares against every entry in constant time."""
        self._maybe_reload()
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        found: Principal | None = None
        for h, principal in self._entries:
            if hmac.compare_digest(h, digest):
                found = principal
        return found

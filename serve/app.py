"""The Starlette application of ``edge-sdk serve``: blobs with Range/If-Range, channels, uploads, auth, logs.

Routes (docs/transfer.md, "HTTP API"):

====================================  =======================================================================
``GET|HEAD /v1/blobs/sha256:<hex>``    the blob; Range + If-Range (RFC 9110) by Starlette's ``FileResponse``;
                                      strong ``ETag: "sha256:<hex>"``; ``Cache-Control: public, max-age=31536000,
                                      immutable``; readable by a token whose channels reach the blob
``GET|HEAD /v1/channels/<name>``       the channel record (canonical JSON); ``Cache-Control: private, max-age=5``
``PUT /v1/blobs/sha256:<hex>``         admin: upload; the digest is checked on receipt, then an atomic rename
``PUT /v1/channels/<name>``            admin: ``{"manifest": "sha256:..."}`` moves the channel (manifest present,
                                      complete, and signed by ``--trusted-key`` when the server was given one)
``GET /v1/stats``                      admin: bytes and requests per blob, responses per status
``GET /healthz``                       liveness (no auth)
====================================  =======================================================================

The ETag is the SHA-256 of the bytes actually served: the server hashes each blob file once per (device,
inode, size, mtime, ctime) and caches the result, so a file changed in the store after it was written gets a
new ETag (and a stale ``If-Range`` gets the full body, not a splice of two versions). Normally it equals the
blob's name; when it does not, the store is corrupt, the access log says so, and a client sees the mismatch in
the headers before it reads the body.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from edge_sdk.release.channel import check_channel_name
from edge_sdk.release.digest import HASH_CHUNK, is_digest
from edge_sdk.release.errors import (
    BlobCorrupt,
    BlobNotFound,
    ChannelNotFound,
    InvalidChannelName,
    ManifestError,
    ReleaseError,
    StoreError,
)
from edge_sdk.release.store import Store
from edge_sdk.serve.auth import ANONYMOUS_READER, Principal, TokenSet

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

BLOB_CACHE_CONTROL = "public, max-age=31536000, immutable"
CHANNEL_CACHE_CONTROL = "private, max-age=5"
MAX_CHANNEL_PUT_BYTES = 4096
#: request line + headers a request may have (uvicorn's h11 limit is set to the same value)
MAX_HEADER_BYTES = 16384
DEFAULT_MAX_UPLOAD = 1 << 30


@dataclass
class ServeConfig:
    """Settings of one server (``edge-sdk serve`` options)."""

    store: Path
    tokens: Path | None = None
    trusted_keys: tuple[str, ...] = ()
    max_upload: int = DEFAULT_MAX_UPLOAD
    access_log: Path | None = None  #: None = stderr
    index_ttl_s: float = 1.0


# ------------------------------------------------------------------------------------------ blob digests
class BlobVerifier:
    """SHA-256 of each blob file, cached by (dev, ino, size, mtime_ns, ctime_ns): hashed once per file version.
    Concurrent first requests for one file share a single hash computation."""

    def __init__(self, max_entries: int = 65536) -> None:
        self._cache: OrderedDict[tuple[int, ...], str] = OrderedDict()
        self._inflight: dict[tuple[int, ...], asyncio.Future[str]] = {}
        self.max_entries = max_entries
        self.hashed = 0

    @staticmethod
    def _key(st: os.stat_result) -> tuple[int, ...]:
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    @staticmethod
    def _hash(path: Path) -> str:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(HASH_CHUNK):
                h.update(chunk)
        return "sha256:" + h.hexdigest()

    async def digest(self, path: Path, st: os.stat_result) -> str:
        key = self._key(st)
        got = self._cache.get(key)
        if got is not None:
            self._cache.move_to_end(key)
            return got
        fut = self._inflight.get(key)
        if fut is not None:
            return await asyncio.shield(fut)
        fut = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        try:
            d = await anyio.to_thread.run_sync(self._hash, path)
            self.hashed += 1
            self._cache[key] = d
            while len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)
            fut.set_result(d)
            return d
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # retrieved: no "never retrieved" warning when nobody else waited
            raise
        finally:
            self._inflight.pop(key, None)


# ------------------------------------------------------------------------------------------ who may read what
class ReadIndex:
    """Which blobs each channel reaches (head + history manifests and every blob they name). Refreshed at most
    every ``ttl`` seconds (and on demand, rate-limited, before a read is refused); manifests are immutable, so
    their blob sets are cached by digest."""

    def __init__(self, store: Store, ttl: float = 1.0) -> None:
        self.store, self.ttl = store, ttl
        self._by_channel: dict[str, frozenset[str]] = {}
        self._stamps: dict[str, tuple[int, int]] = {}
        self._manifest_blobs: dict[str, frozenset[str]] = {}
        self._refreshed = -1e9

    def _blobs_of(self, digest: str) -> frozenset[str]:
        got = self._manifest_blobs.get(digest)
        if got is None:
            try:
                m = self.store.manifest(digest)
                got = frozenset([digest, *(b.digest for b in m.release.blobs())])
            except (ReleaseError, OSError):
                got = frozenset([digest])  # unreadable: only the manifest blob itself
            self._manifest_blobs[digest] = got
        return got

    def refresh(self) -> None:
        base = self.store.root / "channels"
        seen: set[str] = set()
        for p in base.rglob("*.json"):
            name = p.relative_to(base).as_posix()[: -len(".json")]
            try:
                st = p.stat()
            except OSError:
                continue
            seen.add(name)
            stamp = (st.st_mtime_ns, st.st_size)
            if self._stamps.get(name) == stamp:
                continue
            try:
                rec = self.store.channel(name)
            except ReleaseError:
                self._by_channel.pop(name, None)
                continue
            blobs: set[str] = set()
            for ref in (rec.manifest, *rec.history):
                blobs |= self._blobs_of(ref.digest)
            self._by_channel[name] = frozenset(blobs)
            self._stamps[name] = stamp
        for gone in set(self._by_channel) - seen:
            self._by_channel.pop(gone, None)
            self._stamps.pop(gone, None)
        self._refreshed = time.monotonic()

    def readable(self, principal: Principal, digest: str) -> bool:
        if principal.is_admin:
            return True
        if time.monotonic() - self._refreshed > self.ttl:
            self.refresh()
        if self._check(principal, digest):
            return True
        if time.monotonic() - self._refreshed > 0.2:  # a channel may have just moved: look once more
            self.refresh()
            return self._check(principal, digest)
        return False

    def _check(self, principal: Principal, digest: str) -> bool:
        return any(digest in blobs and principal.may_read(ch) for ch, blobs in self._by_channel.items())


# ------------------------------------------------------------------------------------------ stats + access log
@dataclass
class Stats:
    bytes_by_blob: Counter[str] = field(default_factory=Counter)
    requests_by_blob: Counter[str] = field(default_factory=Counter)
    status: Counter[int] = field(default_factory=Counter)
    bytes_total: int = 0
    requests: int = 0
    corrupt_blobs: set[str] = field(default_factory=set)

    def to_json(self) -> dict[str, Any]:
        return {"bytes_total": self.bytes_total, "requests": self.requests,
                "bytes_by_blob": dict(self.bytes_by_blob), "requests_by_blob": dict(self.requests_by_blob),
                "status": {str(k): v for k, v in sorted(self.status.items())},
                "corrupt_blobs": sorted(self.corrupt_blobs)}


class ServeApp:
    """The served ASGI app: the Starlette routes wrapped in the access log, i.e. one JSON line per HTTP request
    (time, peer, method, path, status, body bytes sent, milliseconds, token name, Range/If-Range) and the byte
    counters of :class:`Stats`. ``ctx`` is the shared :class:`ServeContext` (tests read its stats)."""

    def __init__(self, app: Any, ctx: ServeContext, out: TextIO) -> None:
        self.app, self.ctx, self.stats, self.out = app, ctx, ctx.stats, out

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        info: dict[str, Any] = {"status": 0, "bytes": 0}
        header_bytes = len(scope.get("raw_path") or b"") + sum(len(k) + len(v) + 4 for k, v in scope.get("headers", []))
        if header_bytes > MAX_HEADER_BYTES:
            # uvicorn's h11 limit only bounds *incomplete* header blocks; this bounds complete ones
            scope.setdefault("state", {})["event"] = "headers_too_large"
            inner = _error(431, "headers_too_large", f"request line + headers exceed {MAX_HEADER_BYTES} bytes",
                           {"Connection": "close"})

            async def refuse(s: Scope, r: Receive, snd: Send) -> None:
                await inner(s, r, snd)

            app: Any = refuse
        else:
            app = self.app

        logged = False

        async def counting_send(msg: Message) -> None:
            nonlocal logged
            if msg["type"] == "http.response.start":
                info["status"] = msg["status"]
            elif msg["type"] == "http.response.body":
                info["bytes"] += len(msg.get("body", b""))
                if not msg.get("more_body", False) and not logged:
                    # logged before the last chunk goes out: a client holding the whole answer finds its log line
                    logged = True
                    self._record(scope, info, time.perf_counter() - t0)
            await send(msg)

        try:
            await app(scope, receive, counting_send)
        finally:
            if not logged:  # the client went away mid-answer, or the app failed
                self._record(scope, info, time.perf_counter() - t0)

    def _record(self, scope: Scope, info: dict[str, Any], seconds: float) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        path = scope.get("path", "")
        st = self.stats
        st.requests += 1
        st.bytes_total += info["bytes"]
        st.status[info["status"]] += 1
        state = scope.get("state") or {}
        blob = state.get("blob")
        if blob:
            st.bytes_by_blob[blob] += info["bytes"]
            st.requests_by_blob[blob] += 1
        client = scope.get("client")
        now = time.time()
        line = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z",
            "peer": f"{client[0]}:{client[1]}" if client else None,
            "method": scope.get("method"), "path": path[:300], "status": info["status"], "bytes": info["bytes"],
            "ms": round(seconds * 1000, 2), "token": state.get("principal"),
            "range": headers.get("range", "")[:100] or None, "if_range": "if-range" in headers,
        }
        if state.get("event"):
            line["event"] = state["event"]
        try:
            self.out.write(json.dumps(line, separators=(",", ":")) + "\n")
            self.out.flush()
        except (OSError, ValueError):
            pass  # a closed log must not break serving


# ------------------------------------------------------------------------------------------ the app
def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


class ServeContext:
    """Everything the endpoints share (one per app)."""

    def __init__(self, cfg: ServeConfig) -> None:
        self.cfg = cfg
        self.store = Store(cfg.store)
        self.tokens = TokenSet(cfg.tokens)
        self.verifier = BlobVerifier()
        self.index = ReadIndex(self.store, cfg.index_ttl_s)
        self.stats = Stats()
        self.index.refresh()

    def principal(self, request: Request) -> Principal | Response:
        """The caller, or the 401 response to send."""
        if not self.tokens.enabled:
            return ANONYMOUS_READER
        auth = request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _error(401, "unauthorized", "send 'Authorization: Bearer <token>'",
                          {"WWW-Authenticate": 'Bearer realm="edge-sdk"'})
        p = self.tokens.authenticate(token.strip())
        if p is None:
            return _error(401, "unauthorized", "unknown or revoked token",
                          {"WWW-Authenticate": 'Bearer realm="edge-sdk", error="invalid_token"'})
        request.scope.setdefault("state", {})["principal"] = p.name
        return p

    def admin(self, request: Request) -> Principal | Response:
        p = self.principal(request)
        if isinstance(p, Response):
            return p
        if not self.tokens.enabled:
            return _error(403, "forbidden", "this server runs without --tokens, so nobody is admin")
        if not p.is_admin:
            return _error(403, "forbidden", f"token {p.name!r} has no admin scope")
        return p


def _ctx(request: Request) -> ServeContext:
    ctx: ServeContext = request.app.state.ctx
    return ctx


async def healthz(request: Request) -> Response:
    from edge_sdk._version import __version__

    return JSONResponse({"status": "ok", "version": __version__})


async def get_blob(request: Request) -> Response:
    ctx = _ctx(request)
    p = ctx.principal(request)
    if isinstance(p, Response):
        return p
    digest = request.path_params["digest"]
    if not is_digest(digest):
        return _error(400, "bad_digest", "blob names are 'sha256:' + 64 lowercase hex digits")
    request.scope.setdefault("state", {})["blob"] = digest
    if not ctx.index.readable(p, digest):
        return _error(403, "forbidden", f"token {p.name!r} may not read this blob (no channel it can read names it)")
    path = ctx.store.blob_path(digest)
    try:
        st = await anyio.to_thread.run_sync(os.stat, path)
    except FileNotFoundError:
        return _error(404, "not_found", f"no blob {digest}")
    actual = await ctx.verifier.digest(path, st)
    if actual != digest:
        request.scope["state"]["event"] = "store_corrupt"
        ctx.stats.corrupt_blobs.add(digest)
        print(f"edge-sdk serve: blob {digest} in the store hashes to {actual} (corrupt); "
              "serving it under its true ETag; run `edge-sdk store verify`", file=sys.stderr, flush=True)
    headers = {"etag": f'"{actual}"', "cache-control": BLOB_CACHE_CONTROL, "x-content-type-options": "nosniff"}
    return FileResponse(path, headers=headers, media_type="application/octet-stream", stat_result=st)


async def get_channel(request: Request) -> Response:
    ctx = _ctx(request)
    p = ctx.principal(request)
    if isinstance(p, Response):
        return p
    name = request.path_params["name"]
    try:
        check_channel_name(name)
    except InvalidChannelName as exc:
        return _error(400, "bad_channel", str(exc))
    if not p.may_read(name):
        return _error(403, "forbidden", f"token {p.name!r} may not read channel {name!r}")
    try:
        data = await anyio.to_thread.run_sync(ctx.store.channel_path(name).read_bytes)
        ctx.store.channel(name)  # validates the record
    except (FileNotFoundError, NotADirectoryError, ChannelNotFound):
        return _error(404, "not_found", f"no channel {name!r}")
    except ReleaseError as exc:
        return _error(500, "store_error", f"channel record unreadable: {exc}")
    etag = '"sha256:' + hashlib.sha256(data).hexdigest() + '"'
    headers = {"etag": etag, "cache-control": CHANNEL_CACHE_CONTROL}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(data, media_type="application/json", headers=headers)


async def put_blob(request: Request) -> Response:
    ctx = _ctx(request)
    p = ctx.admin(request)
    if isinstance(p, Response):
        return p
    digest = request.path_params["digest"]
    if not is_digest(digest):
        return _error(400, "bad_digest", "blob names are 'sha256:' + 64 lowercase hex digits")
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > ctx.cfg.max_upload):
        return _error(413, "too_large", f"uploads are limited to {ctx.cfg.max_upload} bytes")
    existed = ctx.store.has(digest)
    try:
        writer = ctx.store.writer(expected=digest, max_bytes=ctx.cfg.max_upload)
    except OSError as exc:
        return _error(500, "store_error", str(exc))
    try:
        async for chunk in request.stream():
            writer.write(chunk)
        ref = await anyio.to_thread.run_sync(writer.commit)
    except StoreError as exc:
        return _error(413, "too_large", str(exc))
    except BlobCorrupt as exc:
        return _error(422, "digest_mismatch", str(exc))
    except BaseException:
        writer.abort()
        raise
    ctx.index.refresh()
    return JSONResponse(ref.to_json(), status_code=200 if existed else 201)


async def put_channel(request: Request) -> Response:
    ctx = _ctx(request)
    p = ctx.admin(request)
    if isinstance(p, Response):
        return p
    name = request.path_params["name"]
    try:
        check_channel_name(name)
    except InvalidChannelName as exc:
        return _error(400, "bad_channel", str(exc))
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_CHANNEL_PUT_BYTES:
            return _error(413, "too_large", f"a channel update is at most {MAX_CHANNEL_PUT_BYTES} bytes of JSON")
    try:
        obj = json.loads(body)
    except ValueError:
        obj = None
    if not isinstance(obj, dict) or set(obj) != {"manifest"} or not is_digest(obj["manifest"]):
        return _error(400, "bad_request", 'send {"manifest": "sha256:<hex>"}')
    digest = obj["manifest"]
    keys = list(ctx.cfg.trusted_keys) or None
    try:
        rec = await anyio.to_thread.run_sync(lambda: ctx.store.set_channel(name, digest, trusted_keys=keys))
    except BlobNotFound as exc:
        return _error(409, "incomplete", str(exc))
    except (BlobCorrupt, ManifestError) as exc:
        return _error(422, "invalid_manifest", f"{type(exc).__name__}: {exc}")
    ctx.index.refresh()
    return Response(rec.to_bytes(), media_type="application/json")


async def get_stats(request: Request) -> Response:
    ctx = _ctx(request)
    p = ctx.admin(request)
    if isinstance(p, Response):
        return p
    return JSONResponse({**ctx.stats.to_json(), "hashed_files": ctx.verifier.hashed})


async def not_found(request: Request, exc: Exception) -> Response:
    return _error(404, "not_found", "no such endpoint; see docs/transfer.md, 'HTTP API'")


async def not_allowed(request: Request, exc: Exception) -> Response:
    return _error(405, "method_not_allowed", "method not allowed on this endpoint")


def create_app(cfg: ServeConfig, log_out: TextIO | None = None) -> ServeApp:
    """The ASGI app (Starlette wrapped in the access-log middleware). ``log_out``: where the JSON access log goes
    (default: ``cfg.access_log`` opened for append, else stderr)."""
    ctx = ServeContext(cfg)
    routes = [
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/v1/blobs/{digest}", get_blob, methods=["GET", "HEAD"]),
        Route("/v1/blobs/{digest}", put_blob, methods=["PUT"]),
        Route("/v1/channels/{name:path}", get_channel, methods=["GET", "HEAD"]),
        Route("/v1/channels/{name:path}", put_channel, methods=["PUT"]),
        Route("/v1/stats", get_stats, methods=["GET"]),
    ]
    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_allowed})
    app.state.ctx = ctx
    if log_out is None:
        log_out = open(cfg.access_log, "a", buffering=1) if cfg.access_log else sys.stderr  # noqa: SIM115
    return ServeApp(app, ctx, log_out)


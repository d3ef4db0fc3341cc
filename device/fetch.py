"""Device fetch: resolve a channel, verify the signed manifest, pick the best tier that fits the byte budget,
download only the missing blobs — resuming, verifying, rate-capped — into the device cache.

Base install only (numpy + onnxruntime + urllib3; no torch). The HTTP client is **urllib3** (docs/transfer.md,
"Device fetch" says why): one pure-Python package with no dependencies of its own, which gives the raw body
bytes (``decode_content=False``), connect/read timeouts, connection reuse and certificate verification, and
never retries or redirects behind our back (both are off: the fetch loop below owns them).

Per blob (``_Downloader.fetch``): bytes go to ``partial/<hex>.partial`` with the response's validator (its
ETag) beside it; after an interruption the next attempt sends ``Range: bytes=<have>-`` + ``If-Range:
<validator>`` + ``Accept-Encoding: identity``. ``206`` (with a ``Content-Range`` that starts exactly at ``<have>``
and ends at the blob's size) appends; ``200`` (the server's copy changed: stale If-Range) starts over from byte
0. A response whose ETag names another SHA-256 than the one asked for is refused before its body is read. When
all bytes are there, the file's SHA-256 must equal the name; only then is it renamed into ``blobs/``. A resumed
file that fails the check is discarded and downloaded once more from scratch; a fresh one that fails raises
:class:`BlobMismatch`. Failures (connection refused/reset, timeouts, 408/429/5xx, short bodies) are retried
with exponential backoff and full jitter; ``retries`` bounds the consecutive failures that made no progress.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import re
import socket
import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import urllib3

from edge_sdk.device.cache import ReleaseCache
from edge_sdk.payload.taskblob import TASK_BLOB_MAX_BYTES
from edge_sdk.release.channel import MAX_RECORD_BYTES, check_channel_name, parse_channel_record
from edge_sdk.release.digest import BlobRef, parse_digest
from edge_sdk.release.errors import (
    AuthError,
    BlobMismatch,
    BudgetTooSmall,
    ChannelNotFound,
    DowngradeRefused,
    ProtocolError,
    ReleaseMismatch,
    TransferFailed,
)
from edge_sdk.release.manifest import (
    MAX_MANIFEST_BYTES,
    Manifest,
    TierChoice,
    check_runtime,
    read_manifest,
    task_digest,
    tier_costs,
)

CHUNK = 64 * 1024
#: the manifest extra blob type of a v2 payload's task blob (docs/transfer.md, "Manifest body")
TASK_TYPE = "task"
MAX_ATTEMPTS_PER_BLOB = 1000
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)\Z")
_SHA_ETAG = re.compile(r'(?:W/)?"(sha256:[0-9a-f]{64})"\Z')


@dataclass(frozen=True)
class FetchConfig:
    """What ``edge-sdk device fetch`` was asked to do. Sizes in bytes, rates in bytes per second, times in s."""

    url: str
    channel: str
    cache: Path
    token: str | None = None
    budget: int | None = None
    trusted_keys: tuple[Any, ...] = ()
    max_rate: float | None = None
    ca_cert: Path | None = None
    tier: str | None = None
    retries: int = 8
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 30.0
    allow_downgrade: bool = False


@dataclass
class BlobResult:
    """One blob of the chosen tier: what happened to it."""

    digest: str
    role: str  #: "manifest" | "payload" | "graph" | an extra blob's type
    size: int
    status: str = "cached"  #: "cached" | "downloaded" | "resumed"
    wire_bytes: int = 0  #: body bytes received for it (retries and restarts included)
    resumed_from: int = 0  #: bytes already in the partial file when this fetch started
    attempts: int = 0


@dataclass
class FetchReport:
    """What a fetch did (printed, and written as JSON)."""

    url: str
    channel: str
    manifest: str = ""
    release: str = ""
    created: str = ""
    signature: str = ""
    key_id: str | None = None
    tier: str = ""
    tier_costs: dict[str, int] = field(default_factory=dict)
    budget: int | None = None
    max_rate: float | None = None
    bytes_on_wire: int = 0  #: every HTTP body byte received (channel record, manifest, blobs, retries)
    bytes_needed: int = 0  #: bytes of the tier's blobs that were not cached at the start
    bytes_resumed: int = 0  #: of those, bytes already on disk from an interrupted fetch (not sent again)
    bytes_saved_by_cache: int = 0  #: bytes of the tier's blobs that were already cached (not sent at all)
    retries: int = 0
    restarts: int = 0  #: downloads that started over from byte 0 (stale If-Range, failed digest)
    seconds: float = 0.0
    payload: str = ""
    graph: str = ""
    task: str = ""  #: payload format v2: the cached task blob the payload names ("" for a v1 payload)
    blobs: list[BlobResult] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Limiter(Protocol):
    """What the fetch asks of a limiter: the size of the next read (:meth:`chunk`, bytes) and a call after each
    read (:meth:`consume`, which may sleep). :class:`RateLimiter` is the default; a link model (e.g. the fleet's
    ``ShapedLink``) can stand in for it."""

    def chunk(self) -> int: ...

    def consume(self, n: int) -> None: ...


class RateLimiter:
    """Token bucket: at most ``rate`` bytes/s on average, bursts of at most ``burst`` bytes (0.1 s worth, at
    least 1 KiB). Sleeps in :meth:`consume`; ``None`` = no cap."""

    def __init__(self, rate: float | None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if rate is not None and not rate > 0:
            raise ValueError("rate must be > 0 bytes/s")
        self.rate, self.clock, self.sleep = rate, clock, sleep
        self.burst = max(1024.0, rate * 0.1) if rate else 0.0
        self.tokens = self.burst
        self.last = clock()

    def chunk(self) -> int:
        """Read size that keeps bursts small."""
        return CHUNK if self.rate is None else int(max(512, min(CHUNK, self.burst)))

    def consume(self, n: int) -> None:
        if self.rate is None:
            return
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        self.tokens -= n
        if self.tokens < 0:
            wait = -self.tokens / self.rate
            self.sleep(wait)
            self.last = self.clock()
            self.tokens = 0.0


class _Http:
    """urllib3 with our policy: no automatic retries or redirects, explicit timeouts, identity encoding, bearer
    token, TLS verified (optionally against ``ca_cert``), a small receive buffer under a rate cap (so TCP flow
    control slows the sender instead of the kernel buffering a burst)."""

    def __init__(self, cfg: FetchConfig) -> None:
        if not re.match(r"https?://[^/?#]+\Z", cfg.url.rstrip("/")):
            from edge_sdk.errors import ConfigError

            raise ConfigError(f"--url must be http(s)://host[:port], got {cfg.url!r}")
        self.base = cfg.url.rstrip("/")
        self.headers = {"Accept-Encoding": "identity", "User-Agent": "edge-sdk-device-fetch"}
        if cfg.token:
            self.headers["Authorization"] = f"Bearer {cfg.token}"
        sockopts = list(urllib3.connection.HTTPConnection.default_socket_options)
        if cfg.max_rate is not None:
            sockopts.append((socket.SOL_SOCKET, socket.SO_RCVBUF, int(max(4096, min(cfg.max_rate * 0.25, CHUNK)))))
        kw: dict[str, Any] = {}
        if self.base.startswith("https://"):
            kw["cert_reqs"] = "CERT_REQUIRED"
            if cfg.ca_cert is not None:
                kw["ca_certs"] = str(cfg.ca_cert)
        self.pool = urllib3.PoolManager(
            num_pools=2, maxsize=1, retries=False, socket_options=sockopts,
            timeout=urllib3.Timeout(connect=cfg.connect_timeout_s, read=cfg.read_timeout_s), **kw)

    def get(self, path: str, headers: dict[str, str] | None = None) -> Any:
        return self.pool.request("GET", self.base + path, headers={**self.headers, **(headers or {})},
                                 preload_content=False, decode_content=False, redirect=False, retries=False)

    def close(self) -> None:
        self.pool.clear()


_NET_ERRORS = (urllib3.exceptions.HTTPError, OSError)
_TLS_ERRORS = (urllib3.exceptions.SSLError, ssl.SSLError)


def _tls_failure(exc: BaseException) -> TransferFailed:
    return TransferFailed(f"TLS handshake with the server failed ({str(exc)[:200]}); for a self-signed server pass "
                          "its certificate with --ca-cert")


class _Retry(Exception):
    """One failed attempt that may be retried (``progress``: bytes it added to the partial file)."""

    def __init__(self, why: str, progress: int = 0, after: float | None = None) -> None:
        super().__init__(why)
        self.progress, self.after = progress, after


class Fetcher:
    """One fetch: the HTTP client, the cache, the rate limiter and the running totals of the report."""

    def __init__(self, cfg: FetchConfig, log: Callable[[str], None] | None = None,
                 limiter: Limiter | None = None) -> None:
        check_channel_name(cfg.channel)
        self.cfg = cfg
        self.cache = ReleaseCache(cfg.cache)
        self.http = _Http(cfg)
        self.limiter: Limiter = limiter if limiter is not None else RateLimiter(cfg.max_rate)
        self.report = FetchReport(url=cfg.url, channel=cfg.channel, budget=cfg.budget, max_rate=cfg.max_rate)
        self.log = log or (lambda s: None)
        self.rng = random.Random()

    # ------------------------------------------------------------------------------------ helpers
    def _backoff(self, failures: int, after: float | None) -> None:
        cap = min(self.cfg.backoff_max_s, self.cfg.backoff_base_s * (2 ** max(0, failures - 1)))
        delay = self.rng.uniform(0, cap)  # full jitter
        if after is not None:
            delay = max(delay, min(after, self.cfg.backoff_max_s))
        time.sleep(delay)

    def _status_error(self, r: Any, what: str) -> Exception:
        st = r.status
        if st in (401, 403):
            try:
                msg = json.loads(r.read(4096, decode_content=False)).get("message", "")
            except (ValueError, AttributeError, *_NET_ERRORS):
                msg = ""
            return AuthError(f"{what}: HTTP {st} {'unauthorized' if st == 401 else 'forbidden'}"
                             f"{': ' + msg if msg else ''}; check --token-file (and the token's scopes)")
        if st in RETRYABLE_STATUS:
            ra = r.headers.get("retry-after", "")
            return _Retry(f"{what}: HTTP {st}", after=float(ra) if ra.isdigit() else None)
        return ProtocolError(f"{what}: unexpected HTTP {st} from the server")

    def _read_small(self, path: str, cap: int, what: str) -> bytes:
        """GET a small body (channel record), bounded, with retries."""
        failures = 0
        while True:
            try:
                r = self.http.get(path)
                try:
                    if r.status == 404:
                        raise ChannelNotFound(f"the server has no channel {self.cfg.channel!r}")
                    if r.status != 200:
                        raise self._status_error(r, what)
                    cl = r.headers.get("content-length")
                    if cl is not None and (not cl.isdigit() or int(cl) > cap):
                        raise ProtocolError(f"{what}: response of {cl} bytes exceeds the cap {cap}")
                    data = r.read(cap + 1, decode_content=False)
                    self.report.bytes_on_wire += len(data)
                    if len(data) > cap:
                        raise ProtocolError(f"{what}: response exceeds the cap of {cap} bytes")
                    if cl is not None and len(data) != int(cl):
                        raise _Retry(f"{what}: connection closed after {len(data)} of {cl} bytes")
                    if cl is None and r.headers.get("transfer-encoding", "").lower() != "chunked":
                        # without a length the end of the body is the end of the connection: a cut looks complete
                        raise _Retry(f"{what}: answer without Content-Length (cut connection?)")
                    return data
                finally:
                    r.release_conn()
            except _Retry as exc:
                failures += 1
                self._give_up_or_wait(failures, str(exc), exc.after)
            except _TLS_ERRORS as exc:
                raise _tls_failure(exc) from None
            except _NET_ERRORS as exc:
                failures += 1
                self._give_up_or_wait(failures, f"{what}: {type(exc).__name__}: {exc}", None)

    def _give_up_or_wait(self, failures: int, why: str, after: float | None) -> None:
        if failures > self.cfg.retries:
            raise TransferFailed(f"{why}; gave up after {failures} failed attempts without progress "
                                 "(raise --retries or try later)")
        self.report.retries += 1
        self.log(f"retry {failures}/{self.cfg.retries}: {why}")
        self._backoff(failures, after)

    # ------------------------------------------------------------------------------------ one blob
    def fetch_blob(self, ref: BlobRef, role: str, check: Callable[[Path], None] | None = None) -> BlobResult:
        """Download ``ref`` into the cache (resuming a partial file), verify, install. ``check`` runs on the
        verified file before it is installed (a manifest's signature); if it raises, nothing is installed."""
        res = BlobResult(ref.digest, role, ref.size)
        if self.cache.has(ref.digest):
            return res
        part, meta = self.cache.partial_paths(ref.digest)
        res.resumed_from = self._valid_partial(ref, part, meta)
        res.status = "resumed" if res.resumed_from else "downloaded"
        self.report.bytes_resumed += res.resumed_from
        failures = 0
        fresh_retry_done = False
        while True:
            res.attempts += 1
            if res.attempts > MAX_ATTEMPTS_PER_BLOB:
                raise TransferFailed(f"{role} {ref.digest[:23]}...: {MAX_ATTEMPTS_PER_BLOB} attempts, giving up")
            start = self._valid_partial(ref, part, meta)
            try:
                added = self._attempt(ref, part, meta, start, res)
            except _Retry as exc:
                failures = 0 if exc.progress > 0 else failures + 1
                self._give_up_or_wait(max(failures, 1), f"{role} {ref.digest[:23]}...: {exc}", exc.after)
                continue
            except _TLS_ERRORS as exc:
                raise _tls_failure(exc) from None
            except _NET_ERRORS as exc:
                progressed = part.exists() and part.stat().st_size > start
                failures = 0 if progressed else failures + 1
                self._give_up_or_wait(max(failures, 1),
                                      f"{role} {ref.digest[:23]}...: {type(exc).__name__}: {str(exc)[:160]}", None)
                continue
            del added
            if part.stat().st_size != ref.size:
                continue  # the body ended early without an error: resume
            if self._hash(part) != ref.digest:
                self.cache.drop_partial(ref.digest)
                pieced = res.resumed_from > 0 or start > 0 or res.attempts > 1  # bytes from more than one answer
                if pieced and not fresh_retry_done:
                    fresh_retry_done = True
                    self.report.restarts += 1
                    self.log(f"{role} {ref.digest[:23]}...: assembled bytes do not match the digest; "
                             "discarded, downloading again from byte 0")
                    continue
                raise BlobMismatch(f"{role} {ref.digest}: the server's bytes do not hash to the name the manifest "
                                   "gives (tampered or corrupt store); nothing was cached")
            if check is not None:
                try:
                    check(part)
                except BaseException:
                    self.cache.drop_partial(ref.digest)
                    raise
            self.cache.install(part, ref.digest)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(meta)
            return res

    def _valid_partial(self, ref: BlobRef, part: Path, meta: Path) -> int:
        """Bytes of a usable partial file (0, and both files removed, if it cannot be trusted to resume)."""
        try:
            m = json.loads(meta.read_bytes()[:4096])
            have = part.stat().st_size
            if (isinstance(m, dict) and m.get("digest") == ref.digest and m.get("size") == ref.size
                    and isinstance(m.get("validator"), str) and 0 < have < ref.size):
                return have
        except (OSError, ValueError):
            pass
        self.cache.drop_partial(ref.digest)
        return 0

    @staticmethod
    def _hash(path: Path) -> str:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        return "sha256:" + h.hexdigest()

    def _attempt(self, ref: BlobRef, part: Path, meta: Path, start: int, res: BlobResult) -> int:
        """One GET; returns the bytes it added to the partial file. Raises _Retry / network errors / typed errors."""
        headers: dict[str, str] = {}
        validator = None
        if start:
            validator = json.loads(meta.read_bytes())["validator"]
            headers = {"Range": f"bytes={start}-", "If-Range": validator}
        r = self.http.get(f"/v1/blobs/{quote(ref.digest, safe=':')}", headers)
        try:
            if r.status == 404:
                raise _Retry("HTTP 404 (the server lacks a blob its manifest names)")
            if r.status == 416:
                self.cache.drop_partial(ref.digest)
                raise _Retry("HTTP 416 (range not satisfiable): starting over")
            if r.status not in (200, 206):
                raise self._status_error(r, f"{res.role} {ref.digest[:23]}...")
            enc = r.headers.get("content-encoding", "identity").lower()
            if enc not in ("", "identity"):
                raise ProtocolError(f"server sent Content-Encoding {enc!r} although identity was asked for")
            etag = r.headers.get("etag")
            m = _SHA_ETAG.match(etag or "")
            if m is not None and m.group(1) != ref.digest:
                self.cache.drop_partial(ref.digest)
                raise BlobMismatch(f"{res.role} {ref.digest}: the server says its copy is {m.group(1)} (corrupt or "
                                   "replaced store); refused before reading it, nothing was cached")
            if r.status == 206:
                cr = _CONTENT_RANGE.match(r.headers.get("content-range", ""))
                if (cr is None or int(cr.group(1)) != start or int(cr.group(2)) != ref.size - 1
                        or int(cr.group(3)) != ref.size or (etag is not None and etag != validator)):
                    self.cache.drop_partial(ref.digest)
                    raise _Retry(f"206 with Content-Range {r.headers.get('content-range')!r} does not continue "
                                 f"at byte {start} of {ref.size}: starting over")
                mode, offset = "ab", start
            else:
                if start:
                    self.report.restarts += 1
                    self.log(f"{res.role} {ref.digest[:23]}...: the server's copy changed (If-Range did not match); "
                             "starting over from byte 0")
                mode, offset = "wb", 0
                from edge_sdk.atomic import atomic_write_text

                atomic_write_text(meta, json.dumps({"digest": ref.digest, "size": ref.size,
                                                    "validator": etag or r.headers.get("last-modified") or ""}))
            cl = r.headers.get("content-length")
            expect = ref.size - offset
            if cl is not None and (not cl.isdigit() or int(cl) != expect):
                self.cache.drop_partial(ref.digest)
                raise _Retry(f"Content-Length {cl} but {expect} bytes were expected: starting over")
            added = 0
            with open(part, mode) as f:
                try:
                    while added < expect:
                        n = min(self.limiter.chunk(), expect - added)
                        chunk = r.read(n, decode_content=False)
                        if not chunk:
                            break
                        f.write(chunk)
                        added += len(chunk)
                        res.wire_bytes += len(chunk)
                        self.report.bytes_on_wire += len(chunk)
                        self.limiter.consume(len(chunk))
                    if added == expect and r.read(1, decode_content=False):
                        raise ProtocolError("the server sent more bytes than the blob's size")
                finally:
                    f.flush()
                    os.fsync(f.fileno())
            if added < expect:
                raise _Retry(f"connection closed after {added} of {expect} bytes", progress=added)
            return added
        except BaseException:
            r.close()
            raise
        finally:
            r.release_conn()

    # ------------------------------------------------------------------------------------ the release
    def resolve(self) -> Manifest:
        """Channel record -> manifest (fetched unless cached; signature verified before it is cached)."""
        cfg = self.cfg
        keys = list(cfg.trusted_keys) or None
        data = self._read_small(f"/v1/channels/{quote(cfg.channel, safe='/')}", MAX_RECORD_BYTES,
                                f"channel {cfg.channel}")
        rec = parse_channel_record(data, expect_name=cfg.channel)
        ref = rec.manifest
        if ref.size > MAX_MANIFEST_BYTES:
            raise ProtocolError(f"channel names a {ref.size}-byte manifest, above the cap {MAX_MANIFEST_BYTES}")

        def verify(path: Path) -> None:
            read_manifest(path.read_bytes(), trusted_keys=keys, require_signature=bool(keys))

        res = self.fetch_blob(ref, "manifest", check=verify)
        self.report.blobs.append(res)
        m = read_manifest(self.cache.path(ref.digest).read_bytes(), trusted_keys=keys, require_signature=bool(keys))
        check_runtime(m.release)
        prev = self.cache.state(cfg.channel)
        if (prev and not cfg.allow_downgrade and isinstance(prev.get("created"), str)
                and m.release.created < prev["created"] and prev.get("manifest") != m.digest):
            raise DowngradeRefused(
                f"channel {cfg.channel} now points at release {m.release.release!r} created {m.release.created}, "
                f"older than the {prev['created']} release this device already took ({prev.get('release')}); "
                "a rollback by the publisher needs --allow-downgrade (an attacker replaying an old signed release "
                "is refused)")
        return m

    def choose(self, m: Manifest) -> TierChoice:
        cached = self.cache.digests()
        costs = tier_costs(m.release, cached)
        self.report.tier_costs = {c.tier.name: c.cost for c in costs}
        if self.cfg.tier is not None:
            for c in costs:
                if c.tier.name == self.cfg.tier:
                    if self.cfg.budget is not None and c.cost > self.cfg.budget:
                        raise BudgetTooSmall(f"tier {c.tier.name} needs {c.cost:,} B, the budget is {self.cfg.budget:,} B")
                    return c
            raise BudgetTooSmall(f"release has no tier {self.cfg.tier!r}; tiers: {[c.tier.name for c in costs]}")
        for c in costs:
            if self.cfg.budget is None or c.cost <= self.cfg.budget:
                return c
        table = ", ".join(f"{c.tier.name} {c.cost:,} B" for c in costs)
        raise BudgetTooSmall(f"no tier fits the budget of {self.cfg.budget:,} B (missing bytes per tier: {table}); "
                             "raise --budget")

    def verify_release(self, m: Manifest, c: TierChoice) -> Path | None:
        """The payload must name the tier's graph and carry the release's task and model. A payload of format v2
        names its task blob by digest: the release must list that blob (type ``task``, tier or release level),
        and the payload is read with the cached copy. Returns the task blob's path (None for a v1 payload)."""
        from edge_sdk.payload import read_payload

        keys = list(self.cfg.trusted_keys) or None
        ppath = self.cache.path(c.tier.payload.digest)
        with read_payload(ppath, trusted_keys=keys) as p:
            tdigest = f"sha256:{p.task_digest}" if p.task_digest is not None else None
        task_path = None
        if tdigest is not None:
            carried = {b.digest for b in (*c.tier.extra, *m.release.extra) if b.type == TASK_TYPE}
            if tdigest not in carried:
                raise ReleaseMismatch(
                    f"tier {c.tier.name}: the payload (format v2) names task blob {tdigest}, which the release does not "
                    f"carry (it lists {sorted(carried) or 'no'} extra blob(s) of type {TASK_TYPE}); the publisher must "
                    "re-add the release with `edge-sdk store add`, which attaches the task blob")
            task_path = self.cache.path(tdigest)
        with read_payload(ppath, trusted_keys=keys, task_blob=task_path) as p:
            graph = dict(p.graph or {})
            task = dict(p.task or {})
        g = c.tier.graph
        if f"sha256:{graph.get('sha256')}" != g.digest or graph.get("size") != g.size:
            raise ReleaseMismatch(f"tier {c.tier.name}: the payload names graph {graph}, the manifest {g.to_json()}")
        ident = m.release.identity
        if task_digest(task) != ident.task_digest or task.get("model") != dict(ident.model):
            raise ReleaseMismatch(f"tier {c.tier.name}: the payload's task/model differ from the release identity")
        return task_path

    @staticmethod
    def _check_task_blob(ref: BlobRef) -> Callable[[Path], None]:
        """Before a downloaded task blob enters the cache: the task blob rules (schema, depth; the digest and the
        size were checked already)."""
        from edge_sdk.payload.errors import PayloadError
        from edge_sdk.payload.taskblob import parse_task_blob

        def check(path: Path) -> None:
            try:
                parse_task_blob(path.read_bytes(), bytes.fromhex(parse_digest(ref.digest)))
            except PayloadError as exc:
                raise ReleaseMismatch(f"task blob {ref.digest} of the release is not a valid task blob ({exc}); "
                                      "nothing was cached") from None

        return check

    def run(self) -> FetchReport:
        t0 = time.monotonic()
        rep = self.report
        with self.cache.lock():
            m = self.resolve()
            rep.manifest, rep.release, rep.created = m.digest, m.release.release, m.release.created
            rep.signature, rep.key_id = m.signature_status, m.key_id
            c = self.choose(m)
            rep.tier = c.tier.name
            rep.bytes_needed, rep.bytes_saved_by_cache = c.cost, c.saved
            missing = {b.digest for b in c.missing}
            roles = [(c.tier.payload, "payload"), (c.tier.graph, "graph"),
                     *((b, str(b.type)) for b in (*c.tier.extra, *m.release.extra))]
            for ref, role in roles:  # bounded before anything is allocated for it
                if role == TASK_TYPE and ref.size > TASK_BLOB_MAX_BYTES:
                    raise ReleaseMismatch(f"the release names a task blob of {ref.size:,} bytes, above the limit of "
                                          f"{TASK_BLOB_MAX_BYTES:,} (TASK_BLOB_MAX_BYTES); refused before downloading")
            self.log(f"release {m.release.release} (created {m.release.created}, signature {m.signature_status}); "
                     f"tier {c.tier.name}: {len(c.missing)} blob(s) to fetch ({c.cost:,} B), "
                     f"{c.saved:,} B already cached")
            for ref, role in roles:
                if ref.digest in missing:
                    res = self.fetch_blob(ref, role, check=self._check_task_blob(ref) if role == TASK_TYPE else None)
                    self.log(f"{role} {ref.digest[:23]}... {ref.size:,} B {res.status}"
                             f"{f' from byte {res.resumed_from:,}' if res.resumed_from else ''}, "
                             f"{res.wire_bytes:,} B on the wire")
                else:
                    res = BlobResult(ref.digest, role, ref.size)
                rep.blobs.append(res)
            task_path = self.verify_release(m, c)
            rep.payload = str(self.cache.path(c.tier.payload.digest))
            rep.graph = str(self.cache.path(c.tier.graph.digest))
            rep.task = str(task_path) if task_path is not None else ""
            self.cache.set_state(self.cfg.channel, {
                "channel": self.cfg.channel, "manifest": m.digest, "release": m.release.release,
                "created": m.release.created, "tier": c.tier.name, "payload": c.tier.payload.digest,
                "graph": c.tier.graph.digest, "extra": [b.digest for b in (*c.tier.extra, *m.release.extra)],
                "task": f"sha256:{task_path.name}" if task_path is not None else None,
                "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        rep.seconds = time.monotonic() - t0
        self.http.close()
        return rep


def fetch_release(cfg: FetchConfig, log: Callable[[str], None] | None = None,
                  limiter: Limiter | None = None) -> FetchReport:
    """Run one fetch (see the module docstring); returns its :class:`FetchReport`. ``limiter``: any object with
    ``chunk() -> int`` (bytes to read next) and ``consume(n)`` (may sleep), e.g. a per-second link model for
    the fleet simulator's live mode; default: a :class:`RateLimiter` of ``cfg.max_rate``."""
    return Fetcher(cfg, log, limiter).run()


def stderr_log(msg: str) -> None:
    print(f"fetch: {msg}", file=sys.stderr, flush=True)


__all__ = ["FetchConfig", "FetchReport", "BlobResult", "RateLimiter", "Fetcher", "fetch_release", "parse_digest"]

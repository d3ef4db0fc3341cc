"""Device fetch against a real `edge-sdk serve` on loopback (docs/transfer.md, F-rules): tier choice under a
budget with the graph cache, kill -9 mid-blob and resume, server restart, dropped connections, tampered and
replaced blobs, signatures, downgrades, auth, malformed responses, rate cap, bounded retries.

After every fetch, ``assert_cache_clean`` re-hashes the cache: nothing unverified is ever in ``blobs/``."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from serve_helpers import (
    BULK_BYTES,
    CuttingProxy,
    access_log,
    make_self_signed,
    make_store,
    make_tokens,
    start_serve,
    stop,
)

from edge_sdk.device.cache import ReleaseCache
from edge_sdk.device.fetch import FetchConfig, RateLimiter, fetch_release
from edge_sdk.release import (
    AuthError,
    BlobMismatch,
    BudgetTooSmall,
    ChannelInvalid,
    DowngradeRefused,
    ManifestSignatureRequired,
    ManifestUntrustedKey,
    ProtocolError,
    Store,
    TransferFailed,
    publish,
)
from edge_sdk.serve.app import ServeConfig
from edge_sdk.serve.server import start_in_thread

CHANNEL = "beam-uma/stable"


def assert_cache_clean(cache: Path) -> set[str]:
    """Every file under blobs/ hashes to its name; returns the digests."""
    out = set()
    for p in (cache / "blobs" / "sha256").rglob("*"):
        if p.is_file():
            assert hashlib.sha256(p.read_bytes()).hexdigest() == p.name, f"unverified blob in the cache: {p}"
            out.add("sha256:" + p.name)
    return out


def cfg(url: str, cache: Path, **kw) -> FetchConfig:
    kw.setdefault("backoff_base_s", 0.05)
    kw.setdefault("backoff_max_s", 0.5)
    return FetchConfig(url=url, channel=kw.pop("channel", CHANNEL), cache=cache, **kw)


@pytest.fixture
def server(tmp_path, release_files):
    """In-process open server over a store without the bulk blob."""
    store = Store(tmp_path / "store", create=True)
    res = publish(store, [release_files.big, release_files.small], channel=CHANNEL)
    log = io.StringIO()
    with start_in_thread(ServeConfig(store=store.root), log_out=log) as srv:
        yield srv, store, res.manifest, log


@pytest.fixture
def bulk_server(tmp_path, release_files):
    """In-process open server over a store whose release has a 1 MiB release-level blob."""
    store, m = make_store(tmp_path, release_files)
    log = io.StringIO()
    with start_in_thread(ServeConfig(store=store.root), log_out=log) as srv:
        yield srv, store, m, log


def _log_lines(log: io.StringIO) -> list[dict]:
    return [json.loads(x) for x in log.getvalue().splitlines()]


def _entries(log: io.StringIO, path: str, n: int, timeout: float = 10.0) -> list[dict]:
    """The access-log entries for ``path`` once there are at least ``n`` (a response the client abandoned is
    logged when the server notices the disconnect, which can be a moment after the client returned)."""
    deadline = time.monotonic() + timeout
    while True:
        got = [e for e in _log_lines(log) if e["path"] == path]
        if len(got) >= n or time.monotonic() > deadline:
            return got
        time.sleep(0.02)


# ------------------------------------------------------------------------------------------ tiers + cache
def test_budget_picks_best_fitting_tier_graph_paid_once_F01(server, tmp_path):
    srv, store, m, log = server
    big, small = m.tiers
    cache = tmp_path / "cache"
    both = big.payload.size + big.graph.size
    rep = fetch_release(cfg(srv.url, cache, budget=both - 1))
    assert rep.tier == small.name and rep.bytes_needed == small.payload.size + small.graph.size
    assert rep.bytes_saved_by_cache == 0 and rep.tier_costs == {big.name: both, small.name: rep.bytes_needed}
    # the graph is cached now: the better tier fits a budget of just its payload
    rep2 = fetch_release(cfg(srv.url, cache, budget=big.payload.size))
    assert rep2.tier == big.name and rep2.bytes_needed == big.payload.size
    assert rep2.bytes_saved_by_cache == big.graph.size
    assert [b.status for b in rep2.blobs] == ["cached", "downloaded", "cached"]  # manifest, payload, graph
    # only the payload crossed the wire (plus the channel record)
    served = [e for e in _log_lines(log) if e["path"].startswith("/v1/blobs/")]
    assert sum(e["bytes"] for e in served) == m.size + small.payload.size + big.graph.size + big.payload.size
    assert rep2.bytes_on_wire == big.payload.size + len(store.channel_path(CHANNEL).read_bytes())
    state = ReleaseCache(cache).state(CHANNEL)
    assert state["tier"] == big.name and state["manifest"] == m.digest
    assert Path(rep2.payload).read_bytes() == store.blob_path(big.payload.digest).read_bytes()
    assert assert_cache_clean(cache) == {m.digest, big.payload.digest, small.payload.digest, big.graph.digest}
    with pytest.raises(BudgetTooSmall, match="no tier fits"):
        fetch_release(cfg(srv.url, tmp_path / "cache2", budget=1000))
    assert assert_cache_clean(tmp_path / "cache2") == {m.digest}


# ------------------------------------------------------------------------------------------ interruptions
def test_kill9_mid_blob_then_resume_F02(bulk_server, tmp_path):
    srv, store, m, log = bulk_server
    bulk = m.release.extra[0]
    cache = tmp_path / "cache"
    cmd = [sys.executable, "-m", "edge_sdk.cli", "device", "fetch", "--url", srv.url, "--channel", CHANNEL,
           "--cache", str(cache)]
    proc = subprocess.Popen([*cmd, "--max-rate", "256KiB/s"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    part = cache / "partial" / f"{bulk.digest.split(':')[1]}.partial"
    deadline = time.monotonic() + 60
    try:
        while not (part.exists() and part.stat().st_size >= 200_000):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    have = part.stat().st_size
    assert 0 < have < bulk.size and not (cache / "blobs" / "sha256" / bulk.digest[7:9] / bulk.digest[7:]).exists()
    assert_cache_clean(cache)
    r = subprocess.run([*cmd, "--report", str(tmp_path / "report.json")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path / "report.json").read_text())
    b = next(x for x in rep["blobs"] if x["digest"] == bulk.digest)
    assert b["status"] == "resumed" and b["resumed_from"] == have and b["wire_bytes"] == bulk.size - have
    assert rep["bytes_resumed"] == have
    assert (cache / "blobs" / "sha256" / bulk.digest[7:9] / bulk.digest[7:]).read_bytes() == \
        store.blob_path(bulk.digest).read_bytes()
    # server side: the resumed request asked for exactly the missing bytes and got exactly those
    reqs = _entries(log, f"/v1/blobs/{bulk.digest}", 2)
    assert reqs[-1]["range"] == f"bytes={have}-" and reqs[-1]["if_range"] and reqs[-1]["status"] == 206
    assert reqs[-1]["bytes"] == bulk.size - have
    assert not part.exists()
    assert_cache_clean(cache)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_server_restart_mid_transfer_F02(tmp_path, release_files):
    # 8 MiB: more than the dead server's socket buffers can still deliver (loopback send buffers grow to 4 MiB)
    store, m = make_store(tmp_path, release_files, bulk_bytes=8 << 20)
    bulk = m.release.extra[0]
    port = _free_port()
    proc, url = start_serve(store.root, tmp_path, port=port, name="first")
    cache = tmp_path / "cache"
    part = cache / "partial" / f"{bulk.digest[7:]}.partial"
    result: dict = {}

    def run() -> None:
        try:
            result["rep"] = fetch_release(cfg(url, cache, max_rate=4 << 20, retries=20, backoff_base_s=0.2,
                                              backoff_max_s=1.0))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            result["err"] = exc

    th = threading.Thread(target=run)
    th.start()
    proc2 = None
    try:
        deadline = time.monotonic() + 60
        while not (part.exists() and part.stat().st_size >= 256 << 10):
            assert th.is_alive() and time.monotonic() < deadline
            time.sleep(0.005)
        stop(proc, signal.SIGKILL)  # the server dies mid-blob
        time.sleep(0.5)
        proc2, _ = start_serve(store.root, tmp_path, port=port, name="second")
        th.join(120)
        assert not th.is_alive() and "err" not in result, result.get("err")
    finally:
        stop(proc, signal.SIGKILL)
        if proc2 is not None:
            stop(proc2)
    rep = result["rep"]
    assert rep.retries >= 1 and rep.restarts == 0
    assert (cache / "blobs" / "sha256" / bulk.digest[7:9] / bulk.digest[7:]).read_bytes() == \
        store.blob_path(bulk.digest).read_bytes()
    second = [e for e in access_log(tmp_path / "second-access.log") if e["path"] == f"/v1/blobs/{bulk.digest}"]
    assert second and second[0]["status"] == 206 and second[0]["range"].startswith("bytes=")
    start = int(second[0]["range"][6:-1])
    assert second[0]["bytes"] == bulk.size - start and start >= 256 << 10
    assert_cache_clean(cache)


def test_dropped_connections_resume_F02(bulk_server, tmp_path):
    srv, store, m, log = bulk_server
    bulk = m.release.extra[0]
    port = int(srv.url.rsplit(":", 1)[1])
    proxy = CuttingProxy(port, cuts=[250_000, 150_000])  # two connections cut mid-transfer
    try:
        rep = fetch_release(cfg(f"http://127.0.0.1:{proxy.port}", tmp_path / "cache"))
    finally:
        proxy.close()
    b = next(x for x in rep.blobs if x.digest == bulk.digest)
    assert rep.retries >= 2 and b.attempts >= 3 and b.status == "downloaded"
    assert b.wire_bytes == bulk.size  # every received byte was kept: nothing was received twice
    assert rep.bytes_on_wire == sum(x.wire_bytes for x in rep.blobs) + len(store.channel_path(CHANNEL).read_bytes())
    got = (tmp_path / "cache" / "blobs" / "sha256" / bulk.digest[7:9] / bulk.digest[7:]).read_bytes()
    assert got == store.blob_path(bulk.digest).read_bytes()
    ranged = [e for e in _log_lines(log) if e["path"] == f"/v1/blobs/{bulk.digest}" and e["range"]]
    assert len(ranged) >= 1 and all(e["if_range"] for e in ranged)
    assert_cache_clean(tmp_path / "cache")


# ------------------------------------------------------------------------------------------ integrity
def _tamper(store: Store, digest: str, replace: bool = True) -> bytes:
    """Change one byte of a stored blob (as a new file when ``replace``, else in place); returns the original."""
    path = store.blob_path(digest)
    orig = path.read_bytes()
    bad = bytearray(orig)
    bad[len(bad) // 2] ^= 0xFF
    if replace:
        tmp = path.with_name(path.name + ".new")
        tmp.write_bytes(bytes(bad))
        os.replace(tmp, path)
    else:
        os.chmod(path, 0o644)
        path.write_bytes(bytes(bad))
    return orig


def test_tampered_blob_in_store_rejected_never_cached_F05(server, tmp_path):
    srv, store, m, log = server
    p = m.tiers[0].payload
    _tamper(store, p.digest)
    with pytest.raises(BlobMismatch, match="refused before reading"):
        fetch_release(cfg(srv.url, tmp_path / "cache"))
    digests = assert_cache_clean(tmp_path / "cache")
    assert p.digest not in digests
    assert list((tmp_path / "cache" / "partial").iterdir()) == []


class _LyingHandler(BaseHTTPRequestHandler):
    """Serves the real channel record and manifest, but other bytes for every blob under the right ETag (a
    compromised server or a man in the middle that knows the protocol)."""

    routes: dict[str, bytes] = {}
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802
        path = self.path
        body = self.routes.get(path)
        if body is None:
            digest = path.rsplit("/", 1)[-1]
            body = b"\0" * self.sizes.get(digest, 10)  # type: ignore[attr-defined]
            etag = f'"{digest}"'
        else:
            etag = '"x"'
        self.send_response(200)
        self.send_header("ETag", etag)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a) -> None:
        pass


def test_lying_server_bytes_rejected_never_cached_F06(tmp_path, release_files):
    store = Store(tmp_path / "store", create=True)
    m = publish(store, [release_files.big], channel=CHANNEL).manifest
    handler = type("H", (_LyingHandler,), {})
    handler.routes = {f"/v1/channels/{CHANNEL}": store.channel_path(CHANNEL).read_bytes(),
                      f"/v1/blobs/{m.digest}": store.blob_path(m.digest).read_bytes()}
    handler.sizes = {b.digest: b.size for b in m.release.blobs()}
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with pytest.raises(BlobMismatch, match="do not hash"):
            fetch_release(cfg(f"http://127.0.0.1:{httpd.server_address[1]}", tmp_path / "cache"))
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert assert_cache_clean(tmp_path / "cache") == {m.digest}  # only the (verified) manifest


def test_blob_replaced_between_attempts_clean_restart_F03(bulk_server, tmp_path):
    """Partial bytes came from one version of the file; the store's file is then replaced. The resume's
    If-Range no longer matches, the server sends 200 with the new ETag: the client drops its partial bytes.
    Restored, the blob downloads cleanly from byte 0."""
    srv, store, m, log = bulk_server
    bulk = m.release.extra[0]
    port = int(srv.url.rsplit(":", 1)[1])
    cache = tmp_path / "cache"
    proxy = CuttingProxy(port, cuts=[400_000])
    try:
        with pytest.raises(TransferFailed):
            # one cut, then the proxy passes everything; but retries=0 stops after the cut: the partial stays
            fetch_release(cfg(f"http://127.0.0.1:{proxy.port}", cache, retries=0))
    finally:
        proxy.close()
    part = cache / "partial" / f"{bulk.digest[7:]}.partial"
    have = part.stat().st_size
    assert 0 < have < bulk.size
    orig = _tamper(store, bulk.digest)  # replaced with other bytes (a new file)
    n_before = len(_entries(log, f"/v1/blobs/{bulk.digest}", 1))
    with pytest.raises(BlobMismatch):
        fetch_release(cfg(srv.url, cache))
    reqs = _entries(log, f"/v1/blobs/{bulk.digest}", n_before + 1)
    assert reqs[-1]["range"] == f"bytes={have}-" and reqs[-1]["if_range"] and reqs[-1]["status"] == 200
    assert not part.exists()
    assert bulk.digest not in assert_cache_clean(cache)
    # the operator restores the blob: a clean download from byte 0
    path = store.blob_path(bulk.digest)
    tmp = path.with_name("restore")
    tmp.write_bytes(orig)
    os.replace(tmp, path)
    rep = fetch_release(cfg(srv.url, cache))
    b = next(x for x in rep.blobs if x.digest == bulk.digest)
    assert b.resumed_from == 0 and b.wire_bytes == bulk.size
    reqs = _entries(log, f"/v1/blobs/{bulk.digest}", n_before + 2)
    assert reqs[-1]["range"] is None and reqs[-1]["status"] == 200
    assert bulk.digest in assert_cache_clean(cache)


# ------------------------------------------------------------------------------------------ trust
def test_signature_trust_F04(tmp_path, release_files):
    from edge_sdk.payload import generate_keypair

    priv, pub = generate_keypair()
    _, other = generate_keypair()
    store = Store(tmp_path / "store", create=True)
    m = publish(store, [release_files.big], channel=CHANNEL, signing_key=priv).manifest
    publish(store, [release_files.small], channel="beam-uma/unsigned")
    with start_in_thread(ServeConfig(store=store.root), log_out=io.StringIO()) as srv:
        with pytest.raises(ManifestUntrustedKey):
            fetch_release(cfg(srv.url, tmp_path / "c1", trusted_keys=(other,)))
        assert assert_cache_clean(tmp_path / "c1") == set()  # the manifest never entered the cache
        with pytest.raises(ManifestSignatureRequired):
            fetch_release(cfg(srv.url, tmp_path / "c2", trusted_keys=(pub,), channel="beam-uma/unsigned"))
        assert assert_cache_clean(tmp_path / "c2") == set()
        rep = fetch_release(cfg(srv.url, tmp_path / "c3", trusted_keys=(pub,)))
        assert rep.signature == "verified" and rep.manifest == m.digest


def test_downgrade_refused_F09(tmp_path, release_files):
    store = Store(tmp_path / "store", create=True)
    old = publish(store, [release_files.small], channel=CHANNEL, created="2026-01-01T00:00:00Z").manifest
    new = publish(store, [release_files.big], channel=CHANNEL, created="2026-02-01T00:00:00Z").manifest
    with start_in_thread(ServeConfig(store=store.root), log_out=io.StringIO()) as srv:
        assert fetch_release(cfg(srv.url, tmp_path / "cache")).manifest == new.digest
        store.set_channel(CHANNEL, old.digest)  # an attacker replays, or the publisher rolls back
        with pytest.raises(DowngradeRefused, match="allow-downgrade"):
            fetch_release(cfg(srv.url, tmp_path / "cache"))
        rep = fetch_release(cfg(srv.url, tmp_path / "cache", allow_downgrade=True))
        assert rep.manifest == old.digest


def test_auth_and_budget_errors_F07(tmp_path, release_files):
    store, _ = make_store(tmp_path, release_files)
    tokens = make_tokens(tmp_path / "tokens.json")
    with start_in_thread(ServeConfig(store=store.root, tokens=tmp_path / "tokens.json"), log_out=io.StringIO()) as srv:
        t0 = time.monotonic()
        with pytest.raises(AuthError, match="401"):
            fetch_release(cfg(srv.url, tmp_path / "c"))
        with pytest.raises(AuthError, match="401"):
            fetch_release(cfg(srv.url, tmp_path / "c", token="edt_" + "x" * 43))
        with pytest.raises(AuthError, match="403"):
            fetch_release(cfg(srv.url, tmp_path / "c", token=tokens["other"]))
        assert time.monotonic() - t0 < 10  # auth failures are not retried
        rep = fetch_release(cfg(srv.url, tmp_path / "c", token=tokens["reader"]))
        assert rep.tier == "4KiB"
        # the CLI: one line, exit 6
        (tmp_path / "bad.token").write_text("edt_" + "y" * 43 + "\n")
        r = subprocess.run([sys.executable, "-m", "edge_sdk.cli", "device", "fetch", "--url", srv.url, "--channel",
                            CHANNEL, "--cache", str(tmp_path / "c4"), "--token-file", str(tmp_path / "bad.token")],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 6 and r.stderr.strip().startswith("error: AuthError:") and \
            len(r.stderr.strip().splitlines()) == 1


# ------------------------------------------------------------------------------------------ bounds
class _BadHandler(BaseHTTPRequestHandler):
    mode = ""
    record = b""
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802
        body, headers = self.record, {}
        if self.mode == "huge-record":
            body = b"{" + b" " * 20000 + b"}"
        elif self.mode == "gzip":
            headers["Content-Encoding"] = "gzip"
        elif self.mode == "no-length-huge":
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"x" * 100_000)
            self.close_connection = True
            return
        self.send_response(200)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a) -> None:
        pass


@pytest.mark.parametrize("mode,err", [("huge-record", ProtocolError), ("gzip", ProtocolError),
                                      ("no-length-huge", ProtocolError), ("other-channel", ChannelInvalid),
                                      ("big-manifest", ProtocolError)])
def test_malformed_responses_bounded_F08(tmp_path, mode, err):
    from edge_sdk.release.channel import ChannelRecord
    from edge_sdk.release.digest import BlobRef

    handler = type("H", (_BadHandler,), {"mode": mode})
    name = "other/stable" if mode == "other-channel" else CHANNEL
    size = 1 << 30 if mode == "big-manifest" else 100
    handler.record = ChannelRecord(name, BlobRef("sha256:" + "0" * 64, size), "2026-01-01T00:00:00Z").to_bytes()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with pytest.raises(err):
            fetch_release(cfg(f"http://127.0.0.1:{httpd.server_address[1]}", tmp_path / "cache", retries=1))
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert assert_cache_clean(tmp_path / "cache") == set()


def test_retries_bounded_with_backoff_F07(tmp_path):
    port = _free_port()  # nothing listens there
    t0 = time.monotonic()
    with pytest.raises(TransferFailed, match="gave up after 4"):
        fetch_release(cfg(f"http://127.0.0.1:{port}", tmp_path / "cache", retries=3, backoff_base_s=0.05,
                          backoff_max_s=0.2))
    assert time.monotonic() - t0 < 10


def test_rate_cap_F11(bulk_server, tmp_path):
    srv, store, m, log = bulk_server
    rate = 1 << 20  # 1 MiB/s: the ~1.03 MiB release takes about a second
    t0 = time.monotonic()
    rep = fetch_release(cfg(srv.url, tmp_path / "cache", max_rate=rate))
    elapsed = time.monotonic() - t0
    total = sum(b.wire_bytes for b in rep.blobs)
    assert total >= BULK_BYTES and elapsed >= 0.8 * (total - 0.1 * rate) / rate


def test_rate_limiter_token_bucket():
    now = [0.0]
    slept = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    lim = RateLimiter(10_000.0, clock=lambda: now[0], sleep=sleep)
    assert lim.burst == 1024.0 and lim.chunk() == 1024
    for _ in range(100):
        lim.consume(1000)
    # 100 kB at 10 kB/s: ~10 s of (virtual) waiting, less the initial burst
    assert 9.8 <= now[0] <= 10.0
    assert RateLimiter(None).chunk() == 64 * 1024


def test_tls_fetch_F04(tmp_path, release_files):
    store = Store(tmp_path / "store", create=True)
    publish(store, [release_files.big], channel=CHANNEL)
    cert, key = make_self_signed(tmp_path)
    with start_in_thread(ServeConfig(store=store.root), tls_cert=cert, tls_key=key, log_out=io.StringIO()) as srv:
        rep = fetch_release(cfg(srv.url, tmp_path / "cache", ca_cert=cert))
        assert rep.tier
        t0 = time.monotonic()
        with pytest.raises(TransferFailed, match="TLS"):
            fetch_release(cfg(srv.url, tmp_path / "cache2"))
        assert time.monotonic() - t0 < 10


def test_payload_must_match_release_F10(tmp_path, release_files):
    """A manifest that pairs a payload with another graph, or claims another model, is caught after download."""
    from dataclasses import replace

    from edge_sdk.release import BlobRef, ReleaseMismatch, encode_manifest

    store = Store(tmp_path / "store", create=True)
    m = publish(store, [release_files.big], channel=CHANNEL).manifest
    other = store.put_bytes(b"not the graph this payload names")
    rel = m.release
    bad_graph = replace(rel, tiers=(replace(rel.tiers[0], graph=BlobRef(other.digest, other.size)),))
    bad_model = replace(rel, identity=replace(rel.identity, model={**rel.identity.model, "width": 999}))
    for i, bad in enumerate((bad_graph, bad_model)):
        mdata = store.put_manifest(encode_manifest(bad))
        store.set_channel(f"bad/{i}", mdata.digest)
    with start_in_thread(ServeConfig(store=store.root), log_out=io.StringIO()) as srv:
        for i in range(2):
            with pytest.raises(ReleaseMismatch):
                fetch_release(cfg(srv.url, tmp_path / f"cache{i}", channel=f"bad/{i}"))
            assert_cache_clean(tmp_path / f"cache{i}")
            assert ReleaseCache(tmp_path / f"cache{i}").state(f"bad/{i}") is None  # not recorded as fetched


def test_corrupt_partial_file_is_redownloaded_once_F06(server, tmp_path):
    """Partial bytes that went bad on disk (power loss, a bad sector) fail the digest after the resume: the blob
    is fetched once more from byte 0, and only the good copy is cached."""
    srv, store, m, log = server
    g = m.tiers[0].graph
    cache = ReleaseCache(tmp_path / "cache")
    part, meta = cache.partial_paths(g.digest)
    part.write_bytes(b"\xff" * 3000)  # not the graph's first 3,000 bytes
    meta.write_text(json.dumps({"digest": g.digest, "size": g.size, "validator": f'"{g.digest}"'}))
    rep = fetch_release(cfg(srv.url, tmp_path / "cache"))
    b = next(x for x in rep.blobs if x.digest == g.digest)
    assert b.status == "resumed" and b.resumed_from == 3000 and rep.restarts == 1
    assert b.wire_bytes == (g.size - 3000) + g.size  # the rest, then everything once more
    assert g.digest in assert_cache_clean(tmp_path / "cache")


@pytest.mark.parametrize("cut", [60, 200, 330])
def test_connection_cut_in_channel_record_or_manifest_is_retried_F08(server, tmp_path, cut):
    """A cut inside the headers or the body of the channel record (or the manifest) is a short answer, retried;
    never parsed as a (truncated) record."""
    srv, store, m, log = server
    proxy = CuttingProxy(int(srv.url.rsplit(":", 1)[1]), cuts=[cut])
    try:
        rep = fetch_release(cfg(f"http://127.0.0.1:{proxy.port}", tmp_path / "cache"))
    finally:
        proxy.close()
    assert rep.retries >= 1 and rep.manifest == m.digest
    assert_cache_clean(tmp_path / "cache")

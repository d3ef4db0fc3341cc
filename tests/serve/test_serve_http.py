"""`edge-sdk serve` over real loopback HTTP (docs/transfer.md, H-rules): Range/If-Range, ETags, channels,
auth, traversal, limits, uploads, logs. Every server is started on a free port and stopped by its fixture."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time

import pytest
import urllib3
from serve_helpers import BULK_BYTES, make_self_signed, make_store, make_tokens, raw_request, status_of

from edge_sdk.release import encode_manifest
from edge_sdk.serve.app import ServeConfig
from edge_sdk.serve.auth import read_token_file, revoke_token
from edge_sdk.serve.server import start_in_thread

HTTP = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=5, read=20))


def get(url: str, token: str | None = None, method: str = "GET", body: bytes | None = None, **headers: str):
    h = {k.replace("_", "-"): v for k, v in headers.items()}
    if token:
        h["Authorization"] = f"Bearer {token}"
    return HTTP.request(method, url, headers=h, body=body, redirect=False)


# ------------------------------------------------------------------------------------------ blobs
def test_blob_range_if_range_etag_H01(served):
    digest, data = served.blob("bulk")
    url, tok = f"{served.url}/v1/blobs/{digest}", served.tokens["reader"]
    r = get(url, tok)
    assert r.status == 200 and r.data == data
    assert r.headers["etag"] == f'"{digest}"' and "immutable" in r.headers["cache-control"]
    assert r.headers["accept-ranges"] == "bytes" and int(r.headers["content-length"]) == len(data)
    assert r.headers["content-type"] == "application/octet-stream"
    r = get(url, tok, Range="bytes=10-19")
    assert r.status == 206 and r.data == data[10:20] and r.headers["content-range"] == f"bytes 10-19/{len(data)}"
    r = get(url, tok, Range="bytes=-7")
    assert r.status == 206 and r.data == data[-7:]
    r = get(url, tok, Range=f"bytes={len(data) - 5}-")
    assert r.status == 206 and r.data == data[-5:]
    # resume with a matching strong validator -> 206; stale or weak -> 200 with the full body
    r = get(url, tok, Range="bytes=1000-", If_Range=f'"{digest}"')
    assert r.status == 206 and r.data == data[1000:]
    r = get(url, tok, Range="bytes=1000-", If_Range='"sha256:' + "0" * 64 + '"')
    assert r.status == 200 and r.data == data
    r = get(url, tok, Range="bytes=1000-", If_Range=f'W/"{digest}"')
    assert r.status == 200 and r.data == data
    # past the end -> 416 with the size
    r = get(url, tok, Range=f"bytes={len(data)}-")
    assert r.status == 416 and r.headers["content-range"] == f"bytes */{len(data)}"
    r = get(url, tok, Range="bytes=5-2")  # inverted
    assert r.status in (400, 416)
    r = get(url, tok, method="HEAD")
    assert r.status == 200 and r.data == b"" and int(r.headers["content-length"]) == len(data)
    r = get(f"{served.url}/v1/blobs/sha256:{'0' * 64}", served.tokens["admin"])
    assert r.status == 404


def test_etag_is_digest_of_served_bytes_H11(served):
    """A blob file changed in the store after it was written gets the ETag of its real bytes."""
    digest, data = served.blob("payload")
    url, tok = f"{served.url}/v1/blobs/{digest}", served.tokens["reader"]
    assert get(url, tok).headers["etag"] == f'"{digest}"'
    path = served.store.blob_path(digest)
    os.chmod(path, 0o644)
    tampered = bytearray(data)
    tampered[50] ^= 0xFF
    path.write_bytes(bytes(tampered))
    r = get(url, tok)
    assert r.status == 200 and r.headers["etag"] == '"sha256:' + hashlib.sha256(tampered).hexdigest() + '"'
    assert any('"event":"store_corrupt"' in line for line in served.log.getvalue().splitlines())
    stats = json.loads(get(f"{served.url}/v1/stats", served.tokens["admin"]).data)
    assert stats["corrupt_blobs"] == [digest]


# ------------------------------------------------------------------------------------------ channels
def test_channel_endpoint_H02(served):
    path = served.store.channel_path("beam-uma/stable")
    r = get(f"{served.url}/v1/channels/beam-uma/stable", served.tokens["reader"])
    assert r.status == 200 and r.data == path.read_bytes()
    assert r.headers["cache-control"] == "private, max-age=5" and r.headers["content-type"] == "application/json"
    assert json.loads(r.data)["manifest"]["digest"] == served.manifest.digest
    r2 = get(f"{served.url}/v1/channels/beam-uma/stable", served.tokens["reader"], If_None_Match=r.headers["etag"])
    assert r2.status == 304 and r2.data == b""
    assert get(f"{served.url}/v1/channels/beam-uma/beta", served.tokens["reader"]).status == 404
    assert get(f"{served.url}/v1/channels/Beam/Bad", served.tokens["admin"]).status == 400


# ------------------------------------------------------------------------------------------ auth
def test_auth_401_403_H03(served):
    digest, _ = served.blob("payload")
    blob, chan = f"{served.url}/v1/blobs/{digest}", f"{served.url}/v1/channels/beam-uma/stable"
    r = get(blob)
    assert r.status == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert get(blob, "edt_" + "A" * 43).status == 401
    assert get(blob, served.tokens["reader"][:-1] + "x").status == 401
    assert get(chan, served.tokens["other"]).status == 403  # wrong channel scope
    assert get(blob, served.tokens["other"]).status == 403  # its channels do not reach the blob
    assert get(blob, served.tokens["reader"]).status == 200
    assert get(blob, served.tokens["admin"]).status == 200
    assert get(f"{served.url}/v1/stats", served.tokens["reader"]).status == 403
    assert get(f"{served.url}/healthz").status == 200  # liveness needs no token
    # the token file holds hashes only
    text = (served.root / "tokens.json").read_text()
    assert all(t not in text for t in served.tokens.values())
    assert {e["sha256"] for e in read_token_file(served.root / "tokens.json")} == {
        hashlib.sha256(t.encode()).hexdigest() for t in served.tokens.values()}
    # revocation takes effect without a restart (the file is re-read within a second)
    revoke_token(served.root / "tokens.json", "fleet-a")
    deadline = time.monotonic() + 5
    while get(blob, served.tokens["reader"]).status != 401:
        assert time.monotonic() < deadline, "revoked token still accepted"
        time.sleep(0.2)


def test_open_server_reads_all_admin_none_H03(open_served):
    digest, data = open_served.blob("graph")
    assert get(f"{open_served.url}/v1/blobs/{digest}").data == data
    r = get(f"{open_served.url}/v1/blobs/{digest}", method="PUT", body=data)
    assert r.status == 403


@pytest.mark.parametrize("path", [
    "/v1/blobs/../../edge-sdk-store.json", "/v1/blobs/..%2F..%2Fedge-sdk-store.json",
    "/v1/blobs/sha256:..%2F..%2F..%2Fedge-sdk-store.json", "/v1/blobs/sha256:" + "0" * 63,
    "/v1/blobs/sha256:" + "A" * 64, "/v1/blobs/sha512:" + "0" * 64, "/v1/blobs/sha256%3A" + "g" * 64,
    "/v1/blobs/%2e%2e/%2e%2e/channels/beam-uma/stable.json", "/v1/blobs/sha256:" + "0" * 64 + "/x",
    "/v1/blobs/%00", "/v1/channels/../edge-sdk-store", "/v1/channels/%2e%2e/edge-sdk-store",
    "/v1/channels/beam-uma/..%2F..%2Fedge-sdk-store", "/v1/channels//etc/passwd", "/v1/channels/beam-uma%2Fstable%00",
    "/edge-sdk-store.json", "/blobs/sha256/", "/v1/../edge-sdk-store.json", "//etc/passwd",
])
def test_traversal_and_malformed_digests_H04(served, path):
    secret = (served.store.root / "edge-sdk-store.json").read_bytes()
    raw = raw_request(served.port, f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                      f"{served.tokens['admin']}\r\nConnection: close\r\n\r\n".encode())
    st = status_of(raw)
    assert st in (400, 404), (path, raw[:200])
    assert secret not in raw


# ------------------------------------------------------------------------------------------ admin writes
def test_admin_upload_and_channel_move_H05(served):
    adm, rd = served.tokens["admin"], served.tokens["reader"]
    data = os.urandom(5000)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    url = f"{served.url}/v1/blobs/{digest}"
    assert get(url, rd, method="PUT", body=data).status == 403
    r = get(f"{served.url}/v1/blobs/sha256:{'1' * 64}", adm, method="PUT", body=data)
    assert r.status == 422 and not served.store.has("sha256:" + "1" * 64)
    assert list((served.store.root / "tmp").iterdir()) == []
    r = get(url, adm, method="PUT", body=data)
    assert r.status == 201 and json.loads(r.data) == {"digest": digest, "size": 5000}
    assert served.store.read_blob(digest, 10000) == data
    assert get(url, adm, method="PUT", body=data).status == 200
    # a channel update must name a complete manifest
    chan = f"{served.url}/v1/channels/beam-uma/beta"
    assert get(chan, adm, method="PUT", body=b'{"manifest":"sha256:' + b"2" * 64 + b'"}').status == 409
    assert get(chan, adm, method="PUT", body=b"not json").status == 400
    assert get(chan, adm, method="PUT", body=b"[1]").status == 400
    assert get(chan, rd, method="PUT", body=json.dumps({"manifest": served.manifest.digest}).encode()).status == 403
    r = get(chan, adm, method="PUT", body=json.dumps({"manifest": served.manifest.digest}).encode())
    assert r.status == 200 and json.loads(r.data)["manifest"]["digest"] == served.manifest.digest
    assert served.store.channel("beam-uma/beta").manifest.digest == served.manifest.digest
    # the reader's scope (beam-uma/*) covers the new channel at once
    assert get(chan, rd).status == 200


def test_upload_limits_and_signed_channel_updates_H05(tmp_path, release_files):
    from edge_sdk.payload import generate_keypair, save_public_key

    store, m = make_store(tmp_path, release_files)
    tokens = make_tokens(tmp_path / "tokens.json")
    priv, pub = generate_keypair()
    save_public_key(tmp_path / "pub.pem", pub)
    cfg = ServeConfig(store=store.root, tokens=tmp_path / "tokens.json", max_upload=1000,
                      trusted_keys=(str(tmp_path / "pub.pem"),))
    with start_in_thread(cfg, log_out=open(os.devnull, "w")) as srv:  # noqa: SIM115
        big = os.urandom(1001)
        r = get(f"{srv.url}/v1/blobs/sha256:{hashlib.sha256(big).hexdigest()}", tokens["admin"], method="PUT", body=big)
        assert r.status == 413
        # the store's manifest is unsigned: refused as a channel target on a server that requires signatures
        r = get(f"{srv.url}/v1/channels/x", tokens["admin"], method="PUT",
                body=json.dumps({"manifest": m.digest}).encode())
        assert r.status == 422 and b"Signature" in r.data
        signed = encode_manifest(m.release, priv)
        store.put_manifest(signed)
        digest = "sha256:" + hashlib.sha256(signed).hexdigest()
        r = get(f"{srv.url}/v1/channels/x", tokens["admin"], method="PUT", body=json.dumps({"manifest": digest}).encode())
        assert r.status == 200


# ------------------------------------------------------------------------------------------ abuse
def test_thousand_ranges_and_oversized_headers_H06(served):
    digest, data = served.blob("bulk")
    tok = served.tokens["reader"]
    ranges = ",".join(f"{i * 10}-{i * 10 + 4}" for i in range(1000))
    t0 = time.monotonic()
    r = get(f"{served.url}/v1/blobs/{digest}", tok, Range=f"bytes={ranges}")
    assert r.status == 200 and r.data == data  # more than 100 ranges: the whole blob, once
    assert time.monotonic() - t0 < 10
    r = get(f"{served.url}/v1/blobs/{digest}", tok, Range="bytes=" + ",".join(f"{i * 10}-{i * 10 + 4}" for i in range(50)))
    assert r.status == 206 and r.headers["content-type"].startswith("multipart/byteranges")
    # an oversized header block is refused and the connection closed; the server keeps serving
    raw = raw_request(served.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n")
    assert status_of(raw) in (400, 431) or raw == b""
    raw = raw_request(served.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                      + b"".join(b"X-H%d: v\r\n" % i for i in range(3000)) + b"\r\n")
    assert status_of(raw) in (400, 431) or raw == b""
    assert get(f"{served.url}/healthz").status == 200


def test_slow_client_does_not_stall_others_H07(served):
    """A client that requests the 1 MiB blob and never reads holds only its own connection."""
    digest, _ = served.blob("bulk")
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(("127.0.0.1", served.port))
    slow.sendall(f"GET /v1/blobs/{digest} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {served.tokens['reader']}"
                 f"\r\n\r\n".encode())
    try:
        time.sleep(0.3)  # the server is now blocked writing to the slow socket
        gdigest, gdata = served.blob("graph")
        t0 = time.monotonic()
        results = []

        def fetch() -> None:
            pm = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=5, read=10))
            for _ in range(5):
                r = pm.request("GET", f"{served.url}/v1/blobs/{gdigest}",
                               headers={"Authorization": f"Bearer {served.tokens['reader']}"})
                results.append(r.status == 200 and r.data == gdata)

        threads = [threading.Thread(target=fetch) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert results == [True] * 20 and time.monotonic() - t0 < 20
    finally:
        slow.close()
    # the slow request is logged once its connection is gone
    deadline = time.monotonic() + 5
    while not any(f"/v1/blobs/{digest}" in ln for ln in served.log.getvalue().splitlines()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    line = next(json.loads(ln) for ln in served.log.getvalue().splitlines() if f"/v1/blobs/{digest}" in ln)
    assert line["status"] == 200 and line["bytes"] <= BULK_BYTES


def test_access_log_and_stats_H08(served):
    digest, data = served.blob("payload")
    get(f"{served.url}/v1/blobs/{digest}", served.tokens["reader"], Range="bytes=100-")
    lines = [json.loads(x) for x in served.log.getvalue().splitlines()]
    entry = [e for e in lines if e["path"] == f"/v1/blobs/{digest}"][-1]
    assert entry["status"] == 206 and entry["bytes"] == len(data) - 100 and entry["token"] == "fleet-a"
    assert entry["range"] == "bytes=100-" and entry["method"] == "GET" and entry["peer"].startswith("127.0.0.1:")
    assert set(entry) >= {"ts", "ms", "if_range"}
    stats = json.loads(get(f"{served.url}/v1/stats", served.tokens["admin"]).data)
    assert stats["bytes_by_blob"][digest] == len(data) - 100 and stats["requests"] >= 1


# ------------------------------------------------------------------------------------------ TLS
def test_tls_H09(tmp_path, release_files):
    store, m = make_store(tmp_path, release_files)
    cert, key = make_self_signed(tmp_path)
    with start_in_thread(ServeConfig(store=store.root), tls_cert=cert, tls_key=key,
                         log_out=open(os.devnull, "w")) as srv:  # noqa: SIM115
        assert srv.url.startswith("https://127.0.0.1:")
        pm = urllib3.PoolManager(retries=False, cert_reqs="CERT_REQUIRED", ca_certs=str(cert))
        digest, data = m.tiers[0].graph.digest, store.blob_path(m.tiers[0].graph.digest).read_bytes()
        assert pm.request("GET", f"{srv.url}/v1/blobs/{digest}").data == data
        with pytest.raises(urllib3.exceptions.SSLError):
            urllib3.PoolManager(retries=False, cert_reqs="CERT_REQUIRED").request("GET", f"{srv.url}/healthz")
        # plain HTTP to the TLS port gets nothing useful
        raw = raw_request(int(srv.url.rsplit(":", 1)[1]), b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", timeout=5)
        assert b'"status":"ok"' not in raw

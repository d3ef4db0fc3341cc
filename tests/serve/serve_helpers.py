"""Helpers for the server and transfer tests: a published release with a 1 MiB extra blob, token files,
raw sockets, a self-signed certificate, a server subprocess, and a TCP proxy that cuts connections."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from edge_sdk.release import Manifest, Store, publish
from edge_sdk.serve.auth import add_token
from edge_sdk.serve.server import RunningServer

BULK_BYTES = 1 << 20
EXE = Path(sys.executable).parent / "edge-sdk"


@dataclass
class Served:
    server: RunningServer
    store: Store
    manifest: Manifest
    log: io.StringIO
    tokens: dict[str, str]
    root: Path

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def blob(self, role: str = "payload", tier: int = 0) -> tuple[str, bytes]:
        t = self.manifest.tiers[tier]
        ref = {"payload": t.payload, "graph": t.graph, "bulk": self.manifest.release.extra[0]}[role]
        return ref.digest, self.store.blob_path(ref.digest).read_bytes()


def make_store(root: Path, release_files, channel: str = "beam-uma/stable",
               bulk_bytes: int = BULK_BYTES) -> tuple[Store, Manifest]:
    """A store with the two-tier release plus a release-level ``bulk-data`` blob of random bytes."""
    bulk = root / "bulk.bin"
    bulk.write_bytes(os.urandom(bulk_bytes))
    store = Store(root / "store", create=True)
    res = publish(store, [release_files.big, release_files.small], channel=channel, extra=[("bulk-data", bulk)])
    return store, res.manifest


def make_tokens(path: Path) -> dict[str, str]:
    return {"admin": add_token(path, "admin", ["admin"]),
            "reader": add_token(path, "fleet-a", ["read:beam-uma/*"]),
            "other": add_token(path, "fleet-b", ["read:other/stable"])}


def raw_request(port: int, request: bytes, timeout: float = 10.0, max_bytes: int = 4 << 20) -> bytes:
    """Send raw bytes, read the whole answer (until the server closes or ``max_bytes``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        out = b""
        while len(out) < max_bytes:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            out += chunk
        return out


def status_of(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/1.1 ") else -1


def make_self_signed(dir: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1/localhost made with `cryptography`."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "edge-sdk test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    c, k = dir / "cert.pem", dir / "key.pem"
    c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    return c, k




def start_serve(store: Path, tmp: Path, *extra: str, python: str | None = None, port: int = 0,
                name: str = "serve") -> tuple[subprocess.Popen, str]:
    """`edge-sdk serve` in a subprocess (``python -m edge_sdk.cli``), waiting for its ready file."""
    ready = tmp / f"{name}-ready.json"
    ready.unlink(missing_ok=True)
    cmd = [python or sys.executable, "-m", "edge_sdk.cli", "serve", "--store", str(store), "--port", str(port),
           "--ready-file", str(ready), "--access-log", str(tmp / f"{name}-access.log"), "--shutdown-timeout", "5",
           *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"serve did not start: {proc.communicate(timeout=10)}")
        time.sleep(0.05)
    return proc, json.loads(ready.read_text())["url"]


def stop(proc: subprocess.Popen, sig: int = 15) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def access_log(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []


class CuttingProxy:
    """A TCP proxy on a free loopback port in front of ``target_port``. The i-th connection's server->client
    stream is cut (both sockets closed) after ``cuts[i]`` bytes; connections beyond the list pass through."""

    def __init__(self, target_port: int, cuts: list[int]) -> None:
        self.target_port, self.cuts = target_port, list(cuts)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.forwarded = 0
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                client, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            cut = self.cuts[self.connections] if self.connections < len(self.cuts) else None
            self.connections += 1
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
            except OSError:
                client.close()
                continue
            threading.Thread(target=self._pump, args=(client, upstream, None), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, cut), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, cut: int | None) -> None:
        sent = 0
        try:
            src.settimeout(30)
            while True:
                data = src.recv(4096 if cut is None else max(1, min(4096, cut - sent)))
                if not data:
                    break
                dst.sendall(data)
                sent += len(data)
                if cut is None:
                    self.forwarded += len(data)
                if cut is not None and sent >= cut:
                    break
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def close(self) -> None:
        self._stop = True
        self._thread.join(5)
        self.sock.close()

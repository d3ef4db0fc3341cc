"""Running the server: bind, announce, serve with uvicorn, shut down gracefully.

``serve(...)`` is what ``edge-sdk serve`` runs in the foreground (SIGINT/SIGTERM: stop accepting, let running
transfers finish for up to ``shutdown_timeout`` seconds, exit). ``start_in_thread(...)`` runs the same server
in a background thread of the calling process (tests, benchmarks, the fleet simulator's live mode) and returns
a handle with the URL and ``stop()``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import uvicorn

from edge_sdk.errors import ConfigError
from edge_sdk.serve.app import MAX_HEADER_BYTES, ServeApp, ServeConfig, create_app

DEFAULT_LIMIT_CONCURRENCY = 1024


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0 = any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on connections of such sockets; without it Nagle +
    # delayed ACK hold every response body ~40 ms behind its headers
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}; pick another --port or --host") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _uvicorn_config(app: ServeApp, tls_cert: str | os.PathLike | None, tls_key: str | os.PathLike | None,
                    shutdown_timeout: int, limit_concurrency: int) -> uvicorn.Config:
    if (tls_cert is None) != (tls_key is None):
        raise ConfigError("give both --tls-cert and --tls-key (or neither)")
    for f in (tls_cert, tls_key):
        if f is not None and not Path(f).is_file():
            raise ConfigError(f"TLS file {f} does not exist")
    return uvicorn.Config(
        app, http="h11", lifespan="off", access_log=False, log_level="warning", proxy_headers=False,
        server_header=False, timeout_keep_alive=5, timeout_graceful_shutdown=shutdown_timeout,
        limit_concurrency=limit_concurrency, h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        ssl_certfile=tls_cert, ssl_keyfile=tls_key,
    )


def _url(sock: socket.socket, host: str, tls: bool) -> str:
    port = sock.getsockname()[1]
    h = f"[{host}]" if ":" in host else host
    return f"{'https' if tls else 'http'}://{h}:{port}"


def serve(cfg: ServeConfig, host: str = "127.0.0.1", port: int = 8080, tls_cert: str | os.PathLike | None = None,
          tls_key: str | os.PathLike | None = None, ready_file: str | os.PathLike | None = None,
          shutdown_timeout: int = 10, limit_concurrency: int = DEFAULT_LIMIT_CONCURRENCY,
          announce: TextIO | None = None) -> None:
    """Serve in the foreground until SIGINT/SIGTERM. Prints ``serving <url> ...`` once listening and, with
    ``ready_file``, writes ``{"url", "port", "pid"}`` there (atomically) for scripts that start it with port 0."""
    from edge_sdk.atomic import atomic_write_text

    app = create_app(cfg)
    config = _uvicorn_config(app, tls_cert, tls_key, shutdown_timeout, limit_concurrency)
    sock = bind_socket(host, port)
    url = _url(sock, host, tls_cert is not None)
    out = announce or sys.stdout
    ctx = app.ctx
    server = uvicorn.Server(config)

    def announce_when_started() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.01)
        if not server.started:
            return
        print(f"edge-sdk serve: serving {url} (store {cfg.store}, {len(ctx.store.channels())} channel(s), "
              f"{'token auth' if ctx.tokens.enabled else 'NO AUTH: every channel is readable by anyone who can connect'}"
              f"{', TLS' if tls_cert else ''}); Ctrl-C stops", file=out, flush=True)
        if ready_file is not None:
            atomic_write_text(ready_file, json.dumps({"url": url, "port": sock.getsockname()[1], "pid": os.getpid()}))

    # uvicorn handles SIGINT/SIGTERM (graceful shutdown), then restores the previous handlers and re-raises the
    # signal; with these no-op handlers in place the re-raise is harmless and the process exits 0
    previous = {s: signal.signal(s, lambda *_: None) for s in (signal.SIGINT, signal.SIGTERM)}
    threading.Thread(target=announce_when_started, daemon=True).start()
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        for s, h in previous.items():
            signal.signal(s, h)
    print("edge-sdk serve: stopped", file=out, flush=True)


@dataclass
class RunningServer:
    """A server running in a background thread: ``url``, the app (``app.ctx.stats``), and ``stop()``."""

    url: str
    app: ServeApp
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self, timeout: float = 30.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
        if self.thread.is_alive():  # pragma: no cover - uvicorn ignored should_exit
            self.server.force_exit = True
            self.thread.join(timeout)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def start_in_thread(cfg: ServeConfig, host: str = "127.0.0.1", port: int = 0,
                    tls_cert: str | os.PathLike | None = None, tls_key: str | os.PathLike | None = None,
                    log_out: TextIO | None = None, shutdown_timeout: int = 2,
                    limit_concurrency: int = DEFAULT_LIMIT_CONCURRENCY, timeout: float = 30.0) -> RunningServer:
    """Start a server in a daemon thread and wait until it accepts connections."""
    app = create_app(cfg, log_out=log_out)
    config = _uvicorn_config(app, tls_cert, tls_key, shutdown_timeout, limit_concurrency)
    sock = bind_socket(host, port)
    server = uvicorn.Server(config)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(server.serve(sockets=[sock]))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            sock.close()

    th = threading.Thread(target=run, name="edge-sdk-serve", daemon=True)
    th.start()
    t0 = time.monotonic()
    while not server.started:
        if errors or not th.is_alive():
            raise RuntimeError(f"server failed to start: {errors[:1]}")
        if time.monotonic() - t0 > timeout:
            server.should_exit = True
            raise RuntimeError("server did not start in time")
        time.sleep(0.01)
    return RunningServer(_url(sock, host, tls_cert is not None), app, server, th)

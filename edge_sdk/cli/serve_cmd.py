"""``edge-sdk serve``: serve a release store over HTTP(S) (docs/transfer.md, "HTTP API"). Needs the ``serve``
extra (Starlette + uvicorn); no torch."""

from __future__ import annotations

from pathlib import Path

import click

from edge_sdk.errors import ConfigError


@click.command("serve")
@click.option("--store", "store_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="store folder (made by `edge-sdk store add`)")
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="0 = any free port")
@click.option("--tokens", "tokens", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="token file (`edge-sdk token add`); without it every channel is readable and nobody is admin")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="PEM certificate")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="PEM private key")
@click.option("--trusted-key", "trusted_keys", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="channel updates over HTTP must be signed by this Ed25519 key; repeatable")
@click.option("--access-log", type=click.Path(dir_okay=False, path_type=Path),
              help="append JSON-lines access log here (default: stderr)")
@click.option("--max-upload", default="1GiB", show_default=True, help="largest blob an admin may PUT")
@click.option("--shutdown-timeout", default=10, show_default=True, type=click.IntRange(0, 3600),
              help="seconds running transfers may take to finish after SIGINT/SIGTERM")
@click.option("--max-connections", default=1024, show_default=True, type=click.IntRange(1, 1_000_000),
              help="concurrent connections before new ones get 503")
@click.option("--ready-file", type=click.Path(dir_okay=False, path_type=Path),
              help="write {url, port, pid} here once listening (for scripts using --port 0)")
def cli(store_dir: Path, host: str, port: int, tokens: Path | None, tls_cert: Path | None, tls_key: Path | None,
        trusted_keys: tuple[str, ...], access_log: Path | None, max_upload: str, shutdown_timeout: int,
        max_connections: int, ready_file: Path | None) -> None:
    """Serve the release store STORE: blobs (Range, If-Range, strong ETags), channels, admin uploads."""
    try:
        from edge_sdk.serve.app import ServeConfig
        from edge_sdk.serve.server import serve
    except ImportError as exc:
        raise ConfigError(f"`edge-sdk serve` needs the serve extra: pip install -e '.[serve]' in a checkout, docs/install.md ({exc})") from None
    from edge_sdk.units import parse_bytes

    cfg = ServeConfig(store=store_dir, tokens=tokens, trusted_keys=trusted_keys,
                      max_upload=parse_bytes(max_upload, "--max-upload"), access_log=access_log)
    serve(cfg, host=host, port=port, tls_cert=tls_cert, tls_key=tls_key, ready_file=ready_file,
          shutdown_timeout=shutdown_timeout, limit_concurrency=max_connections)

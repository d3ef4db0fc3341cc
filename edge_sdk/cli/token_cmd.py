"""``edge-sdk token``: bearer tokens for ``edge-sdk serve`` (the file keeps only SHA-256 hashes; a token is shown
once when it is made). Scopes: ``admin``, ``read:*``, ``read:<channel>``, ``read:<prefix>/*``."""

from __future__ import annotations

from pathlib import Path

import click

TOKENS_OPT = click.option("--tokens", "tokens", required=True, type=click.Path(dir_okay=False, path_type=Path),
                          help="token file (created if missing, mode 0600)")


@click.group("token")
def cli() -> None:
    """Make, list and revoke the bearer tokens `edge-sdk serve --tokens FILE` accepts."""


@cli.command("add")
@TOKENS_OPT
@click.option("--name", required=True, help="who holds the token (e.g. fleet-a, publisher)")
@click.option("--scope", "scopes", multiple=True, required=True,
              help="admin | read:* | read:<channel> | read:<prefix>/* ; repeatable")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path),
              help="also write the token to this file (mode 0600), for `device fetch --token-file`")
def add_cmd(tokens: Path, name: str, scopes: tuple[str, ...], out: Path | None) -> None:
    """Create a token; print it once (only its hash is stored)."""
    from edge_sdk.atomic import atomic_write_text
    from edge_sdk.serve.auth import add_token

    token = add_token(tokens, name, list(scopes))
    if out is not None:
        atomic_write_text(out, token + "\n", mode=0o600, make_parents=True)
    click.echo(token)


@cli.command("ls")
@TOKENS_OPT
def ls_cmd(tokens: Path) -> None:
    """List token names, scopes and creation times (never the tokens)."""
    from edge_sdk.serve.auth import read_token_file

    for e in read_token_file(tokens):
        click.echo(f"{e['name']:<24} {','.join(e['scopes']):<40} {e.get('created', '')}")


@cli.command("revoke")
@TOKENS_OPT
@click.option("--name", required=True)
def revoke_cmd(tokens: Path, name: str) -> None:
    """Remove a token (a running server drops it within a second)."""
    from edge_sdk.serve.auth import revoke_token

    revoke_token(tokens, name)
    click.echo(f"revoked {name}")

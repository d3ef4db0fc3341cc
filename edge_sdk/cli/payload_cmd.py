"""``edge-sdk payload``: inspect, verify, sign payload files and make signing keys.

Errors are the typed :mod:`edge_sdk.payload.errors`; ``edge_sdk.cli.main.main`` prints them as one line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from edge_sdk import codecs
from edge_sdk.bitpack import row_bytes


def _task_or_note(p: Any) -> tuple[Any, Any]:
    """(task, graph) of a payload; for a v2 payload whose task blob is not at hand, a note instead."""
    from edge_sdk.payload.errors import TaskBlobMissing

    try:
        return p.task, p.graph
    except TaskBlobMissing:
        note = f"task blob sha256:{p.task_digest} not found next to the payload (pass --task)"
        return {"unresolved": note, "train": p.recipe}, {"unresolved": note}


def _summary(p: Any) -> dict[str, Any]:
    """JSON-able description of an opened payload."""
    from edge_sdk.payload.format import DIGEST_SIZE, PREFIX_SIZE

    task, graph = _task_or_note(p)
    trailer = p.size - p.content_end
    groups = []
    for g in p.groups:
        groups.append({
            "name": g.name, "role": g.role, "kind": g.kind, "bits": g.bits, "n": g.n, "d": g.d,
            "bytes": g.nbytes,
            "row_bytes": row_bytes(g.d, g.bits) if g.kind not in codecs.RAW_KINDS else g.d * g.bits // 8,
            "labeled": g.desc.label_start is not None, "meta": g.meta,
            "params": {k: [r.dtype, list(r.shape)] for k, r in g.desc.params.items()},
            "extra": {k: [r.dtype, list(r.shape)] for k, r in g.desc.extras.items()},
        })
    lab = p.labels_section
    label_bytes = p.sections[lab]["length"] if lab is not None else 0
    if p.label_mode == "counts":
        label_bytes = sum(x["length"] for x in p.sections[len(p.sections) - len(p.sample_groups()):])
    return {
        "path": str(p.path) if p.path else None,
        "format_version": f"{p.version[0]}.{p.version[1]}",
        "size": p.size,
        "sizes": {
            "prefix": PREFIX_SIZE, "header": p.header_len, "data": p.content_end - p.data_start,
            "digest": DIGEST_SIZE if (p.version[0] == 1 or not p.signed) else 0,
            "signature": trailer - (DIGEST_SIZE if (p.version[0] == 1 or not p.signed) else 0),
            "labels": label_bytes,
        },
        "label_mode": p.label_mode,
        "task_digest": p.task_digest,
        "recipe": p.recipe,
        "sha256": p.sha256,
        "signed": p.signed,
        "key_id": p.key_id,
        "signature_status": p.signature_status,
        "num_classes": p.num_classes,
        "label_bits": codecs.label_bits(p.num_classes),
        "graph": graph,
        "task": task,
        "provenance": p.provenance,
        "groups": groups,
        "sections": p.sections,
    }


def clip(text: str, limit: int = 200) -> str:
    """``text`` cut to at most ``limit`` characters so that the cut is visible: it ends with "..." and, when
    there is room, with how many characters were left out (``--json`` prints everything)."""
    if len(text) <= limit:
        return text
    note = ""
    for _ in range(3):  # the note's length depends on the count it states
        omitted = len(text) - (limit - len(note))
        note = f"... [{omitted} more chars; --json shows all]"
    if limit < len(note) + 20:
        return text[: max(limit - 3, 0)] + "..."
    return text[: limit - len(note)] + note


@click.group("payload")
def cli() -> None:
    """Inspect, verify and sign payload files (formats v1 and v2, docs/payload-format.md)."""


@cli.command("inspect")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON")
@click.option("--task", "task_blob", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="v2: the task blob the payload names (default: task.json / sha256-<hex> beside it)")
def inspect_cmd(path: Path, as_json: bool, task_blob: Path | None) -> None:
    """Show header, groups, sections, sizes, digests and signature status of PATH."""
    from edge_sdk.payload import read_payload

    with read_payload(path, task_blob=task_blob) as p:
        s = _summary(p)
    if as_json:
        click.echo(json.dumps(s, indent=2, sort_keys=True))
        return
    click.echo(f"{s['path']}: edge-sdk payload v{s['format_version']}, {s['size']} bytes")
    z = s["sizes"]
    click.echo(f"  sizes: prefix {z['prefix']} + header {z['header']} + data {z['data']} (labels {z['labels']})"
               f" + digest {z['digest']} + signature {z['signature']}")
    click.echo(f"  sha256 (content): {s['sha256']}")
    click.echo(f"  signature: {s['signature_status']}" + (f" (key id {s['key_id']})" if s["key_id"] else ""))
    g = s["graph"]
    if s["task_digest"]:
        click.echo(f"  task blob: sha256:{s['task_digest']}")
    if s["recipe"]:
        click.echo(f"  recipe: {json.dumps(s['recipe'], sort_keys=True)}")
    click.echo(f"  labels: {s['label_mode']}")
    if g is None or "unresolved" in g:
        click.echo(f"  graph: {'none' if g is None else g['unresolved']}")
    else:
        click.echo(f"  graph: {g['sha256']} ({g['size']} bytes)")
    click.echo(f"  num_classes: {s['num_classes']} (labels at {s['label_bits']} bits)")
    click.echo(f"  task: {clip(json.dumps(s['task'], sort_keys=True))}")
    click.echo(f"  provenance: {clip(json.dumps(s['provenance'], sort_keys=True))}")
    click.echo(f"  groups ({len(s['groups'])}):")
    click.echo(f"    {'name':<16} {'role':<11} {'kind':<21} {'bits':>4} {'n':>8} {'d':>6} {'bytes':>10}")
    for gr in s["groups"]:
        click.echo(f"    {clip(gr['name'], 16):<16} {gr['role']:<11} {gr['kind']:<21} {gr['bits']:>4} {gr['n']:>8} "
                   f"{gr['d']:>6} {gr['bytes']:>10}")
    click.echo(f"  sections ({len(s['sections'])}): " + ", ".join(
        f"#{x['index']}@{x['offset']}+{x['length']}" for x in s["sections"][:12])
        + (f" ... ({len(s['sections']) - 12} more; --json shows all)" if len(s["sections"]) > 12 else ""))


@cli.command("verify")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--public-key", "public_keys", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="trusted signer public key (PEM or raw); repeatable. Given any, a valid signature is required.")
@click.option("--task", "task_blob", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="v2: the task blob the payload names; checked against its digest when given or found beside it")
def verify_cmd(path: Path, public_keys: tuple[Path, ...], task_blob: Path | None) -> None:
    """Fully verify PATH: structure, digest, every section CRC, labels, and (with keys) the signature."""
    from edge_sdk.payload import read_payload
    from edge_sdk.payload.errors import TaskBlobMissing
    from edge_sdk.payload.signing import load_public_key

    keys = [load_public_key(k) for k in public_keys] or None
    with read_payload(path, trusted_keys=keys, require_signature=bool(keys), task_blob=task_blob) as p:
        p.decode_all()
        if p.task_digest is not None:
            try:
                p.task_blob()
            except TaskBlobMissing:
                if task_blob is not None:
                    raise
                click.echo(f"note: task blob sha256:{p.task_digest} not found beside the payload (not checked)")
        click.echo(f"OK {path}: {p.size} bytes, sha256 {p.sha256}, signature {p.signature_status}"
                   + (f" (key id {p.key_id})" if p.key_id else ""))


@cli.command("keygen")
@click.option("--out-dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", default="payload_signing", show_default=True, help="file stem of the key files")
@click.option("--format", "fmt", type=click.Choice(["pem", "raw"]), default="pem", show_default=True)
@click.option("--force", is_flag=True,
              help="replace an existing key pair (the old private key is lost; without it keygen refuses)")
def keygen_cmd(out_dir: Path, name: str, fmt: str, force: bool) -> None:
    """Make an Ed25519 key pair: OUT_DIR/NAME.key (private, mode 0600) and OUT_DIR/NAME.pub.

    Never replaces an existing key file unless --force is given."""
    from edge_sdk.payload.signing import (
        KeyFileExists,
        generate_keypair,
        key_exists_message,
        key_id,
        save_private_key,
        save_public_key,
    )

    kp, pp = out_dir / f"{name}.key", out_dir / f"{name}.pub"
    if not force:
        for f in (kp, pp):  # both checked before anything is written: never half a pair
            if f.exists():
                raise KeyFileExists(key_exists_message(f))
    out_dir.mkdir(parents=True, exist_ok=True)
    priv, pub = generate_keypair()
    save_private_key(kp, priv, fmt, overwrite=force)
    save_public_key(pp, pub, fmt, overwrite=force)
    click.echo(f"private key: {kp}\npublic key: {pp}\nkey id: {key_id(pub)}")


@cli.command("sign")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--key", "key_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Ed25519 private key file (PEM or raw)")
def sign_cmd(path: Path, key_path: Path) -> None:
    """Sign PATH in place (atomic rewrite with the signed flag, key id and signature)."""
    from edge_sdk.payload import sign_payload
    from edge_sdk.payload.signing import load_private_key

    info = sign_payload(path, load_private_key(key_path))
    click.echo(f"signed {path}: {info.size} bytes, key id {info.key_id}")

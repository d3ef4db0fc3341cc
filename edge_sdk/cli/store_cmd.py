"""``edge-sdk store``: a content-addressed release store (docs/transfer.md) — add a release, list, show,
verify, garbage-collect, move a channel. Torch-free."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import click

from edge_sdk.errors import ConfigError

STORE_OPT = click.option("--store", "store_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
                         help="store folder")
JSON_OPT = click.option("--json", "as_json", is_flag=True, help="print JSON")


def _parse_duration(text: str) -> float:
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(s|m|h|d)?\s*", text)
    if not m:
        raise ConfigError(f"cannot parse duration {text!r}: use e.g. 3600, 90s, 30m, 1h, 2d")
    return float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2) or "s"]


def _tier_rows(m: Any) -> list[dict[str, Any]]:
    return [{"name": t.name, "payload": t.payload.to_json(), "graph": t.graph.to_json(), "compression": t.compression,
             "kpis": dict(t.kpis), "extra": [b.to_json() for b in t.extra]} for t in m.release.tiers]


def _print_release(m: Any, indent: str = "  ") -> None:
    r = m.release
    click.echo(f"{indent}release {r.release} (created {r.created}, min runtime {r.min_runtime}, manifest {m.digest}, "
               f"{m.size} B, signature {m.signature_status}{' key ' + m.key_id[:16] + '...' if m.key_id else ''})")
    click.echo(f"{indent}identity: task {r.identity.task} {r.identity.task_digest[:23]}..., model "
               f"{json.dumps(r.identity.model, sort_keys=True)[:80]}")
    click.echo(f"{indent}{'tier':<12} {'payload B':>10} {'graph B':>9} {'compression':>12} {'top1':>7}  graph digest")
    for t in r.tiers:
        comp = f"{t.compression:.1f}x" if t.compression else "-"
        top1 = f"{t.kpis['top1']:.4f}" if "top1" in t.kpis else "-"
        click.echo(f"{indent}{t.name:<12} {t.payload.size:>10,} {t.graph.size:>9,} {comp:>12} {top1:>7}  "
                   f"{t.graph.digest[:23]}...")
        for b in t.extra:
            click.echo(f"{indent}  tier extra blob {b.type}: {b.digest[:23]}... {b.size:,} B")
    for b in r.extra:
        click.echo(f"{indent}extra blob {b.type}: {b.digest[:23]}... {b.size:,} B")


@click.group("store")
def cli() -> None:
    """Content-addressed release store: blobs named sha256:<hex>, signed manifests, channels."""


@cli.command("add")
@STORE_OPT
@click.option("--channel", required=True, help="channel to point at the new release, e.g. beam-uma/stable")
@click.argument("payloads", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--sign", "key_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Ed25519 private key (PEM or raw) to sign the manifest with (same keys as payloads)")
@click.option("--graph", "graphs", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="training graph file (default: found by the payloads' graph digests beside them); repeatable")
@click.option("--task", "tasks", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="task blob of v2 payloads (default: found by the payloads' task digests beside them, task.json "
                   "or sha256-<hex>, or in the store); attached as an extra blob of type task; repeatable")
@click.option("--release", "release_name", default=None, help="release name (default: <channel>-<UTC time>)")
@click.option("--tier-name", "tier_names", multiple=True,
              help="tier name per payload, in order (default: the report's budget spec, e.g. 36x)")
@click.option("--rank-by", default="top1", show_default=True,
              help="KPI that orders tiers best first (when every tier has it; else by payload size)")
@click.option("--min-runtime", default=None,
              help="oldest edge-sdk runtime that may use the release (default: this one; never below the first "
                   "runtime that reads and trains the tiers: 0.1.0 for v1, 0.2.0 for v2, 0.3.0 with label "
                   "smoothing)")
@click.option("--extra", "extras", multiple=True, metavar="TYPE=FILE",
              help="release-level typed blob, e.g. model-card=card.md; repeatable")
@JSON_OPT
def add_cmd(store_dir: Path, channel: str, payloads: tuple[Path, ...], key_path: Path | None, graphs: tuple[Path, ...],
            tasks: tuple[Path, ...], release_name: str | None, tier_names: tuple[str, ...], rank_by: str, min_runtime: str | None,
            extras: tuple[str, ...], as_json: bool) -> None:
    """Add PAYLOADS (one tier each) with their graphs (and, for payload format v2, their task blobs) as a new
    release and point CHANNEL at it."""
    from edge_sdk.payload.signing import load_private_key
    from edge_sdk.release import Store, publish

    extra = []
    for e in extras:
        btype, sep, path = e.partition("=")
        if not sep or not Path(path).is_file():
            raise ConfigError(f"--extra {e!r}: use TYPE=FILE with an existing file")
        extra.append((btype, Path(path)))
    key = load_private_key(key_path) if key_path else None
    store = Store(store_dir, create=True)
    res = publish(store, payloads, channel=channel, signing_key=key, graphs=graphs, release_name=release_name,
                  tier_names=tier_names or None, rank_by=rank_by, min_runtime=min_runtime, extra=extra,
                  tasks=tasks)
    if as_json:
        click.echo(json.dumps({"manifest": res.manifest.digest, "manifest_size": res.manifest.size,
                               "channel": channel, "release": res.manifest.release.release,
                               "tiers": _tier_rows(res.manifest), "new_blobs": [b.to_json() for b in res.new_blobs],
                               "extra": [b.to_json() for b in res.manifest.release.extra],
                               "notes": res.notes}, indent=1, sort_keys=True))
        return
    for n in res.notes:
        click.echo(f"note: {n}", err=True)
    click.echo(f"added release {res.manifest.release.release} to {store_dir} ({len(res.new_blobs)} new blobs); "
               f"channel {channel} -> {res.manifest.digest}")
    _print_release(res.manifest)


@cli.command("ls")
@STORE_OPT
@JSON_OPT
def ls_cmd(store_dir: Path, as_json: bool) -> None:
    """List channels, the release each points at (tiers, sizes, KPIs) and the store's blobs."""
    from edge_sdk.release import ReleaseError, Store

    store = Store(store_dir)
    blobs = list(store.iter_blobs())
    total = sum(p.stat().st_size for _, p in blobs)
    rows: list[tuple[dict[str, Any], Any]] = []
    for rec in store.channels():
        entry: dict[str, Any] = {"channel": rec.channel, "manifest": rec.manifest.digest, "updated": rec.updated,
                                 "history": [h.digest for h in rec.history]}
        m = None
        try:
            m = store.manifest(rec.manifest.digest)
            entry.update(release=m.release.release, created=m.release.created, signature=m.signature_status,
                         key_id=m.key_id, tiers=_tier_rows(m))
        except ReleaseError as exc:
            entry["error"] = f"{type(exc).__name__}: {exc}"
        rows.append((entry, m))
    if as_json:
        click.echo(json.dumps({"store": str(store_dir), "blobs": len(blobs), "bytes": total,
                               "channels": [e for e, _ in rows]}, indent=1, sort_keys=True))
        return
    click.echo(f"{store_dir}: {len(blobs)} blobs, {total:,} bytes, {len(rows)} channel(s)")
    for entry, m in rows:
        click.echo(f"channel {entry['channel']} -> {entry['manifest']} (updated {entry['updated']}, "
                   f"{len(entry['history'])} previous)")
        if m is None:
            click.echo(f"  error: {entry['error']}")
        else:
            _print_release(m)


@cli.command("show")
@STORE_OPT
@click.option("--channel", default=None, help="show the release this channel points at")
@click.option("--manifest", "digest", default=None, help="show this manifest (sha256:<hex>)")
def show_cmd(store_dir: Path, channel: str | None, digest: str | None) -> None:
    """Print a manifest's body (canonical JSON, pretty-printed) and its envelope facts."""
    from edge_sdk.release import Store

    if (channel is None) == (digest is None):
        raise ConfigError("give exactly one of --channel or --manifest")
    store = Store(store_dir)
    digest = digest or store.channel(str(channel)).manifest.digest
    m = store.manifest(digest)
    click.echo(json.dumps({"manifest": m.digest, "size": m.size, "version": f"{m.version[0]}.{m.version[1]}",
                           "signature": m.signature_status, "key_id": m.key_id, "content_sha256": m.content_sha256,
                           "body": m.release.to_json()}, indent=1, sort_keys=True))


@cli.command("verify")
@STORE_OPT
@JSON_OPT
def verify_cmd(store_dir: Path, as_json: bool) -> None:
    """Re-hash every blob and check every channel's release is complete. Exit code 6 when anything is wrong."""
    from edge_sdk.release import BlobCorrupt, Store

    rep = Store(store_dir).verify(progress=not as_json and sys.stderr.isatty())
    if as_json:
        click.echo(json.dumps(rep.to_json(), indent=1, sort_keys=True))
    else:
        click.echo(f"{store_dir}: {rep.blobs} blobs ({rep.bytes:,} bytes) re-hashed, {rep.channels} channel(s); "
                   f"{len(rep.corrupt)} corrupt, {len(rep.missing)} missing, {len(rep.invalid)} invalid, "
                   f"{rep.unreferenced} unreferenced ({rep.unreferenced_bytes:,} bytes), {rep.stale_tmp} temp file(s), "
                   f"{len(rep.stray)} stray file(s)")
        for d in rep.corrupt:
            click.echo(f"  corrupt: {d} (bytes do not hash to the name)")
        for msg in rep.missing + rep.invalid:
            click.echo(f"  {msg}")
    if not rep.ok:
        raise BlobCorrupt(f"store {store_dir} failed verification ({len(rep.corrupt)} corrupt, {len(rep.missing)} "
                          f"missing, {len(rep.invalid)} invalid); re-add the affected releases")


@cli.command("gc")
@STORE_OPT
@click.option("--grace", default="1h", show_default=True,
              help="keep unreferenced blobs and temp files younger than this (3600, 90s, 30m, 1h)")
@click.option("--dry-run", is_flag=True, help="only report what would be removed")
@JSON_OPT
def gc_cmd(store_dir: Path, grace: str, dry_run: bool, as_json: bool) -> None:
    """Remove blobs that no channel (head or history) reaches, and stale temp files."""
    from edge_sdk.release import Store

    rep = Store(store_dir).gc(grace_s=_parse_duration(grace), dry_run=dry_run)
    if as_json:
        click.echo(json.dumps(rep.to_json(), indent=1, sort_keys=True))
        return
    verb = "would remove" if dry_run else "removed"
    click.echo(f"{verb} {len(rep.removed)} blob(s) ({rep.removed_bytes:,} bytes) and {rep.removed_tmp} temp file(s); "
               f"kept {rep.reachable} reachable, {rep.kept_young} younger than the grace period")


@cli.command("set-channel")
@STORE_OPT
@click.option("--channel", required=True)
@click.option("--manifest", "digest", required=True, help="manifest blob (sha256:<hex>) already in the store")
@click.option("--trusted-key", "trusted_keys", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="require the manifest to be signed by this key; repeatable")
def set_channel_cmd(store_dir: Path, channel: str, digest: str, trusted_keys: tuple[str, ...]) -> None:
    """Point CHANNEL at a stored manifest (promote a release, or roll back to an earlier one)."""
    from edge_sdk.release import Store

    rec = Store(store_dir).set_channel(channel, digest, trusted_keys=list(trusted_keys) or None)
    click.echo(f"channel {rec.channel} -> {rec.manifest.digest} ({len(rec.history)} previous)")

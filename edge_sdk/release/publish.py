"""Publishing: payload files (+ their training graphs and the server's report.json) -> blobs + a signed
manifest in a store, and optionally a channel pointing at it. Torch-free (reads payloads with the core
reader). Used by ``edge-sdk store add``.

Tier facts come from the files themselves: the payload's header names its graph (``sha256`` + size), its task
and model; the ``report.json`` that ``edge-sdk distill``/``quantize`` writes next to the payload gives the
measured KPIs (means over the evaluation seeds) and the compression ratio. A report is used only when it
describes this very payload (its ``payload.sha256`` equals the file's SHA-256, or that of the file before it
was signed).

A payload of format v2 names its **task blob** (task spec, model spec, graph digest; docs/payload-format.md,
"Version 2.0") by SHA-256 instead of carrying it. The blob is looked for among the ``--task`` files, beside the
payload (``task.json`` / ``sha256-<hex>``, as :func:`edge_sdk.payload.taskblob.find_task_blob` finds it) and in the
store, checked against the digest, and attached as an extra blob of type ``task``: release-level when every tier
names the same blob (the usual case: one task, one graph), else on each tier that names it. A device downloads it
once and caches it by digest like the graph.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_sdk.errors import ConfigError
from edge_sdk.release.channel import ChannelRecord, check_channel_name
from edge_sdk.release.digest import BlobRef, hash_file
from edge_sdk.release.manifest import (
    TIER_NAME_RE,
    Identity,
    Manifest,
    Tier,
    build_release,
    encode_manifest,
    format_min_runtime,
    parse_version,
    read_manifest,
    recipe_features,
    task_digest,
    utc_now,
)
from edge_sdk.release.store import Store

REPORT_NAME = "report.json"
MAX_REPORT_BYTES = 16 << 20


@dataclass
class TierSource:
    """One payload to publish as a tier, with what was found for it."""

    payload: Path
    payload_ref: BlobRef
    graph: Path | None
    graph_ref: BlobRef
    identity: Identity
    name: str
    compression: float | None = None
    kpis: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    task: Path | None = None  #: v2: the task blob file (None: in the store already, or a v1 payload)
    task_ref: BlobRef | None = None  #: v2: the task blob the payload names (type ``task``)
    payload_format: int = 1  #: the payload's format (major version)
    #: recipe features that need a newer runtime (manifest.FEATURE_MIN_RUNTIME), e.g. ``("label_smoothing",)``
    features: tuple[str, ...] = ()


@dataclass
class PublishResult:
    manifest: Manifest
    channel: ChannelRecord | None
    tiers: list[TierSource]
    new_blobs: list[BlobRef]
    notes: list[str]


def unsigned_sha256(path: Path) -> str:
    """SHA-256 (hex) of the file the payload was before ``payload sign``: same prefix (flags cleared), header and
    data, followed by its own content digest (docs/payload-format.md)."""
    from edge_sdk.payload import read_payload

    with read_payload(path) as p:
        if not p.signed:
            return hash_file(path)[0].split(":", 1)[1]
        content = bytearray(p.raw_content())
    content[10:12] = (int.from_bytes(content[10:12], "little") & ~1).to_bytes(2, "little")
    digest = hashlib.sha256(content).digest()
    return hashlib.sha256(bytes(content) + digest).hexdigest()


def _report_for(payload: Path, file_hex: str) -> tuple[dict[str, Any] | None, str | None]:
    """(report, note): the report.json next to ``payload`` if it describes this payload."""
    rp = payload.parent / REPORT_NAME
    if not rp.is_file():
        return None, f"{payload}: no {REPORT_NAME} beside it, so the tier has no KPIs or compression"
    if rp.stat().st_size > MAX_REPORT_BYTES:
        return None, f"{rp}: larger than {MAX_REPORT_BYTES} bytes, ignored"
    try:
        rep = json.loads(rp.read_bytes())
        want = str(rep["payload"]["sha256"]).lower()
    except (ValueError, KeyError, TypeError) as exc:
        return None, f"{rp}: not a report.json ({exc}), ignored"
    if want not in (file_hex, unsigned_sha256(payload)):
        return None, f"{rp} describes another payload (sha256 {want[:16]}...), ignored"
    return rep, None


def _kpis(rep: Mapping[str, Any]) -> dict[str, float]:
    out = {}
    for k, v in dict(rep.get("kpis") or {}).items():
        mean = v.get("mean") if isinstance(v, dict) else v
        if isinstance(mean, (int, float)) and not isinstance(mean, bool) and mean == mean and abs(mean) != float("inf"):
            if re.fullmatch(r"[a-z0-9][a-z0-9_]{0,63}", str(k)):
                out[str(k)] = float(mean)
    return out


def _graph_candidates(payload: Path, graphs: Sequence[Path]) -> list[Path]:
    return [*graphs, *sorted(payload.parent.glob("*.onnx"))]


def find_task(path: Path, digest_hex: str, tasks: Sequence[Path], store: Store | None) -> tuple[Path | None, BlobRef]:
    """(file, or None when only the store holds it; ref) of the task blob ``digest_hex`` that the v2 payload
    ``path`` names: the first of ``tasks`` with that SHA-256, else ``sha256-<hex>`` / ``task.json`` beside the
    payload, else the store's blob. It is validated (size before reading, digest, schema) before it is used;
    raises ConfigError when there is none, a PayloadError when it breaks the task blob rules."""
    from edge_sdk.payload.taskblob import TASK_BLOB_MAX_BYTES, TASK_BLOB_NAME, parse_task_blob

    digest = f"sha256:{digest_hex}"
    cands: list[Path | None] = [*tasks, path.parent / f"sha256-{digest_hex}", path.parent / TASK_BLOB_NAME]
    if store is not None:
        cands.append(None)
    for c in cands:
        f = store.blob_path(digest) if c is None and store is not None else c
        assert f is not None
        if f.is_file() and f.stat().st_size <= TASK_BLOB_MAX_BYTES and hash_file(f)[0] == digest:
            blob = parse_task_blob(f.read_bytes(), bytes.fromhex(digest_hex))
            return c, BlobRef(digest, len(blob.data), "task")
    raise ConfigError(
        f"{path} is a payload of format v2 naming task blob {digest}, which is neither given with --task, nor beside "
        "it (task.json or sha256-<hex>, as `edge-sdk distill|quantize --payload-format 2` writes it), nor in the "
        "store; pass the task.json written with this payload via --task")


def inspect_payload(path: Path, graphs: Sequence[Path], store: Store | None, tasks: Sequence[Path] = ()) -> TierSource:
    """Read one payload and find its graph, its task blob (v2) and report (raises ConfigError when the graph or the
    task blob cannot be found)."""
    from edge_sdk.payload import read_payload

    path = Path(path)
    task_path, task_ref = None, None
    with read_payload(path) as p:
        version, tdigest = p.version, p.task_digest
    if version[0] >= 2 and tdigest is not None:
        task_path, task_ref = find_task(path, tdigest, tasks, store)
    task_arg = (task_path or (store.blob_path(task_ref.digest) if store is not None and task_ref else None))
    with read_payload(path, task_blob=task_arg) as p:
        graph = dict(p.graph) if p.graph else None
        task = dict(p.task or {})
        features = recipe_features(p.recipe)
    if graph is None:
        raise ConfigError(f"{path} names no training graph; export the payload with its graph (a release needs both)")
    if not isinstance(task.get("kind"), str) or not isinstance(task.get("model"), dict):
        raise ConfigError(f"{path}: the payload's task has no 'kind' and 'model'; a release needs both to say what "
                          "it trains")
    pref_digest, psize = hash_file(path)
    gdigest, gsize = f"sha256:{graph['sha256']}", int(graph["size"])
    gpath = None
    for cand in _graph_candidates(path, graphs):
        if cand.is_file() and cand.stat().st_size == gsize and hash_file(cand)[0] == gdigest:
            gpath = cand
            break
    if gpath is None and not (store is not None and store.has(gdigest)):
        raise ConfigError(
            f"{path} names graph {gdigest} ({gsize} B), which is neither beside it, nor given with --graph, nor in "
            "the store; pass the graph exported with this payload via --graph")
    src = TierSource(payload=path, payload_ref=BlobRef(pref_digest, psize), graph=gpath,
                     graph_ref=BlobRef(gdigest, gsize),
                     identity=Identity(task=task["kind"], task_digest=task_digest(task), model=task["model"]),
                     name="", task=task_path, task_ref=task_ref, payload_format=int(version[0]),
                     features=features)
    rep, note = _report_for(path, pref_digest.split(":", 1)[1])
    if note:
        src.notes.append(note)
    if rep is not None:
        src.kpis = _kpis(rep)
        comp = rep.get("compression")
        if isinstance(comp, (int, float)) and not isinstance(comp, bool) and comp > 0:
            src.compression = float(comp)
        spec = str((rep.get("budget") or {}).get("spec") or "")
        if TIER_NAME_RE.match(spec):
            src.name = spec
        elif src.compression is not None:
            src.name = f"{src.compression:.0f}x"
    return src


def _unique_names(sources: Sequence[TierSource], names: Sequence[str] | None) -> None:
    if names:
        if len(names) != len(sources):
            raise ConfigError(f"give one --tier-name per payload ({len(sources)}), got {len(names)}")
        for s, n in zip(sources, names, strict=True):
            s.name = n
    used: set[str] = set()
    for s in sources:
        base = s.name or re.sub(r"[^A-Za-z0-9._+-]", "-", s.payload.parent.name or s.payload.stem).lstrip("._+-") or "tier"
        name, k = base[:60], 2
        while name in used:
            name, k = f"{base[:56]}-{k}", k + 1
        if TIER_NAME_RE.match(name) is None:
            raise ConfigError(f"tier name {name!r} is invalid: letters, digits, '.', '_', '+', '-', at most 64 chars")
        used.add(name)
        s.name = name


def rank_tiers(sources: list[TierSource], rank_by: str | None) -> list[TierSource]:
    """Best first: by the expected ``rank_by`` KPI (descending) when every tier has it, else by payload size
    (descending: more bytes, more information)."""
    if rank_by and all(rank_by in s.kpis for s in sources):
        return sorted(sources, key=lambda s: (-s.kpis[rank_by], -s.payload_ref.size, s.name))
    return sorted(sources, key=lambda s: (-s.payload_ref.size, s.name))


def publish(store: Store, payloads: Sequence[str | os.PathLike], *, channel: str | None = None,
            signing_key: Ed25519PrivateKey | None = None, graphs: Sequence[str | os.PathLike] = (),
            release_name: str | None = None, tier_names: Sequence[str] | None = None, rank_by: str | None = "top1",
            min_runtime: str | None = None, created: str | None = None,
            extra: Sequence[tuple[str, str | os.PathLike]] = (), tasks: Sequence[str | os.PathLike] = ()) -> PublishResult:
    """Add a release made of ``payloads`` (one tier each) to ``store``; point ``channel`` at it if given.

    ``extra``: (type, file) release-level blobs (e.g. a model card). ``tasks``: task blob files of v2 payloads
    (default: found beside each payload; see the module docstring). Order of writes: blobs, manifest, channel
    (crash-safe, see :mod:`edge_sdk.release.store`)."""
    if not payloads:
        raise ConfigError("give at least one payload")
    if any(btype == "task" for btype, _ in extra):
        raise ConfigError("extra blobs of type 'task' are attached from the v2 payloads' task digests; give the task "
                          "blob file with --task instead of --extra task=FILE")
    tpaths = [Path(t) for t in tasks]
    for t in tpaths:
        if not t.is_file():
            raise ConfigError(f"--task {t}: no such file")
    if channel is not None:
        check_channel_name(channel)
    gpaths = [Path(g) for g in graphs]
    for g in gpaths:
        if not g.is_file():
            raise ConfigError(f"--graph {g}: no such file")
    sources = [inspect_payload(Path(p), gpaths, store, tpaths) for p in payloads]
    if len({s.payload_ref.digest for s in sources}) != len(sources):
        raise ConfigError("the same payload is given twice")
    ids = {(s.identity.task, s.identity.task_digest, json.dumps(s.identity.model, sort_keys=True)) for s in sources}
    if len(ids) != 1:
        raise ConfigError("the payloads are for different tasks or models (task spec or model spec differ, recipe "
                          "aside); a release holds tiers of one task and model")
    _unique_names(sources, tier_names)
    features = sorted({f for s in sources for f in s.features})
    need = format_min_runtime((s.payload_format for s in sources), features)
    if min_runtime is not None and parse_version(min_runtime) < parse_version(need):
        fmts = sorted({s.payload_format for s in sources})
        uses = f"; recipe features {', '.join(features)}" if features else ""
        raise ConfigError(f"--min-runtime {min_runtime} is below {need}, the first edge-sdk runtime that reads and "
                          f"trains every tier (this release's tiers: format {', '.join(map(str, fmts))}{uses}); an "
                          f"older runtime would fetch a payload it cannot use. Use --min-runtime {need} or newer, or "
                          "publish payloads written with --payload-format 1 and without label smoothing for older "
                          "devices")
    sources = rank_tiers(sources, rank_by)
    created = created or utc_now()
    name = release_name or f"{(channel or 'release').replace('/', '-')}-{created.replace(':', '').replace('-', '')}"
    new: list[BlobRef] = []
    extra_refs: list[BlobRef] = []
    task_refs = {s.task_ref.digest: s.task_ref for s in sources if s.task_ref is not None}
    shared = len(task_refs) == 1 and all(s.task_ref is not None for s in sources)  # one blob for every tier
    with store.lock():
        for s in sources:
            for ref, src in ((s.payload_ref, s.payload), (s.graph_ref, s.graph), (s.task_ref, s.task)):
                if ref is not None and not store.has(ref.digest):
                    assert src is not None
                    new.append(store.put_file(src, expected=ref.digest))
        for btype, path in extra:
            ref = store.put_file(path)
            extra_refs.append(BlobRef(ref.digest, ref.size, btype))
        if shared:
            extra_refs.extend(task_refs.values())
        tiers = [Tier(name=s.name, payload=s.payload_ref, graph=s.graph_ref, compression=s.compression, kpis=s.kpis,
                      extra=(s.task_ref,) if s.task_ref is not None and not shared else ())
                 for s in sources]
        rel = build_release(release=name, tiers=tiers, identity=sources[0].identity, created=created,
                            min_runtime=min_runtime, extra=extra_refs)
        data = encode_manifest(rel, signing_key)
        manifest = read_manifest(data)
        store.put_manifest(data)
        rec = store.set_channel(channel, manifest.digest) if channel is not None else None
    return PublishResult(manifest=manifest, channel=rec, tiers=sources, new_blobs=new,
                         notes=[n for s in sources for n in s.notes])

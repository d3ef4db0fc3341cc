"""The release a fleet receives: rounds of signed release manifests in a content-addressed store (the transfer
service's format, :mod:`edge_sdk.release`, docs/transfer.md), each listing tiers of payload + graph blobs.

Sources (scenario ``[release] source``):

* ``"store"``: a store folder and a channel; round ``r`` is the channel's ``r``-th release of the last ``rounds``
  (oldest first: the channel history, then its head). This is what ``edge-sdk serve`` serves.
* ``"files"``: payload and graph files; each round is published into a private temporary store with the transfer
  service's own :func:`edge_sdk.release.publish` (tier KPIs from the ``report.json`` beside a payload, tiers ranked
  best first), so both sources give devices the same manifests, digests and byte counts.

Every tier is checked the way a device would before it trains: the store's blobs are complete, the manifest
verifies (its signature when the scenario names trusted keys), and the device runtime accepts payload + graph
(content digest, signature, graph digest, graph metadata); the training recipe is worked out as the device runtime
follows it (:func:`device_trainer`).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_sdk.errors import ConfigError, EdgeSdkError
from edge_sdk.fleet.scenario import ReleaseSpec
from edge_sdk.release import BlobRef, ChannelRecord, Manifest, ReleaseError, Store, publish
from edge_sdk.release.channel import CHANNEL_HISTORY

#: the manifests' creation time for a ``files`` release (fixed, so the same files give the same digests)
FILES_EPOCH = "2026-01-01T00:00:00Z"
FILES_CHANNEL = "fleet/scenario"


@dataclass(frozen=True)
class Tier:
    """One tier of one round, with what a device needs to know before it downloads it.

    ``payload``/``graph``/``extra``: the manifest's blob references (``digest`` "sha256:<hex>", ``size``);
    ``extra`` holds the tier's extra blobs and the release-level ones (a device downloads both for the tier, e.g.
    the task blob of a payload of format v2);
    ``train_steps``: optimizer steps the device runs; ``train_key``: canonical JSON of (payload digest, graph
    digest, training config) — identical keys give identical models; ``device_state_bytes``: storage the device
    needs besides the blobs (checkpoint = parameters + optimizer state, plus the exported model), float32."""

    name: str
    round: int
    payload: BlobRef
    graph: BlobRef
    expected_top1: float | None
    train_steps: int
    train_config: dict[str, Any]
    train_key: str
    device_state_bytes: int
    task: dict[str, Any]
    extra: tuple[BlobRef, ...] = ()


@dataclass(frozen=True)
class Round:
    """Release round ``index``: its verified manifest, the bytes of the channel record a device reads to find it,
    and its tiers in manifest order (best first)."""

    index: int
    manifest: Manifest
    channel_bytes: int
    tiers: tuple[Tier, ...]

    def tier(self, name: str) -> Tier:
        return next(t for t in self.tiers if t.name == name)


@dataclass
class FleetRelease:
    rounds: tuple[Round, ...]
    store: Store
    channel: str
    source: str
    _tmp: str | None = field(default=None, repr=False)

    def tiers(self) -> list[Tier]:
        return [t for r in self.rounds for t in r.tiers]

    def blob_path(self, digest: str) -> Path:
        return self.store.blob_path(digest)

    def blobs(self) -> dict[str, BlobRef]:
        """Every payload, graph and extra blob (a v2 payload's task blob) of every round, by digest."""
        out: dict[str, BlobRef] = {}
        for t in self.tiers():
            for b in (t.payload, t.graph, *t.extra):
                out[b.digest] = b
        return out

    def close(self) -> None:
        """Remove the private store of a ``files`` release."""
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


def device_trainer(payload_path: os.PathLike[str] | str, graph_path: os.PathLike[str] | str, *,
                   train_graph: Any = None, trusted_keys: Any = None, task_blob: Any = None) -> Any:
    """The device runtime's :class:`~edge_sdk.device.trainer.Trainer` for a payload, configured as a device with no
    flags: it follows the payload's training recipe exactly (``edge_sdk.modelspec.TrainRecipe``: the server's update
    count, batch size, optimizer and schedule), i.e. it repeats the server's seed-0 evaluation run. ``task_blob``:
    a v2 payload's task blob (default: found by digest in the store the payload lies in, or beside it)."""
    from edge_sdk.device.trainer import Trainer

    return Trainer(payload_path, graph_path, trusted_keys=trusted_keys or None,
                   require_signature=bool(trusted_keys), train_graph=train_graph, threads=1, task_blob=task_blob)


def train_key(payload_digest: str, graph_digest: str, config: Any) -> str:
    """Canonical JSON of what determines the trained model: payload, graph, training config (threads aside)."""
    cfg = dict(config) if isinstance(config, dict) else config.to_dict()  # edge_sdk.device.trainer.TrainConfig
    cfg.pop("threads", None)
    return json.dumps({"payload": payload_digest, "graph": graph_digest, "config": cfg}, sort_keys=True,
                      separators=(",", ":"), default=str)


def _channel_bytes(rec: ChannelRecord, head: BlobRef, before: list[BlobRef]) -> int:
    """Size of the channel record as it read when ``head`` was the channel's head."""
    hist = tuple(reversed(before))[:CHANNEL_HISTORY]
    return len(ChannelRecord(rec.channel, head, rec.updated, hist).to_bytes())


def _tiers_of(store: Store, m: Manifest, r: int, trusted: list[str] | None,
              cache: dict[tuple[str, str], Tier]) -> tuple[Tier, ...]:
    out = []
    for mt in m.release.tiers:
        key = (mt.payload.digest, mt.graph.digest)
        if key not in cache:
            try:
                tr = device_trainer(store.blob_path(mt.payload.digest), store.blob_path(mt.graph.digest),
                                    trusted_keys=trusted)
            except EdgeSdkError as exc:
                raise ConfigError(f"release {m.release.release!r} tier {mt.name!r}: its payload and graph cannot be "
                                  f"trained on a device: {exc}") from None
            cfg = tr.config.to_dict()
            n_params = sum(int(math.prod(s)) for _, s in tr.graph.model.param_shapes())
            n_state = n_params * len(tr.graph.meta["state_suffixes"])
            cache[key] = Tier(name=mt.name, round=r, payload=mt.payload, graph=mt.graph,
                              expected_top1=mt.kpis.get("top1"), train_steps=int(tr.total_steps), train_config=cfg,
                              train_key=train_key(mt.payload.digest, mt.graph.digest, tr.config),
                              device_state_bytes=4 * (2 * n_params + n_state), task=dict(tr.task))
        t = cache[key]
        extra = {b.digest: b for b in (*mt.extra, *m.release.extra)}  # what a device fetches besides payload + graph
        out.append(Tier(**{**t.__dict__, "name": mt.name, "round": r, "expected_top1": mt.kpis.get("top1"),
                           "extra": tuple(extra.values())}))
    return tuple(out)


def resolve_store_release(spec: ReleaseSpec, store_dir: Path, channel: str, source: str = "store",
                          tmp: str | None = None) -> FleetRelease:
    """Rounds from a store's channel. With trusted keys, manifests (store source) and payloads must be signed by
    one of them; a ``files`` release's manifests are made here, so only its payloads are checked."""
    trusted = [str(k) for k in spec.trusted_keys] or None
    manifest_keys = trusted if source == "store" else None
    try:
        store = Store(store_dir)
        rec = store.channel(channel)
        heads = [*reversed(rec.history), rec.manifest]
        if len(heads) < spec.rounds:
            raise ConfigError(f"[release] rounds = {spec.rounds}, but channel {channel!r} of {store_dir} has only "
                              f"{len(heads)} release(s) (its head and history)")
        heads = heads[len(heads) - spec.rounds:]
        rounds = []
        cache: dict[tuple[str, str], Tier] = {}
        for r, head in enumerate(heads):
            m = store.manifest(head.digest, trusted_keys=manifest_keys, require_signature=bool(manifest_keys))
            store.check_complete(m)
            before = [*reversed(rec.history), rec.manifest]
            before = before[: before.index(head)]
            rounds.append(Round(r, m, _channel_bytes(rec, head, before), _tiers_of(store, m, r, trusted, cache)))
    except ReleaseError as exc:
        raise ConfigError(f"[release] {store_dir} channel {channel!r}: {exc}") from None
    return FleetRelease(tuple(rounds), store, channel, source, tmp)


def resolve_files_release(spec: ReleaseSpec) -> FleetRelease:
    """Publish each round's payload files into a private store (one release per round on one channel)."""
    tmp = tempfile.mkdtemp(prefix="edge-sdk-fleet-release-")
    try:
        store = Store(Path(tmp) / "store", create=True)
        for r in range(spec.rounds):
            payloads = [ts.payloads[r if len(ts.payloads) > 1 else 0] for ts in spec.tiers]
            graphs = [ts.graphs[r if len(ts.graphs) > 1 else 0] for ts in spec.tiers]
            for p in payloads + graphs:
                if not p.is_file():
                    raise ConfigError(f"[[release.tier]] file {p} does not exist")
            publish(store, payloads, channel=FILES_CHANNEL, graphs=graphs, tier_names=[ts.name for ts in spec.tiers],
                    release_name=f"round-{r}", created=FILES_EPOCH)
        return resolve_store_release(spec, store.root, FILES_CHANNEL, source="files", tmp=tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def resolve_release(spec: ReleaseSpec) -> FleetRelease:
    if spec.source == "files":
        return resolve_files_release(spec)
    assert spec.store is not None and spec.channel is not None  # validated by the scenario
    return resolve_store_release(spec, spec.store, spec.channel)

"""The release a fleet receives: rounds of tiers, each tier a payload blob + a training-graph blob.

Resolved once in the driving process from the scenario's release source: every payload is read and verified
(content digest; the Ed25519 signature too when the scenario names trusted keys), its graph must match the
payload's graph digest, and the device's training recipe is worked out the way the device runtime will follow
it (:func:`device_trainer`). Blobs are identified by ``sha256`` as in the transfer service's store, so "the graph is
already cached" means "a blob with this digest is already on the device".
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edge_sdk.fleet.scenario import ReleaseSpec

from edge_sdk.errors import ConfigError, EdgeSdkError


@dataclass(frozen=True)
class Blob:
    """A content-addressed file: ``sha256`` hex of its bytes, ``size`` in bytes, where it lies locally."""

    sha256: str
    size: int
    path: Path


@dataclass(frozen=True)
class Tier:
    """One tier of one release round, with what a device needs to know before it downloads it.

    ``train_steps``: optimizer steps the device runs; ``train_key``: canonical JSON of (payload digest, graph
    digest, training config) — identical keys give identical models; ``device_state_bytes``: storage the device
    needs besides the blobs (checkpoint = parameters + optimizer state, plus the exported model), float32."""

    name: str
    round: int
    payload: Blob
    graph: Blob
    expected_top1: float | None
    train_steps: int
    train_config: dict[str, Any]
    train_key: str
    device_state_bytes: int
    task: dict[str, Any]

    @property
    def order(self) -> tuple[float, int]:
        """Quality order for the best-fit policy: expected Top-1 when known, else payload size."""
        return (self.expected_top1 if self.expected_top1 is not None else -1.0, self.payload.size)


@dataclass(frozen=True)
class Release:
    rounds: tuple[tuple[Tier, ...], ...]
    source: str

    def blobs(self) -> dict[str, Blob]:
        out: dict[str, Blob] = {}
        for tiers in self.rounds:
            for t in tiers:
                out[t.payload.sha256] = t.payload
                out[t.graph.sha256] = t.graph
        return out

    def tiers(self) -> list[Tier]:
        return [t for tiers in self.rounds for t in tiers]


def _blob(path: Path, what: str) -> Blob:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{what} {path}: cannot read it ({exc.strerror})") from None
    return Blob(hashlib.sha256(data).hexdigest(), len(data), path)


def device_trainer(payload_path: os.PathLike[str] | str, graph_path: os.PathLike[str] | str, *,
                   train_graph: Any = None, trusted_keys: Any = None) -> Any:
    """The device runtime's :class:`~edge_sdk.device.trainer.Trainer` for a payload, configured as a device that
    follows the payload's recipe: when the recipe gives the server's update count (``steps``) and no ``epochs``,
    the device trains ``ceil(steps / batches per epoch)`` whole epochs (as ``make demo`` does)."""
    from edge_sdk.device.trainer import Trainer

    tr = Trainer(payload_path, graph_path, trusted_keys=trusted_keys or None,
                 require_signature=bool(trusted_keys), train_graph=train_graph, threads=1)
    recipe = dict(tr.task.get("train") or {})
    if "steps" in recipe and "epochs" not in recipe:
        epochs = max(1, math.ceil(int(recipe["steps"]) / tr.steps_per_epoch))
        tr = Trainer(payload_path, graph_path, trusted_keys=trusted_keys or None,
                     require_signature=bool(trusted_keys), train_graph=tr.graph, threads=1, epochs=epochs)
    return tr


def train_key(payload_sha256: str, graph_sha256: str, config: dict[str, Any]) -> str:
    cfg = {k: v for k, v in config.items() if k != "threads"}
    return json.dumps({"payload": payload_sha256, "graph": graph_sha256, "config": cfg}, sort_keys=True,
                      separators=(",", ":"))


def resolve_files_release(spec: ReleaseSpec) -> Release:
    """Read every tier of a ``source = "files"`` release (verifies digests, signatures, graph digests)."""
    trusted = [str(k) for k in spec.trusted_keys] or None
    rounds: list[tuple[Tier, ...]] = []
    cache: dict[tuple[str, str], Tier] = {}
    for r in range(spec.rounds):
        tiers = []
        for ts in spec.tiers:
            ppath = ts.payloads[r if len(ts.payloads) > 1 else 0]
            gpath = ts.graphs[r if len(ts.graphs) > 1 else 0]
            pblob, gblob = _blob(ppath, f"tier {ts.name!r} payload"), _blob(gpath, f"tier {ts.name!r} graph")
            key = (pblob.sha256, gblob.sha256)
            if key not in cache:
                try:
                    tr = device_trainer(ppath, gpath, trusted_keys=trusted)
                except EdgeSdkError as exc:
                    raise ConfigError(f"tier {ts.name!r} round {r}: {ppath.name} + {gpath.name} cannot be trained "
                                      f"on a device: {exc}") from None
                cfg = asdict(tr.config)
                n_params = sum(int(math.prod(s)) for _, s in tr.graph.model.param_shapes())
                n_state = len(tr.graph.state_names) and sum(
                    int(math.prod(s)) for _, s in tr.graph.model.param_shapes()) * len(tr.graph.meta["state_suffixes"])
                cache[key] = Tier(
                    name=ts.name, round=r, payload=pblob, graph=gblob, expected_top1=ts.expected_top1,
                    train_steps=int(tr.total_steps), train_config=cfg,
                    train_key=train_key(pblob.sha256, gblob.sha256, cfg),
                    device_state_bytes=4 * (2 * n_params + n_state), task=dict(tr.task))
            t = cache[key]
            tiers.append(Tier(**{**t.__dict__, "name": ts.name, "round": r, "expected_top1": ts.expected_top1}))
        rounds.append(tuple(tiers))
    return Release(tuple(rounds), source="files")


def resolve_release(spec: ReleaseSpec) -> Release:
    if spec.source == "files":
        return resolve_files_release(spec)
    raise ConfigError(f"unknown release source {spec.source!r}")  # pragma: no cover - validated by the scenario

"""Measure this machine's compute rates once before a run: the ORT training-step time of each tier, the device
fetch's verification of each manifest and payload, and the time of one durable write into the device's release
cache. The engine turns them into
device time with each class's compute factor, so the timeline does not depend on how loaded the machine is while
the fleet's real trainings run."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path

from edge_sdk.fleet.release import FleetRelease, Tier, device_trainer

MIN_STEPS = 40
MIN_SECONDS = 0.25


def measure_step_time(release: FleetRelease, tier: Tier, trusted_keys: list[str] | None = None) -> float:
    """Seconds per training step of ``tier`` with one ORT thread: one warm-up epoch, then whole epochs until at
    least ``MIN_STEPS`` steps and ``MIN_SECONDS`` have run; the median epoch's time per step."""
    tr = device_trainer(release.blob_path(tier.payload.digest), release.blob_path(tier.graph.digest),
                        trusted_keys=trusted_keys)
    st = tr.initial_state()
    tr.train_epoch(st)
    per_step = []
    steps = 0
    t_total = 0.0
    while steps < MIN_STEPS or t_total < MIN_SECONDS:
        s0 = st.step
        t0 = time.perf_counter()
        tr.train_epoch(st)
        dt = time.perf_counter() - t0
        per_step.append(dt / (st.step - s0))
        steps += st.step - s0
        t_total += dt
    per_step.sort()
    return per_step[len(per_step) // 2]


def measure_verify_times(release: FleetRelease, trusted_keys: list[str] | None = None,
                         repeats: int = 7) -> tuple[dict[str, float], dict[str, float]]:
    """What the device fetch spends verifying, on this machine (median of ``repeats``): per round's manifest
    digest, reading the manifest (``edge_sdk.release.read_manifest``: envelope, digest, signature with the trusted
    keys); per train key, reading the tier's payload (``edge_sdk.payload.read_payload``: content digest, signature)."""
    from edge_sdk.payload import read_payload
    from edge_sdk.release import read_manifest

    def median_time(fn: Callable[[], object]) -> float:
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        ts.sort()
        return ts[len(ts) // 2]

    keys = trusted_keys or None
    manifests: dict[str, float] = {}
    for rnd in release.rounds:
        data = rnd.manifest.data

        def read_m(data: bytes = data) -> object:
            return read_manifest(data, trusted_keys=keys, require_signature=bool(keys))

        manifests[rnd.manifest.digest] = median_time(read_m)
    payloads: dict[str, float] = {}
    for t in release.tiers():
        if t.train_key not in payloads:
            path = release.blob_path(t.payload.digest)

            def read_p(path: Path = path) -> object:
                with read_payload(path, trusted_keys=keys) as p:
                    return p.sha256

            payloads[t.train_key] = median_time(read_p)
    return manifests, payloads


def step_times(release: FleetRelease, trusted_keys: list[str] | None = None) -> dict[str, float]:
    """Seconds per step for every train key of the release."""
    out: dict[str, float] = {}
    for t in release.tiers():
        if t.train_key not in out:
            out[t.train_key] = measure_step_time(release, t, trusted_keys)
    return out


def measure_store_time(nbytes: int = 16 * 1024, repeats: int = 9) -> float:
    """Seconds for one blob to become durable in the device's release cache (``edge_sdk.device.cache``), as the
    device fetch stores it: the partial file's metadata (atomic write), the body written and fsync'ed, its SHA-256,
    the atomic rename into ``blobs/`` (directory fsync). Median of ``repeats`` on this machine's disk."""
    import json
    import os
    import shutil
    import tempfile

    from edge_sdk.atomic import atomic_write_text
    from edge_sdk.device.cache import ReleaseCache

    root = tempfile.mkdtemp(prefix="edge-sdk-fleet-store-")
    try:
        cache = ReleaseCache(root)
        times = []
        for i in range(repeats):
            data = i.to_bytes(4, "little") * (nbytes // 4)
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            part, meta = cache.partial_paths(digest)
            part.parent.mkdir(parents=True, exist_ok=True)
            t0 = time.perf_counter()
            atomic_write_text(meta, json.dumps({"digest": digest, "size": len(data), "validator": digest}))
            with open(part, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            with open(part, "rb") as f:
                hashlib.sha256(f.read()).hexdigest()
            cache.install(part, digest)
            os.unlink(meta)
            times.append(time.perf_counter() - t0)
        times.sort()
        return times[len(times) // 2]
    finally:
        shutil.rmtree(root, ignore_errors=True)

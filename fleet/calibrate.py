"""Measure this machine's compute rates once before a run: the ORT training-step time of each tier and the
SHA-256 verification rate. The engine turns them into device time with each class's compute factor, so the
timeline does not depend on how loaded the machine is while the fleet's real trainings run."""

from __future__ import annotations

import hashlib
import time

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


def measure_hash_rate(nbytes: int = 8 * 2**20) -> float:
    """SHA-256 bytes per second on one core (best of 3)."""
    buf = b"\x5a" * nbytes
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        hashlib.sha256(buf).digest()
        best = min(best, time.perf_counter() - t0)
    return nbytes / best


def step_times(release: FleetRelease, trusted_keys: list[str] | None = None) -> dict[str, float]:
    """Seconds per step for every train key of the release."""
    out: dict[str, float] = {}
    for t in release.tiers():
        if t.train_key not in out:
            out[t.train_key] = measure_step_time(release, t, trusted_keys)
    return out

"""The discrete-event engine on hand cases: event order, byte accounting, resume, failures, caching."""

from __future__ import annotations

import hashlib
import math
from dataclasses import replace

import numpy as np
import pytest

from edge_sdk.fleet.engine import DeviceRound, Engine, Timing
from edge_sdk.fleet.links import Availability, LinkModel, LognormalRate, TraceRate
from edge_sdk.fleet.release import FleetRelease, Round, Tier
from edge_sdk.fleet.scenario import DeviceClass, ReleaseSpec, TransferSpec
from edge_sdk.release import BlobRef, Identity, build_release, encode_manifest, read_manifest
from edge_sdk.release import Tier as ManifestTier

MBIT8 = TraceRate((0.0,), (1e6,), 1.0)  # constant 8 Mbit/s = 1,000,000 bytes/s
STEP = 0.01
VERIFY = 0.006
OVERHEAD = 400


CHANNEL_BYTES = 150


def digest(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


def tier(name: str, psize: int, gsize: int = 100_000, r: int = 0, graph: str = "g1", steps: int = 100,
         expected: float | None = None, state: int = 1000, payload: str | None = None) -> Tier:
    return Tier(name=name, round=r, payload=BlobRef(digest(payload or f"p-{name}-{r}"), psize),
                graph=BlobRef(digest(graph), gsize), expected_top1=expected, train_steps=steps, train_config={},
                train_key=f"k-{name}-{r}", device_state_bytes=state, task={})


def make_round(r: int, tiers: list[Tier]) -> Round:
    """A real (unsigned) release manifest listing ``tiers`` in the given order (= best first)."""
    rel = build_release(release=f"r{r}", created="2026-01-01T00:00:00Z",
                        identity=Identity("beam", "sha256:" + "0" * 64, {"kind": "mlp"}),
                        tiers=[ManifestTier(t.name, t.payload, t.graph, kpis={"top1": t.expected_top1}
                                            if t.expected_top1 is not None else {}) for t in tiers])
    return Round(r, read_manifest(encode_manifest(rel)), CHANNEL_BYTES, tuple(tiers))


def manifest_bytes(rows: list[DeviceRound], eng: Engine) -> int:
    return CHANNEL_BYTES + eng.release.rounds[rows[0].round].manifest.size


def klass(**kw: object) -> DeviceClass:
    base = dict(name="c", share=1.0, count=None, compute_factor=2.0, storage_bytes=10**9, budget_bytes=10**9,
                links=(("l", 1.0),), resume=True, poll_interval_s=0.0)
    base.update(kw)
    return DeviceClass(**base)  # type: ignore[arg-type]


def run(rounds: list[list[Tier]], link: LinkModel, cls: DeviceClass | None = None, n: int = 1,
        policy: str = "best-fit", period: float = 1e6, deadline: float | None = None, seed: int = 0,
        transfer: TransferSpec | None = None, **spec_kw: object) -> tuple[list[DeviceRound], Engine]:
    release = FleetRelease(tuple(make_round(r, ts) for r, ts in enumerate(rounds)), None, "test/ch", "test")  # type: ignore[arg-type]
    spec = ReleaseSpec(source="files", tiers=(), rounds=len(rounds), period_s=period, deadline_s=deadline or period,
                       policy=policy, **spec_kw)  # type: ignore[arg-type]
    timing = Timing({t.train_key: STEP for ts in rounds for t in ts}, {t.train_key: VERIFY for ts in rounds for t in ts})
    eng = Engine(release, spec, transfer or TransferSpec(request_overhead_bytes=OVERHEAD), timing,
                 [cls or klass()], np.zeros(n, np.int32), {"l": link}, ["l"], np.zeros(n, np.int32), seed, trace=True)
    return eng.run(), eng


def test_event_order_and_bytes_on_a_constant_link() -> None:
    rows, eng = run([[tier("a", 500_000)]], LinkModel("l", MBIT8, latency_s=0.1))
    (r,) = rows
    mb = manifest_bytes(rows, eng)
    assert r.failure is None and r.tier == "a" and r.graph_cache_hit is False and r.bytes_manifest == mb
    t_find = 2 * 0.1 + mb / 1e6  # channel record + manifest: one round trip each
    # then payload first (the manifest's blob order), 0.1 s latency + 0.5 s; graph 0.1 s latency + 0.1 s
    assert r.transfer_time_s == pytest.approx(0.8)
    assert r.verify_time_s == pytest.approx(VERIFY * 2.0)
    assert r.train_time_s == pytest.approx(100 * STEP * 2.0)
    assert r.time_to_model_s == pytest.approx(t_find + 0.8 + 0.012 + 2.0)
    assert (r.bytes_down, r.bytes_blobs, r.bytes_overhead, r.bytes_resent) == (600_000 + mb + 1600, 600_000, 1600, 0)
    assert (r.requests, r.drops, r.offline_interruptions) == (4, 0, 0)
    kinds = [e[3].split(":")[0] for e in eng.events]
    assert kinds == ["notified", "online"] + ["request", "done", "complete"] * 2 + ["tier"] + \
        ["request", "done", "complete"] * 2 + ["model_ready"]
    names = [e[3].split(":")[1] for e in eng.events if e[3].startswith("request:")]
    assert names == ["channel", eng.release.rounds[0].manifest.digest[7:19], digest("p-a-0")[7:19], digest("g1")[7:19]]
    times = [e[2] for e in eng.events]
    assert times == sorted(times)
    assert times[10] == pytest.approx(t_find + 0.6) and times[13] == pytest.approx(t_find + 0.8)


def test_offline_mid_transfer_resumes_and_pays_only_the_missing_bytes() -> None:
    link = LinkModel("l", MBIT8, latency_s=0.1, availability=Availability(windows=((0, 0.6), (10, math.inf))))
    rows, eng = run([[tier("a", 1_000_000, gsize=1000)]], link)
    (r,) = rows
    mb = manifest_bytes(rows, eng)
    t_pay = 2 * 0.1 + mb / 1e6 + 0.1  # the payload's first byte
    got = round((0.6 - t_pay) * 1e6)  # bytes until the link drops at 0.6 s; back at 10 s
    assert r.failure is None
    assert r.offline_interruptions == 1 and r.offline_wait_s == pytest.approx(9.4)
    assert r.requests == 5 and r.bytes_resent == 0
    assert r.bytes_down == mb + 1_000_000 + 1000 + 5 * OVERHEAD  # every payload byte exactly once
    payload = [e for e in eng.events if e[3].startswith("request:" + digest("p-a-0")[7:19])]
    assert [e[4] for e in payload] == [0, pytest.approx(got, abs=1)]  # the second asks from there on (HTTP Range)
    assert r.transfer_time_s == pytest.approx(10.1 + (1_000_000 - got) / 1e6 + 0.1 + 0.001 - (t_pay - 0.1), abs=2e-6)


def test_without_resume_the_bytes_are_sent_again() -> None:
    link = LinkModel("l", MBIT8, latency_s=0.1, availability=Availability(windows=((0, 0.6), (10, math.inf))))
    rows, eng = run([[tier("a", 1_000_000, gsize=1000)]], link, klass(resume=False))
    (r,) = rows
    mb = manifest_bytes(rows, eng)
    got = round((0.6 - (2 * 0.1 + mb / 1e6 + 0.1)) * 1e6)
    assert r.failure is None and r.bytes_resent == pytest.approx(got, abs=1)
    assert r.bytes_down == mb + r.bytes_resent + 1_000_000 + 1000 + 5 * OVERHEAD


@pytest.mark.parametrize("resume", [True, False])
def test_drops_back_off_and_account_every_byte(resume: bool) -> None:
    link = LinkModel("l", TraceRate((0.0,), (50_000.0,), 1.0), latency_s=0.2, drop_prob=0.6)
    rows, eng = run([[tier("a", 200_000, gsize=50_000)]], link, klass(resume=resume), n=20)
    assert sum(r.drops for r in rows) > 10
    for r in rows:
        assert r.failure is None
        assert r.requests == 4 + r.drops + r.offline_interruptions
        assert r.bytes_down == r.bytes_manifest + r.bytes_blobs + r.bytes_resent + r.requests * OVERHEAD
        if resume:  # only the channel record is read whole again after a drop
            assert r.bytes_resent <= CHANNEL_BYTES * r.drops
    if not resume:
        assert sum(r.bytes_resent for r in rows) > 0
    # a dropped attempt is followed by a full-jitter back-off, U(0, 0.5 s x 2^(n-1)), then the round trip
    waits = []
    for d in range(20):
        ev = [e for e in eng.events if e[0] == d]
        for a, b in zip(ev, ev[1:], strict=False):
            if a[3].startswith("drop:"):
                assert b[3].startswith("request:")
                waits.append(b[2] - a[2] - 0.2)
    assert waits and min(waits) >= -1e-9 and max(waits) < 0.5 * 2**8
    assert 0.1 < float(np.median(waits)) < 0.5  # mostly after progress: n = 1, U(0, 0.5 s)


def test_budget_policy_best_fit_and_failures() -> None:
    link = LinkModel("l", MBIT8, latency_s=0.0)
    tiers = [tier("big", 400_000, expected=0.67), tier("mid", 10_000, expected=0.65, graph="g2", gsize=7_000),
             tier("small", 2_000, expected=0.57, graph="g3", gsize=7_000)]
    assert run([tiers], link, klass(budget_bytes=500_000))[0][0].tier == "big"
    assert run([tiers], link, klass(budget_bytes=17_000))[0][0].tier == "mid"
    assert run([tiers], link, klass(budget_bytes=16_999))[0][0].tier == "small"
    rows, eng = run([tiers], link, klass(budget_bytes=8_000))
    r = rows[0]
    assert (r.failure, r.tier, r.bytes_blobs) == ("budget_too_small", None, 0)
    assert r.bytes_down == manifest_bytes(rows, eng) + 2 * OVERHEAD  # it read the manifest to learn that
    assert run([tiers], link, klass(budget_bytes=10**6), policy="smallest")[0][0].tier == "small"
    r = run([tiers], link, klass(budget_bytes=17_000), policy="fixed", fixed_tier="big")[0][0]
    assert r.failure == "budget_too_small" and "tier big" in (r.failure_detail or "")


def test_storage_full() -> None:
    link = LinkModel("l", MBIT8, latency_s=0.0)
    r = run([[tier("a", 10_000, gsize=7_000, state=90_000)]], link, klass(storage_bytes=100_000))[0][0]
    assert r.failure == "storage_full" and r.bytes_blobs == 0 and "107000" in (r.failure_detail or "")
    assert run([[tier("a", 10_000, gsize=7_000, state=90_000)]], link, klass(storage_bytes=107_000))[0][0].failure is None


def test_deadline_failures() -> None:
    off = LinkModel("l", MBIT8, latency_s=0.1, availability=Availability(windows=((0, 0.15), (5000, math.inf))))
    r = run([[tier("a", 1_000_000)]], off, deadline=1000, period=2000)[0][0]
    assert r.failure == "offline_too_long" and r.ended_s == pytest.approx(1000) and r.time_to_model_s is None
    slow = LinkModel("l", TraceRate((0.0,), (100.0,), 1.0), latency_s=0.1)
    r = run([[tier("a", 1_000_000)]], slow, deadline=100, period=100)[0][0]
    assert r.failure == "too_slow" and r.ended_s == pytest.approx(100)
    assert 0 < r.bytes_down - r.bytes_overhead < 100 * 100  # 100 s at 100 B/s


def test_graph_stays_cached_across_rounds_and_up_to_date() -> None:
    link = LinkModel("l", MBIT8, latency_s=0.05)
    r0 = [tier("a", 10_000, gsize=7_000)]
    r1 = [tier("a", 10_000, gsize=7_000, r=1)]
    rows, _ = run([r0, r1, [replace(r1[0], round=2)]], link, period=3600)
    a, b, c = rows
    assert (a.graph_cache_hit, a.bytes_blobs) == (False, 17_000)
    assert (b.graph_cache_hit, b.bytes_blobs) == (True, 10_000)
    assert b.bytes_down == b.bytes_manifest + 10_000 + 3 * OVERHEAD
    assert b.published_at_s == 3600 and b.time_to_model_s is not None and b.time_to_model_s < 3
    assert c.up_to_date and c.bytes_blobs == 0 and c.bytes_down == c.bytes_manifest + 2 * OVERHEAD
    assert c.time_to_model_s == 0 and c.train_steps == 0


def test_cached_graph_lets_a_bigger_tier_fit_the_budget() -> None:
    link = LinkModel("l", MBIT8, latency_s=0.0)
    rounds = [[tier("mid", 10_000, expected=0.65, gsize=7_000), tier("small", 2_000, expected=0.57, gsize=7_000)],
              [tier("mid", 10_000, expected=0.65, gsize=7_000, r=1), tier("small", 2_000, expected=0.57, gsize=7_000, r=1)]]
    a, b = run(rounds, link, klass(budget_bytes=12_000))[0]
    assert (a.tier, b.tier) == ("small", "mid")


def test_poll_interval_and_determinism() -> None:
    link = LinkModel("l", LognormalRate(1e5, 1e6, 4e6), latency_s=0.05, drop_prob=0.1,
                     availability=Availability(600, 120))
    cls = klass(poll_interval_s=3600.0)
    a, _ = run([[tier("a", 50_000)]], link, cls, n=30, seed=7)
    b, _ = run([[tier("a", 50_000)]], link, cls, n=30, seed=7)
    c, _ = run([[tier("a", 50_000)]], link, cls, n=10, seed=7)
    assert a == b
    assert a[:10] == c  # device i does not depend on the fleet size
    assert all(0 <= r.notified_s < 3600 for r in a) and len({r.notified_s for r in a}) == 30
    d, _ = run([[tier("a", 50_000)]], link, cls, n=30, seed=8)
    assert a != d

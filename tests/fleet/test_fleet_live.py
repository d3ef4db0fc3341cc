"""The live check: client-side link shaping (fake clock), the live scenario, and an end-to-end run against a real
`edge-sdk serve` on loopback (needs the serve extra and the device fetch)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from conftest import scenario_toml

from edge_sdk.fleet.links import Availability, LinkModel, LinkState, TraceRate
from edge_sdk.fleet.live import ShapedLink, live_scenario
from edge_sdk.fleet.scenario import load_scenario, parse_scenario


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.t += s


def shaped(rate: float, latency: float, drop_prob: float = 0.0, seed: int = 0) -> tuple[ShapedLink, FakeClock]:
    clock = FakeClock()
    model = LinkModel("x", TraceRate((0.0,), (rate,), 1.0), latency_s=latency, drop_prob=drop_prob)
    link = LinkState(model, *(np.random.default_rng([seed, i]) for i in range(3)), dense=True)
    return ShapedLink(link, {}, clock=clock, sleep=clock.sleep), clock


def test_shaping_follows_the_link_model() -> None:
    s, clock = shaped(1e6, 0.1)
    assert s.request(500_000) is None
    assert clock.t == pytest.approx(100.1)  # the round trip
    for _ in range(5):
        s.consume(100_000)
    assert clock.t == pytest.approx(100.6)  # 500 kB at 1 MB/s
    clock.t += 2.0  # the real stack was slow: model time catches up, only the new byte's own time is slept
    s.consume(1)
    assert s.v == pytest.approx(2.6 + 1e-6) and clock.slept[-1] == pytest.approx(1e-6, abs=1e-9)


def test_a_drop_breaks_the_connection_at_its_byte() -> None:
    for seed in range(50):
        s, _ = shaped(1e6, 0.0, drop_prob=0.5, seed=seed)
        cut = s.request(100_000)
        if cut:
            break
    assert cut and 0 < cut < 100_000
    got = 0
    with pytest.raises(ConnectionResetError):
        while True:
            n = s.chunk()
            got += n
            s.consume(n)
    assert got == cut and s.drops == 1 and s.left_before_drop is None


def test_live_scenario() -> None:
    sc = live_scenario(load_scenario("rural-3g-10k"))
    assert sc.devices == 50 and sc.release.rounds == 1
    assert all(m.availability == Availability() for m in sc.links.values())
    assert all(c.poll_interval_s == 0 for c in sc.classes)


def test_live_check_against_a_real_server(release_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("edge_sdk.serve")
    pytest.importorskip("edge_sdk.device.fetch")
    from edge_sdk.fleet.simulate import RunOptions, run_live

    text = scenario_toml(release_dir, devices=8, rounds=1).replace('store_time = "5 ms"', 'store_time = "measure"')
    sc = parse_scenario(text.encode(), source="live.toml", base=release_dir)
    res = run_live(sc, tmp_path, RunOptions(backend="inline", progress=False, plots=False))
    live = res.summary["live"]
    assert live["fetched"] == 8 and not live["failed"]
    for d in live["devices"]:
        assert d["measured_bytes"] == d["simulated_bytes"], d  # every body byte as simulated, drops included
        assert (d["requests_live"], d["drops_live"]) == (d["requests_sim"], d["drops_sim"]), d
        assert d["measured_s"] > 0 and d["behind_s"] >= 0
    assert math.isfinite(live["median_rel_error"])  # the figure itself is measured by a command, not asserted
    assert "live check" in (tmp_path / "report.txt").read_text()

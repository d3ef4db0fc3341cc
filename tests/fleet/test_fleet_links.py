"""Link models: presets reproduce the trace statistics they were fitted to; AR(1), availability, traces."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_sdk.errors import ConfigError
from edge_sdk.fleet.links import (
    Availability,
    LinkModel,
    LinkState,
    LognormalRate,
    TraceRate,
    link_stats,
    read_trace_csv,
)
from edge_sdk.fleet.scenario import link_presets

PRESETS = link_presets()


def _state(model: LinkModel, seed: int = 0) -> LinkState:
    return LinkState(model, *(np.random.default_rng([seed, i]) for i in range(3)))


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_reproduces_trace_median_p10_p90(name: str) -> None:
    link = PRESETS[name]
    t = link.target
    assert t is not None, "every shipped preset names the trace it was fitted to"
    sim = link_stats(link, seconds=100_000, seed=1)
    for q in ("p10", "p50", "p90"):
        assert getattr(sim, q) == pytest.approx(getattr(t, q), rel=0.05), q
    # mean and the share of slow seconds are not fitted: they follow from the model; checked looser
    assert sim.mean == pytest.approx(t.mean, rel=0.08)
    assert abs(sim.below_1mbps - t.below_1mbps) < 0.06


def test_rates_are_megabits_not_megabytes() -> None:
    link = PRESETS["lte-good"]
    assert isinstance(link.rate, LognormalRate)
    assert link.rate.p50 == pytest.approx(13.9e6 / 8)  # bytes per second


def test_lag1_correlation_of_the_latent_process_is_rho() -> None:
    r = LognormalRate(1e5, 1e6, 4e6, rho=0.75)
    x = r.sample_path(200_000, np.random.default_rng(3))
    z = np.where(x < r.p50, np.log(x / r.p50) / r.sigma_lo, np.log(x / r.p50) / r.sigma_hi)
    assert np.corrcoef(z[:-1], z[1:])[0, 1] == pytest.approx(0.75, abs=0.01)
    assert z.std() == pytest.approx(1.0, abs=0.02)


def test_skipping_seconds_keeps_the_stationary_distribution() -> None:
    """LinkState draws only the seconds it is asked about (exact k-step AR(1) transitions)."""
    r = LognormalRate(1e5, 1e6, 4e6, rho=0.9)
    st_ = _state(LinkModel("x", r))
    vals = np.array([st_.rate_at(7.5 * k) for k in range(40_000)])
    assert np.percentile(vals, 50) == pytest.approx(1e6, rel=0.05)
    assert np.percentile(vals, 90) == pytest.approx(4e6, rel=0.07)
    assert st_.rate_at(7.5 * 39_999 + 0.3) == vals[-1]  # same second, same rate
    with pytest.raises(RuntimeError, match="back in time"):
        st_.rate_at(0.0)


def test_availability_fraction_and_mean_periods() -> None:
    av = Availability(mean_on_s=600.0, mean_off_s=200.0)
    st_ = _state(LinkModel("x", LognormalRate(1e5, 1e6, 2e6), availability=av), seed=5)
    t, on_time, periods = 0.0, 0.0, 0
    end = 2_000_000.0
    while t < end:
        if st_.online(t):
            u = min(st_.online_until(t), end)
            on_time += u - t
            periods += 1
            t = u
        else:
            t = st_.next_online(t)
    assert on_time / end == pytest.approx(0.75, abs=0.02)
    assert end * 0.75 / periods == pytest.approx(600.0, rel=0.1)


def test_explicit_windows() -> None:
    st_ = _state(LinkModel("x", LognormalRate(1e5, 1e6, 2e6), availability=Availability(windows=((0, 10), (20, math.inf)))))
    assert st_.online(5) and st_.online_until(5) == 10
    assert not st_.online(12) and st_.next_online(12) == 20
    assert st_.online(1e9) and st_.online_until(1e9) == math.inf
    with pytest.raises(ConfigError):
        Availability(windows=((5, 3),))
    with pytest.raises(ConfigError):
        Availability(windows=((0, 10), (5, 20)))


def test_drop_probability() -> None:
    st_ = _state(LinkModel("x", LognormalRate(1e5, 1e6, 2e6), drop_prob=0.2), seed=2)
    cuts = [st_.drop_point() for _ in range(20_000)]
    dropped = [c for c in cuts if c is not None]
    assert len(dropped) / len(cuts) == pytest.approx(0.2, abs=0.015)
    assert 0.45 < float(np.mean(dropped)) < 0.55 and min(dropped) >= 0 and max(dropped) < 1
    assert _state(LinkModel("y", LognormalRate(1e5, 1e6, 2e6))).drop_point() is None


def test_trace_replay(tmp_path: Path) -> None:
    p = tmp_path / "trace.csv"
    p.write_text("t_s,Mbps\n0,8\n1,0\n2,16\n")
    tr = read_trace_csv(p)
    assert tr.period == 3.0
    assert [tr.rate_at(t) for t in (0.5, 1.5, 2.5, 3.5)] == [1e6, 0.0, 2e6, 1e6]  # bytes/s, repeats
    assert tr.next_change(0.5) == 1.0 and tr.next_change(2.5) == 3.0
    link = LinkModel("t", tr)
    s = link_stats(link)
    assert s.mean == pytest.approx(1e6) and s.below_1mbps == pytest.approx(1 / 3)
    st_ = _state(link, seed=4)  # each device starts at its own offset into the trace
    assert st_.rate_at(0.0) in (0.0, 1e6, 2e6)


@pytest.mark.parametrize("text, msg", [
    ("", "empty"), ("time,rate\n0,1\n", "header must be exactly"), ("t_s,Mbps\n", "no rows"),
    ("t_s,Mbps\n0,1\n0,2\n", "must increase"), ("t_s,Mbps\n0,-1\n", "Mbps >= 0"), ("t_s,Mbps\n0,x\n", "not two numbers"),
    ("t_s,Mbps\n0,1,2\n", "2 fields"), ("t_s,Mbps\n1,1\n", "first t_s must be 0"), ("t_s,Mbps\n0,0\n1,0\n", "every rate is 0"),
    ("t_s,Mbps\n0,nan\n", "finite"),
])
def test_bad_traces_get_one_line_config_errors(tmp_path: Path, text: str, msg: str) -> None:
    p = tmp_path / "t.csv"
    p.write_text(text)
    with pytest.raises(ConfigError, match=msg) as e:
        read_trace_csv(p)
    assert "\n" not in str(e.value)


def test_missing_trace(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        read_trace_csv(tmp_path / "nope.csv")


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300))
def test_trace_parser_fuzz(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    p = tmp_path_factory.mktemp("fuzz") / "t.csv"
    p.write_bytes(b"t_s,Mbps\n" + data)
    try:
        tr = read_trace_csv(p)
    except ConfigError:
        return
    assert isinstance(tr, TraceRate) and all(r >= 0 for r in tr.rates)


def test_bad_models() -> None:
    with pytest.raises(ConfigError):
        LognormalRate(2e6, 1e6, 3e6)
    with pytest.raises(ConfigError):
        LognormalRate(1e5, 1e6, 3e6, rho=1.0)
    with pytest.raises(ConfigError):
        LinkModel("x", LognormalRate(1e5, 1e6, 3e6), drop_prob=1.0)
    with pytest.raises(ConfigError):
        LinkModel("x", LognormalRate(1e5, 1e6, 3e6), latency_s=-1)


def test_dense_links_do_not_depend_on_which_seconds_are_looked_at() -> None:
    model = LinkModel("x", LognormalRate(1e5, 1e6, 4e6, rho=0.8))
    a, b = _state(model, seed=9), _state(model, seed=9)
    a.dense = b.dense = True
    seen_a = {k: a.rate_at(k + 0.5) for k in range(0, 200)}
    seen_b = {k: b.rate_at(k + 0.1) for k in range(0, 200, 7)}
    assert all(seen_a[k] == v for k, v in seen_b.items())
    sparse = _state(model, seed=9)
    assert [sparse.rate_at(k) for k in range(0, 200, 7)][1] != seen_b[7]  # the sparse draw is another realisation

"""Scenario files: presets load, unknown keys and unit mistakes are one-line typed errors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_sdk.errors import ConfigError
from edge_sdk.fleet.scenario import ScenarioError, load_scenario, parse_scenario, preset_names

MINIMAL = """
[scenario]
name = "t"
devices = 10
[release]
source = "files"
period = "1 h"
[[release.tier]]
name = "a"
payload = "p.epl"
graph = "g.onnx"
[local_data]
pool = "pool.h5"
[[class]]
name = "c"
share = 1.0
storage = "1 MiB"
budget = "64 KiB"
link = "lte-good"
"""


def parse(text: str) -> object:
    return parse_scenario(text.encode(), source="t.toml", base=Path("/base"))


def test_presets_load() -> None:
    names = preset_names()
    assert {"lte-mixed-1k", "rural-3g-10k", "lte-tiers-10k"} <= set(names)
    for n in names:
        sc = load_scenario(n)
        assert sum(sc.class_counts()) == sc.devices
        assert sc.release.source == "store" and sc.release.store is not None
        assert (sc.release.store / "edge-sdk-store.json").is_file()  # repo: paths resolve to the shipped store
        assert all(k.is_file() for k in sc.release.trusted_keys) and sc.local_data.pool.is_file()
    assert load_scenario("lte-mixed-1k").devices == 1000
    assert load_scenario("rural-3g-10k").devices == 10_000
    tiers = load_scenario("lte-tiers-10k")
    assert tiers.devices == 10_000 and tiers.release.policy == "shares"
    assert dict(tiers.release.shares) == {"full": 1.0, "36x": 1.0, "180x": 1.0}


def test_minimal_and_units() -> None:
    sc = parse(MINIMAL)
    c = sc.classes[0]
    assert (c.storage_bytes, c.budget_bytes) == (2**20, 64 * 1024)
    assert sc.release.period_s == 3600.0 and sc.release.deadline_s == 3600.0
    assert sc.release.tiers[0].payloads == (Path("/base/p.epl"),)
    assert sc.links["lte-good"].latency_s == pytest.approx(0.05)
    assert sc.compute.step_time_s is None and sc.transfer.request_overhead_bytes == 400


def test_class_counts_largest_remainder_and_devices_override() -> None:
    text = MINIMAL + '[[class]]\nname = "d"\nshare = 2.0\nstorage = "1 MiB"\nbudget = "1 MiB"\nlink = "3g-driving"\n'
    sc = parse(text)
    assert sc.class_counts() == [3, 7]
    assert sc.with_devices(100).class_counts() == [33, 67]
    counts = parse(MINIMAL.replace("devices = 10\n", "").replace("share = 1.0", "count = 4"))
    assert counts.devices == 4 and counts.with_devices(8).class_counts() == [8]


def test_custom_links_extend_presets_and_windows() -> None:
    text = MINIMAL.replace('link = "lte-good"', 'link = "mine"') + """
[links.mine]
preset = "3g-driving"
latency = "400 ms"
availability = { windows = [["0 s", "1 h"], ["2 h", "inf"]] }
"""
    link = parse(text).links["mine"]
    assert link.latency_s == pytest.approx(0.4)
    assert link.rate.p50 == pytest.approx(1.9e6 / 8)
    assert link.availability.windows == ((0.0, 3600.0), (7200.0, math.inf))


@pytest.mark.parametrize("edit, msg", [
    (('name = "t"', 'name = "t"\nnmae = "x"'), "unknown key 'nmae'"),
    (('period = "1 h"', 'period = "1 h"\nperiods = 3'), "unknown key 'periods'"),
    (('link = "lte-good"', 'link = "lte-good"\nbudgett = "1 kB"'), "unknown key 'budgett'"),
    (('pool = "pool.h5"', 'pool = "pool.h5"\nsample = 3'), "unknown key 'sample'"),
    (('payload = "p.epl"', 'payload = "p.epl"\ngrpah = "x"'), "unknown key 'grpah'"),
    (('[scenario]', '[scenaro]\nx = 1\n[scenario]'), "unknown key 'scenaro'"),
    (('budget = "64 KiB"', 'budget = 65536'), "has no unit"),
    (('budget = "64 KiB"', 'budget = "64 KB"'), "ambiguous"),
    (('storage = "1 MiB"', 'storage = "1 Mb"'), "ambiguous"),
    (('period = "1 h"', 'period = "1 hr"'), "ambiguous"),
    (('period = "1 h"', 'period = 3600'), "has no unit"),
    (('link = "lte-good"', 'link = "lte-gud"'), "unknown link 'lte-gud'"),
    (('share = 1.0', 'share = 1.0\ncount = 3'), "exactly one of share"),
    (('share = 1.0', 'share = -1.0'), "share"),
    (('devices = 10', 'devices = 0'), "devices"),
    (('devices = 10', 'devices = "10"'), "integer"),
    (('graph = "g.onnx"', 'graph = "g.onnx"\n[[release.tier]]\nname = "a"\npayload = "q"\ngraph = "g"'), "unique"),
    (('period = "1 h"', 'period = "1 h"\ndeadline = "2 h"'), "deadline"),
    (('period = "1 h"', 'period = "1 h"\npolicy = "greedy"'), "policy"),
    (('period = "1 h"', 'period = "1 h"\npolicy = "fixed"'), "fixed_tier"),
    (('payload = "p.epl"', 'payload = ["a", "b"]\nexpected_top1 = 0.5'), "unknown key 'expected_top1'"),
    (('source = "files"', 'source = "store"'), "needs the key 'store'"),
    (('source = "files"', 'source = "ftp"'), "source must be one of"),
    (('[local_data]', '[compute]\nstep_time = "fast"\n[local_data]'), "step_time"),
    (('[scenario]\n', ''), "needs the key 'scenario'"),
    (('name = "c"', 'name = "c"\nresume = "yes"'), "true or false"),
])
def test_bad_scenarios_get_one_line_typed_errors(edit: tuple[str, str], msg: str) -> None:
    text = MINIMAL.replace(*edit, 1)
    assert text != MINIMAL
    with pytest.raises(ScenarioError) as e:
        parse(text)
    assert msg in str(e.value), str(e.value)
    assert str(e.value).startswith("scenario t.toml:") and "\n" not in str(e.value)
    assert isinstance(e.value, ConfigError) and e.value.exit_code == 2


def test_unknown_preset_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="not a preset"):
        load_scenario("lte-mixed-2k")
    with pytest.raises(ScenarioError, match="no such file"):
        load_scenario(str(tmp_path / "x.toml"))
    with pytest.raises(ScenarioError, match="not valid TOML"):
        parse("[scenario\n")


def test_file_paths_are_relative_to_the_scenario(tmp_path: Path) -> None:
    f = tmp_path / "sub" / "s.toml"
    f.parent.mkdir()
    f.write_text(MINIMAL)
    sc = load_scenario(f)
    assert sc.release.tiers[0].payloads == (tmp_path / "sub" / "p.epl",)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(MINIMAL) - 1), st.integers(0, len(MINIMAL)), st.text(max_size=8))
def test_mutated_scenarios_raise_only_scenario_errors(i: int, j: int, junk: str) -> None:
    a, b = sorted((i, j))
    text = MINIMAL[:a] + junk + MINIMAL[b:]
    try:
        parse(text)
    except ScenarioError as e:
        assert "\n" not in str(e)

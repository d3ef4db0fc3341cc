"""End to end on real payloads: real ORT training and KPIs per device, memo, backends, outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import scenario_toml

from edge_sdk.errors import ConfigError
from edge_sdk.fleet.outputs import WALL_COLUMNS, read_parquet
from edge_sdk.fleet.scenario import parse_scenario
from edge_sdk.fleet.simulate import RunOptions, simulate


def scenario(release_dir: Path, **kw: object):  # type: ignore[no-untyped-def]
    return parse_scenario(scenario_toml(release_dir, **kw).encode(), source="small.toml", base=release_dir)


def comparable(table: dict) -> dict:
    return {k: v for k, v in table.items() if k not in WALL_COLUMNS}


def test_end_to_end_inline_writes_every_output(release_dir: Path, tmp_path: Path) -> None:
    sc = scenario(release_dir, devices=24)
    res = simulate(sc, tmp_path, RunOptions(backend="inline", progress=False, trace=True))
    t = read_parquet(tmp_path / "devices.parquet")
    assert len(t["device"]) == 48 and sorted(set(t["round"])) == [0, 1]
    for col in ("device", "device_class", "link", "tier", "bytes_down", "graph_cache_hit", "transfer_time_s",
                "train_time_s", "time_to_model_s", "top1", "top1_1db", "rsrp_diff_mean", "failure", "failure_detail",
                "bytes_resent", "n_local", "wall_train_s"):
        assert col in t, col
    ok = [i for i, f in enumerate(t["failure"]) if f is None]
    assert len(ok) >= 40
    assert all(0.0 <= t["top1"][i] <= 1.0 and t["n_local"][i] == 32 for i in ok)
    assert len({t["top1"][i] for i in ok}) > 3, "each device evaluates on its own local data: KPIs differ"
    # best fit: 'big' gets the better tier; the slow class's 10 kB budget fits 'small' + graph in round 0 and,
    # with the graph cached, 'adam' in round 1
    assert {t["tier"][i] for i in ok if t["device_class"][i] == "big"} == {"adam"}
    assert {t["tier"][i] for i in ok if t["device_class"][i] == "slow" and t["round"][i] == 0} == {"small"}
    assert {t["tier"][i] for i in ok if t["device_class"][i] == "slow" and t["round"][i] == 1} == {"adam"}
    r1 = [i for i in ok if t["round"][i] == 1]
    assert r1 and all(t["graph_cache_hit"][i] for i in r1)
    graph_bytes = (release_dir / "graph.onnx").stat().st_size
    assert all(t["bytes_blobs"][i] < graph_bytes for i in r1)  # payload only: the graph is not sent again
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["scenario"]["name"] == "small" and s["seed"] == 3 and s["devices"] == 24
    assert {"edge_sdk", "onnxruntime", "numpy", "python"} <= set(s["versions"])
    # adam r0, small r0, adam r1 (nobody takes small in round 1): each trained once, only if some device needs it
    assert s["memo"] is True and s["trainings"] == 3
    assert s["stats"]["0"]["all"]["devices"] == 24
    assert s["timing"]["step_time_s"] and s["backend"]["backend"] == "inline"
    for png in ("ttm_cdf.png", "accuracy_vs_bytes.png", "tier_mix.png", "top1_cdf.png"):
        assert (tmp_path / png).stat().st_size > 5000
    assert (tmp_path / "events.parquet").exists() and (tmp_path / "report.txt").read_text().count("round") >= 2
    assert res.summary["stats"] == s["stats"]


def test_memo_gives_the_same_results_as_training_every_device(release_dir: Path) -> None:
    sc = scenario(release_dir, devices=10, rounds=1)
    a = simulate(sc, None, RunOptions(backend="inline", progress=False, memo=True))
    b = simulate(sc, None, RunOptions(backend="inline", progress=False, memo=False))
    assert a.summary["trainings"] == 2 and b.summary["trainings"] == sum(f is None for f in b.table["failure"])
    ta, tb = comparable(a.table), comparable(b.table)
    ta.pop("memo"), tb.pop("memo")
    assert ta == tb
    assert any(w and w > 0 for w in b.table["wall_train_s"])


def test_persistent_memo_is_reused(release_dir: Path, tmp_path: Path) -> None:
    sc = scenario(release_dir, devices=6, rounds=1)
    a = simulate(sc, None, RunOptions(backend="inline", progress=False, memo_dir=tmp_path / "memo"))
    assert a.summary["memo_hits"] == 0 and len(list((tmp_path / "memo").glob("*.onnx"))) == 2
    b = simulate(sc, None, RunOptions(backend="inline", progress=False, memo_dir=tmp_path / "memo"))
    assert b.summary["memo_hits"] == 2
    assert comparable(a.table) == comparable(b.table)


def test_process_backend_writes_the_same_parquet_as_inline(release_dir: Path, tmp_path: Path) -> None:
    sc = scenario(release_dir, devices=30)
    a = simulate(sc, tmp_path / "inline", RunOptions(backend="inline", progress=False, plots=False))
    b = simulate(sc, tmp_path / "process", RunOptions(backend="process", workers=2, progress=False, batch_size=7,
                                                      plots=False))
    assert comparable(a.table) == comparable(b.table)
    pa, pb = (read_parquet(tmp_path / d / "devices.parquet") for d in ("inline", "process"))
    assert comparable(pa) == comparable(pb) and list(pa) == list(pb)  # same columns, same values, same order
    assert len({w for w in b.table["worker"] if w is not None}) >= 1


def test_a_diverging_recipe_is_a_train_failure(release_dir: Path) -> None:
    text = scenario_toml(release_dir, devices=4, rounds=1).replace(f"{release_dir}/adam-r0.epl",
                                                                    f"{release_dir}/diverge.epl")
    sc = parse_scenario(text.encode(), source="d.toml", base=release_dir)
    res = simulate(sc, None, RunOptions(backend="inline", progress=False))
    t = res.table
    bad = [i for i, tier in enumerate(t["tier"]) if tier == "adam"]
    assert bad and all(t["failure"][i] == "train_failed" and t["top1"][i] is None for i in bad)
    assert all("loss became" in t["failure_detail"][i] for i in bad)


def test_signature_is_verified_when_keys_are_given(release_dir: Path, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pub = tmp_path / "k.pub"
    pub.write_bytes(Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    text = scenario_toml(release_dir, devices=2, rounds=1).replace('period = "6 h"',
                                                                   f'period = "6 h"\ntrusted_keys = ["{pub}"]')
    sc = parse_scenario(text.encode(), source="k.toml", base=release_dir)
    with pytest.raises(ConfigError, match="cannot be trained on a device.*signature"):
        simulate(sc, None, RunOptions(backend="inline", progress=False))


def test_pool_that_is_too_small(release_dir: Path) -> None:
    text = scenario_toml(release_dir, devices=2, rounds=1).replace("samples = 32", "samples = 100000")
    sc = parse_scenario(text.encode(), source="p.toml", base=release_dir)
    with pytest.raises(ConfigError, match="has only 256 drops"):
        simulate(sc, None, RunOptions(backend="inline", progress=False))


def test_measured_step_time_is_used_when_not_pinned(release_dir: Path) -> None:
    text = scenario_toml(release_dir, devices=2, rounds=1).replace('step_time = "1 ms"', 'step_time = "measure"')
    sc = parse_scenario(text.encode(), source="m.toml", base=release_dir)
    res = simulate(sc, None, RunOptions(backend="inline", progress=False))
    st = res.summary["timing"]["step_time_s"]
    assert res.summary["timing"]["source"] == "measured" and all(1e-5 < v < 0.5 for v in st.values())
    t = res.table
    for i in range(len(t["device"])):
        if t["failure"][i] is None:
            assert t["train_time_s"][i] == pytest.approx(
                t["train_steps"][i] * st[f"{t['tier'][i]}@r0"] * (1.0 if t["device_class"][i] == "big" else 5.0))
    assert np.isfinite(res.summary["devices_per_s"])


def test_preset_with_signed_store_trains_every_device(tmp_path: Path) -> None:
    """The shipped store is signed: manifests and payloads are verified with the preset's key, for real, in the
    workers too; every device of a small fleet ends with a model of the tier it could afford."""
    from edge_sdk.fleet.scenario import load_scenario

    sc = load_scenario("lte-mixed-1k").with_devices(12)
    res = simulate(sc, tmp_path, RunOptions(backend="process", workers=2, progress=False, plots=False))
    t = res.table
    assert all(f is None for f in t["failure"]), set(t["failure_detail"])
    assert res.summary["trainings"] >= 3 and all(r["error"] is None for r in res.summary["train"].values())
    assert {r["signature"] for r in res.summary["release"]["rounds"]} == {"verified"}
    tiers = dict(zip(t["device_class"], t["tier"], strict=True))
    assert tiers["gnb"] == "full" and tiers["ue-flagship"] == "36x" and tiers["ue-budget"] == "180x"


def test_tier_comparison_preset_assigns_tiers_at_random(tmp_path: Path) -> None:
    """``lte-tiers-10k`` answers "36x vs 180x vs full" on one fleet: each device draws its tier (a third each) whatever
    its class, every class can afford every tier, and the report gives each tier's time to 90 %, bytes on the air
    with the re-sent bytes and drops, and its Top-1 distribution on the devices' own drops."""
    from edge_sdk.fleet.scenario import load_scenario

    sc = load_scenario("lte-tiers-10k").with_devices(36)
    res = simulate(sc, tmp_path, RunOptions(backend="inline", progress=False))
    t = res.table
    assert all(f is None for f in t["failure"]), set(t["failure_detail"])
    r0 = [i for i, r in enumerate(t["round"]) if r == 0]
    assert {t["tier"][i] for i in r0} == {"full", "36x", "180x"}
    per_class = {c: {t["tier"][i] for i in r0 if t["device_class"][i] == c} for c in ("gnb", "ue-flagship", "ue-budget")}
    assert all(len(v) >= 2 for v in per_class.values()), per_class  # drawn per device, not chosen by class
    tiers = res.summary["stats"]["0"]["tiers"]
    assert tiers["full"]["top1"]["mean"] > tiers["180x"]["top1"]["mean"]
    assert tiers["full"]["bytes_on_air"] > tiers["36x"]["bytes_on_air"] > tiers["180x"]["bytes_on_air"]
    assert all(g["fleet_time_to_90pct_s"] is not None for g in tiers.values())
    report = (tmp_path / "report.txt").read_text()
    assert "resent" in report and "drops" in report and "90% fleet" in report
    assert (tmp_path / "top1_cdf.png").stat().st_size > 5000

"""The release shipped for the presets (datasets/3gpp/releases/beam-uma, made by tools/make_fleet_release.py) and
release resolution: digests, graphs, the device's recipe."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest
from edge_sdk.fleet.release import device_trainer, resolve_release
from edge_sdk.fleet.scenario import load_scenario

from edge_sdk.errors import ConfigError
from edge_sdk.payload import read_payload

ROOT = Path(__file__).resolve().parents[2]
REL = ROOT / "datasets" / "3gpp" / "releases" / "beam-uma"


def test_shipped_release_index_matches_its_files() -> None:
    index = json.loads((REL / "release.json").read_text())
    assert set(index["tiers"]) == {"36x", "180x", "full"}
    for tier, entries in index["tiers"].items():
        for e in entries:
            pb, gb = (REL / e["payload"]).read_bytes(), (REL / e["graph"]).read_bytes()
            assert hashlib.sha256(pb).hexdigest() == e["payload_sha256"] and len(pb) == e["payload_bytes"]
            assert hashlib.sha256(gb).hexdigest() == e["graph_sha256"] == Path(e["graph"]).stem
            p = read_payload(REL / e["payload"])
            assert p.graph == {"sha256": e["graph_sha256"], "size": len(gb)}, tier
            assert e["command"].startswith("edge-sdk distill ")
    # the presets quote the expected Top-1 of the server's evaluation
    sc = load_scenario("lte-mixed-1k")
    for t in sc.release.tiers:
        assert t.expected_top1 == pytest.approx(index["tiers"][t.name][0]["expected_top1"], abs=1e-4)


def test_resolve_release_follows_the_device_recipe() -> None:
    sc = load_scenario("lte-mixed-1k")
    rel = resolve_release(sc.release)
    assert len(rel.rounds) == 2 and [t.name for t in rel.rounds[0]] == ["36x", "180x", "full"]
    t36 = rel.rounds[0][0]
    steps = read_payload(t36.payload.path).task["train"]["steps"]
    tr = device_trainer(t36.payload.path, t36.graph.path)
    assert t36.train_steps == tr.total_steps >= steps  # whole epochs covering the server's update count
    assert t36.train_steps - steps < tr.steps_per_epoch
    assert rel.rounds[1][2].payload == rel.rounds[0][2].payload  # full data does not change between rounds
    assert rel.rounds[1][0].graph == t36.graph and rel.rounds[1][0].payload != t36.payload
    assert t36.device_state_bytes == 4 * 3 * sum(math.prod(s) for _, s in tr.graph.model.param_shapes())


def test_graph_that_does_not_match_the_payload(tmp_path: Path) -> None:
    from dataclasses import replace

    sc = load_scenario("lte-mixed-1k")
    t = sc.release.tiers[0]
    bad = replace(t, graphs=sc.release.tiers[1].graphs)
    with pytest.raises(ConfigError, match="graph does not match the payload"):
        resolve_release(replace(sc.release, tiers=(bad,)))

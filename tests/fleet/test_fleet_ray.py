"""The ray backend end to end at small scale, on a real local Ray cluster (num_cpus=2; local mode is gone).

The backend starts a private cluster (its own temporary folder, no dashboard, a bounded object store) and always
shuts it down; the results must equal the inline backend's, wall-clock columns aside."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import scenario_toml

from edge_sdk.fleet.outputs import WALL_COLUMNS
from edge_sdk.fleet.scenario import parse_scenario
from edge_sdk.fleet.simulate import RunOptions, simulate

ray = pytest.importorskip("ray")


def test_ray_backend_matches_inline(release_dir: Path, tmp_path: Path) -> None:
    assert not ray.is_initialized()
    sc = parse_scenario(scenario_toml(release_dir, devices=40).encode(), source="r.toml", base=release_dir)
    a = simulate(sc, None, RunOptions(backend="inline", progress=False))
    b = simulate(sc, tmp_path, RunOptions(backend="ray", workers=2, progress=False, batch_size=10, plots=False))
    assert not ray.is_initialized(), "the backend shuts down the cluster it started"
    assert b.summary["backend"]["backend"] == "ray" and b.summary["backend"]["workers"] == 2
    assert {k: v for k, v in a.table.items() if k not in WALL_COLUMNS} == \
        {k: v for k, v in b.table.items() if k not in WALL_COLUMNS}
    assert len({w for w in b.table["worker"] if w is not None}) >= 1
    from edge_sdk.fleet.outputs import read_parquet

    on_disk = read_parquet(tmp_path / "devices.parquet")
    assert {k: v for k, v in on_disk.items() if k not in WALL_COLUMNS} == \
        {k: v for k, v in a.table.items() if k not in WALL_COLUMNS}

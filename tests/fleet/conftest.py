"""Shared fixtures for the fleet tests: a small two-tier, two-round release made from the device fixtures."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from edge_sdk.payload import SampleGroup, read_payload, write_payload

DATA = Path(__file__).resolve().parents[1] / "device" / "data"


def rewrite_payload(src: Path, dst: Path, provenance: dict[str, Any] | None = None,
                    train: dict[str, Any] | None = None, rows: int | None = None) -> Path:
    """A copy of payload ``src`` with another provenance (so another digest), optionally another recipe and only
    the first ``rows`` samples of each group; the group layout (so the graph) stays the same."""
    p = read_payload(src)
    groups = []
    for g in p.groups:
        data = g.codes() if g.kind not in ("float16", "float32", "none") else (g.values() if g.kind != "none" else None)
        params = g.params()
        labels = g.labels() if g.role == "samples" else None
        if rows is not None:
            data = data[:rows]
            labels = labels[:rows] if labels is not None else None
            params = {k: (v[:rows] if k == "scale" else v) for k, v in params.items()}
        groups.append(SampleGroup(name=g.name, kind=g.kind, bits=g.bits, data=data, params=params,
                                  labels=labels, role=g.role, meta=dict(g.meta)))
    task = dict(p.task)
    if train is not None:
        task["train"] = {**task.get("train", {}), **train}
    write_payload(dst, groups, p.num_classes, task=task, provenance=provenance or dict(p.provenance),
                  graph=dict(p.graph))
    return dst


@pytest.fixture(scope="session")
def release_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiers 'adam' (the beam_adam fixture, 512 samples) and 'small' (its first 64 samples per group), one graph,
    two rounds (round 1 = the same samples with another provenance, so other digests); plus a diverging payload."""
    d = tmp_path_factory.mktemp("release")
    src = DATA / "beam_adam" / "payload.bin"
    shutil.copyfile(DATA / "beam_adam" / "graph.onnx", d / "graph.onnx")
    shutil.copyfile(src, d / "adam-r0.epl")
    rewrite_payload(src, d / "adam-r1.epl", {"round": 1})
    rewrite_payload(src, d / "small-r0.epl", {"tier": "small"}, rows=64)
    rewrite_payload(src, d / "small-r1.epl", {"tier": "small", "round": 1}, rows=64)
    rewrite_payload(src, d / "diverge.epl", {"bad": 1}, train={"lr": 1e30})
    shutil.copyfile(DATA / "beam_adam" / "local.h5", d / "pool.h5")
    return d


def scenario_toml(release: Path, devices: int = 24, extra: str = "", rounds: int = 2, step_time: str = "1 ms",
                  classes: str | None = None) -> str:
    """A small scenario over ``release_dir``. Sizes: graph 6,870 B (the epoch graph), adam 4,768 B, small about
    1.3 kB: the 'big' class takes 'adam'; the 'slow' class's 10 kB budget fits 'small' + graph in round 0 (not
    'adam' + graph, 11.6 kB) and, with the graph cached, 'adam' in round 1."""
    a = [f'"{release}/adam-r{i}.epl"' for i in range(rounds)]
    s = [f'"{release}/small-r{i}.epl"' for i in range(rounds)]
    cls = classes if classes is not None else """
[[class]]
name = "big"
share = 0.5
compute_factor = 1.0
storage = "16 MiB"
budget = "1 MiB"
link = "lte-good"
[[class]]
name = "slow"
share = 0.5
compute_factor = 5.0
storage = "16 MiB"
budget = "10 kB"
links = { "3g-driving" = 0.5, "evdo-driving" = 0.5 }
poll_interval = "10 min"
"""
    return f"""
[scenario]
name = "small"
devices = {devices}
seed = 3
[release]
source = "files"
period = "6 h"
[[release.tier]]
name = "adam"
payload = [{", ".join(a)}]
graph = "{release}/graph.onnx"
[[release.tier]]
name = "small"
payload = [{", ".join(s)}]
graph = "{release}/graph.onnx"
[local_data]
pool = "{release}/pool.h5"
samples = 32
[compute]
step_time = "{step_time}"
verify_time = "1 ms"
store_time = "5 ms"
{extra}
{cls}
"""

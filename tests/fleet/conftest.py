"""Shared fixtures for the fleet tests: a small two-tier, two-round release made from the device fixtures."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from edge_sdk.payload import SampleGroup, read_payload, write_payload

DATA = Path(__file__).resolve().parents[1] / "device" / "data"


def rewrite_payload(src: Path, dst: Path, provenance: dict[str, Any] | None = None,
                    train: dict[str, Any] | None = None) -> Path:
    """A copy of payload ``src`` with another provenance (so another digest) and optionally another recipe; the
    groups (so the graph) stay the same."""
    p = read_payload(src)
    groups = []
    for g in p.groups:
        data = g.codes() if g.kind not in ("float16", "float32", "none") else (g.values() if g.kind != "none" else None)
        groups.append(SampleGroup(name=g.name, kind=g.kind, bits=g.bits, data=data, params=g.params(),
                                  labels=g.labels() if g.role == "samples" else None, role=g.role,
                                  n=g.n, d=g.d, meta=dict(g.meta)))
    task = dict(p.task)
    if train is not None:
        task["train"] = {**task.get("train", {}), **train}
    write_payload(dst, groups, p.num_classes, task=task, provenance=provenance or dict(p.provenance),
                  graph=dict(p.graph))
    return dst


@pytest.fixture(scope="session")
def release_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("release")
    for b in ("beam_adam", "soft_sgd"):
        shutil.copyfile(DATA / b / "graph.onnx", d / f"{b}.onnx")
        shutil.copyfile(DATA / b / "payload.bin", d / f"{b}-r0.epl")
        rewrite_payload(DATA / b / "payload.bin", d / f"{b}-r1.epl", {"round": 1})
    rewrite_payload(DATA / "beam_adam" / "payload.bin", d / "diverge.epl", {"bad": 1}, train={"lr": 1e30})
    shutil.copyfile(DATA / "beam_adam" / "local.h5", d / "pool.h5")
    return d


def scenario_toml(release: Path, devices: int = 24, extra: str = "", rounds: int = 2, step_time: str = "1 ms",
                  classes: str | None = None) -> str:
    """A small scenario over ``release_dir``: tiers 'adam' (14,321 B with its graph) and 'soft' (15,101 B, higher
    expected Top-1): the 'big' class gets 'soft', the 'slow' class's 15 kB budget only fits 'adam'."""
    r = [f'"{release}/beam_adam-r{i}.epl"' for i in range(rounds)]
    s = [f'"{release}/soft_sgd-r{i}.epl"' for i in range(rounds)]
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
budget = "15 kB"
links = { "3g-driving" = 0.5, "evdo-driving" = 0.5 }
poll_interval = "10 min"
"""
    return f"""
[scenario]
name = "small"
devices = {devices}
seed = 3
[release]
period = "6 h"
[[release.tier]]
name = "adam"
payload = [{", ".join(r)}]
graph = "{release}/beam_adam.onnx"
expected_top1 = 0.4
[[release.tier]]
name = "soft"
payload = [{", ".join(s)}]
graph = "{release}/soft_sgd.onnx"
expected_top1 = 0.5
[local_data]
pool = "{release}/pool.h5"
samples = 32
[compute]
step_time = "{step_time}"
hash_rate = "400 MB/s"
{extra}
{cls}
"""

"""tools/bench_peers.py: the FLOP count behind every GFLOP/s figure, the parity check that keeps the comparison
honest (edge-sdk's epoch and step graphs and eager torch compute the same update), and the report of a peer that
is not installed. The timings themselves come from `make bench-peers`, never from a test."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxscript")

ROOT = Path(__file__).resolve().parents[1]
PEERS = ROOT / "tools" / "peers"


def _load(name: str, path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def bench() -> Any:
    sys.path.insert(0, str(PEERS))
    try:
        yield _load("bench_peers", ROOT / "tools" / "bench_peers.py")
    finally:
        sys.path.remove(str(PEERS))


def test_step_flops_counts_forward_and_both_backward_matmuls(bench: Any) -> None:
    # 8-128-128-32, batch 128: forward 2*128*(8*128 + 128*128 + 128*32), weight grads the same, input grads for
    # layers 1 and 2 only (layer 0's input gradient is not needed)
    fwd = 2 * 128 * (8 * 128 + 128 * 128 + 128 * 32)
    assert bench.step_flops([8, 128, 128, 32], 128) == 2 * fwd + 2 * 128 * (128 * 128 + 128 * 32)
    limit = _load("peer_numpy_limit", PEERS / "peer_numpy_limit.py")
    assert limit.step_flops([64, 256, 256, 32], 512) == bench.step_flops([64, 256, 256, 32], 512)


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_edge_sdk_graphs_match_eager_torch_within_tolerance(bench: Any, tmp_path: Path, opt: str) -> None:
    """The benchmark's parity rule on a small MLP: the first losses of edge-sdk (epoch graph, bit-packed rows
    decoded in the graph; and the v1 step graph) equal eager torch's within PARITY_TOL."""
    prep = bench.prepare(tmp_path, {"tiny": [8, 16, 4]})
    worker = _load("worker", PEERS / "worker.py")
    losses = {}
    for peer in bench.PEERS:
        if peer.module not in ("edge_sdk", "edge_sdk_step", "torch"):
            continue
        case = bench.case_for(peer, "tiny", prep, 32, opt, 1, tmp_path)
        mod = worker.load_peer(peer.module)
        losses[peer.name] = np.asarray(mod.Trainer(case, worker.Data.load(case)).run(list(range(bench.PARITY_STEPS))))
    ref = losses.pop(bench.REFERENCE)
    assert len(ref) == bench.PARITY_STEPS and ref[-1] < ref[0]  # it trains
    for name, got in losses.items():
        assert np.max(np.abs(got - ref)) <= bench.PARITY_TOL, name


def test_a_peer_without_its_venv_is_reported_not_installed(bench: Any, tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(bench, "PEERS_DIR", tmp_path)
    (tmp_path / "litert.install.log").write_text("ERROR: No matching distribution found for ai-edge-litert==9\n")
    ok, why = bench.installed(next(p for p in bench.PEERS if p.name == "LiteRT"))
    assert not ok and "No matching distribution" in why

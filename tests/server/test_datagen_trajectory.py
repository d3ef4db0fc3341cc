"""BM-Case2 UE trajectories: constant speed, exponential segment durations (mean 5 s), heading changes in
U[-45, 45] deg (TR 38.843 evaluation assumption)."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edge_sdk.server.datagen.presets import TrajectoryCfg  # noqa: E402
from edge_sdk.server.datagen.trajectory import sample_trajectories  # noqa: E402


def test_trajectory_statistics() -> None:
    cfg = TrajectoryCfg(speed_kmh=30.0, time_step_s=0.02, steps_per_trajectory=1000, segment_mean_s=5.0,
                        heading_change_max_deg=45.0, time_evolution="procedure_a",
                        blockage="none")
    n = 400
    g = torch.Generator().manual_seed(0)
    start = torch.zeros(n, 2)
    yaw0 = torch.full((n,), 0.3)
    pos, yaw = sample_trajectories(start, yaw0, cfg, g)
    assert pos.shape == (n, 1000, 2) and yaw.shape == (n, 1000)
    np.testing.assert_allclose(pos[:, 0].numpy(), 0.0)
    step = torch.diff(pos.double(), dim=1)
    np.testing.assert_allclose(step.norm(dim=-1).numpy(), 30 / 3.6 * 0.02, rtol=1e-4)
    heading = torch.atan2(step[..., 1], step[..., 0])
    turn = torch.remainder(torch.diff(heading, dim=1) + math.pi, 2 * math.pi) - math.pi
    turns = turn.abs() > 1e-3  # float32 positions: heading noise ~1e-5 rad
    # a step holds two turns only if a segment is shorter than 20 ms (P ~ 0.4%)
    assert float(turn.abs().max()) <= math.radians(90.0) + 1e-3
    assert float((turn.abs() > math.radians(45.0) + 1e-3).sum()) < 0.02 * float(turns.sum())
    # turns follow a Poisson process of rate 1/5 s: 20 s x 400 trajectories -> ~1600 turns (std 40)
    rate = float(turns.sum()) / (n * 999 * 0.02)
    assert abs(rate - 0.2) < 0.02, rate
    # turn angles uniform on [-45, 45] deg: mean |angle| = 22.5 deg
    assert abs(math.degrees(float(turn[turns].abs().mean())) - 22.5) < 2.0
    # the UE yaw turns with the heading
    dyaw = torch.remainder(torch.diff(yaw.double(), dim=1)[:, :-1] - turn + math.pi, 2 * math.pi) - math.pi
    assert float(dyaw.abs().max()) < 1e-3
    np.testing.assert_allclose(yaw[:, 0].numpy(), 0.3, atol=1e-6)

"""BM-Case2 UE trajectories (TR 38.843 evaluation assumption for temporal beam prediction).

A trajectory starts at a sector drop with a uniform random heading and moves at constant speed in straight
segments whose durations are exponential (mean ``segment_mean_s``); at each segment end the heading changes by
U[-heading_change_max_deg, +heading_change_max_deg]. Positions are sampled every ``time_step_s``. The UE keeps its
orientation relative to the direction of travel (yaw turns with the heading).
"""

from __future__ import annotations

import math

import torch

from edge_sdk.server.datagen.presets import TrajectoryCfg


def sample_trajectories(start_xy: torch.Tensor, yaw0: torch.Tensor, cfg: TrajectoryCfg,
                        gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions float32 [n, T, 2] (m) and UE yaw [n, T] (rad) for ``n`` trajectories starting at ``start_xy``.

    :param start_xy: float [n, 2] start positions, metres
    :param yaw0: float [n] UE yaw at t = 0, rad
    """
    n = start_xy.shape[0]
    t_steps = cfg.steps_per_trajectory
    dt = cfg.time_step_s
    v = cfg.speed_kmh / 3.6
    duration = t_steps * dt
    # enough segments that their total length exceeds the trajectory with overwhelming probability
    n_seg = int(math.ceil(duration / cfg.segment_mean_s * 4)) + 8
    f64 = torch.float64
    seg_len = torch.empty(n, n_seg, dtype=f64).exponential_(1.0 / cfg.segment_mean_s, generator=gen)
    seg_len[:, -1] = float("inf")
    turns = (torch.rand(n, n_seg, generator=gen, dtype=f64) * 2 - 1) * math.radians(cfg.heading_change_max_deg)
    turns[:, 0] = torch.rand(n, generator=gen, dtype=f64) * 2 * math.pi  # initial heading
    heading_seg = torch.cumsum(turns, dim=1)  # heading of segment j
    ends = torch.cumsum(seg_len, dim=1)  # end time of segment j
    t = torch.arange(t_steps, dtype=f64) * dt
    # segment index of each step interval [t_i, t_i + dt): heading used to move from step i to i+1
    seg_idx = torch.searchsorted(ends, t.expand(n, -1).contiguous(), right=True).clamp_max(n_seg - 1)
    heading = torch.gather(heading_seg, 1, seg_idx)  # [n, T]
    step = torch.stack([torch.cos(heading), torch.sin(heading)], dim=-1) * (v * dt)  # [n, T, 2]
    disp = torch.cumsum(step, dim=1) - step  # position i = sum of steps 0..i-1
    pos = start_xy.to(f64)[:, None, :] + disp
    yaw = yaw0.to(f64)[:, None] + (heading - heading[:, :1])
    return pos.to(torch.float32), torch.remainder(yaw, 2 * math.pi).to(torch.float32)

"""Physical validation of the BM-Case2 trajectories (dataset card, "BM-Case2 physical validation").

Runs :meth:`BeamChannel.track` directly (so the fading-free local mean and the cluster angles are visible, not
only the stored RSRP) and measures, per speed:

* **best-beam dwell time**: 1 / (rate of Top-1 Tx-beam changes) along the trajectories, for the instantaneous
  L1-RSRP (what a UE measures) and for the local mean (ray powers added: no small-scale fading);
* **angular drift rate**: median |d/dt| of the power-weighted circular mean AoD and AoA of the multipath (ray
  powers as weights) and of the LOS AoD (geometry), deg/s, over steps without a LOS/NLOS change;
* **correlation vs displacement**: correlation coefficient of (a) Sionna's shadow-fading field, (b) the
  large-scale residual ``10 log10(sum of local-mean beam-pair power) + PL_basic``, (c) the per-beam L1-RSRP
  (instantaneous and local mean, dB, best Rx beam), between positions ``Delta`` metres apart on one track and in
  one LOS state; with exponential fits ``rho = exp(-Delta / D)`` to compare with TR 38.901 correlation distances
  (Table 7.5-6: SF 37 m LOS / 50 m NLOS UMa; Table 7.6.3.1-2: cluster and ray variables 40 / 50 m);
* **LOS/NLOS transitions** per 100 m travelled;
* **small-scale fading**: correlation of the instantaneous beam-pair power vs displacement in wavelengths on a
  finely sampled track (decorrelation within about half a wavelength: the Doppler term of eq. 7.5-22);
* **sample-and-hold Top-1** of the last Set A sweep vs lag, instantaneous and local mean.

Shapes: ``n`` trajectories, ``T`` steps, ``n_tx`` x ``n_rx`` beam pairs.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from edge_sdk.server.datagen.generate import BeamGenerator, chunk_seed
from edge_sdk.server.datagen.presets import Preset
from edge_sdk.server.datagen.rsrp import rsrp_dbm
from edge_sdk.server.datagen.trajectory import sample_trajectories

#: TR 38.901 correlation distances, metres (UMa): Table 7.5-6 (SF) and Table 7.6.3.1-2 (cluster/ray variables)
TR38901_UMA_CORR_M = {"sf_los": 37.0, "sf_nlos": 50.0, "cluster_los": 40.0, "cluster_nlos": 50.0,
                      "los_state": 50.0}


@dataclass
class TrackSample:
    """Arrays of ``n`` trajectories of ``T`` steps (numpy): ``pos`` [n, T, 3] m, ``los`` bool [n, T],
    ``rsrp`` / ``rsrp_mean`` float32 [n, T, n_tx, n_rx] dBm (instantaneous / local mean), ``sf_db`` [n, T],
    ``pl_db`` [n, T] basic path loss, ``aod`` / ``aoa`` / ``los_aod`` [n, T] deg (power-weighted circular means
    of the rays; LOS direction), ``dt`` s."""

    pos: np.ndarray
    los: np.ndarray
    rsrp: np.ndarray
    rsrp_mean: np.ndarray
    sf_db: np.ndarray
    pl_db: np.ndarray
    aod: np.ndarray
    aoa: np.ndarray
    los_aod: np.ndarray
    dt: float


def _circ_mean_deg(angle: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Weighted circular mean over the last two dims (clusters, rays), degrees."""
    z = (weight * torch.polar(torch.ones_like(angle), angle)).sum(dim=(-1, -2))
    return torch.rad2deg(torch.angle(z))


def track_sample(preset: Preset, n_traj: int, seed: int, *, batch_traj: int = 10,
                 positions: torch.Tensor | None = None) -> TrackSample:
    """Generate ``n_traj`` trajectories of ``preset`` (or the given ``positions`` [n, T, 3]) with the channel
    internals needed by the validation. Chunk ``k`` uses ``chunk_seed(seed, k)`` like the generator."""
    assert preset.trajectory is not None, "a BM-Case2 preset is needed"
    gen = BeamGenerator(preset, "cpu")
    ch = gen.channel
    cfg = preset.trajectory
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("pos", "los", "rsrp", "rsrp_mean", "sf_db", "pl_db", "aod",
                                                       "aoa", "los_aod")}
    n_total = n_traj if positions is None else positions.shape[0]
    for k, s in enumerate(range(0, n_total, batch_traj)):
        n = min(batch_traj, n_total - s)
        g = gen._seed(chunk_seed(seed, k))
        if positions is None:
            start = ch.sample_drops(n, g)
            xy, yaw = sample_trajectories(start.ut_loc[:, :2], start.yaw, cfg, g)
            pos = torch.cat([xy, torch.full((*xy.shape[:2], 1), preset.scenario.ut_height_m)], dim=-1)
        else:
            pos = positions[s:s + n].float()
            yaw = torch.zeros(pos.shape[:2])
        st = ch.track(pos, yaw, torch.zeros_like(pos))
        fields = ch._track_fields  # the spatially consistent track snapshot (LOS state, SF, path loss)
        assert fields is not None
        sc = fields._scenario
        t = pos.shape[1]
        re = preset.link.re_power_dbm
        p_inst = ch.beam_power(st, gen.w_tx, gen.w_rx)
        p_mean = ch.beam_power(st, gen.w_tx, gen.w_rx, coherent=False)
        rays = st.rays
        w = rays.powers[:, 0, 0, :, None].expand_as(rays.aod[:, 0, 0]) / rays.aod.shape[-1]
        out["pos"].append(pos.numpy())
        out["los"].append(st.los.reshape(n, t).numpy())
        out["rsrp"].append(rsrp_dbm(p_inst, re).reshape(n, t, *p_inst.shape[1:]).numpy())
        out["rsrp_mean"].append(rsrp_dbm(p_mean, re).reshape(n, t, *p_mean.shape[1:]).numpy())
        out["sf_db"].append(10 * np.log10(fields._lsp.sf[:, 0, :].numpy()))
        out["pl_db"].append(sc.basic_pathloss[:, 0, :].numpy())
        out["aod"].append(_circ_mean_deg(rays.aod[:, 0, 0], w).reshape(n, t).numpy())
        out["aoa"].append(_circ_mean_deg(rays.aoa[:, 0, 0], w).reshape(n, t).numpy())
        out["los_aod"].append(torch.rad2deg(st.los_angles["los_aod"]).reshape(n, t).numpy())
    cat = {k: np.concatenate(v) for k, v in out.items()}
    return TrackSample(**cat, dt=cfg.time_step_s)


def _labels(rsrp: np.ndarray) -> np.ndarray:
    """Top-1 Tx beam (max over Rx) [n, T]."""
    return rsrp.max(axis=-1).argmax(axis=-1)


def dwell_time_s(labels: np.ndarray, dt: float) -> dict[str, float]:
    """Mean Top-1 dwell time = 1 / switch rate (s), switches per second, share of tracks without a switch."""
    sw = (np.diff(labels, axis=1) != 0)
    rate = float(sw.sum()) / (sw.size * dt)
    return {"dwell_s": (1.0 / rate) if rate > 0 else float("inf"), "switches_per_s": rate,
            "tracks_without_switch": float((sw.sum(axis=1) == 0).mean())}


def _wrap_deg(x: np.ndarray) -> np.ndarray:
    return (x + 180.0) % 360.0 - 180.0


def drift_rate_deg_s(ts: TrackSample) -> dict[str, float]:
    """Median |d angle / dt| (deg/s) of the ray-power-weighted AoD / AoA and of the LOS AoD, over steps that
    keep the LOS state."""
    keep = ts.los[:, 1:] == ts.los[:, :-1]
    out = {}
    for name in ("aod", "aoa", "los_aod"):
        d = np.abs(_wrap_deg(np.diff(getattr(ts, name), axis=1)))[keep] / ts.dt
        out[f"{name}_median_deg_s"] = float(np.median(d))
        out[f"{name}_p90_deg_s"] = float(np.percentile(d, 90))
    return out


def lag_correlation(x: np.ndarray, los: np.ndarray, lag: int) -> float:
    """Correlation coefficient of ``x[..., t]`` and ``x[..., t + lag]`` over all pairs on one track with the same
    LOS state at both ends. ``x`` [n, T] or [n, T, m] (each column a separate series, pooled)."""
    a, b = x[:, :-lag], x[:, lag:]
    same = (los[:, :-lag] == los[:, lag:])
    if x.ndim == 3:
        same = np.broadcast_to(same[..., None], a.shape)
    a, b = a[same], b[same]
    if a.size < 10:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def fit_corr_distance(disp_m: np.ndarray, rho: np.ndarray, max_m: float = 64.0) -> dict[str, float]:
    """Least-squares fit of ``rho = a exp(-Delta / D)`` on log(rho) over the points with Delta <= ``max_m`` and
    rho > 0.1 (at larger lags few pairs of one track share a LOS state and the estimates are noise): returns
    D (m) and the amplitude a."""
    ok = np.isfinite(rho) & (rho > 0.1) & (disp_m <= max_m)
    if ok.sum() < 2:
        return {"D_m": float("nan"), "a": float("nan")}
    slope, icpt = np.polyfit(disp_m[ok], np.log(rho[ok]), 1)
    return {"D_m": float(-1.0 / slope) if slope < 0 else float("inf"), "a": float(math.exp(icpt))}


def correlation_table(ts: TrackSample, lags: list[int], speed_mps: float) -> dict[str, Any]:
    """Correlation vs displacement (see module docstring) at ``lags`` steps; exponential fits per LOS state."""
    rows = []
    total_mean_db = 10 * np.log10(np.power(10.0, ts.rsrp_mean.astype(np.float64) / 10).sum(axis=(-1, -2)))
    resid = total_mean_db + ts.pl_db  # large-scale residual: SF + multipath structure, path loss removed
    beam_inst = ts.rsrp.max(axis=-1)  # [n, T, n_tx] best Rx
    beam_mean = ts.rsrp_mean.max(axis=-1)
    for lag in lags:
        row = {"lag_steps": lag, "displacement_m": lag * speed_mps * ts.dt}
        for state, mask in (("los", ts.los), ("nlos", ~ts.los)):
            for name, x in (("sf", ts.sf_db), ("residual", resid)):
                row[f"{name}_{state}"] = _corr_state(x, mask, lag)
        row["beam_rsrp_inst"] = lag_correlation(beam_inst, ts.los, lag)
        row["beam_rsrp_mean"] = lag_correlation(beam_mean, ts.los, lag)
        rows.append(row)
    disp = np.array([r["displacement_m"] for r in rows])
    fits = {f"{name}_{state}": fit_corr_distance(disp, np.array([r[f"{name}_{state}"] for r in rows]))
            for name in ("sf", "residual") for state in ("los", "nlos")}
    return {"rows": rows, "fits": fits}


def _corr_state(x: np.ndarray, mask: np.ndarray, lag: int) -> float:
    """Lag correlation of ``x`` [n, T] over pairs whose both ends satisfy ``mask`` [n, T]."""
    a, b = x[:, :-lag], x[:, lag:]
    ok = mask[:, :-lag] & mask[:, lag:]
    if ok.sum() < 10:
        return float("nan")
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def los_transitions_per_100m(ts: TrackSample, speed_mps: float) -> float:
    """LOS/NLOS state changes per 100 m travelled."""
    changes = float((ts.los[:, 1:] != ts.los[:, :-1]).sum())
    travelled = ts.los.shape[0] * (ts.los.shape[1] - 1) * speed_mps * ts.dt
    return 100.0 * changes / travelled


def sample_and_hold_top1(labels: np.ndarray, lags: list[int]) -> dict[int, float]:
    """Share of (t, t + lag) pairs on one track with the same Top-1 beam."""
    return {lag: float((labels[:, lag:] == labels[:, :-lag]).mean()) for lag in lags}


def fading_correlation(preset: Preset, n_traj: int, seed: int, n_steps: int = 81,
                       step_wavelengths: float = 0.05) -> dict[str, Any]:
    """Small-scale fading: correlation of the instantaneous beam-pair power (linear, best 4 pairs of each
    position 0, normalised by the local mean) vs displacement in wavelengths, on straight tracks sampled every
    ``step_wavelengths`` wavelengths."""
    gen = BeamGenerator(preset, "cpu")
    lam = gen.channel.wavelength_m
    g = gen._seed(chunk_seed(seed, 0))
    start = gen.channel.sample_drops(n_traj, g)
    heading = torch.rand(n_traj, generator=g) * 2 * math.pi
    d = torch.arange(n_steps, dtype=torch.float32) * step_wavelengths * lam
    pos = start.ut_loc[:, None, :] + d[None, :, None] * torch.stack(
        [torch.cos(heading), torch.sin(heading), torch.zeros(n_traj)], -1)[:, None, :]
    ts = track_sample(dataclasses.replace(preset), n_traj, seed, positions=pos)
    lin = np.power(10.0, ts.rsrp.astype(np.float64) / 10)
    mean = np.power(10.0, ts.rsrp_mean.astype(np.float64) / 10)
    x = (lin / mean).reshape(n_traj, n_steps, -1)  # normalised fading per beam pair
    top = np.argsort(-mean[:, 0].reshape(n_traj, -1), axis=1)[:, :4]  # 4 strongest pairs at the start
    x = np.take_along_axis(x, top[:, None, :], axis=2)
    rows = []
    for lag in range(1, n_steps, 2):
        a, b = x[:, :-lag].ravel(), x[:, lag:].ravel()
        rows.append({"displacement_wavelengths": lag * step_wavelengths, "rho": float(np.corrcoef(a, b)[0, 1])})
    half = next((r["displacement_wavelengths"] for r in rows if r["rho"] < 0.5), float("nan"))
    return {"rows": rows, "rho_below_0.5_at_wavelengths": half, "wavelength_m": lam}

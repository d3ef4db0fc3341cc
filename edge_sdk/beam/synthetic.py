"""A cheap geometric toy beam dataset for TESTS ONLY (schema-valid, physically crude; not the real data).

:func:`make_synthetic_beam_dataset` produces a :class:`~edge_sdk.beam.dataset.BeamDataset` in seconds without
Sionna, so that tests of the distillation, ADQ, payload and device parts have beam data with the right
shapes and a learnable structure. It is NOT a TR 38.901 channel: use the Sionna generator
(``edge-sdk data generate``) for anything that is evaluated or reported.

Toy model (per sample; angles in degrees, one gNB sector of 120 deg at the origin, 25 m high):

* UE: 2D distance ``d ~ U[10, 200]`` m, azimuth ``phi ~ U[-60, 60]`` from boresight, height 1.5 m, random
  orientation; indoor with probability 0.8 (fixed 20 dB O2I loss), LOS with the TR 38.901 UMa probability
  ``18/d + exp(-d/63)(1 - 18/d)`` (outdoor only).
* Paths: one LOS path (if LOS, Rician factor 9 dB) plus 6 clusters with Gaussian angular offsets
  (azimuth 15 deg, zenith 3 deg at the gNB; 40 deg azimuth at the UE) and exponential powers.
* Path loss: TR 38.901 UMa LOS/NLOS formulas at 30 GHz, shadow fading 4 / 6 dB; per-RE Tx power 11.8 dBm.
* gNB beams: Set A DFT grid (8 or 16 azimuths with ``sin(phi_k) = sin(60)(2k - n_az + 1)/(n_az - 1)``,
  zeniths 96/104/112/120 deg), array factor of an ``n_az x 4`` half-wavelength URA (separable), 8 dBi element.
* UE beams: ``n_rx`` beams with boresights ``360 j / n_rx`` and the TR 38.901 Table 7.3-1 parabolic pattern
  (3 dB width ``max(30, 360 / n_rx)`` deg, 25 dB floor, 11 dBi peak).
* RSRP(tx, rx) = P_RE - PL - SF - O2I + 10 log10(sum_paths p_path * G_tx * G_rx), stored as float16 dBm.
* BM-Case2: straight trajectories at ``speed_kmh`` with a fixed per-trajectory cluster geometry (offsets
  relative to the LOS direction), LOS state, indoor flag and shadow fading; positions advance each step.
"""

from __future__ import annotations

import json

import numpy as np

from edge_sdk._version import __version__
from edge_sdk.beam.dataset import BeamDataset, top1_label
from edge_sdk.errors import ConfigError

H_BS = 25.0
H_UT = 1.5
FC_GHZ = 30.0
P_RE_DBM = 11.8
N_CLUSTERS = 6
ZENITHS_DEG = (96.0, 104.0, 112.0, 120.0)


def _af_gain(n: int, du: np.ndarray) -> np.ndarray:
    """Normalised power array factor of an n-element half-wavelength ULA at spatial-frequency offset du."""
    x = np.pi * du / 2.0
    num = np.sin(n * x)
    den = np.sin(x)
    small = np.abs(den) < 1e-9
    out = np.where(small, float(n * n), (num / np.where(small, 1.0, den)) ** 2)
    return out / n


def tx_beam_angles(n_tx: int) -> tuple[np.ndarray, np.ndarray]:
    """(azimuth deg [n_tx], zenith deg [n_tx]) of the Set A grid, zenith-major ``k = k_zen * n_az + k_az``."""
    n_az = n_tx // 4
    k = np.arange(n_az)
    az = np.degrees(np.arcsin(np.sin(np.radians(60.0)) * (2 * k - (n_az - 1)) / (n_az - 1)))
    azs = np.tile(az, 4)
    zens = np.repeat(np.asarray(ZENITHS_DEG), n_az)
    return azs, zens


def _pathloss_db(d3d: np.ndarray, los: np.ndarray) -> np.ndarray:
    pl_los = 28.0 + 22.0 * np.log10(d3d) + 20.0 * np.log10(FC_GHZ)
    pl_nlos = 13.54 + 39.08 * np.log10(d3d) + 20.0 * np.log10(FC_GHZ) - 0.6 * (H_UT - 1.5)
    return np.where(los, pl_los, np.maximum(pl_los, pl_nlos))


def _los_prob(d2d: np.ndarray) -> np.ndarray:
    d = np.maximum(d2d, 1.0)
    return np.where(d <= 18.0, 1.0, 18.0 / d + np.exp(-d / 63.0) * (1.0 - 18.0 / d))


def _rsrp(
    ue_xy: np.ndarray, orient: np.ndarray, los: np.ndarray, indoor: np.ndarray, sf_db: np.ndarray,
    cl_daz: np.ndarray, cl_dzen: np.ndarray, cl_aoa: np.ndarray, cl_pow: np.ndarray, n_tx: int, n_rx: int,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """RSRP dBm float32 [N, n_tx, n_rx] and 2D distance [N] for UE positions and per-sample cluster geometry."""
    d2d = np.maximum(np.hypot(ue_xy[:, 0], ue_xy[:, 1]), 10.0)
    d3d = np.hypot(d2d, H_BS - H_UT)
    phi = np.degrees(np.arctan2(ue_xy[:, 1], ue_xy[:, 0]))  # boresight along +x
    zen = 90.0 + np.degrees(np.arctan2(H_BS - H_UT, d2d))
    k_lin = 10 ** (9.0 / 10.0)
    # path table [N, P]: P = 1 LOS + N_CLUSTERS
    aod = np.concatenate([phi[:, None], phi[:, None] + cl_daz], axis=1)
    zod = np.concatenate([zen[:, None], zen[:, None] + cl_dzen], axis=1)
    aoa_los = phi + 180.0 - orient
    aoa = np.concatenate([aoa_los[:, None], aoa_los[:, None] + cl_aoa], axis=1)
    p_los = np.where(los, k_lin / (k_lin + 1.0), 0.0)
    p = np.concatenate([p_los[:, None], cl_pow * np.where(los, 1.0 / (k_lin + 1.0), 1.0)[:, None]], axis=1)
    b_az, b_zen = tx_beam_angles(n_tx)
    n_az = n_tx // 4
    du_az = np.sin(np.radians(aod))[:, :, None] - np.sin(np.radians(b_az))[None, None, :]
    du_zen = np.cos(np.radians(zod))[:, :, None] - np.cos(np.radians(b_zen))[None, None, :]
    g_tx = _af_gain(n_az, du_az) * _af_gain(4, du_zen) * 10 ** (8.0 / 10.0)  # [N, P, n_tx]
    g_tx *= np.where(np.abs(aod) > 90.0, 10 ** (-25.0 / 10.0), 1.0)[:, :, None]
    bore = 360.0 * np.arange(n_rx) / n_rx
    delta = (aoa[:, :, None] - bore[None, None, :] + 180.0) % 360.0 - 180.0
    w3 = max(30.0, 360.0 / n_rx)
    g_rx = 10 ** ((11.0 - np.minimum(12.0 * (delta / w3) ** 2, 25.0)) / 10.0)  # [N, P, n_rx]
    lin = np.einsum("np,npt,npr->ntr", p, g_tx, g_rx)
    loss = _pathloss_db(d3d, los) + sf_db + np.where(indoor, 20.0, 0.0)
    rsrp = P_RE_DBM - loss[:, None, None] + 10.0 * np.log10(np.maximum(lin, 1e-30))
    return rsrp.astype(np.float32), d2d.astype(np.float32)


def make_synthetic_beam_dataset(
    n: int,
    n_tx: int = 32,
    n_rx: int = 8,
    seed: int = 0,
    *,
    case: str = "case1",
    steps: int = 20,
    time_step_s: float = 0.1,
    speed_kmh: float = 30.0,
    indoor_share: float = 0.8,
) -> BeamDataset:
    """A schema-valid toy :class:`BeamDataset` of ``n`` samples (tests only; see module docstring).

    ``case="case2"``: ``ceil(n / steps)`` trajectories of ``steps`` time steps (``time_step_s`` apart,
    ``speed_kmh``), truncated to ``n`` rows, ordered by (traj_id, t_index); trajectories are outdoor.
    Deterministic in ``seed`` (numpy PCG64).
    """
    if n < 0 or n_tx not in (32, 64) or not 1 <= n_rx <= 64:
        raise ConfigError("synthetic data needs n >= 0, n_tx in {32, 64}, 1 <= n_rx <= 64")
    if case not in ("case1", "case2") or steps < 1 or time_step_s <= 0:
        raise ConfigError("case must be case1/case2, steps >= 1, time_step_s > 0")
    rng = np.random.Generator(np.random.PCG64(seed))
    if case == "case1":
        m = n
        d = rng.uniform(10.0, 200.0, m)
        ang = np.radians(rng.uniform(-60.0, 60.0, m))
        xy = np.stack([d * np.cos(ang), d * np.sin(ang)], axis=1)
        indoor = rng.random(m) < indoor_share
        los = (~indoor) & (rng.random(m) < _los_prob(d))
        orient = rng.uniform(0.0, 360.0, m)
        per_row = np.arange(m)
    else:
        m = -(-n // steps) if n else 0
        d = rng.uniform(30.0, 180.0, m)
        ang = np.radians(rng.uniform(-50.0, 50.0, m))
        xy = np.stack([d * np.cos(ang), d * np.sin(ang)], axis=1)
        indoor = np.zeros(m, bool)
        los = rng.random(m) < _los_prob(d)
        orient = rng.uniform(0.0, 360.0, m)  # heading == orientation
        per_row = np.repeat(np.arange(m), steps)[:n]
    sf = rng.normal(0.0, np.where(los, 4.0, 6.0))
    cl_daz = rng.normal(0.0, 15.0, (m, N_CLUSTERS))
    cl_dzen = rng.normal(0.0, 3.0, (m, N_CLUSTERS))
    cl_aoa = rng.normal(0.0, 40.0, (m, N_CLUSTERS))
    cl_pow = rng.exponential(1.0, (m, N_CLUSTERS)) * np.exp(-np.arange(N_CLUSTERS) / 2.0)
    cl_pow /= cl_pow.sum(axis=1, keepdims=True)
    attrs_extra: dict[str, object] = {}
    if case == "case1":
        pos = xy
        traj_id = t_index = None
    else:
        t_index = np.tile(np.arange(steps), m)[:n].astype(np.int32)
        traj_id = per_row.astype(np.int32)
        v = speed_kmh / 3.6
        head = np.radians(orient)
        step_xy = np.stack([np.cos(head), np.sin(head)], axis=1) * v * time_step_s
        pos = xy[per_row] + step_xy[per_row] * t_index[:, None]
        attrs_extra["time_step_s"] = float(time_step_s)
    r = per_row
    rsrp, d2d = _rsrp(
        pos, orient[r], los[r], indoor[r], sf[r], cl_daz[r], cl_dzen[r], cl_aoa[r], cl_pow[r], n_tx, n_rx
    )
    rsrp16 = rsrp.astype(np.float16)
    ue_pos = np.concatenate([pos, np.full((len(r), 1), H_UT)], axis=1).astype(np.float32)
    cell = np.zeros(len(r), np.int16)
    preset = {
        "name": "synthetic-toy",
        "note": "edge_sdk.beam.synthetic toy model for tests; not TR 38.901",
        "case": case, "n_tx": n_tx, "n_rx": n_rx, "steps": steps, "speed_kmh": speed_kmh,
        "indoor_share": indoor_share,
    }  # fmt: skip
    attrs = {
        "schema": "edge-sdk/beam-dataset",
        "schema_version": 1,
        "case": case,
        "preset": json.dumps(preset, sort_keys=True),
        "generator_version": f"edge_sdk.beam.synthetic {__version__}",
        "sionna_version": "none (synthetic toy model)",
        "seed": int(seed),
        "n_tx": n_tx,
        "n_rx": n_rx,
        **attrs_extra,
    }
    ds = BeamDataset(
        rsrp=rsrp16, label=top1_label(rsrp16), los=los[r].astype(bool), indoor=indoor[r].astype(bool),
        d2d=d2d, ue_pos=ue_pos, cell=cell, traj_id=traj_id, t_index=t_index, attrs=attrs,
    )  # fmt: skip
    return ds.validate()


"""TR 38.901 Sec. 7.6.3.2 Procedure A: clusters drawn at t0 move with the UE (BM-Case2 time evolution).

Procedure A keeps the LSPs, cluster powers, XPRs and ray couplings of the initial drop and updates delays and
angles from the UE's displacement ``dp = p_k - p_{k-1}`` (applied recursively per time step, each step well
under the 1 m the procedure is meant for: 0.17 / 0.33 / 0.5 m per 20 ms at 30 / 60 / 90 km/h). With the unit
vectors of a direction (zenith theta, azimuth phi) ``r = (sin t cos p, sin t sin p, cos t)``,
``theta_hat = (cos t cos p, cos t sin p, -sin t)``, ``phi_hat = (-sin p, cos p, 0)`` and the path length
``L_n = c tau'_n`` (``tau'_n`` = absolute delay of cluster n):

* delay (eq. 7.6-9): ``L_n <- L_n - r_rx,n^T dp`` (``r_rx,n`` = the cluster's mean arrival direction);
* arrival angles (UE side; the scatterer is fixed and the UE moves):
  ``phi_AOA <- phi_AOA - (dp^T phi_hat_AOA) / (L_n sin theta_ZOA)``,
  ``theta_ZOA <- theta_ZOA - (dp^T theta_hat_ZOA) / L_n``;
* departure angles (gNB side, single-bounce image of the UE, eq. 7.6-10/11): the displacement mirrored at the
  scatterer ``dp' = R_AOD diag(-1, 1, 1) R_AOA^T dp`` with ``R = [r, theta_hat, phi_hat]``, so
  ``phi_AOD <- phi_AOD + (dp^T phi_hat_AOA) / (L_n sin theta_ZOD)``,
  ``theta_ZOD <- theta_ZOD + (dp^T theta_hat_ZOA) / L_n``;
* ray phase: ``Phi_n,m <- Phi_n,m + 2 pi / lambda * r_rx,n,m^T dp`` (the Doppler term of eq. 7.5-22 integrated
  over the path, trapezoidal rule in the arrival direction; small-scale fading decorrelates within about a
  wavelength).

The LOS ray is not evolved here: its angles, distance and phase follow the exact geometry at every position.

Shapes: ``n`` trajectories, ``T`` steps, ``C`` clusters, ``R`` rays per cluster; angles in radians.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

SPEED_OF_LIGHT = 299_792_458.0
_MIN_SIN = 0.05  # keeps the azimuth update finite for rays close to the zenith axis (none occur in UMa/UMi)


def frame(theta: torch.Tensor, phi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Unit vectors ``(r, theta_hat, phi_hat)`` of directions (zenith ``theta``, azimuth ``phi``), each [..., 3]."""
    st, ct, sp, cp = torch.sin(theta), torch.cos(theta), torch.sin(phi), torch.cos(phi)
    r = torch.stack([st * cp, st * sp, ct], -1)
    th = torch.stack([ct * cp, ct * sp, -st], -1)
    ph = torch.stack([-sp, cp, torch.zeros_like(sp)], -1)
    return r, th, ph


@dataclass
class EvolvedRays:
    """Ray angles [n, T, C, R] (rad) and the accumulated Doppler phase [n, T, C, R] (rad) along a track."""

    aoa: torch.Tensor
    aod: torch.Tensor
    zoa: torch.Tensor
    zod: torch.Tensor
    phase: torch.Tensor


def procedure_a(aoa: torch.Tensor, aod: torch.Tensor, zoa: torch.Tensor, zod: torch.Tensor,
                path_len_m: torch.Tensor, pos: torch.Tensor, wavelength_m: float) -> EvolvedRays:
    """Evolve the rays of ``n`` drops along their tracks (module docstring).

    :param aoa, aod, zoa, zod: ray angles at t0, rad, [n, C, R] (GCS)
    :param path_len_m: path length of every cluster at t0, ``c tau'_n`` = ``c tau_n + d_3D``, m, [n, C]
    :param pos: UE positions [n, T, 3], m (``pos[:, 0]`` is the t0 position)
    """
    n, t_steps = pos.shape[:2]
    f64 = torch.float64
    a, d, za, zd = (x.to(f64) for x in (aoa, aod, zoa, zod))
    length = path_len_m.to(f64).clamp_min(1.0)
    k = 2.0 * math.pi / wavelength_m
    phase = torch.zeros_like(a)
    out = {name: [v] for name, v in (("aoa", a), ("aod", d), ("zoa", za), ("zod", zd), ("phase", phase))}
    for t in range(1, t_steps):
        dp = (pos[:, t] - pos[:, t - 1]).to(f64)[:, None, None, :]  # [n, 1, 1, 3]
        r_a, th_a, ph_a = frame(za, a)
        dr = (r_a * dp).sum(-1)  # [n, C, R] component towards the scatterer
        dth = (th_a * dp).sum(-1)
        dph = (ph_a * dp).sum(-1)
        lc = length[..., None]
        a = a - dph / (lc * torch.sin(za).clamp_min(_MIN_SIN))
        za = (za - dth / lc).clamp(1e-3, math.pi - 1e-3)
        # trapezoidal rule for the phase: at 1 cm wavelength a first-order (start-direction) sum drifts by
        # whole cycles over metres of travel
        phase = phase + k * 0.5 * (dr + (frame(za, a)[0] * dp).sum(-1))
        d = d + dph / (lc * torch.sin(zd).clamp_min(_MIN_SIN))
        zd = (zd + dth / lc).clamp(1e-3, math.pi - 1e-3)
        length = (length - dr.mean(dim=-1)).clamp_min(1.0)
        for name, v in (("aoa", a), ("aod", d), ("zoa", za), ("zod", zd), ("phase", phase)):
            out[name].append(v)
    dtype = aoa.dtype
    st = {name: torch.stack(v, dim=1) for name, v in out.items()}  # [n, T, C, R]
    st["phase"] = torch.remainder(st["phase"], 2.0 * math.pi)
    return EvolvedRays(**{name: v.to(dtype) for name, v in st.items()})


def cluster_angle_deg(angle: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Circular mean over the rays (last dim) of each cluster, degrees, [..., C] (for blockage model A)."""
    z = torch.polar(torch.ones_like(angle), angle)
    if weight is not None:
        z = z * weight
    return torch.rad2deg(torch.angle(z.sum(dim=-1)))

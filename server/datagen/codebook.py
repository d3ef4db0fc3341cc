"""DFT beam codebooks for the gNB panel (Set A) and the UE panels (Rx beams).

Steering convention (TR 38.901 eq. 7.5-22): the response of element n at position ``d_n`` (metres, array local
coordinates, boresight = +x) to a plane wave from direction r(theta, phi) = (sin theta cos phi, sin theta sin phi,
cos theta) is ``exp(j 2 pi / lambda * r . d_n)``. A beam steered to (theta, phi) is the unit-norm matched filter
``w_n = exp(j 2 pi / lambda * r . d_n) / sqrt(N)``; the received signal of a path with coefficient matrix
``H [n_rx_ant, n_tx_ant]`` is ``w_rx^H H conj(w_tx)`` (:mod:`.rsrp`), which gives gain N at the steered direction.

Set A (TR 38.843 evaluation assumption, generator recommendation in docs): ``n_az`` azimuths with
``sin(phi_k) = s_max (2k - (n_az - 1)) / (n_az - 1)`` times the zenith rows ``zenith_deg``; beam index
``k = k_zen * n_az + k_az`` (zenith-major, as in :mod:`edge_sdk.beam.dataset`).
"""

from __future__ import annotations

import math

import torch


def sin_uniform_azimuths(n: int, sin_max: float) -> torch.Tensor:
    """Azimuths (rad, float64 [n]) with ``sin(phi_k) = sin_max (2k - (n-1)) / (n-1)`` (``[0.]`` for n == 1)."""
    if n == 1:
        return torch.zeros(1, dtype=torch.float64)
    k = torch.arange(n, dtype=torch.float64)
    return torch.asin(sin_max * (2 * k - (n - 1)) / (n - 1))


def beam_directions(az_rad: torch.Tensor, zen_rad: torch.Tensor) -> torch.Tensor:
    """Unit direction vectors, float64 [n_zen * n_az, 3], zenith-major (index = k_zen * n_az + k_az)."""
    zz, aa = torch.meshgrid(zen_rad.to(torch.float64), az_rad.to(torch.float64), indexing="ij")
    r = torch.stack([torch.sin(zz) * torch.cos(aa), torch.sin(zz) * torch.sin(aa), torch.cos(zz)], dim=-1)
    return r.reshape(-1, 3)


def steering_weights(ant_pos_m: torch.Tensor, directions: torch.Tensor, wavelength_m: float) -> torch.Tensor:
    """Unit-norm DFT beam weights, complex128 [n_beams, n_ant].

    :param ant_pos_m: element positions in the array's local frame, metres, [n_ant, 3]
    :param directions: unit steering directions in the same frame, [n_beams, 3]
    """
    pos = ant_pos_m.to(torch.float64)
    phase = 2.0 * math.pi / wavelength_m * (directions.to(torch.float64) @ pos.T)  # [n_beams, n_ant]
    n_ant = pos.shape[0]
    return torch.polar(torch.full_like(phase, 1.0 / math.sqrt(n_ant)), phase)


def gnb_codebook(ant_pos_m: torch.Tensor, n_az: int, sin_az_max: float, zenith_deg: tuple[float, ...],
                 wavelength_m: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Set A weights complex128 [n_zen * n_az, n_ant] and directions float64 [n_tx, 3] (panel frame)."""
    az = sin_uniform_azimuths(n_az, sin_az_max)
    zen = torch.deg2rad(torch.tensor(zenith_deg, dtype=torch.float64))
    d = beam_directions(az, zen)
    return steering_weights(ant_pos_m, d, wavelength_m), d


def ue_codebook(ant_pos_m: torch.Tensor, n_beams: int, sin_az_max: float, zenith_deg: float,
                wavelength_m: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-panel Rx weights complex128 [n_beams, n_ant] and directions float64 [n_beams, 3] (panel frame)."""
    az = sin_uniform_azimuths(n_beams, sin_az_max)
    zen = torch.deg2rad(torch.tensor([zenith_deg], dtype=torch.float64))
    d = beam_directions(az, zen)
    return steering_weights(ant_pos_m, d, wavelength_m), d

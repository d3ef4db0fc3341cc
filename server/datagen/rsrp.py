"""Wideband L1-RSRP of every (Tx beam, Rx beam) pair from per-path channel coefficients.

RSRP_{t,r} [dBm] = P_RE [dBm] + 10 log10( sum_p | w_r^H H_p conj(w_t) |^2 )  (+ optional noise per RE)

with ``H_p`` the n_ue_ant x n_bs_ant coefficient matrix of path (cluster / sub-cluster) p, ``w_t`` the Set A
weights and ``w_r`` the Rx weights of the panel that beam r belongs to (:mod:`.codebook`). Summing path powers is
the wideband average over the 80 MHz band when the paths are resolvable (delay differences >> 1/80 MHz =
12.5 ns): the cross terms between paths average out over the subcarriers. ``P_RE`` = Tx power per resource
element (40 dBm over 660 subcarriers = 11.8 dBm). All pairs are computed in one batched einsum.
"""

from __future__ import annotations

import math

import torch


def beam_pair_power(h: torch.Tensor, w_tx: torch.Tensor, w_rx: torch.Tensor) -> torch.Tensor:
    """Linear beamformed power gain summed over paths, float32 [B, n_tx, n_panels * n_rx_per_panel].

    :param h: complex [B, n_panels, n_ue_ant, n_bs_ant, P]
    :param w_tx: complex [n_tx, n_bs_ant] (unit norm rows)
    :param w_rx: complex [n_rx_per_panel, n_ue_ant] (unit norm rows, the same codebook on every panel)
    Rx beam index = panel * n_rx_per_panel + beam.
    """
    h = h.to(torch.complex64)
    wt = w_tx.to(h.device, torch.complex64).conj()
    wr = w_rx.to(h.device, torch.complex64).conj()
    y = torch.einsum("kpnmq,tm,rn->kqtpr", h, wt, wr)  # [B, P, n_tx, n_panels, n_rx_per_panel]
    g = (y.real.square() + y.imag.square()).sum(dim=1)  # [B, n_tx, n_panels, n_rx]
    return g.reshape(g.shape[0], g.shape[1], -1)


def rsrp_dbm(power: torch.Tensor, re_power_dbm: float, noise_dbm: float | None = None) -> torch.Tensor:
    """Beam-pair power gains [B, n_tx, n_rx] -> L1-RSRP, dBm (float32).

    ``noise_dbm`` (noise per RE, dBm) is added as power when given (``include_noise = true``); else the ideal
    signal-only L1-RSRP is returned. Gains are floored at 1e-30 (-300 dB) so that log10 stays finite.
    """
    lin = power.to(torch.float64) * 10.0 ** (re_power_dbm / 10.0)
    if noise_dbm is not None:
        lin = lin + 10.0 ** (noise_dbm / 10.0)
    return (10.0 * torch.log10(lin.clamp_min(1e-30))).to(torch.float32)


def db(x: float) -> float:
    """10 log10(x)."""
    return 10.0 * math.log10(x)

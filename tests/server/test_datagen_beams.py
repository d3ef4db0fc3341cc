"""Beam codebooks (unit norm, DFT directions, ordering) and the batched RSRP computation."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edge_sdk.server.datagen import codebook as cb  # noqa: E402
from edge_sdk.server.datagen.rsrp import beam_pair_power, rsrp_dbm  # noqa: E402

LAM = 299_792_458.0 / 30e9


def _upa(rows: int, cols: int) -> torch.Tensor:
    """Element positions like Sionna's PanelArray: y = columns, z = rows, spacing lambda/2."""
    y = (torch.arange(cols) - (cols - 1) / 2) * LAM / 2
    z = ((rows - 1) / 2 - torch.arange(rows)) * LAM / 2
    yy, zz = torch.meshgrid(y, z, indexing="ij")
    return torch.stack([torch.zeros_like(yy), yy, zz], -1).reshape(-1, 3)


def test_set_a_azimuths_and_ordering() -> None:
    az = cb.sin_uniform_azimuths(8, math.sin(math.radians(60)))
    want = np.degrees(np.arcsin(np.sin(np.radians(60)) * (2 * np.arange(8) - 7) / 7))
    np.testing.assert_allclose(np.degrees(az.numpy()), want, atol=1e-9)
    np.testing.assert_allclose(np.degrees(az.numpy())[[0, 1, 2, 3]], [-60, -38.21, -21.79, -7.11], atol=0.01)
    w, d = cb.gnb_codebook(_upa(4, 8), 8, math.sin(math.radians(60)), (96.0, 104.0, 112.0, 120.0), LAM)
    assert w.shape == (32, 32) and d.shape == (32, 3)
    # zenith-major: beam k = k_zen * 8 + k_az
    zen = np.degrees(np.arccos(d[:, 2].numpy()))
    np.testing.assert_allclose(zen.reshape(4, 8), np.repeat([[96.0], [104.0], [112.0], [120.0]], 8, 1), atol=1e-9)
    azr = np.degrees(np.arctan2(d[:, 1].numpy(), d[:, 0].numpy())).reshape(4, 8)
    np.testing.assert_allclose(azr, np.tile(want, (4, 1)), atol=1e-9)


def test_weights_unit_norm_and_peak_in_steered_direction() -> None:
    pos = _upa(4, 8)
    w, d = cb.gnb_codebook(pos, 8, math.sin(math.radians(60)), (96.0, 104.0, 112.0, 120.0), LAM)
    np.testing.assert_allclose(torch.linalg.vector_norm(w, dim=1).numpy(), 1.0, atol=1e-12)
    # response of a plane wave from beam k's direction (TR 38.901 eq. 7.5-22 convention): a_n = exp(j k r.d_n)
    a = torch.exp(1j * 2 * math.pi / LAM * (d @ pos.double().T))  # [32 dirs, 32 ant]
    gain = (a @ w.conj().T).abs() ** 2  # [dir, beam] = |a^T conj(w)|^2, the Tx gain used in rsrp.py
    np.testing.assert_allclose(torch.diagonal(gain).numpy(), 32.0, rtol=1e-9)  # full array gain N
    assert torch.equal(gain.argmax(dim=1), torch.arange(32))
    # UE: 4 orthogonal DFT beams at sin(phi) = {-0.75, -0.25, 0.25, 0.75}
    wr, dr = cb.ue_codebook(_upa(1, 4), 4, 0.75, 90.0, LAM)
    np.testing.assert_allclose(dr[:, 1].numpy(), [-0.75, -0.25, 0.25, 0.75], atol=1e-12)
    np.testing.assert_allclose((wr @ wr.conj().T).numpy(), np.eye(4), atol=1e-7)  # float32 element positions


def test_beam_pair_power_matches_loop() -> None:
    g = torch.Generator().manual_seed(0)
    b, panels, n_ue, n_bs, n_p = 3, 2, 4, 32, 5
    h = torch.complex(torch.randn(b, panels, n_ue, n_bs, n_p, generator=g),
                      torch.randn(b, panels, n_ue, n_bs, n_p, generator=g))
    wt, _ = cb.gnb_codebook(_upa(4, 8), 8, 0.866, (96.0, 104.0, 112.0, 120.0), LAM)
    wr, _ = cb.ue_codebook(_upa(1, 4), 4, 0.75, 90.0, LAM)
    got = beam_pair_power(h, wt, wr)
    assert got.shape == (b, 32, 8)
    hd = h.to(torch.complex128)
    for i in range(b):
        for t in range(32):
            for pnl in range(panels):
                for r in range(4):
                    y = torch.stack([wr[r].conj() @ hd[i, pnl, :, :, p] @ wt[t].conj() for p in range(n_p)])
                    want = float((y.abs() ** 2).sum())
                    assert abs(float(got[i, t, pnl * 4 + r]) - want) <= 1e-4 * want


def test_rsrp_link_budget_and_noise() -> None:
    p = torch.tensor([[[1e-10]]])  # -100 dB beamformed gain
    np.testing.assert_allclose(rsrp_dbm(p, 11.8).numpy(), -88.2, atol=1e-4)
    with_noise = rsrp_dbm(p, 11.8, noise_dbm=-88.2).numpy()
    np.testing.assert_allclose(with_noise, -88.2 + 10 * math.log10(2), atol=1e-4)
    assert np.isfinite(rsrp_dbm(torch.zeros(1, 1, 1), 11.8).numpy()).all()

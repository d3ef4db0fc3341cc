"""The TR 38.901 numbers the generator relies on, checked against the formulas (Sionna computes them).

UMa (TR 38.901 Table 7.4.1-1 / 7.4.2-1, h_UT = 1.5 m so C'(h_UT) = 0 and h_E = 1 m, d_2D << d'_BP):
  P_LOS = 1 (d <= 18 m), 18/d + exp(-d/63)(1 - 18/d) otherwise
  PL_LOS = 28.0 + 22 log10(d_3D) + 20 log10(f_c/GHz)
  PL_NLOS = max(PL_LOS, 13.54 + 39.08 log10(d_3D) + 20 log10(f_c/GHz) - 0.6 (h_UT - 1.5))
  SF std 4 dB (LOS) / 6 dB (NLOS)
UMi street canyon: P_LOS = 18/d + exp(-d/36)(1 - 18/d); PL_LOS = 32.4 + 21 log10(d_3D) + 20 log10(f_c);
  PL_NLOS = max(PL_LOS, 22.4 + 35.3 log10(d_3D) + 21.3 log10(f_c) - 0.3 (h_UT - 1.5)).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edge_sdk.server.datagen.channel import BeamChannel, Drops  # noqa: E402
from edge_sdk.server.datagen.presets import load_preset  # noqa: E402

FC_GHZ = 30.0


def _plos(model: str, d: np.ndarray) -> np.ndarray:
    k = 63.0 if model == "uma" else 36.0
    return np.where(d <= 18.0, 1.0, 18.0 / d + np.exp(-d / k) * (1 - 18.0 / d))


def _pl(model: str, d3: np.ndarray, los: bool) -> np.ndarray:
    if model == "uma":
        pl_los = 28.0 + 22 * np.log10(d3) + 20 * math.log10(FC_GHZ)
        pl_nlos = 13.54 + 39.08 * np.log10(d3) + 20 * math.log10(FC_GHZ)
    else:
        pl_los = 32.4 + 21 * np.log10(d3) + 20 * math.log10(FC_GHZ)
        pl_nlos = 22.4 + 35.3 * np.log10(d3) + 21.3 * math.log10(FC_GHZ)
    return pl_los if los else np.maximum(pl_los, pl_nlos)


def _outdoor_line(bc: BeamChannel, d2: np.ndarray) -> Drops:
    """Outdoor UEs on the sector boresight (60 deg) at 2D distances d2."""
    n = len(d2)
    az = math.pi / 3
    h = bc.preset.scenario.ut_height_m
    loc = torch.tensor(np.stack([d2 * math.cos(az), d2 * math.sin(az), np.full(n, h)], -1), dtype=torch.float32)
    return Drops(ut_loc=loc, indoor=torch.zeros(n, dtype=torch.bool), yaw=torch.zeros(n),
                 velocity=torch.zeros(n, 3))


@pytest.fixture(scope="module", params=["uma-fr2-case1", "umi-fr2-case1"])
def chan(request):
    import sionna.phy

    sionna.phy.config.seed = 5
    return BeamChannel(load_preset(request.param))


def test_los_probability_formula_and_empirical_share(chan: BeamChannel) -> None:
    model = chan.preset.scenario.model
    d2 = np.repeat(np.array([20.0, 40.0, 60.0, 90.0, 120.0]), 1500)
    chan._set(chan.channel, _outdoor_line(chan, d2))
    sc = chan.channel._scenario
    p = sc.los_probability.reshape(-1).cpu().numpy()
    np.testing.assert_allclose(p, _plos(model, d2), rtol=1e-4, atol=1e-6)
    los = sc.los[:, 0, 0].cpu().numpy().reshape(5, 1500).mean(axis=1)
    want = _plos(model, d2.reshape(5, 1500)[:, 0])
    # binomial std at n = 1500 is <= 0.013; 4.6 sigma
    assert np.all(np.abs(los - want) < 0.06), (los, want)


@pytest.mark.parametrize("los", [True, False])
def test_path_loss_and_shadow_fading(chan: BeamChannel, los: bool) -> None:
    model = chan.preset.scenario.model
    d2 = np.repeat(np.array([30.0, 60.0, 100.0]), 1000)
    drops = _outdoor_line(chan, d2)
    chan._set(chan.channel, drops, los=torch.full((len(d2),), los))
    sc = chan.channel._scenario
    d3 = sc.distance_3d[:, 0, 0].cpu().numpy()
    np.testing.assert_allclose(d3, np.hypot(d2, chan.preset.scenario.bs_height_m - 1.5), rtol=1e-5)
    pl = chan.channel._lsp.pathloss[:, 0, 0].cpu().numpy()
    np.testing.assert_allclose(pl, _pl(model, d3, los), atol=0.02)  # outdoor: no O2I term
    sf_db = 10 * np.log10(chan.channel._lsp.sf[:, 0, 0].cpu().numpy())
    want = 4.0 if los else (6.0 if model == "uma" else 7.82)  # Table 7.5-6 sigma_SF
    assert abs(sf_db.mean()) < 0.4
    assert abs(sf_db.std() - want) < 0.45, (sf_db.std(), want)


def test_o2i_low_loss_mean(chan: BeamChannel) -> None:
    """Indoor UEs: PL = PL_b + PL_tw + 0.5 d_2D-in (+ N(0, 4.4 dB)); low-loss PL_tw at 30 GHz from
    TR 38.901 Table 7.4.3-1/2: 5 - 10 log10(0.3*10^(-(2+0.2 fc)/10) + 0.7*10^(-(5+4 fc)/10))."""
    d2 = np.full(3000, 80.0)
    drops = _outdoor_line(chan, d2)
    drops.indoor[:] = True
    chan._set(chan.channel, drops)
    sc = chan.channel._scenario
    o2i = (chan.channel._lsp.pathloss - sc.basic_pathloss)[:, 0, 0].cpu().numpy()
    fc = FC_GHZ
    pl_tw = 5 - 10 * math.log10(0.3 * 10 ** (-(2 + 0.2 * fc) / 10) + 0.7 * 10 ** (-(5 + 4 * fc) / 10))
    # d_2D-in = min of two U(0, 25) (UMa) / U(0, 25) (UMi) -> mean 25/3 m; PL_in = 0.5 d_2D-in
    d_in_mean = 25.0 / 3.0
    assert abs(o2i.mean() - (pl_tw + 0.5 * d_in_mean)) < 1.0, (o2i.mean(), pl_tw)

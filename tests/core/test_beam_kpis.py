"""KPIs (TR 38.843 definitions) against hand-computed cases, and the non-AI baselines."""

from __future__ import annotations

import numpy as np
import pytest

from edge_sdk.beam.kpis import (
    KPI_KEYS,
    beam_kpis,
    best_of_setb_scores,
    history_average_scores,
    rs_overhead_reduction,
    sample_and_hold_scores,
    sample_and_hold_setb_scores,
    topk_predictions,
)
from edge_sdk.beam.synthetic import make_synthetic_beam_dataset
from edge_sdk.beam.taskspec import BeamTaskSpec
from edge_sdk.errors import ConfigError

R = np.array([[-80, -81, -85, -90], [-70, -75, -71, -72], [-90, -60, -95, -99]], dtype=np.float32)
S = np.array([[0.1, 0.9, 0.0, 0.0], [0, 1, 2, 3], [0, 5, 0, 0]], dtype=np.float32)


def test_hand_case():
    k = beam_kpis(S, R)
    # sample 0: genie 0, ranking [1, 0, ...] -> top2 hit, diff 1 dB (within margin)
    # sample 1: genie 0, ranking [3, 2, 1, 0] -> only top4 hit, diff 2 dB
    # sample 2: genie 1, ranking [1, ...] -> top1 hit, diff 0 dB
    assert k["top1"] == pytest.approx(1 / 3)
    assert k["top2"] == pytest.approx(2 / 3)
    assert k["top3"] == pytest.approx(2 / 3)
    assert k["top4"] == pytest.approx(1.0)
    assert k["top1_1db"] == pytest.approx(2 / 3)
    assert k["rsrp_diff_mean"] == pytest.approx(1.0)
    assert k["rsrp_diff_p50"] == pytest.approx(1.0)
    assert k["rsrp_diff_p90"] == pytest.approx(1.8)
    assert k["rsrp_diff_p95"] == pytest.approx(1.9)
    assert k["n"] == 3
    assert set(KPI_KEYS) <= set(k)


def test_margin_and_ties():
    r = np.array([[-80.0, -80.0, -81.5]])
    # equal scores: the lowest index wins; genie (ties) is also the lowest index
    assert beam_kpis(np.zeros((1, 3)), r)["top1"] == 1.0
    k = beam_kpis(np.array([[0.0, 0.0, 1.0]]), r)
    assert k["top1"] == 0.0 and k["top1_1db"] == 0.0 and k["rsrp_diff_mean"] == pytest.approx(1.5)
    assert beam_kpis(np.array([[0.0, 0.0, 1.0]]), r, margin_db=1.5)["top1_1db"] == 1.0
    assert topk_predictions(np.array([[1.0, 3.0, 3.0, -np.inf]]), 4).tolist() == [[1, 2, 0, 3]]


def test_perfect_and_onehot_scores():
    rng = np.random.default_rng(0)
    r = rng.normal(-90, 10, (50, 32))
    k = beam_kpis(r, r)
    assert k["top1"] == 1.0 and k["rsrp_diff_p95"] == 0.0
    onehot = np.eye(32)[r.argmax(1)]
    assert beam_kpis(onehot, r)["top1"] == 1.0


def test_bad_inputs():
    with pytest.raises(ConfigError, match="NaN"):
        beam_kpis(np.full((2, 4), np.nan), R[:2])
    with pytest.raises(ConfigError, match=r"\[N, n_tx\]"):
        beam_kpis(S[:, :3], R)
    with pytest.raises(ConfigError):
        beam_kpis(np.zeros((0, 4)), np.zeros((0, 4)))
    with pytest.raises(ConfigError, match="finite"):
        beam_kpis(S, np.where(R > -75, np.inf, R))


def test_overhead():
    assert rs_overhead_reduction(8, 32) == pytest.approx(0.75)
    assert rs_overhead_reduction(4, 32) == pytest.approx(0.875)
    assert rs_overhead_reduction(8, 32, mt=4, pt=4) == pytest.approx(1 - 8 * 4 / (32 * 8))
    assert BeamTaskSpec(setb="1/8", n_tx=64).rs_overhead_reduction() == pytest.approx(0.875)
    sp = BeamTaskSpec(case="case2", setb="1/4", history=4, horizon=2)
    assert sp.rs_overhead_reduction() == pytest.approx(1 - 8 * 4 / (32 * 6))


def test_best_of_setb_baseline():
    ds = make_synthetic_beam_dataset(600, seed=4)
    sp = BeamTaskSpec(setb="1/4")
    sc = best_of_setb_scores(sp, ds)
    assert sc.shape == (600, 32) and np.isneginf(sc[:, np.setdiff1d(np.arange(32), sp.resolved_setb())]).all()
    k = beam_kpis(sc, sp.target_rsrp(ds))
    # with ideal best-Rx measurements the baseline is right exactly when the genie beam is in Set B
    assert k["top1"] == pytest.approx(np.isin(ds.label, sp.resolved_setb()).mean())
    with pytest.raises(ConfigError, match="wide"):
        best_of_setb_scores(BeamTaskSpec(setb="wide"), ds)


def test_sample_and_hold_baseline():
    ds = make_synthetic_beam_dataset(200, seed=4, case="case2", steps=10)
    sp = BeamTaskSpec(case="case2", setb="1/4", history=2, horizon=1)
    sc = sample_and_hold_scores(sp, ds)
    rows = sp.anchors(ds)
    assert np.array_equal(sc, ds.best_rx_rsrp()[rows])
    # F = 0 steps ahead would be perfect; holding one step must not beat the genie
    k = beam_kpis(sc, sp.target_rsrp(ds))
    assert 0.0 < k["top1"] <= 1.0
    with pytest.raises(ConfigError, match="Case2"):
        sample_and_hold_scores(BeamTaskSpec(), ds)


def test_case2_setb_hold_and_history_average_baselines():
    ds = make_synthetic_beam_dataset(300, seed=5, case="case2", steps=15)
    sp = BeamTaskSpec(case="case2", setb="1/4", history=3, horizon=1, period_steps=2)
    rows, win, tgt = sp._case2_rows(ds)
    # S&H of the best measured Set B beam = best-of-Set-B on the latest measurement of the window
    sb = sample_and_hold_setb_scores(sp, ds)
    np.testing.assert_array_equal(sb, best_of_setb_scores(sp, ds))
    np.testing.assert_array_equal(sb[:, sp.resolved_setb()], sp.measurements(ds)[win[:, -1]])
    # history average: dB of the mean linear power over the K instants
    a = history_average_scores(sp, ds, seta=True)
    best = ds.best_rx_rsrp().astype(np.float64)
    want = 10 * np.log10(np.mean(10 ** (best[win] / 10), axis=1))
    np.testing.assert_allclose(a, want, rtol=1e-5)
    b = history_average_scores(sp, ds, seta=False)
    assert np.isneginf(np.delete(b, sp.resolved_setb(), axis=1)).all()
    np.testing.assert_allclose(b[:, sp.resolved_setb()], want[:, sp.resolved_setb()], rtol=1e-5)  # best Rx
    k1 = BeamTaskSpec(case="case2", setb="all", history=1, horizon=1)
    np.testing.assert_allclose(history_average_scores(k1, ds, seta=True), sample_and_hold_scores(k1, ds), rtol=1e-5)
    for f in (sample_and_hold_setb_scores, lambda s, d: history_average_scores(s, d, seta=True)):
        with pytest.raises(ConfigError, match="Case2"):
            f(BeamTaskSpec(), ds)

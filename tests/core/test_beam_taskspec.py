"""BeamTaskSpec: fixed Set B patterns, storage, determinism, device-measurement equivalence, Case2 windows."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge_sdk.beam.synthetic import make_synthetic_beam_dataset
from edge_sdk.beam.taskspec import BeamTaskSpec, setb_pattern, wide_blocks
from edge_sdk.errors import ConfigError, DatasetError


@pytest.fixture(scope="module")
def ds1():
    return make_synthetic_beam_dataset(400, n_tx=32, n_rx=8, seed=11)


@pytest.fixture(scope="module")
def ds2():
    return make_synthetic_beam_dataset(300, n_tx=32, n_rx=8, seed=12, case="case2", steps=15)


def test_fixed_patterns_documented_values():
    assert setb_pattern(32, "1/4").tolist() == [0, 4, 10, 14, 17, 21, 27, 31]
    assert setb_pattern(32, "1/8").tolist() == [0, 12, 18, 30]
    assert setb_pattern(64, "1/4").size == 16 and setb_pattern(64, "1/8").size == 8
    for n_tx in (32, 64):
        n_az = n_tx // 4
        for kind, per_az in (("1/4", 1), ("1/8", None)):
            idx = setb_pattern(n_tx, kind)
            az, zen = idx % n_az, idx // n_az
            assert np.bincount(zen, minlength=4).tolist() == [idx.size // 4] * 4  # every zenith row equally
            if per_az:
                assert sorted(az.tolist()) == list(range(n_az))  # every azimuth column once
            else:
                assert sorted(az.tolist()) == list(range(0, n_az, 2))  # every other column once
    blocks = wide_blocks(32)
    assert blocks.shape == (8, 4) and sorted(blocks.ravel().tolist()) == list(range(32))
    assert blocks[0].tolist() == [0, 1, 8, 9]


def test_dict_round_trip_and_errors(ds1):
    sp = BeamTaskSpec(setb="1/8", rx_mode="random", rx_seed=5, norm="affine").fit(ds1)
    d = json.loads(json.dumps(sp.to_dict()))
    assert BeamTaskSpec.from_dict(d) == sp
    ex = BeamTaskSpec(setb="explicit", setb_indices=(3, 1, 7))
    assert BeamTaskSpec.from_dict(ex.to_dict()) == ex and ex.resolved_setb().tolist() == [3, 1, 7]
    with pytest.raises(ConfigError, match="unknown"):
        BeamTaskSpec.from_dict({**d, "bogus": 1})
    with pytest.raises(ConfigError, match="upgrade"):
        BeamTaskSpec.from_dict({**d, "spec_version": 99})
    with pytest.raises(ConfigError, match="resolved_setb"):
        BeamTaskSpec.from_dict({**d, "resolved_setb": [1, 2, 3, 4]})
    for kw in (
        {"n_tx": 48}, {"setb": "1/3"}, {"setb": "explicit"}, {"setb": "explicit", "setb_indices": (1, 1)},
        {"setb_indices": (1,)}, {"rx_mode": "worst"}, {"norm": "z"}, {"scale_db": 0.0}, {"history": 2},
        {"case": "case2", "horizon": 0}, {"rsrp_quant_db": -1.0},
    ):  # fmt: skip
        with pytest.raises(ConfigError):
            BeamTaskSpec(**kw)


@pytest.mark.parametrize("setb", ["1/4", "1/8", "all", "wide"])
@pytest.mark.parametrize("norm", ["per_sample_max", "rel_linear", "affine", "none"])
def test_device_equivalence_best_rx(ds1, setb, norm):
    sp = BeamTaskSpec(setb=setb, norm=norm).fit(ds1)
    x = sp.inputs(ds1)
    assert x.shape == (ds1.n, sp.input_dim) and x.dtype == np.float32
    best = ds1.rsrp.astype(np.float64).max(axis=2)  # [N, n_tx]
    if setb == "wide":
        lin = 10 ** (ds1.rsrp.astype(np.float64) / 10)
        meas = np.stack(
            [10 * np.log10(lin[:, b, :].mean(axis=1)).max(axis=1) for b in wide_blocks(32)], axis=1
        )
    else:
        meas = best[:, sp.resolved_setb()]
    np.testing.assert_allclose(sp.inputs_from_measurements(meas), x, rtol=1e-6, atol=1e-5)
    np.testing.assert_array_equal(sp.inputs(ds1), x)  # deterministic
    assert sp.labels(ds1).dtype == np.int64 and np.array_equal(sp.labels(ds1), ds1.label)
    assert sp.num_classes == 32


def test_rx_modes(ds1):
    fixed = BeamTaskSpec(rx_mode="fixed", rx_index=3, norm="none")
    np.testing.assert_array_equal(fixed.inputs(ds1), ds1.rsrp[:, fixed.resolved_setb(), 3].astype(np.float32))
    r1 = BeamTaskSpec(rx_mode="random", rx_seed=1, norm="none")
    pick = np.random.Generator(np.random.PCG64(1)).integers(0, 8, ds1.n)
    want = ds1.rsrp[np.arange(ds1.n), :, pick][:, r1.resolved_setb()].astype(np.float32)
    np.testing.assert_array_equal(r1.inputs(ds1), want)
    assert not np.array_equal(
        r1.inputs(ds1), BeamTaskSpec(rx_mode="random", rx_seed=2, norm="none").inputs(ds1)
    )
    assert (BeamTaskSpec(norm="none").inputs(ds1) >= r1.inputs(ds1)).all()  # best Rx dominates
    with pytest.raises(DatasetError, match="rx_index"):
        BeamTaskSpec(rx_mode="fixed", rx_index=8).inputs(ds1)
    with pytest.raises(DatasetError, match="Tx beams"):
        BeamTaskSpec(n_tx=64).inputs(ds1)


def test_normalisations(ds1):
    m = ds1.rsrp.astype(np.float64).max(axis=2)[:, setb_pattern(32, "1/4")]
    sp = BeamTaskSpec()
    assert sp.scale_db == 10.0 and sp.offset_db == 0.0
    x = sp.inputs_from_measurements(m)
    assert np.allclose(x.max(axis=1), 0.0) and (x <= 0).all()
    np.testing.assert_allclose(sp.inputs_from_measurements(m + 7.3), x, atol=1e-5)  # offset invariant
    aff = BeamTaskSpec(norm="affine")
    assert (aff.offset_db, aff.scale_db) == (-100.0, 20.0)
    xa = aff.fit(ds1).inputs(ds1)
    assert abs(float(xa.mean())) < 1e-3 and abs(float(xa.std()) - 1.0) < 1e-3
    q = BeamTaskSpec(norm="none", rsrp_quant_db=1.0)
    xq = q.inputs_from_measurements(np.array([[-150.0, -99.6, -30.0, -80.2, -60.5, -70.0, -71.4, -44.0]]))
    assert xq.tolist() == [[-140.0, -100.0, -44.0, -80.0, -60.0, -70.0, -71.0, -44.0]]
    lin = BeamTaskSpec(norm="rel_linear").fit(ds1)  # nothing to fit
    xl = lin.inputs_from_measurements(m)
    np.testing.assert_allclose(xl, np.power(10.0, (m - m.max(axis=1, keepdims=True)) / 10.0), rtol=1e-6)
    assert np.allclose(xl.max(axis=1), 1.0) and (xl > 0).all()
    np.testing.assert_allclose(lin.inputs_from_measurements(m - 12.0), xl, rtol=1e-5)  # offset invariant
    assert BeamTaskSpec.from_dict(lin.to_dict()) == lin
    with pytest.raises(ConfigError, match="shape"):
        sp.inputs_from_measurements(m[:, :7])
    with pytest.raises(ConfigError, match="NaN"):
        sp.inputs_from_measurements(np.full((2, 8), np.nan))


def test_case2_windows(ds2):
    sp = BeamTaskSpec(case="case2", setb="1/4", history=3, horizon=2, period_steps=2, norm="none")
    rows = sp.anchors(ds2)
    x, y, r = sp.inputs(ds2), sp.labels(ds2), sp.target_rsrp(ds2)
    assert x.shape == (rows.size, 3 * 8) and y.shape == (rows.size,) and r.shape == (rows.size, 32)
    key = {(int(a), int(b)): i for i, (a, b) in enumerate(zip(ds2.traj_id, ds2.t_index, strict=True))}
    best = ds2.rsrp.astype(np.float32).max(axis=2)[:, sp.resolved_setb()]
    expected_rows = [
        i for i, (a, t) in enumerate(zip(ds2.traj_id, ds2.t_index, strict=True))
        if all((int(a), int(t) + d) in key for d in (-4, -2, 4))
    ]  # fmt: skip
    assert rows.tolist() == expected_rows
    for j, i in enumerate(rows[:40]):
        a, t = int(ds2.traj_id[i]), int(ds2.t_index[i])
        win = [key[(a, t - 4)], key[(a, t - 2)], key[(a, t)]]
        np.testing.assert_array_equal(x[j], best[win].reshape(-1))
        assert y[j] == ds2.label[key[(a, t + 4)]]
    # device: K measurements [N, K, n_b] oldest first give the same inputs
    spn = BeamTaskSpec(case="case2", setb="1/4", history=3, horizon=2, period_steps=2).fit(ds2)
    np.testing.assert_allclose(spn.inputs_from_measurements(x.reshape(-1, 3, 8)), spn.inputs(ds2), atol=1e-5)
    # shuffled row order gives the same examples (as a set)
    perm = np.random.default_rng(0).permutation(ds2.n)
    xs = sp.inputs(ds2.subset(perm))
    assert sorted(map(tuple, xs.tolist())) == sorted(map(tuple, x.tolist()))
    with pytest.raises(DatasetError, match="case2"):
        sp.inputs(make_synthetic_beam_dataset(10, seed=0))


def test_measurement_error(ds1):
    sp = BeamTaskSpec(meas_error_db=2.0, noise_seed=3, norm="none")
    clean = BeamTaskSpec(norm="none").measurements(ds1)
    noisy = sp.measurements(ds1)
    err = (noisy - clean).astype(np.float64)
    assert np.abs(err).max() <= 3 * 2.0 / 1.96 + 1e-5
    assert 0.85 < np.mean(np.abs(err) <= 2.0) < 0.99  # about 95% within +-2 dB
    np.testing.assert_array_equal(sp.inputs(ds1), sp.inputs_from_measurements(noisy))
    np.testing.assert_array_equal(sp.measurements(ds1), noisy)  # seeded
    assert not np.array_equal(BeamTaskSpec(meas_error_db=2.0, noise_seed=4).measurements(ds1), noisy)


@pytest.mark.parametrize("setb", ["1/4", "1/8", "wide"])
def test_64_beams(setb):
    ds = make_synthetic_beam_dataset(120, n_tx=64, n_rx=4, seed=1)
    sp = BeamTaskSpec(n_tx=64, setb=setb).fit(ds)
    assert sp.n_setb == {"1/4": 16, "1/8": 8, "wide": 16}[setb] and sp.num_classes == 64
    x = sp.inputs(ds)
    assert x.shape == (120, sp.n_setb) and np.isfinite(x).all()
    np.testing.assert_array_equal(sp.inputs_from_measurements(sp.measurements(ds)), x)
    assert sp.target_rsrp(ds).shape == (120, 64)

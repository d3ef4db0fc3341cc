"""BM-Case2 protocol (edge_sdk.server.case2): trajectory-wise validation split, early stopping that may keep the
residual start (= sample-and-hold), recipe selection on validation only, 3-seed evaluation."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edge_sdk.beam.kpis import beam_kpis, sample_and_hold_scores, sample_and_hold_setb_scores  # noqa: E402
from edge_sdk.beam.synthetic import make_synthetic_beam_dataset  # noqa: E402
from edge_sdk.beam.taskspec import BeamTaskSpec  # noqa: E402
from edge_sdk.errors import ConfigError, DatasetError  # noqa: E402
from edge_sdk.server import case2 as C  # noqa: E402
from edge_sdk.server.models import init_torch_params  # noqa: E402


@pytest.fixture(scope="module")
def data():
    tr = make_synthetic_beam_dataset(1200, seed=1, case="case2", steps=20)
    te = make_synthetic_beam_dataset(600, seed=2, case="case2", steps=20)
    return tr, te


def test_split_by_trajectory(data) -> None:
    tr, _ = data
    a, b = C.split_by_trajectory(tr, 0.25, seed=3)
    assert not set(np.unique(a.traj_id)) & set(np.unique(b.traj_id))
    assert a.n + b.n == tr.n and len(np.unique(b.traj_id)) == 15
    a2, _ = C.split_by_trajectory(tr, 0.25, seed=3)
    np.testing.assert_array_equal(a.traj_id, a2.traj_id)
    with pytest.raises(ConfigError):
        C.split_by_trajectory(tr, 1.0)
    with pytest.raises(DatasetError):
        C.split_by_trajectory(make_synthetic_beam_dataset(50, seed=1), 0.2)


@pytest.mark.parametrize("setb", ["all", "1/4"])
def test_residual_start_is_sample_and_hold_and_early_stopping_keeps_the_best(data, setb: str) -> None:
    tr_ds, te_ds = data
    tr, val = C.split_by_trajectory(tr_ds, 0.25, seed=0)
    splits = C.Splits(BeamTaskSpec(case="case2", setb=setb, history=3, horizon=1, period_steps=2), tr, val, te_ds)
    cand = C.Candidate("gru", (16,), C.Recipe(lr=3e-3, max_epochs=3, patience=2))
    task = splits.spec(cand.norm)
    mspec = cand.model_spec(task)
    va, te = splits.arrays(cand.norm, "val"), splits.arrays(cand.norm, "test")
    fit = C.train(mspec, splits.arrays(cand.norm, "train"), va, cand.recipe, seed=1)
    hold = sample_and_hold_scores if setb == "all" else sample_and_hold_setb_scores
    sh_val = beam_kpis(hold(task, val), va.rsrp)["top1"]
    assert fit.curve[0] == pytest.approx(sh_val)  # epoch 0: the untrained model holds the latest measurement
    assert fit.val_top1 == max(fit.curve) >= sh_val
    assert fit.val_top1 == pytest.approx(float((C.scores(mspec, fit.params, va.x).argmax(1) == va.y).mean()))
    assert len(fit.curve) <= cand.recipe.max_epochs + 1
    del te


def test_select_on_validation_and_evaluate_three_seeds(data) -> None:
    tr_ds, te_ds = data
    tr, val = C.split_by_trajectory(tr_ds, 0.25, seed=0)
    splits = C.Splits(BeamTaskSpec(case="case2", setb="1/4", history=2, horizon=1), tr, val, te_ds)
    cands = [C.Candidate("mlp", (32,), C.Recipe(lr=lr, max_epochs=2), norm=n)
             for lr in (1e-3, 1e-2) for n in ("per_sample_max", "rel_linear")]
    best, table = C.select(cands, splits)
    assert [r["val_top1"] for r in table] == sorted((r["val_top1"] for r in table), reverse=True)
    assert table[0]["spec"] == best.to_dict()
    res = C.evaluate(best, splits, seeds=(1, 2, 3))
    assert [p["seed"] for p in res["per_seed"]] == [1, 2, 3]
    assert res["mean"]["top1"] == pytest.approx(np.mean([p["top1"] for p in res["per_seed"]]))
    assert res["n_test"] == len(splits.arrays(best.norm, "test").y)
    assert res["task"]["norm"] == best.norm


def test_first_trajectories(data) -> None:
    tr, _ = data
    sub = C.first_trajectories(tr, 7)
    assert np.array_equal(np.unique(sub.traj_id), np.unique(tr.traj_id)[:7])
    assert sub.n == int(np.isin(tr.traj_id, np.unique(tr.traj_id)[:7]).sum())
    assert C.first_trajectories(tr, None) is tr
    with pytest.raises(ConfigError):
        C.first_trajectories(tr, 0)
    with pytest.raises(DatasetError):
        C.first_trajectories(make_synthetic_beam_dataset(50, seed=1), 3)


@pytest.fixture(scope="module")
def spatial():
    drops = make_synthetic_beam_dataset(2000, seed=5)
    base = BeamTaskSpec(case="case2", setb="1/4", history=3, horizon=1, period_steps=2)
    return C.train_spatial(drops, base, hidden=(32,), recipe=C.Recipe(lr=3e-3, max_epochs=3, patience=2))


def test_spatial_pretraining_features_and_hold_start(data, spatial) -> None:
    """The GRU on the spatial model's log-probabilities starts exactly at "hold the spatial model's inference of
    the latest period"; training keeps the best validation epoch; the feature sets have the documented widths."""
    tr_ds, te_ds = data
    assert spatial.task.case == "case1" and spatial.model.input_dim == 8 and spatial.fit.epochs >= 0
    tr, val = C.split_by_trajectory(tr_ds, 0.25, seed=0)
    splits = C.Splits(BeamTaskSpec(case="case2", setb="1/4", history=3, horizon=1, period_steps=2), tr, val, te_ds,
                      spatial=spatial)
    task = splits.spec("per_sample_max")
    cand = C.Candidate("gru", (16,), C.Recipe(lr=3e-3, max_epochs=2, patience=2), features="spatial")
    mspec = cand.model_spec(task)
    assert mspec.in_shape == (3, 32) and mspec.skip_classes == tuple(range(32))
    va = splits.candidate_arrays(cand, "val")
    hold = C.spatial_baseline_scores(spatial, task, val, last=1)
    start = C.scores(mspec, init_torch_params(mspec, 0), va.x)
    np.testing.assert_allclose(start, hold, atol=1e-5)
    assert hold.max() <= 0.0 and hold.min() >= -C.LOGP_FLOOR
    # the hold baseline is the spatial model's own inference at the latest measurement instant
    m, _ = task._window_measurements(val)
    np.testing.assert_array_equal(hold.argmax(1), spatial.log_probs(m[:, -1]).argmax(1))
    fit = C.train(mspec, splits.candidate_arrays(cand, "train"), va, cand.recipe, seed=1)
    assert fit.curve[0] == pytest.approx(beam_kpis(hold, va.rsrp)["top1"]) and fit.val_top1 == max(fit.curve)
    mean_k = C.spatial_baseline_scores(spatial, task, val, last=3)
    np.testing.assert_allclose(mean_k, va.x.reshape(-1, 3, 32).mean(axis=1) * C.SKIP_GAIN, atol=1e-5)
    both = splits.arrays("per_sample_max", "val", "spatial+setb")
    assert both.x.shape == (len(va.y), 3 * 40)
    np.testing.assert_allclose(both.x.reshape(-1, 3, 40)[:, :, 32:].reshape(len(va.y), -1),
                               splits.arrays("per_sample_max", "val").x, atol=1e-6)
    best, table = C.select([cand, C.Candidate("mlp", (16,), C.Recipe(max_epochs=1), features="spatial+setb")],
                           splits)
    assert {r["spec"]["features"] for r in table} == {"spatial", "spatial+setb"}
    assert C.evaluate(best, splits, seeds=(1,))["candidate"]["features"] == best.features


def test_spatial_checks(data, spatial) -> None:
    tr_ds, te_ds = data
    with pytest.raises(DatasetError, match="independent drops"):
        C.train_spatial(tr_ds, BeamTaskSpec(case="case2", history=2, horizon=1))
    with pytest.raises(ConfigError, match="pre-train it"):
        C.spatial_features(spatial, BeamTaskSpec(case="case2", setb="1/8", history=2, horizon=1), tr_ds)
    with pytest.raises(ConfigError, match="features"):
        C.Candidate("gru", (8,), features="angles")
    splits = C.Splits(BeamTaskSpec(case="case2", history=2, horizon=1), tr_ds, tr_ds, te_ds)
    with pytest.raises(ConfigError, match="pre-trained spatial model"):
        splits.arrays("per_sample_max", "val", "spatial")
    with pytest.raises(ConfigError, match="last"):
        C.spatial_baseline_scores(spatial, BeamTaskSpec(case="case2", history=2, horizon=1), tr_ds, last=3)
    # drops must come from the Case2 data's configuration (preset equal outside name / case / trajectory)
    C.check_same_configuration(make_synthetic_beam_dataset(100, seed=7).preset, tr_ds.preset)
    with pytest.raises(DatasetError, match="indoor_share"):
        C.check_same_configuration(make_synthetic_beam_dataset(100, seed=7, indoor_share=0.5).preset, tr_ds.preset)
    with pytest.raises(DatasetError, match="preset"):
        C.check_same_configuration({}, tr_ds.preset)


def test_evaluate_returns_the_predictions_and_candidates_round_trip(data) -> None:
    """``evaluate(..., predictions=)`` gives each seed's Top-1 per test window (their accuracy is the reported
    Top-1), retraining is deterministic, and a chosen candidate read back from its record is the same candidate."""
    tr_ds, te_ds = data
    tr, val = C.split_by_trajectory(tr_ds, 0.25, seed=0)
    splits = C.Splits(BeamTaskSpec(case="case2", setb="1/4", history=2, horizon=1), tr, val, te_ds)
    cand = C.Candidate("gru", (8,), C.Recipe(lr=3e-3, max_epochs=2, patience=1, soft_temperature_db=2.0))
    assert C.Candidate.from_dict(cand.to_dict()) == cand
    with pytest.raises(ConfigError, match="candidate record"):
        C.Candidate.from_dict({"kind": "gru"})
    preds: dict[str, np.ndarray] = {}
    res = C.evaluate(cand, splits, seeds=(1, 2), predictions=preds)
    te = splits.arrays(cand.norm, "test")
    assert preds["top1"].shape == (2, len(te.y))
    genie = te.rsrp.argmax(1)
    for p, per in zip(preds["top1"], res["per_seed"], strict=True):
        assert float((p == genie).mean()) == pytest.approx(per["top1"])
    again = C.evaluate(C.Candidate.from_dict(res["candidate"]), splits, seeds=(1, 2))
    assert again["per_seed"] == res["per_seed"]


def test_cluster_bootstrap() -> None:
    """Per-cluster resampling: the point is the pooled accuracy, the interval contains it, correlated windows
    (whole clusters right or wrong) give a wider interval than the same windows as independent units, a paired
    difference of a method with itself is exactly 0, and equal per-cluster accuracy gives a degenerate interval."""
    rng = np.random.default_rng(0)
    n_c, per = 100, 20
    cluster = np.repeat(np.arange(n_c), per)
    whole = np.repeat(rng.random(n_c) < 0.6, per).astype(float)  # every window of a cluster right or wrong
    r = C.cluster_bootstrap({"a": whole, "b": whole}, cluster, diffs=(("a", "b"),), n_boot=2000)
    a = r["acc"]["a"]
    assert a["point"] == pytest.approx(whole.mean()) and a["lo"] <= a["point"] <= a["hi"]
    assert r["diff"]["a-b"] == {"point": 0.0, "lo": 0.0, "hi": 0.0}
    assert (r["clusters"], r["windows"], r["n_boot"]) == (n_c, n_c * per, 2000)
    indep = C.cluster_bootstrap({"a": whole}, np.arange(n_c * per), n_boot=2000)["acc"]["a"]
    assert (a["hi"] - a["lo"]) > 3 * (indep["hi"] - indep["lo"])  # about sqrt(20) = 4.5x wider
    # a cluster-level standard error check: the 95% interval is about +- 1.96 sqrt(p (1 - p) / n_clusters)
    p = whole.reshape(n_c, per)[:, 0].mean()
    assert (a["hi"] - a["lo"]) / 2 == pytest.approx(1.96 * np.sqrt(p * (1 - p) / n_c), rel=0.15)
    half = np.tile([1.0, 0.0], n_c * per // 2)  # every cluster exactly half right
    flat = C.cluster_bootstrap({"h": half}, cluster, n_boot=500)["acc"]["h"]
    assert flat["lo"] == pytest.approx(0.5) and flat["hi"] == pytest.approx(0.5)
    assert C.cluster_bootstrap({"a": whole}, cluster, n_boot=500, seed=1) == C.cluster_bootstrap(
        {"a": whole}, cluster, n_boot=500, seed=1)
    with pytest.raises(ConfigError, match="shape"):
        C.cluster_bootstrap({"a": whole[:-1]}, cluster)
    with pytest.raises(ConfigError, match="unknown method"):
        C.cluster_bootstrap({"a": whole}, cluster, diffs=(("a", "b"),))
    with pytest.raises(ConfigError, match="n_boot"):
        C.cluster_bootstrap({"a": whole}, cluster, n_boot=0)


def test_spatial_breakdown(data, spatial) -> None:
    """The spatial model's same-instant Top-1, overall and per LOS / indoor / distance / trajectory step bin: the
    bins partition the rows and their weighted Top-1 is the overall one; drops have no step bins."""
    _, te_ds = data
    r = C.spatial_breakdown(spatial, te_ds)
    ok = C.scores(spatial.model, spatial.params, spatial.task.inputs(te_ds)).argmax(1) == te_ds.label
    assert r["n"] == te_ds.n and r["top1"] == pytest.approx(ok.mean())
    assert set(r["by"]) == {"los", "indoor", "distance", "step"}
    for bins in r["by"].values():
        assert sum(b["n"] for b in bins.values()) == te_ds.n
        assert sum(b["n"] * b["top1"] for b in bins.values() if b["n"]) == pytest.approx(ok.sum())
    assert r["by"]["los"]["LOS"]["n"] == int(np.asarray(te_ds.los, bool).sum())
    assert r["by"]["step"]["[0, 1) steps"]["n"] == len(np.unique(te_ds.traj_id))  # each trajectory's first row
    drops = make_synthetic_beam_dataset(300, seed=9)
    assert "step" not in C.spatial_breakdown(spatial, drops)["by"]
    mask = C.drop_validation_mask(1000, 0.1, seed=0)
    assert mask.sum() == 100 and np.array_equal(mask, C.drop_validation_mask(1000, 0.1, seed=0))


def test_spatial_pretraining_on_given_labels() -> None:
    """``labels`` replace the drops' stored Top-1 as training and early-stopping targets (e.g. the local-mean Top-1);
    bad labels are refused with a typed error."""
    drops = make_synthetic_beam_dataset(1500, seed=5)
    base = BeamTaskSpec(case="case2", setb="1/4", history=3, horizon=1, period_steps=2)
    recipe = C.Recipe(lr=3e-3, max_epochs=3, patience=2)
    const = np.full(drops.n, 7, np.int64)  # an easy target that is not the stored Top-1
    assert np.mean(drops.label == 7) < 0.2
    sp = C.train_spatial(drops, base, hidden=(32,), recipe=recipe, labels=const)
    pred = sp.log_probs(sp.task.measurements(drops)).argmax(1)
    assert np.mean(pred == 7) > 0.8
    assert sp.fit.val_top1 > 0.8  # scored against the given labels on the held-out drops
    shifted = (drops.label.astype(np.int64) + 1) % drops.n_tx
    for bad, msg in ((shifted[:-1], "one per drop"), (shifted.astype(np.float32), "integers"),
                     (shifted + drops.n_tx, "Set A indices"), (shifted - drops.n_tx, "Set A indices")):
        with pytest.raises(ConfigError, match=msg):
            C.train_spatial(drops, base, hidden=(32,), recipe=recipe, labels=bad)


def test_pooling_head(data, spatial) -> None:
    """Pooling = hold of the first model at (1, 0) / decay 0; the decay weighs period t - j by decay**j; the fit picks
    the grid entry with the best Top-1 (ties: the earlier entry); typed errors."""
    tr_ds, _ = data
    task = BeamTaskSpec(case="case2", setb="1/4", history=3, horizon=1, period_steps=2)
    lp = C.period_log_probs([spatial, spatial], task, tr_ds)
    assert lp.shape == (2, len(task.anchors(tr_ds)), 3, 32)
    np.testing.assert_allclose(C.pooling_scores(lp, C.Pooling((1.0, 0.0), 0.0)),
                               C.spatial_baseline_scores(spatial, task, tr_ds, 1), rtol=1e-6, atol=1e-5)
    manual = 0.5 * (lp[0, :, 2] + 0.25 * lp[0, :, 1] + 0.0625 * lp[0, :, 0]) + (lp[1, :, 2] + 0.25 * lp[1, :, 1]
                                                                              + 0.0625 * lp[1, :, 0])
    np.testing.assert_allclose(C.pooling_scores(lp, C.Pooling((0.5, 1.0), 0.25)), manual, rtol=1e-6, atol=1e-5)
    y = task.labels(tr_ds)
    pool, table = C.fit_pooling(lp, y)
    assert len(table) == (3 ** 2 - 1) * 3
    best = max(r["top1"] for r in table)
    first_best = next(r for r in table if r["top1"] == best)
    assert (list(pool.weights), pool.decay) == (first_best["weights"], first_best["decay"])
    assert np.mean(C.pooling_scores(lp, pool).argmax(1) == y) == pytest.approx(best)
    # two copies of one model: every weight pair with the same ratio ties, so the earliest (fewest weight) wins
    assert pool.weights[0] == 0.0
    for bad in ((), (0.0, 0.0), (-1.0, 1.0), (float("nan"), 1.0)):
        with pytest.raises(ConfigError, match="weights"):
            C.Pooling(bad)
    with pytest.raises(ConfigError, match="decay"):
        C.Pooling((1.0,), 1.5)
    with pytest.raises(ConfigError, match="3 weights for 2"):
        C.pooling_scores(lp, C.Pooling((1.0, 0.0, 0.0)))


def test_rotating_period_log_probs(data, spatial) -> None:
    """Under a rotating Set B each period is read by its phase's model on its phase's beams, phase (t // p) % n;
    one phase is the fixed Set B; typed errors."""
    tr_ds, _ = data
    task = BeamTaskSpec(case="case2", setb="1/4", history=3, horizon=1, period_steps=2)
    np.testing.assert_allclose(C.rotating_period_log_probs([[spatial]], task, tr_ds),
                               C.period_log_probs([spatial], task, tr_ds), rtol=1e-6, atol=1e-5)
    other = C.train_spatial(make_synthetic_beam_dataset(2000, seed=6),
                            BeamTaskSpec(case="case2", setb="explicit", setb_indices=(1, 5, 11, 15, 18, 22, 26, 30),
                                         history=3, horizon=1, period_steps=2),
                            hidden=(32,), recipe=C.Recipe(lr=3e-3, max_epochs=2, patience=2))
    lp = C.rotating_period_log_probs([[spatial, other]], task, tr_ds)
    _, win, _ = task._case2_rows(tr_ds)
    best = tr_ds.best_rx_rsrp()
    for j in range(3):
        rows = win[:, j]
        phase = (tr_ds.t_index[rows] // 2) % 2
        assert 0 < phase.mean() < 1
        for q, sp in enumerate((spatial, other)):
            sel = phase == q
            want = np.maximum(sp.log_probs(best[rows[sel]][:, sp.task.resolved_setb()]), -C.LOGP_FLOOR)
            np.testing.assert_allclose(lp[0, sel, j], want, rtol=1e-6, atol=1e-5)
    with pytest.raises(ConfigError, match="at least one set"):
        C.rotating_period_log_probs([[]], task, tr_ds)
    with pytest.raises(ConfigError, match="best Rx beam"):
        C.rotating_period_log_probs([[spatial]], BeamTaskSpec(case="case2", setb="1/4", history=3, horizon=1,
                                                              period_steps=2, rx_mode="random"), tr_ds)

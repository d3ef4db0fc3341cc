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

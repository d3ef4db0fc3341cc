"""Distillation methods (server/distill): losses decrease, budget respected, payload round-trips, CLI."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from click.testing import CliRunner  # noqa: E402

from edge_sdk.errors import ConfigError  # noqa: E402
from edge_sdk.modelspec import ModelSpec  # noqa: E402
from edge_sdk.server.datasets import TaskData  # noqa: E402
from edge_sdk.server.distill import DistillConfig, distill, method_names  # noqa: E402
from edge_sdk.server.distill.base import Context, _greedy_pick, default_cost, init_synthetic  # noqa: E402
from edge_sdk.server.payload_io import read_compact, write_compact  # noqa: E402


def blobs(n, d, c, seed, centers_seed=0):
    centers = np.random.default_rng(centers_seed).standard_normal((c, d)) * 2.5
    rng = np.random.default_rng(seed)
    y = np.arange(n) % c
    return (centers[y] + rng.standard_normal((n, d))).astype(np.float32), y.astype(np.int64)


def tiny_task(kind="mlp"):
    if kind == "mlp":
        X, y = blobs(300, 6, 4, 0)
        Xt, yt = blobs(200, 6, 4, 1)
        spec = ModelSpec(kind="mlp", input_dim=6, num_classes=4, hidden=(16,))
    else:
        X, y = blobs(120, 16, 3, 0)
        Xt, yt = blobs(60, 16, 3, 1)
        spec = ModelSpec(kind="convnet", input_dim=16, num_classes=3, in_shape=(1, 4, 4), width=4, depth=1)
    return TaskData("blobs", X, y, Xt, yt, spec.num_classes, spec, {"kind": "image", "model": spec.to_dict()})


FAST = dict(iterations=30, batch_real=16, mtt_experts=2, mtt_expert_epochs=4, mtt_max_start=2, mtt_expert_span=2,
            mtt_syn_steps=5, mtt_expert_batch=32, dc_net_steps=2, dc_model_every=10, select="none")
BUDGET = 900



@pytest.mark.parametrize("method,quantizer,bits", [
    ("dm", "float32", None), ("quadd-dm", "uniform", 2), ("quadd-dm", "codebook", 1), ("ptq-dm", "apot", 3),
    ("dc", "float32", None), ("quadd-dc", "uniform", 3),
    ("mtt", "float32", None), ("quadd-mtt", "codebook", 2),
])
def test_method_loss_decreases_and_fits(method, quantizer, bits, tmp_path):
    d = tiny_task()
    cfg = DistillConfig(method=method, quantizer=quantizer, bits=bits, seed=0, **FAST)
    if method.endswith("mtt"):
        cfg = DistillConfig(**{**cfg.__dict__, "lr_data": 0.05, "iterations": 30})
    r = distill(d, cfg, BUDGET)
    assert len(r.losses) == cfg.iterations and all(np.isfinite(r.losses))
    assert r.info["probe_loss_final"] < r.info["probe_loss_init"], r.info
    assert r.point.bytes <= BUDGET and r.compact.n == r.point.n == r.point.ipc * 4
    info = write_compact(tmp_path / "p.epl", r.compact, default_cost(d, cfg), budget_bytes=BUDGET,
                         planned_bytes=r.point.bytes)
    assert info.size == r.point.bytes <= BUDGET
    X, y, soft, _ = read_compact(tmp_path / "p.epl")
    np.testing.assert_array_equal(X, r.compact.X)
    np.testing.assert_array_equal(y, r.compact.y)
    assert np.bincount(y).tolist() == [r.point.ipc] * 4


def test_quadd_values_are_the_quantizer_output():
    d = tiny_task()
    r = distill(d, DistillConfig(method="quadd-dm", quantizer="uniform", bits=2, **FAST), BUDGET)
    a = r.compact.groups[0].params["alpha"][0]
    assert set(np.unique(r.compact.X)) <= {-a, 0.0, a}  # 2-bit symmetric grid: 3 levels


def test_mtt_soft_labels_counted_and_stored(tmp_path):
    d = tiny_task()
    base = distill(d, DistillConfig(method="quadd-mtt", quantizer="uniform", bits=2, **FAST), 2000)
    soft = distill(d, DistillConfig(method="quadd-mtt", quantizer="uniform", bits=2, soft_labels=True, **FAST), 2000)
    assert soft.point.soft and soft.compact.soft is not None and soft.compact.soft.shape == (soft.point.n, 4)
    assert soft.point.ipc < base.point.ipc  # the soft labels take budget
    cfg = DistillConfig(method="quadd-mtt", quantizer="uniform", bits=2, soft_labels=True, **FAST)
    write_compact(tmp_path / "s.epl", soft.compact, default_cost(d, cfg), budget_bytes=2000)
    _, _, s, _ = read_compact(tmp_path / "s.epl")
    np.testing.assert_array_equal(s, soft.compact.soft)
    assert soft.info["learned_lr"] > 0


def test_convnet_host_runs():
    d = tiny_task("convnet")
    for m in ("quadd-dm", "quadd-dc"):
        r = distill(d, DistillConfig(method=m, quantizer="uniform", bits=2, **{**FAST, "iterations": 6}), 600)
        assert r.compact.X.shape == (r.point.n, 16)


def test_baselines_and_determinism():
    d = tiny_task()
    full = distill(d, DistillConfig(method="full", quantizer="float32"), None)
    np.testing.assert_array_equal(full.compact.X, d.X_train)
    full8 = distill(d, DistillConfig(method="full", quantizer="uniform", bits=8), None)
    assert full8.point.bytes < full.point.bytes and np.abs(full8.compact.X - d.X_train).max() < 0.1
    r1 = distill(d, DistillConfig(method="random", quantizer="uniform", bits=3), BUDGET)
    r2 = distill(d, DistillConfig(method="random", quantizer="uniform", bits=3), BUDGET)
    np.testing.assert_array_equal(r1.compact.X, r2.compact.X)
    a = distill(d, DistillConfig(method="quadd-dm", quantizer="uniform", bits=2, **FAST), BUDGET)
    b = distill(d, DistillConfig(method="quadd-dm", quantizer="uniform", bits=2, **FAST), BUDGET)
    np.testing.assert_array_equal(a.compact.X, b.compact.X)
    assert a.losses == b.losses


def test_errors():
    d = tiny_task()
    with pytest.raises(ConfigError, match="unknown distillation method"):
        distill(d, DistillConfig(method="nope"), BUDGET)
    with pytest.raises(ConfigError, match="cannot hold one sample per class"):
        distill(d, DistillConfig(method="quadd-dm", bits=2), 50)
    with pytest.raises(ConfigError, match="stores float32"):
        distill(d, DistillConfig(method="dm", quantizer="uniform", bits=2, **FAST), BUDGET)
    with pytest.raises(ConfigError, match="needs a quantizer"):
        distill(d, DistillConfig(method="quadd-dm", quantizer="float32"), BUDGET)
    with pytest.raises(ConfigError, match="supports bits"):
        distill(d, DistillConfig(method="quadd-dm", quantizer="apot", bits=4), BUDGET)
    with pytest.raises(ConfigError, match="needs .* bytes > budget"):
        distill(d, DistillConfig(method="quadd-dm", bits=2, ipc=1000), BUDGET)
    with pytest.raises(ConfigError, match="needs a byte budget"):
        distill(d, DistillConfig(method="quadd-dm", bits=2), None)
    assert {"dm", "dc", "mtt", "quadd-dm", "quadd-dc", "quadd-mtt", "ptq-dm", "ptq-mtt", "random", "full"} <= set(
        method_names())


def test_proportional_class_allocation(tmp_path):
    X, y = blobs(300, 6, 4, 0)
    keep = np.concatenate([np.flatnonzero(y == c)[: [75, 40, 20, 10][c]] for c in range(4)])
    d = tiny_task()
    d = TaskData("imb", X[keep], y[keep], d.X_test, d.y_test, 4, d.spec, d.task)
    for m, alloc in (("quadd-mtt", "proportional"), ("random", "auto")):  # auto: 75/10 >= IMBALANCE_RATIO
        r = distill(d, DistillConfig(method=m, quantizer="codebook", bits=2, class_alloc=alloc, **FAST), BUDGET)
        counts = np.bincount(r.compact.y, minlength=4)
        assert counts.sum() == r.point.n == r.point.ipc * 4 and counts.min() >= 1
        assert counts[0] > counts[1] > counts[2] >= counts[3]  # follows the real prior 75:40:20:10
        write_compact(tmp_path / f"{m}.epl", r.compact, default_cost(d, DistillConfig(method=m)), budget_bytes=BUDGET)
        assert np.bincount(read_compact(tmp_path / f"{m}.epl")[1], minlength=4).tolist() == counts.tolist()
    with pytest.raises(ConfigError, match="same number of samples per class"):
        distill(d, DistillConfig(method="quadd-dm", bits=2, class_alloc="proportional", **FAST), BUDGET)
    r = distill(d, DistillConfig(method="quadd-dm", bits=2, **{**FAST, "iterations": 2}), BUDGET)  # auto -> balanced
    assert np.bincount(r.compact.y).tolist() == [r.point.ipc] * 4
    bal = distill(d, DistillConfig(method="random", quantizer="codebook", bits=2, class_alloc="balanced"), BUDGET)
    assert np.bincount(bal.compact.y).tolist() == [bal.point.ipc] * 4


def test_select_val_keeps_best_checkpoint_and_holds_out():
    from edge_sdk.server.distill.base import split_validation

    d = tiny_task()
    fit, (Xv, yv) = split_validation(d, 0.2, 0)
    assert len(yv) == 60 and fit.X_train.shape[0] == 240 and np.bincount(yv).tolist() == [15] * 4
    rows = {tuple(r) for r in fit.X_train.tolist()}
    assert not any(tuple(r) in rows for r in Xv.tolist())  # disjoint from what is distilled
    cfg = DistillConfig(method="quadd-mtt", quantizer="codebook", bits=2, val_every=10,
                        **{**FAST, "iterations": 20, "select": "val"})
    r = distill(d, cfg, BUDGET)
    log = r.info["val_top1"]
    assert [i for i, _ in log] == [0, 10, 20]
    best = max(v for _, v in log)
    assert dict(log)[r.info["selected_iteration"]] == best
    assert r.compact.n == r.point.n and r.point.bytes <= BUDGET
    with pytest.raises(ConfigError, match="val_frac"):
        split_validation(d, 0.7, 0)
    with pytest.raises(ConfigError, match="unknown select"):
        distill(d, DistillConfig(**{**cfg.__dict__, "select": "nope"}), BUDGET)


def test_greedy_init_picks_diverse_samples():
    # three copies of one direction and two distinct ones: greedy picks never repeat a duplicate first
    v = torch.tensor([[1.0, 0, 0], [1.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])
    g = torch.ones(5, 2) / np.sqrt(2)
    pick = _greedy_pick(g, v, 3).tolist()
    assert 3 in pick and 4 in pick and len(set(pick)) == 3
    d = tiny_task()
    r = distill(d, DistillConfig(method="random", quantizer="float32"), BUDGET)
    ctx = Context(d, DistillConfig(method="dm", quantizer="float32", init="greedy"), r.point, torch.device("cpu"),
                  torch.from_numpy(d.X_train), torch.from_numpy(d.y_train), np.arange(4))
    S = init_synthetic(ctx)
    assert S.shape == (r.point.n, 6)
    # every initial sample is a real training sample of the right class
    for i, row in enumerate(S.numpy()):
        j = np.flatnonzero((d.X_train == row).all(1))
        assert len(j) and d.y_train[j[0]] == i // r.point.ipc


def test_cli_digits(tmp_path):
    from edge_sdk.cli.main import cli

    out = tmp_path / "run"
    res = CliRunner().invoke(cli, ["distill", "--dataset", "digits", "--method", "quadd-dm", "--compression", "36x",
                                   "--bits", "2", "--iterations", "3", "--seeds", "2", "--steps", "20",
                                   "--no-progress", "--no-graph", "--out", str(out)])
    assert res.exit_code == 0, res.output
    # --no-progress hides progress, never the result summary (issue 16)
    assert f"quadd-dm: {(out / 'payload.epl').stat().st_size} B" in res.output and "top1" in res.output
    rep = json.loads((out / "report.json").read_text())
    from edge_sdk.server.pipeline import validate_report

    validate_report(rep)
    assert rep["payload_bytes"] == (out / "payload.epl").stat().st_size <= rep["budget"]["bytes"]
    assert rep["compression"] >= 36 and rep["method"] == "quadd-dm" and len(rep["seeds"]) == 2


@pytest.mark.parametrize("args,msg", [
    (["--dataset", "digits", "--out", "o"], "exactly one of --budget"),
    (["--dataset", "digits", "--budget", "1KiB", "--compression", "3x", "--out", "o"], "not both"),
    (["--dataset", "digits", "--data", "x.h5", "--test", "x.h5", "--budget", "1KiB", "--out", "o"], "not both"),
    (["--dataset", "digits", "--budget", "36x", "--out", "o"], "--budget takes bytes"),
    (["--dataset", "digits", "--compression", "16KiB", "--out", "o"], "--compression takes ratios"),
    (["--dataset", "digits", "--compression", "36x", "--steps", "0", "--out", "o"], "steps must be"),
    (["--budget", "1KiB", "--out", "o"], "give --data"),
    (["--dataset", "digits", "--budget", "lots", "--out", "o"], "cannot parse budget"),
    (["--dataset", "digits", "--method", "quadd-dm", "--budget", "1KiB", "--bits", "two", "--out", "o"], "--bits must be"),
    (["--dataset", "digits", "--budget", "1KiB", "--bits", "2", "--out", "o"], "auto \\(the default\\) chooses"),
])
def test_cli_errors(args, msg, tmp_path, monkeypatch):
    from edge_sdk.cli.main import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.h5").write_bytes(b"")
    import click

    with pytest.raises((ConfigError, click.UsageError), match=msg):
        from edge_sdk.cli.main import cli

        cli.main(args=["distill", *args], standalone_mode=False)
    assert main(["distill", *args]) != 0


def test_bits_auto_through_the_pipeline(tmp_path):
    from edge_sdk.modelspec import TrainRecipe
    from edge_sdk.server.pipeline import RunConfig, run
    from edge_sdk.server.train_eval import EvalConfig
    from edge_sdk.units import Budget

    d = tiny_task()
    cfg = RunConfig(DistillConfig(method="ptq-dm", quantizer="codebook", search_bits=True, iterations=10),
                    Budget.parse("900"), EvalConfig(TrainRecipe(steps=20), seeds=(0,)), graph=False)
    rep = run(d, cfg, tmp_path / "r").report
    log = rep["extra"]["bits_search"]
    assert {e["bits"] for e in log} <= {1, 2, 3, 4} and len(log) >= 2
    best = max(log, key=lambda e: e["proxy_top1"])
    assert rep["extra"]["method_info"]["operating_point"]["bits"] == best["bits"] == rep["config"]["bits"]
    assert rep["payload_bytes"] <= 900 and rep["eval"]["config"]["runtime"] == "torch"

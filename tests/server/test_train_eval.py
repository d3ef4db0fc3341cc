"""Evaluation protocol (server/train_eval.py) and report.json schema (server/pipeline.py)."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from edge_sdk.errors import ConfigError  # noqa: E402
from edge_sdk.modelspec import (  # noqa: E402
    ModelSpec,  # noqa: E402
    TrainRecipe,
    iter_batches,
)
from edge_sdk.server.datasets import TaskData  # noqa: E402
from edge_sdk.server.pipeline import SCHEMA_ID, build_report, validate_report, write_report  # noqa: E402
from edge_sdk.server.train_eval import EvalConfig, evaluate_compact, score_metrics, train_model  # noqa: E402


def blobs(n=240, d=6, c=4, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((c, d)) * 3
    y = np.arange(n) % c
    X = (centers[y] + rng.standard_normal((n, d))).astype(np.float32)
    return X, y.astype(np.int64)


def tiny_task():
    X, y = blobs()
    Xt, yt = blobs(seed=0)
    Xt = Xt + np.random.default_rng(5).standard_normal(Xt.shape).astype(np.float32) * 0.1
    spec = ModelSpec(kind="mlp", input_dim=6, num_classes=4, hidden=(16,))
    return TaskData("blobs", X, y, Xt, yt, 4, spec, {"kind": "image", "model": spec.to_dict()})


def test_batches_follow_epoch_order():
    from edge_sdk.modelspec import epoch_order

    got = [idx for _, _, idx in iter_batches(10, 4, 3, 0, 5)]
    assert [len(b) for b in got] == [4, 4, 2, 4, 4]
    np.testing.assert_array_equal(np.concatenate(got[:3]), epoch_order(10, 3, 0))
    np.testing.assert_array_equal(np.concatenate(got[3:]), epoch_order(10, 3, 1)[:8])
    # any start: a resumed run sees the same batches
    assert all(np.array_equal(a, b) for a, (_, _, b) in zip(got[2:], iter_batches(10, 4, 3, 2, 5), strict=True))


def test_training_is_deterministic_and_learns():
    d = tiny_task()
    cfg = EvalConfig(TrainRecipe(steps=150, batch_size=32, lr=0.05), seeds=(0, 1, 2))
    a = train_model(d.spec, d.X_train, d.y_train, 0, cfg.recipe)
    b = train_model(d.spec, d.X_train, d.y_train, 0, cfg.recipe)
    c = train_model(d.spec, d.X_train, d.y_train, 1, cfg.recipe)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    assert any(not torch.equal(a[k], c[k]) for k in a)
    res = evaluate_compact(d.spec, d.X_train, d.y_train, d, cfg)
    assert res.mean["top1"] > 0.9 and len(res.per_seed) == 3 and res.std["top1"] >= 0
    k = res.kpis()["top1"]
    assert k["mean"] == pytest.approx(np.mean(k["per_seed"]))


def test_soft_label_targets():
    d = tiny_task()
    soft = np.eye(4, dtype=np.float32)[d.y_train] * 8.0  # logits: softmax ~ one-hot
    wrong = (d.y_train + 1) % 4  # hard labels that disagree with the soft targets
    ev = EvalConfig(TrainRecipe(steps=150, batch_size=32, lr=0.05), seeds=(0,))
    res = evaluate_compact(d.spec, d.X_train, wrong, d, ev, soft=soft)  # soft_weight 1: soft targets alone
    assert res.mean["top1"] > 0.9
    half = EvalConfig(TrainRecipe(steps=150, batch_size=32, lr=0.05, soft_weight=0.0), seeds=(0,))
    assert evaluate_compact(d.spec, d.X_train, wrong, d, half, soft=soft).mean["top1"] < 0.2  # hard labels alone


def test_label_smoothing_loss_is_the_smoothed_target_cross_entropy():
    """The recipe's label-smoothed loss (edge_sdk.modelspec): CE against ``(1-eps) onehot(y) + eps / C``, mixed with
    the soft-label CE by soft_weight; eps = 0 is plain CE, bit for bit."""
    from edge_sdk.server.train_eval import _loss

    g = torch.Generator().manual_seed(0)
    z, s = torch.randn(7, 5, generator=g), torch.randn(7, 5, generator=g)
    y = torch.arange(7) % 5
    t = 0.8 * torch.nn.functional.one_hot(y, 5).float() + 0.2 / 5
    want = -(t * torch.log_softmax(z, 1)).sum(1).mean()
    torch.testing.assert_close(_loss(z, y, None, 1.0, 0.2), want)
    soft_ce = -(torch.softmax(s, 1) * torch.log_softmax(z, 1)).sum(1).mean()
    torch.testing.assert_close(_loss(z, y, s, 0.25, 0.2), 0.75 * want + 0.25 * soft_ce)
    torch.testing.assert_close(_loss(z, y, s, 1.0, 0.2), soft_ce)  # soft targets only: nothing to smooth
    assert torch.equal(_loss(z, y, None, 1.0, 0.0), torch.nn.functional.cross_entropy(z, y))
    d = tiny_task()
    r = TrainRecipe(optimizer="adam", lr=3e-3, steps=60, batch_size=32, weight_decay=0.0)
    a, b = (train_model(d.spec, d.X_train, d.y_train, 0, r.with_overrides(label_smoothing=e)) for e in (0.0, 0.3))
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_score_metrics():
    s = np.array([[0.1, 0.9, 0, 0, 0, 0], [0.8, 0.1, 0, 0, 0, 0.05]])
    m = score_metrics(s, np.array([1, 5]))
    assert m["top1"] == 0.5 and m["top5"] == 1.0


def test_eval_config_errors():
    with pytest.raises(ConfigError):
        EvalConfig(TrainRecipe(steps=0))
    with pytest.raises(ConfigError):
        EvalConfig(seeds=())
    d = tiny_task()
    with pytest.raises(ConfigError, match="rows"):
        train_model(d.spec, d.X_train, d.y_train[:3], 0, TrainRecipe(steps=2))


def _report(tmp_path):
    d = tiny_task()
    p = tmp_path / "payload.bin"
    p.write_bytes(b"x" * 100)
    res = evaluate_compact(d.spec, d.X_train[:20], d.y_train[:20], d, EvalConfig(TrainRecipe(steps=5), seeds=(0, 1, 2)))
    return build_report(command="distill", method="quadd-dm", config={"bits": 2}, budget={"bytes": 128, "spec": "128"},
                        payload_path=p, data=d, eval_result=res, timings={"build_s": 1.0})


def test_report_schema_roundtrip(tmp_path):
    rep = _report(tmp_path)
    assert rep["schema"] == SCHEMA_ID and rep["payload_bytes"] == 100
    assert rep["dataset"]["n_test"] == 240 and rep["dataset"]["model"]["kind"] == "mlp"
    assert rep["compression"] == pytest.approx(240 * 6 * 4 / 100)
    assert set(rep["kpis"]["top1"]) == {"mean", "std", "per_seed"} and rep["seeds"] == [0, 1, 2]
    assert "torch" in rep["versions"] and "python" in rep["versions"]
    write_report(tmp_path / "report.json", rep)
    validate_report(json.loads((tmp_path / "report.json").read_text()))


@pytest.mark.parametrize("mutate,msg", [
    (lambda r: r.pop("kpis"), "missing field 'kpis'"),
    (lambda r: r.__setitem__("schema", "other/9"), "schema must be"),
    (lambda r: r.__setitem__("payload_bytes", 999), "payload.bytes must equal"),
    (lambda r: r["budget"].__setitem__("bytes", 50), "exceeds budget"),
    (lambda r: r.__setitem__("compression", 1.0), "compression must equal"),
    (lambda r: r["kpis"]["top1"].__setitem__("per_seed", [0.1]), "per_seed has 1 values"),
    (lambda r: r["kpis"]["top1"].__setitem__("mean", float("nan")), "non-finite"),
    (lambda r: r["timings"].__setitem__("distill", 1.0), "seconds named"),
    (lambda r: r.__setitem__("seeds", "0,1"), "field 'seeds' must be list"),
    (lambda r: r["dataset"].pop("n_test"), "dataset.n_test is missing"),
    (lambda r: r["dataset"].pop("model"), "dataset.model is missing"),
])
def test_report_validation_catches(tmp_path, mutate, msg):
    rep = _report(tmp_path)
    mutate(rep)
    with pytest.raises(ConfigError, match=msg):
        validate_report(rep)
    with pytest.raises(ConfigError):
        write_report(tmp_path / "r.json", rep)
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("optimizer,schedule", [("sgd", "constant"), ("sgd", "cosine"), ("adam", "step"),
                                                ("adam", "cosine")])
def test_train_model_matches_torch_optim(optimizer, schedule):
    """The hand-written update equals torch.optim.SGD / torch.optim.Adam with the recipe's lr schedule."""
    from edge_sdk.server.models import forward, init_torch_params

    d = tiny_task()
    r = TrainRecipe(optimizer=optimizer, schedule=schedule, lr=0.01 if optimizer == "adam" else 0.05, steps=23,
                    batch_size=32, decay_every=7, gamma=0.5, weight_decay=1e-3)
    got = train_model(d.spec, d.X_train, d.y_train, 4, r)
    p = init_torch_params(d.spec, 4, requires_grad=True)
    params = list(p.values())
    if optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=r.lr, momentum=r.momentum, weight_decay=r.weight_decay)
    else:
        opt = torch.optim.Adam(params, lr=r.lr, betas=(r.beta1, r.beta2), eps=r.eps, weight_decay=r.weight_decay)
    X, y = torch.from_numpy(d.X_train), torch.from_numpy(d.y_train)
    for t, _, idx in iter_batches(len(y), r.batch_size, 4, 0, r.steps):
        for g in opt.param_groups:
            g["lr"] = r.lr_at(t)
        it = torch.from_numpy(idx)
        loss = torch.nn.functional.cross_entropy(forward(d.spec, p, X[it]), y[it])
        opt.zero_grad()
        loss.backward()
        opt.step()
    for k in got:
        torch.testing.assert_close(got[k], p[k].detach(), rtol=1e-5, atol=1e-6)


def test_train_model_leaves_its_inputs_alone():
    d = tiny_task()
    X, y = d.X_train.copy(), d.y_train.copy()
    train_model(d.spec, d.X_train, d.y_train, 0, TrainRecipe(steps=5))
    np.testing.assert_array_equal(X, d.X_train)
    np.testing.assert_array_equal(y, d.y_train)


@pytest.mark.parametrize("optimizer,wd,momentum", [("sgd", 5e-4, 0.9), ("sgd", 0.0, 0.0), ("adam", 1e-3, 0.0),
                                                   ("adam", 0.0, 0.0)])
def test_foreach_update_is_bit_identical_to_one_tensor_at_a_time(optimizer, wd, momentum):
    """train_model's torch._foreach_* update (server/train_eval._update) gives exactly the parameters of the same
    formulas applied one tensor at a time (the form before the change), so cached results stay reproducible."""
    from edge_sdk.server.models import forward, init_torch_params

    d = tiny_task()
    r = TrainRecipe(optimizer=optimizer, schedule="cosine", lr=0.01 if optimizer == "adam" else 0.05, steps=37,
                    batch_size=32, weight_decay=wd, momentum=momentum)
    got = train_model(d.spec, d.X_train, d.y_train, 2, r)
    p = init_torch_params(d.spec, 2, requires_grad=True)
    names = list(p)
    state: list = [None] * len(names)
    X, y = torch.from_numpy(d.X_train), torch.from_numpy(d.y_train)
    for t, _, idx in iter_batches(len(y), r.batch_size, 2, 0, r.steps):
        it = torch.from_numpy(idx)
        loss = torch.nn.functional.cross_entropy(forward(d.spec, p, X[it]), y[it])
        grads = torch.autograd.grad(loss, [p[n] for n in names])
        lr = r.lr_at(t)
        with torch.no_grad():
            for i, (n, g) in enumerate(zip(names, grads, strict=True)):
                w = p[n]
                d_p = g + r.weight_decay * w if r.weight_decay else g
                if r.optimizer == "sgd":
                    if r.momentum:
                        if state[i] is None:
                            state[i] = [d_p.clone()]
                        else:
                            state[i][0].mul_(r.momentum).add_(d_p)
                        d_p = state[i][0]
                    w.sub_(lr * d_p)
                else:
                    if state[i] is None:
                        state[i] = [torch.zeros_like(w), torch.zeros_like(w)]
                    m, v = state[i]
                    m.mul_(r.beta1).add_(d_p, alpha=1.0 - r.beta1)
                    v.mul_(r.beta2).addcmul_(d_p, d_p, value=1.0 - r.beta2)
                    k = t + 1
                    denom = v.sqrt() / ((1.0 - r.beta2**k) ** 0.5) + r.eps
                    w.sub_(lr / (1.0 - r.beta1**k) * (m / denom))
    for k in got:
        assert torch.equal(got[k], p[k].detach()), k

"""The epoch variant of the training graph (format v2: rows decoded once per run, K steps in an ONNX Loop, flat
parameters, hand-written MLP backward) against eager torch (torch.nn + torch.optim + F.cross_entropy): every
quantizer kind and bit width, several runs of several steps, and one test per known silent exporter bug
(docs/onnx-graph.md) — the same checks the step variant passes in test_graph_parity.py."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from edge_sdk import codecs  # noqa: E402
from edge_sdk.graphmeta import HYPER_NAMES, PER_STEP_HYPER, GraphGroup, TrainGraphSpec  # noqa: E402
from edge_sdk.modelspec import ModelSpec, init_params  # noqa: E402
from edge_sdk.server.onnx_export.export import all_nodes, check_graph  # noqa: E402
from edge_sdk.server.onnx_export.step import mlp_loss_and_grads  # noqa: E402
from edge_sdk.server.onnx_export.testing import (  # noqa: E402
    EagerReference,
    cached_training_graph,
    random_group_batch,
    rel_err,
)

torch.set_num_threads(1)
D = 6
MODEL = ModelSpec(input_dim=D, num_classes=5, hidden=(16, 16))
MATRIX = (
    [GraphGroup(f"cb{b}", "codebook", b, D) for b in range(1, 9)]
    + [GraphGroup(f"sym{b}", "symmetric_per_sample", b, D) for b in range(2, 9)]
    + [GraphGroup(f"uc{b}", "uniform_clip", b, D, per_feature=b % 2 == 0) for b in range(2, 9)]
    + [GraphGroup("f16", "float16", 16, D), GraphGroup("f32", "float32", 32, D)]
    # the affine (min/max) kinds: every width for one lo/hi per set; per feature and per sample, one width of the
    # byte-table decode (2, 4) and one of the two-byte rule (3, 7) each
    + [GraphGroup(f"as{b}", "affine_set", b, D) for b in range(1, 9)]
    + [GraphGroup(f"af{b}", "affine_feature", b, D) for b in (2, 3)]
    + [GraphGroup(f"ap{b}", "affine_sample", b, D) for b in (4, 7)]
)
HP = {
    "sgd": {"lr": 0.02, "momentum": 0.9, "weight_decay": 1e-3},
    "adam": {"lr": 2e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 1e-3},
}


def _session(spec: TrainGraphSpec) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(cached_training_graph(spec), so, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def matrix_adam():
    spec = TrainGraphSpec(MODEL, tuple(MATRIX), "adam", debug_features=True, variant="epoch")
    return spec, _session(spec)


@pytest.fixture(scope="module")
def matrix_sgd():
    spec = TrainGraphSpec(MODEL, tuple(MATRIX), "sgd", debug_features=True, variant="epoch")
    return spec, _session(spec)


def _flat(params: dict[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([params[n].reshape(-1) for n, _ in MODEL.param_shapes()])


class EpochRunner:
    """Feeds the epoch graph and the eager reference the same fresh random rows and batches."""

    def __init__(self, spec: TrainGraphSpec, sess, hp: dict[str, float], seed: int):
        self.spec, self.sess, self.hp = spec, sess, dict(hp)
        self.rng = np.random.default_rng(seed)
        params = init_params(spec.model, seed)
        self.theta = _flat(params)
        self.state = {n: np.zeros_like(self.theta) for n in spec.flat_state_names()}
        self.ref = EagerReference(spec.model, params, spec.optimizer, self.hp)
        self.t = 0
        # fixed per-group params (codebook levels / alpha) like a real payload
        self.fixed = {k: {n.split(".", 1)[1]: v for n, v in random_group_batch(k, g, 1, self.rng).feed.items()
                          if n.split(".", 1)[1] in ("alpha", "levels", "hi", "lo")} for k, g in spec.graph_groups()}

    def rows(self, sizes: dict[int, int]) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        """Random rows for every samples group (``sizes[k]``, default 0): feed, dequantized X, labels."""
        feed: dict[str, np.ndarray] = {}
        xs = []
        for k, g in self.spec.graph_groups():
            if g.role != "samples":
                continue
            gb = random_group_batch(k, g, sizes.get(k, 0), self.rng, self.fixed[k])
            feed.update(gb.feed)
            xs.append(gb.x)
        x = np.concatenate(xs).astype(np.float32)
        y = self.rng.integers(0, self.spec.model.num_classes, len(x)).astype(np.int64)
        feed["labels"] = y
        return feed, x, y

    def hyper(self, k: int, hp: dict[str, float] | None = None) -> dict[str, np.ndarray]:
        hp = hp or self.hp
        out = {}
        for h in HYPER_NAMES[self.spec.optimizer]:
            if h == "step":
                out[h] = np.arange(self.t + 1, self.t + k + 1, dtype=np.float32)
            elif h in PER_STEP_HYPER:
                out[h] = np.full(k, hp[h], np.float32)
            else:
                out[h] = np.asarray(hp[h], np.float32)
        return out

    def run(self, feed: dict[str, np.ndarray], batches: np.ndarray, x: np.ndarray, y: np.ndarray,
            soft: np.ndarray | None = None, soft_weight: float = 0.0,
            label_smoothing: float = 0.0) -> tuple[dict[str, np.ndarray], list[float]]:
        feed = dict(feed, batches=batches.astype(np.int64), theta=self.theta, **self.state, **self.hyper(len(batches)))
        out = dict(zip([o.name for o in self.sess.get_outputs()], self.sess.run(None, feed), strict=True))
        ref_losses = [self.ref.step(x[b], y[b], None if soft is None else soft[b], soft_weight,
                                    label_smoothing=label_smoothing) for b in batches]
        self.t += len(batches)
        self.theta = out["new.theta"]
        self.state = {n: out[f"new.{n}"] for n in self.state}
        return out, ref_losses

    def rel_err(self) -> float:
        return rel_err(self.theta, _flat(self.ref.params()))


def _random_batches(rng, m: int, k: int, b: int) -> np.ndarray:
    return np.stack([np.sort(rng.choice(m, b, replace=False)) for _ in range(k)])


def _sizes(rng, spec, total: int, zero_prob: float = 0.4) -> dict[int, int]:
    ks = [k for k, g in spec.graph_groups() if g.role == "samples"]
    active = [k for k in ks if rng.random() > zero_prob] or [ks[0]]
    cut = np.sort(rng.integers(0, total + 1, len(active) - 1))
    return dict(zip(active, (int(p) for p in np.diff(np.concatenate([[0], cut, [total]]))), strict=True))


def test_epoch_graph_is_plain_onnx(matrix_adam):
    spec, _ = matrix_adam
    model = onnx.load_from_string(cached_training_graph(spec))
    check_graph(model, max_opset=18)
    assert {(i.domain, i.version) for i in model.opset_import} == {("", 18)}
    assert model.ir_version <= 9
    ops = {n.op_type for n in all_nodes(model.graph)}
    assert "Loop" in ops and not any(o.startswith("BatchNorm") for o in ops)
    assert [i.name for i in model.graph.input] == spec.input_names()
    assert [o.name for o in model.graph.output] == spec.output_names()
    inits = [onnx.numpy_helper.to_array(t) for t in model.graph.initializer]
    # no weights: only the unpacking index tables and small constants
    assert sum(a.nbytes for a in inits) <= 3 * 8 * D * len(spec.groups) + 2048


def test_epoch_features_every_kind_and_width(matrix_adam):
    """features output (the rows decoded once per run) == edge_sdk.codecs.dequantize, every (kind, bits)."""
    spec, sess = matrix_adam
    r = EpochRunner(spec, sess, HP["adam"], seed=1)
    sizes = {k: 3 + k % 4 for k, g in spec.graph_groups()}
    feed, x, y = r.rows(sizes)
    out, _ = r.run(feed, _random_batches(r.rng, len(x), 2, 4), x, y)
    np.testing.assert_allclose(out["features"], x, rtol=1e-6, atol=0)


@pytest.mark.parametrize("fixture", ["matrix_adam", "matrix_sgd"])
def test_epoch_parity_1_and_100_steps(fixture, request):
    """Runs of K steps (K = 1..9, batches of 1..12 rows drawn from the run's rows, groups mixed and some empty);
    parameters within 1e-5 (relative) of eager torch after the first step and after 100 steps, every loss within
    1e-4."""
    spec, sess = request.getfixturevalue(fixture)
    r = EpochRunner(spec, sess, HP[spec.optimizer], seed=3)
    rng = np.random.default_rng(4)
    feed, x, y = r.rows(_sizes(rng, spec, 12))
    out, ref = r.run(feed, _random_batches(rng, 12, 1, 7), x, y)
    assert abs(float(out["losses"][0]) - ref[0]) <= 1e-5 * max(1.0, abs(ref[0]))
    assert r.rel_err() <= 1e-5
    while r.t < 100:
        k = int(min(rng.integers(1, 10), 100 - r.t))
        m = int(rng.integers(12, 40))
        feed, x, y = r.rows(_sizes(rng, spec, m))
        out, ref = r.run(feed, _random_batches(rng, m, k, int(rng.integers(1, 13))), x, y)
        # per-step losses of tiny batches are ill-conditioned (1-row batches, logits near ReLU kinks): 1e-4;
        # the parameters, which carry every step, stay within 1e-5
        np.testing.assert_allclose(out["losses"], ref, rtol=1e-4, atol=1e-5)
    assert r.rel_err() <= 1e-5, r.rel_err()


@pytest.mark.parametrize("bits", range(1, 9))
def test_epoch_high_bytes_unpack(bits, matrix_adam):
    """Bug 4 (signed uint8 shift): rows of 0xFF / 0x80 / 0x7F / 0xAA / 0x55 bytes decode as the numpy codec."""
    from edge_sdk import bitpack

    spec, sess = matrix_adam
    k = next(k for k, g in spec.graph_groups() if g.kind == "codebook" and g.bits == bits)
    g = spec.groups[k]
    packed = np.array([[v] * g.row_bytes for v in (0xFF, 0x80, 0x7F, 0xAA, 0x55)], np.uint8)
    levels = np.arange(1 << bits, dtype=np.float32) * 1.5 - 3.0
    r = EpochRunner(spec, sess, HP["adam"], seed=2)
    feed, _, _ = r.rows({})
    feed.update({f"g{k}.packed": packed, f"g{k}.levels": levels, "labels": np.zeros(5, np.int64),
                 "batches": np.array([[0, 1]], np.int64), "theta": r.theta, **r.state, **r.hyper(1)})
    (feat,) = sess.run(["features"], feed)
    codes = bitpack.unpack_rows(packed, bits, D)
    np.testing.assert_array_equal(feat, codecs.dequantize(codes, "codebook", bits, {"levels": levels}))
    assert codes.max() == (1 << bits) - 1


def test_epoch_ce_gradient_not_scaled_by_batch(matrix_sgd):
    """Bug 1: the SGD update equals lr * grad of F.cross_entropy (mean), not batch-size times it."""
    spec, sess = matrix_sgd
    hp = {"lr": 0.1, "momentum": 0.0, "weight_decay": 0.0}
    r = EpochRunner(spec, sess, hp, seed=5)
    theta0 = r.theta.copy()
    feed, x, y = r.rows({0: 64})
    net = EagerReference(spec.model, init_params(spec.model, 5), "sgd", hp)
    torch.nn.functional.cross_entropy(net.net(torch.from_numpy(x)), torch.from_numpy(y)).backward()
    out, _ = r.run(feed, np.arange(64)[None], x, y)
    g_graph = (theta0 - out["new.theta"]) / 0.1
    g_torch = np.concatenate([np.concatenate([lin.weight.grad.numpy().reshape(-1), lin.bias.grad.numpy()])
                              for lin in net.linears])
    ratio = np.linalg.norm(g_graph) / np.linalg.norm(g_torch)
    assert abs(ratio - 1) < 1e-4, f"gradient scale {ratio} (64 would be the exporter bug)"


def test_epoch_no_batch_statistics(matrix_adam):
    """Bug 2 (batch statistics): the loss of a batch is the size-weighted mean of the losses of its parts."""
    spec, sess = matrix_adam
    r = EpochRunner(spec, sess, HP["adam"], seed=6)
    feed, x, y = r.rows({0: 5, 10: 7})
    base = dict(feed, theta=r.theta, **r.state, **r.hyper(1))

    def loss(rows):
        return float(sess.run(["losses"], dict(base, batches=np.asarray([rows], np.int64)))[0][0])

    np.testing.assert_allclose(loss(list(range(12))), (5 * loss(list(range(5))) + 7 * loss(list(range(5, 12)))) / 12,
                               rtol=1e-6)


def test_epoch_adam_tiny_eps_and_near_one_beta_survive(matrix_adam):
    """Bug 3 (constant folding of eps=1e-8 / 0.999999): a zero-gradient column gives 0/0 = NaN at step 2 if eps
    vanished. Two steps in one run must match torch.optim.Adam, with beta2 = 0.999999 too."""
    spec, sess = matrix_adam
    hp = dict(HP["adam"], beta2=0.999999, eps=1e-8)
    r = EpochRunner(spec, sess, hp, seed=7)
    kf = next(k for k, g in spec.graph_groups() if g.kind == "float32")
    feed, x, y = r.rows({kf: 16})
    feed[f"g{kf}.values"][:, 0] = 0.0
    x = feed[f"g{kf}.values"]
    r.run(feed, np.stack([np.arange(8), np.arange(8, 16)]), x, y)
    assert np.isfinite(r.theta).all()
    assert r.rel_err() <= 1e-6


def test_epoch_soft_label_loss():
    """Soft-label group (quantized, decoded once in the graph): loss = (1-lam) CE(y) + lam soft-CE(t), K steps."""
    groups = (GraphGroup("x", "codebook", 4, D),
              GraphGroup("t", "uniform_clip", 6, MODEL.num_classes, role="soft_labels"))
    spec = TrainGraphSpec(MODEL, groups, "sgd", variant="epoch")
    sess = _session(spec)
    r = EpochRunner(spec, sess, HP["sgd"], seed=8)
    for _ in range(3):
        feed, x, y = r.rows({0: 10})
        tb = random_group_batch(1, groups[1], 10, r.rng, {"alpha": np.array([0.5], np.float32)})
        feed.update(tb.feed)
        feed["soft_weight"] = np.asarray(0.3, np.float32)
        out, ref = r.run(feed, _random_batches(r.rng, 10, 3, 4), x, y, soft=tb.x, soft_weight=0.3)
        np.testing.assert_allclose(out["losses"], ref, rtol=1e-5)
    assert r.rel_err() <= 1e-5


@pytest.mark.parametrize("with_soft", [False, True])
def test_epoch_label_smoothing_loss(with_soft):
    """A graph exported with label smoothing takes epsilon as an input: loss and updates follow
    torch's ``cross_entropy(label_smoothing=eps)`` (mixed with the soft-label CE when there are soft labels), K
    steps per run; epsilon 0 fed to the same graph is plain CE."""
    groups = (GraphGroup("x", "codebook", 4, D),)
    if with_soft:
        groups += (GraphGroup("t", "uniform_clip", 6, MODEL.num_classes, role="soft_labels"),)
    spec = TrainGraphSpec(MODEL, groups, "adam", variant="epoch", label_smoothing=True)
    assert spec.input_names().index("label_smoothing") == spec.input_names().index("batches") + 1 + with_soft
    sess = _session(spec)
    for eps in (0.2, 0.0):
        r = EpochRunner(spec, sess, HP["adam"], seed=8)
        for _ in range(3):
            feed, x, y = r.rows({0: 10})
            soft, lam = None, 0.0
            if with_soft:
                tb = random_group_batch(1, groups[1], 10, r.rng, {"alpha": np.array([0.5], np.float32)})
                feed.update(tb.feed)
                soft, lam = tb.x, 0.3
                feed["soft_weight"] = np.asarray(lam, np.float32)
            feed["label_smoothing"] = np.asarray(eps, np.float32)
            out, ref = r.run(feed, _random_batches(r.rng, 10, 3, 4), x, y, soft=soft, soft_weight=lam,
                             label_smoothing=eps)
            np.testing.assert_allclose(out["losses"], ref, rtol=1e-5)
        assert r.rel_err() <= 1e-5


def test_epoch_k_steps_in_one_run_equal_k_runs(matrix_adam):
    """Chunking does not change the result: K steps in one run == K runs of one step (same rows, same batches)."""
    spec, sess = matrix_adam
    a = EpochRunner(spec, sess, HP["adam"], seed=9)
    b = EpochRunner(spec, sess, HP["adam"], seed=9)
    feed, x, y = a.rows({0: 10, 3: 6})
    batches = _random_batches(a.rng, 16, 5, 6)
    a.run(feed, batches, x, y)
    for bt in batches:
        b.run(feed, bt[None], x, y)
    np.testing.assert_allclose(a.theta, b.theta, rtol=0, atol=1e-7)


def test_hand_written_backward_matches_autograd():
    """mlp_loss_and_grads (the epoch body's backward) == torch.func.grad_and_value of loss_fn(mlp_forward)."""
    from edge_sdk.server.onnx_export.step import loss_fn, mlp_forward

    rng = np.random.default_rng(10)
    params = [torch.tensor(v) for v in init_params(MODEL, 10).values()]
    x = torch.tensor(rng.standard_normal((9, D)), dtype=torch.float32)
    y = torch.tensor(rng.integers(0, MODEL.num_classes, 9))
    soft = torch.tensor(rng.standard_normal((9, MODEL.num_classes)), dtype=torch.float32)
    eps = torch.tensor(0.15)
    for s, lam, ls in ((None, None, None), (soft, torch.tensor(0.4), None), (None, None, eps), (soft, torch.tensor(0.4), eps)):
        loss, grads = mlp_loss_and_grads(x, y, s, lam, params, MODEL.num_classes, ls)
        ref_g, ref_l = torch.func.grad_and_value(
            lambda *ps, s=s, lam=lam, ls=ls: loss_fn(mlp_forward(x, list(ps)), y, s, lam, ls),
            argnums=tuple(range(len(params))))(*params)
        assert abs(float(loss) - float(ref_l)) < 1e-6
        for g, rg in zip(grads, ref_g, strict=True):
            np.testing.assert_allclose(g.numpy(), rg.numpy(), rtol=1e-5, atol=1e-7)


def test_epoch_graph_batch_dims_stay_symbolic_when_sizes_collide():
    """make_fx gives equal example sizes one symbol: had an example row count equalled num_classes, the graph
    would divide the loss by num_classes instead of the batch size. Widths 11 and 13 (the first example sizes)
    and batches of other sizes must still match eager torch."""
    from edge_sdk.server.onnx_export.epoch import _free_sizes, _static_dims

    model = ModelSpec(input_dim=13, num_classes=11, hidden=(15,))
    spec = TrainGraphSpec(model, (GraphGroup("x", "codebook", 4, 13),
                                  GraphGroup("t", "codebook", 4, 11, role="soft_labels")), "sgd", variant="epoch")
    assert not set(_free_sizes(4, _static_dims(spec))) & _static_dims(spec)
    sess = _session(spec)
    rng = np.random.default_rng(11)
    params = init_params(model, 0)
    hp = {"lr": 0.05, "momentum": 0.0, "weight_decay": 0.0}
    gx = random_group_batch(0, spec.groups[0], 20, rng)
    gt = random_group_batch(1, spec.groups[1], 20, rng)
    y = rng.integers(0, 11, 20).astype(np.int64)
    batches = np.stack([np.arange(0, 7), np.arange(7, 14)])
    feed = {**gx.feed, **gt.feed, "labels": y, "batches": batches, "soft_weight": np.asarray(0.25, np.float32),
            "lr": np.full(2, 0.05, np.float32), "momentum": np.asarray(0, np.float32),
            "weight_decay": np.asarray(0, np.float32),
            "theta": np.concatenate([params[n].reshape(-1) for n, _ in model.param_shapes()]),
            "theta.momentum": np.zeros(model.num_params(), np.float32)}
    (losses,) = sess.run(["losses"], feed)
    ref = EagerReference(model, params, "sgd", hp)
    want = [ref.step(gx.x[b], y[b], gt.x[b], 0.25) for b in batches]
    np.testing.assert_allclose(losses, want, rtol=1e-5)


def test_epoch_variant_is_for_mlps_and_gru_exports_the_step_variant(tmp_path):
    """The epoch graph's backward is written for the MLP: a gru model defaults to the step variant (whose
    backward torch.func derives), and asking for an epoch graph of it is a typed error, not a wrong graph."""
    from edge_sdk.errors import ConfigError
    from edge_sdk.graphmeta import default_variant
    from edge_sdk.server.onnx_export.export import write_graph_for_payload

    gru = ModelSpec(kind="gru", input_dim=3 * 4, in_shape=(3, 4), hidden=(8,), num_classes=5)
    groups = (GraphGroup("cb4", "codebook", 4, 12),)
    assert default_variant(MODEL) == "epoch" and default_variant(gru) == "step"
    with pytest.raises(ConfigError, match="epoch graph variant"):
        TrainGraphSpec(gru, groups, "adam", variant="epoch")
    info = write_graph_for_payload(groups, gru, "adam", tmp_path / "g.onnx")
    meta = json.loads(next(p.value for p in onnx.load(str(info.path)).metadata_props
                           if p.key == "edge_sdk.train_graph"))
    assert meta["version"] == 1 and meta.get("variant", "step") == "step"


@pytest.mark.parametrize("kind", ["float16", "float32"])
def test_epoch_graph_single_raw_group(kind):
    """One float16/float32 group alone: decoding is the identity, and torch.export names the decode model's input
    after its output ("X_orig"); the composed graph must still read the layout's ``g0.values`` (regression: every
    ``--quantizer float16`` distill failed its graph export with "input 'X_orig' ... is not output of any previous
    nodes"). Parity with eager torch over a few steps."""
    spec = TrainGraphSpec(MODEL, (GraphGroup("s", kind, 16 if kind == "float16" else 32, D),), "adam",
                          debug_features=True, variant="epoch")
    sess = _session(spec)
    r = EpochRunner(spec, sess, HP["adam"], seed=5)
    rng = np.random.default_rng(6)
    feed, x, y = r.rows({0: 10})
    out, ref = r.run(feed, _random_batches(rng, 10, 5, 4), x, y)
    np.testing.assert_allclose(out["features"], x, rtol=1e-6, atol=0)
    np.testing.assert_allclose(out["losses"], ref, rtol=1e-4, atol=1e-5)
    assert r.rel_err() <= 1e-5

"""ORT training graph vs eager torch (torch.nn + torch.optim + F.cross_entropy), every quantizer kind and bit
width, plus one test per known silent exporter bug (docs/onnx-graph.md)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from edge_sdk import bitpack, codecs  # noqa: E402
from edge_sdk.graphmeta import HYPER_NAMES, GraphGroup, TrainGraphSpec  # noqa: E402
from edge_sdk.modelspec import ModelSpec, init_params  # noqa: E402
from edge_sdk.server.onnx_export.export import check_graph  # noqa: E402
from edge_sdk.server.onnx_export.testing import (  # noqa: E402
    EagerReference,
    cached_training_graph,
    init_state,
    pack_rows_reference,
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
    spec = TrainGraphSpec(MODEL, tuple(MATRIX), "adam", debug_features=True)
    return spec, _session(spec)


AFFINE = ([GraphGroup(f"as{b}", "affine_set", b, D) for b in range(1, 9)]
          + [GraphGroup(f"af{b}", "affine_feature", b, D) for b in range(1, 9)]
          + [GraphGroup(f"ap{b}", "affine_sample", b, D) for b in range(1, 9)])


@pytest.fixture(scope="module")
def affine_adam():
    spec = TrainGraphSpec(MODEL, tuple(AFFINE), "adam", debug_features=True)
    return spec, _session(spec)


def test_dequantize_affine_every_granularity_and_width(affine_adam):
    """features output == edge_sdk.codecs.dequantize bit for bit for affine_set/feature/sample at 1..8 bits."""
    spec, sess = affine_adam
    r = Runner(spec, sess, HP["adam"], seed=4)
    for k, g in spec.graph_groups():
        out, xo, _, _ = r.step({k: 7})
        np.testing.assert_array_equal(out["features"], xo, err_msg=f"group {g.name}")
    # mixed batches over several affine groups: parity of the training step itself
    for _ in range(5):
        r.step({k: int(r.rng.integers(0, 9)) for k, _ in spec.graph_groups()})
    assert r.max_rel_err() < 1e-4


@pytest.fixture(scope="module")
def small_sgd():
    groups = (GraphGroup("a", "codebook", 3, D), GraphGroup("b", "symmetric_per_sample", 8, D),
              GraphGroup("c", "uniform_clip", 5, D))
    spec = TrainGraphSpec(MODEL, groups, "sgd", debug_features=True)
    return spec, _session(spec)


class Runner:
    """Feeds the ORT graph and the eager reference the same fresh random batches."""

    def __init__(self, spec: TrainGraphSpec, sess, hp: dict[str, float], seed: int):
        self.spec, self.sess, self.hp = spec, sess, dict(hp)
        self.rng = np.random.default_rng(seed)
        self.params = init_params(spec.model, seed)
        self.state = init_state(spec, self.params)
        self.ref = EagerReference(spec.model, self.params, spec.optimizer, self.hp)
        self.t = 0
        # fixed per-group params (codebook levels / alpha) like a real payload
        self.fixed = {k: random_group_batch(k, g, 1, self.rng).feed for k, g in spec.graph_groups()}

    def batch(self, sizes: dict[int, int]):
        feed: dict[str, np.ndarray] = {}
        xs, ys = [], []
        for k, g in self.spec.graph_groups():
            if g.role != "samples":
                continue
            fixed = {} if g.per_row_params else {n.split(".", 1)[1]: v for n, v in self.fixed[k].items()
                                                 if not n.endswith((".packed", ".values"))}
            gb = random_group_batch(k, g, sizes.get(k, 0), self.rng, fixed)
            feed.update(gb.feed)
            xs.append(gb.x)
            ys.append(self.rng.integers(0, self.spec.model.num_classes, sizes.get(k, 0)))
        return feed, np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.int64)

    def step(self, sizes: dict[int, int]):
        feed, x, y = self.batch(sizes)
        self.t += 1
        feed["labels"] = y
        for h in HYPER_NAMES[self.spec.optimizer]:
            feed[h] = np.asarray(float(self.t) if h == "step" else self.hp[h], np.float32)
        feed.update(self.params)
        feed.update(self.state)
        out = dict(zip([o.name for o in self.sess.get_outputs()], self.sess.run(None, feed), strict=True))
        ref_loss = self.ref.step(x, y)
        self.params = {n: out[f"new.{n}"] for n in self.spec.param_names()}
        self.state = {n: out[f"new.{n}"] for n in self.spec.state_names()}
        return out, x, float(out["loss"]), ref_loss

    def max_rel_err(self) -> float:
        ref = self.ref.params()
        return max(rel_err(self.params[n], ref[n]) for n in self.spec.param_names())


def test_graph_is_plain_onnx(matrix_adam, small_sgd):
    for spec, _ in (matrix_adam, small_sgd):
        model = onnx.load_from_string(cached_training_graph(spec))
        check_graph(model, max_opset=18)
        assert {(i.domain, i.version) for i in model.opset_import} == {("", 18)}
        assert model.ir_version <= 9
        assert not any(n.op_type.startswith("BatchNorm") for n in model.graph.node)
        inits = [onnx.numpy_helper.to_array(t) for t in model.graph.initializer]
        # float tables are only the unpacking divisors 2**o (exact powers of two), never weights
        floats = [a for a in inits if a.dtype.kind == "f" and a.size > 1]
        assert all(a.size <= D and np.all(np.exp2(np.round(np.log2(a))) == a) for a in floats)
        assert sum(a.nbytes for a in inits) <= 3 * 8 * D * len(spec.groups) + 1024  # index tables only
        assert [i.name for i in model.graph.input] == spec.input_names()


def test_dequantize_every_kind_and_width(matrix_adam):
    """features output == edge_sdk.codecs.dequantize for every (kind, bits); packing by edge_sdk.bitpack too."""
    spec, sess = matrix_adam
    r = Runner(spec, sess, HP["adam"], seed=1)
    for k, g in spec.graph_groups():
        sizes = {k: 9}
        feed, x, y = r.batch(sizes)
        if not g.raw:  # the payload packer and the reference packer agree
            codes = bitpack.unpack_rows(feed[f"g{k}.packed"], g.bits, g.d)
            np.testing.assert_array_equal(bitpack.pack_rows(codes, g.bits), feed[f"g{k}.packed"])
        out, xo, _, _ = r.step(sizes)
        np.testing.assert_allclose(out["features"], xo, rtol=1e-6, atol=0, err_msg=f"group {g.name}")


@pytest.mark.parametrize("bits", range(1, 9))
def test_high_bytes_unpack(bits, matrix_adam):
    """Bug 4 (signed uint8 shift): rows of all-0xFF / 0x80 / 0x7F bytes unpack as the numpy codec does."""
    spec, sess = matrix_adam
    k = next(k for k, g in spec.graph_groups() if g.kind == "codebook" and g.bits == bits)
    g = spec.groups[k]
    rb = g.row_bytes
    packed = np.array([[0xFF] * rb, [0x80] * rb, [0x7F] * rb, [0xAA] * rb, [0x55] * rb], np.uint8)
    levels = np.arange(1 << bits, dtype=np.float32) * 1.5 - 3.0
    r = Runner(spec, sess, HP["adam"], seed=2)
    feed, _, _ = r.batch({})
    feed[f"g{k}.packed"] = packed
    feed[f"g{k}.levels"] = levels
    feed["labels"] = np.zeros(5, np.int64)
    for h in HYPER_NAMES["adam"]:
        feed[h] = np.asarray(1.0 if h == "step" else HP["adam"][h], np.float32)
    feed.update(r.params)
    feed.update(r.state)
    (feat,) = sess.run(["features"], feed)
    codes = bitpack.unpack_rows(packed, bits, D)
    np.testing.assert_array_equal(pack_rows_reference(codes, bits)[:, :rb], packed if (D * bits) % 8 == 0 else
                                  pack_rows_reference(codes, bits))
    np.testing.assert_array_equal(feat, codecs.dequantize(codes, "codebook", bits, {"levels": levels}))
    assert codes.max() == (1 << bits) - 1  # the 0xFF row really holds the top code


def _composition(rng, spec, total=24, zero_prob=0.4):
    ks = [k for k, g in spec.graph_groups() if g.role == "samples"]
    active = [k for k in ks if rng.random() > zero_prob] or [ks[0]]
    cut = np.sort(rng.integers(0, total + 1, len(active) - 1))
    parts = np.diff(np.concatenate([[0], cut, [total]]))
    return dict(zip(active, (int(p) for p in parts), strict=True))


@pytest.mark.parametrize("fixture", ["matrix_adam", "small_sgd"])
def test_parity_1_and_100_steps(fixture, request):
    """Fresh random multi-group batches (some groups empty); params within 1e-5 relative after 1 and 100 steps."""
    spec, sess = request.getfixturevalue(fixture)
    r = Runner(spec, sess, HP[spec.optimizer], seed=3)
    rng = np.random.default_rng(4)
    _, _, loss, ref_loss = r.step(_composition(rng, spec))
    assert abs(loss - ref_loss) <= 1e-5 * max(1.0, abs(ref_loss))
    assert r.max_rel_err() <= 1e-5
    for _ in range(99):
        _, _, loss, ref_loss = r.step(_composition(rng, spec))
    assert abs(loss - ref_loss) <= 1e-5 * max(1.0, abs(ref_loss))
    assert r.max_rel_err() <= 1e-5, r.max_rel_err()


def test_ce_gradient_not_scaled_by_batch(small_sgd):
    """Bug 1: the SGD update equals lr * grad of F.cross_entropy (mean), not batch-size times it."""
    spec, sess = small_sgd
    hp = {"lr": 0.1, "momentum": 0.0, "weight_decay": 0.0}
    r = Runner(spec, sess, hp, seed=5)
    p0 = {n: v.copy() for n, v in r.params.items()}
    feed, x, y = r.batch({0: 64})
    net = EagerReference(spec.model, p0, "sgd", hp)
    torch.nn.functional.cross_entropy(net.net(torch.from_numpy(x)), torch.from_numpy(y)).backward()
    feed.update({"labels": y, "lr": np.asarray(0.1, np.float32), "momentum": np.asarray(0, np.float32),
                 "weight_decay": np.asarray(0, np.float32)})
    feed.update(r.params)
    feed.update(r.state)
    new_w = sess.run(["new.fc0.weight"], feed)[0]
    g_graph = (p0["fc0.weight"] - new_w) / 0.1
    g_torch = net.linears[0].weight.grad.numpy()
    ratio = np.linalg.norm(g_graph) / np.linalg.norm(g_torch)
    assert abs(ratio - 1) < 1e-4, f"gradient scale {ratio} (64 would be the exporter bug)"


def test_no_batch_statistics(matrix_adam):
    """Bug 2 (BatchNorm inference semantics): the loss of a batch is the size-weighted mean of the losses of its
    parts, i.e. no sample's loss depends on the other samples of the batch."""
    spec, sess = matrix_adam
    r = Runner(spec, sess, HP["adam"], seed=6)
    feed, x, y = r.batch({0: 5, 10: 7})
    base = {"labels": y, **{h: np.asarray(1.0 if h == "step" else HP["adam"][h], np.float32)
                             for h in HYPER_NAMES["adam"]}, **r.params, **r.state}
    (loss_all,) = sess.run(["loss"], {**feed, **base})
    parts = []
    for keep, rows in ((0, slice(0, 5)), (10, slice(5, 12))):
        f = dict(feed)
        for k, _ in spec.graph_groups():
            if k != keep:
                for name in list(f):
                    if name.startswith(f"g{k}.") and name.split(".")[1] in ("packed", "values", "scale"):
                        f[name] = f[name][:0]
        parts.append(sess.run(["loss"], {**f, **base, "labels": y[rows]})[0])
    np.testing.assert_allclose(loss_all, (5 * parts[0] + 7 * parts[1]) / 12, rtol=1e-6)


def test_adam_tiny_eps_and_near_one_beta_survive(matrix_adam):
    """Bug 3 (constant folding of eps=1e-8 / 0.999999): a parameter whose gradient is exactly zero (feature
    column always 0 -> fc0.weight[:, 0] gets 0 grad) gives 0/0 = NaN at step 2 if eps vanished. Step 2 must
    match torch.optim.Adam, with beta2 = 0.999999 too."""
    spec, sess = matrix_adam
    hp = dict(HP["adam"], beta2=0.999999, eps=1e-8)
    r = Runner(spec, sess, hp, seed=7)
    kf = next(k for k, g in spec.graph_groups() if g.kind == "float32")
    for _ in range(2):
        feed, x, y = r.batch({kf: 16})
        feed[f"g{kf}.values"][:, 0] = 0.0
        x = feed[f"g{kf}.values"]
        r.t += 1
        feed.update({"labels": y, **{h: np.asarray(float(r.t) if h == "step" else hp[h], np.float32)
                                     for h in HYPER_NAMES["adam"]}, **r.params, **r.state})
        out = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feed), strict=True))
        r.ref.step(x, y)
        r.params = {n: out[f"new.{n}"] for n in spec.param_names()}
        r.state = {n: out[f"new.{n}"] for n in spec.state_names()}
    assert all(np.isfinite(v).all() for v in r.params.values())
    assert r.max_rel_err() <= 1e-6


def test_soft_label_loss():
    """Soft-label group (quantized, dequantized in the graph): loss = (1-lam) CE(y) + lam soft-CE(t)."""
    groups = (GraphGroup("x", "codebook", 4, D), GraphGroup("t", "uniform_clip", 6, MODEL.num_classes,
                                                             role="soft_labels"))
    spec = TrainGraphSpec(MODEL, groups, "sgd")
    sess = _session(spec)
    hp = HP["sgd"]
    r = Runner(spec, sess, hp, seed=8)
    for _ in range(3):
        feed, x, y = r.batch({0: 10})
        tb = random_group_batch(1, groups[1], 10, r.rng, {"alpha": np.array([0.5], np.float32)})
        feed.update(tb.feed)
        t = tb.x
        feed.update({"labels": y, "soft_weight": np.asarray(0.3, np.float32),
                     **{h: np.asarray(hp[h], np.float32) for h in hp},
                     **r.params, **r.state})
        out = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feed), strict=True))
        ref_loss = r.ref.step(x, y, soft=t, soft_weight=0.3)
        assert abs(float(out["loss"]) - ref_loss) < 1e-5 * max(1, abs(ref_loss))
        r.params = {n: out[f"new.{n}"] for n in spec.param_names()}
        r.state = {n: out[f"new.{n}"] for n in spec.state_names()}
    assert r.max_rel_err() <= 1e-5


def test_label_smoothing_loss():
    """Step graph exported with label smoothing: loss and SGD updates follow torch's
    ``cross_entropy(label_smoothing=eps)``; the input comes after ``labels`` (and ``soft_weight``)."""
    groups = (GraphGroup("x", "codebook", 4, D),)
    spec = TrainGraphSpec(MODEL, groups, "sgd", label_smoothing=True)
    names = spec.input_names()
    assert names[names.index("labels") + 1] == "label_smoothing" and spec.to_meta()["label_smoothing"] is True
    assert "label_smoothing" not in TrainGraphSpec(MODEL, groups, "sgd").to_meta()
    sess = _session(spec)
    hp = HP["sgd"]
    r = Runner(spec, sess, hp, seed=8)
    for _ in range(3):
        feed, x, y = r.batch({0: 10})
        feed.update({"labels": y, "label_smoothing": np.asarray(0.2, np.float32),
                     **{h: np.asarray(hp[h], np.float32) for h in hp}, **r.params, **r.state})
        out = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feed), strict=True))
        ref_loss = r.ref.step(x, y, label_smoothing=0.2)
        assert abs(float(out["loss"]) - ref_loss) < 1e-5 * max(1, abs(ref_loss))
        r.params = {n: out[f"new.{n}"] for n in spec.param_names()}
        r.state = {n: out[f"new.{n}"] for n in spec.state_names()}
    assert r.max_rel_err() <= 1e-5


@settings(max_examples=60, deadline=None)
@given(bits=st.integers(1, 8), d=st.integers(1, 19), n=st.integers(0, 5), seed=st.integers(0, 2**31 - 1))
def test_unpack_rule_matches_bitpack(bits, d, n, seed):
    """The graph's unpacking rule (eager torch, same function that is exported) == edge_sdk.bitpack for any D."""
    from edge_sdk.server.onnx_export.step import unpack_codes

    codes = np.random.default_rng(seed).integers(0, 1 << bits, (n, d)).astype(np.uint8)
    packed = bitpack.pack_rows(codes, bits)
    got = unpack_codes(torch.from_numpy(packed), GraphGroup("g", "codebook", bits, d)).numpy()
    np.testing.assert_array_equal(got, codes)


def test_export_prints_no_torchvision_notices(capfd):
    """Issue 10 item 8: the exporter's "torchvision is not installed. Skipping torchvision::..." warnings (four per
    export) are silenced; nothing else of the exporter is hidden (the filter matches that message only)."""
    import logging

    from edge_sdk.server.onnx_export.export import _ExporterNoise, training_graph_bytes

    spec = TrainGraphSpec(ModelSpec(input_dim=3, num_classes=2, hidden=(4,)), (GraphGroup("g", "float32", 32, 3),),
                          "sgd")
    training_graph_bytes(spec)
    err = capfd.readouterr().err
    assert "torchvision" not in err
    f = _ExporterNoise()
    rec = logging.LogRecord(_ExporterNoise.LOGGER, logging.WARNING, "", 0, "torchvision is not installed. Skipping %s",
                            ("torchvision::nms",), None)
    other = logging.LogRecord(_ExporterNoise.LOGGER, logging.WARNING, "", 0, "something else", (), None)
    assert not f.filter(rec) and f.filter(other)

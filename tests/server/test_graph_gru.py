"""The BM-Case2 temporal model (ModelSpec kind ``gru``) as a plain-ONNX training step and inference graph:
ORT vs eager torch (torch.nn.GRU + Linear head + skip, torch.optim.Adam / SGD, F.cross_entropy) after 1 and 30
steps on fresh random quantized batches."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from edge_sdk.graphmeta import HYPER_NAMES, GraphGroup, TrainGraphSpec  # noqa: E402
from edge_sdk.modelspec import ModelSpec, init_params  # noqa: E402
from edge_sdk.server.onnx_export.export import check_graph, export_inference_graph  # noqa: E402
from edge_sdk.server.onnx_export.testing import (  # noqa: E402
    cached_training_graph,
    init_state,
    random_group_batch,
    rel_err,
)

torch.set_num_threads(1)
K, FEAT, H, C = 3, 4, 8, 6
MODEL = ModelSpec(kind="gru", input_dim=K * FEAT, num_classes=C, hidden=(H,), in_shape=(K, FEAT))
HP = {"sgd": {"lr": 0.05, "momentum": 0.9, "weight_decay": 1e-3},
      "adam": {"lr": 3e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 1e-3}}


class Eager(torch.nn.Module):
    def __init__(self, p: dict[str, np.ndarray]) -> None:
        super().__init__()
        self.gru = torch.nn.GRU(FEAT, H, batch_first=True)
        self.head = torch.nn.Linear(H, C)
        self.skip = torch.nn.Linear(FEAT, C, bias=False)
        with torch.no_grad():
            for a, b in (("weight_ih_l0", "gru.weight_ih"), ("weight_hh_l0", "gru.weight_hh"),
                         ("bias_ih_l0", "gru.bias_ih"), ("bias_hh_l0", "gru.bias_hh")):
                getattr(self.gru, a).copy_(torch.from_numpy(p[b]))
            self.head.weight.copy_(torch.from_numpy(p["head.weight"]))
            self.head.bias.copy_(torch.from_numpy(p["head.bias"]))
            self.skip.weight.copy_(torch.from_numpy(p["skip.weight"]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xs = x.reshape(-1, K, FEAT)
        _, h = self.gru(xs)
        return self.head(h[0]) + self.skip(xs[:, -1])

    def named(self) -> dict[str, np.ndarray]:
        return {"gru.weight_ih": self.gru.weight_ih_l0, "gru.weight_hh": self.gru.weight_hh_l0,
                "gru.bias_ih": self.gru.bias_ih_l0, "gru.bias_hh": self.gru.bias_hh_l0,
                "head.weight": self.head.weight, "head.bias": self.head.bias, "skip.weight": self.skip.weight}


@pytest.mark.parametrize("optimizer,smoothing", [("adam", 0.0), ("sgd", 0.0), ("adam", 0.15)])
def test_gru_training_step_matches_eager(optimizer: str, smoothing: float) -> None:
    """The GRU step graph against eager torch; with ``smoothing`` > 0 a graph exported with the
    ``label_smoothing`` input against ``cross_entropy(label_smoothing=...)``."""
    groups = (GraphGroup("a", "codebook", 4, K * FEAT), GraphGroup("b", "symmetric_per_sample", 6, K * FEAT))
    spec = TrainGraphSpec(MODEL, groups, optimizer, label_smoothing=smoothing > 0)
    model = onnx.load_from_string(cached_training_graph(spec))
    check_graph(model, max_opset=18)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(3)
    params = init_params(MODEL, 5)
    state = init_state(spec, params)
    ref = Eager(params)
    hp = HP[optimizer]
    opt = (torch.optim.Adam(ref.parameters(), lr=hp["lr"], betas=(hp["beta1"], hp["beta2"]), eps=hp["eps"],
                            weight_decay=hp["weight_decay"], foreach=False) if optimizer == "adam" else
           torch.optim.SGD(ref.parameters(), lr=hp["lr"], momentum=hp["momentum"], weight_decay=hp["weight_decay"]))
    fixed = {0: random_group_batch(0, groups[0], 1, rng).feed}
    for t in range(1, 31):
        feed, xs = {}, []
        for k, g in enumerate(groups):
            keep = {"levels": fixed[0]["g0.levels"]} if k == 0 else None
            gb = random_group_batch(k, g, 7 + k, rng, keep)
            feed.update(gb.feed)
            xs.append(gb.x)
        x = np.concatenate(xs).astype(np.float32)
        y = rng.integers(0, C, len(x)).astype(np.int64)
        feed["labels"] = y
        if smoothing:
            feed["label_smoothing"] = np.asarray(smoothing, np.float32)
        for h in HYPER_NAMES[optimizer]:
            feed[h] = np.asarray(float(t) if h == "step" else hp[h], np.float32)
        feed.update(params)
        feed.update(state)
        out = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feed), strict=True))
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(ref(torch.from_numpy(x)), torch.from_numpy(y),
                                                 label_smoothing=smoothing)
        loss.backward()
        opt.step()
        lv = float(loss.detach())
        assert abs(float(out["loss"]) - lv) < 1e-4 * max(1.0, abs(lv))
        params = {n: out[f"new.{n}"] for n in spec.param_names()}
        state = {n: out[f"new.{n}"] for n in spec.state_names()}
        if t in (1, 30):
            want = {k: v.detach().numpy() for k, v in ref.named().items()}
            assert max(rel_err(params[n], want[n]) for n in params) < 1e-4, t


def test_gru_inference_graph_matches_torch(tmp_path) -> None:
    from edge_sdk.server.models import forward, init_torch_params

    p = init_params(MODEL, 2)
    info = export_inference_graph(MODEL, tmp_path / "g.onnx", params=p)
    sess = ort.InferenceSession(str(info.path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((11, K * FEAT)).astype(np.float32)
    got = sess.run(None, {"features": x})[0]
    want = forward(MODEL, init_torch_params(MODEL, 2), torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("k", [1, 4])
def test_device_inference_model_matches_torch(k: int) -> None:
    """device/evaluate.py writes the gru inference graph without the onnx package; it equals the torch model."""
    from edge_sdk.device.evaluate import mlp_inference_model
    from edge_sdk.server.models import forward

    spec = ModelSpec(kind="gru", input_dim=8 * k, in_shape=(k, 8), hidden=(16,), num_classes=32,
                     skip_classes=tuple(range(0, 32, 4)), skip_gain=10.0)
    rng = np.random.default_rng(1)
    p = {n: v + 0.1 * rng.standard_normal(v.shape).astype(np.float32) for n, v in init_params(spec, 3).items()}
    model = mlp_inference_model(spec, p)
    onnx.checker.check_model(onnx.load_from_string(model))
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    x = rng.standard_normal((5, 8 * k)).astype(np.float32)
    want = forward(spec, {n: torch.from_numpy(v) for n, v in p.items()}, torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(sess.run(None, {"features": x})[0], want, rtol=1e-5, atol=1e-5)


def test_residual_start_is_sample_and_hold() -> None:
    """The untrained gru with skip_classes ranks the measured beams like the latest measurement, and puts every
    unmeasured beam below the best measured one."""
    from edge_sdk.server.models import forward, init_torch_params

    setb = (0, 4, 10, 14, 17, 21, 27, 31)
    spec = ModelSpec(kind="gru", input_dim=3 * 8, in_shape=(3, 8), hidden=(16,), num_classes=32,
                     skip_classes=setb, skip_gain=10.0)
    x = -np.abs(np.random.default_rng(2).standard_normal((200, 24))).astype(np.float32)  # <= 0 like per-sample-max
    logits = forward(spec, init_torch_params(spec, 0), torch.from_numpy(x)).numpy()
    np.testing.assert_array_equal(logits.argmax(1), np.asarray(setb)[x[:, -8:].argmax(1)])

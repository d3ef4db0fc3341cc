"""Device training (ORT graph) vs server torch training: same payload, init, batch order, optimizer and LR
schedule -> Top-1 on the test set within 1 point (and parameters close). Uses the reference test set when it
exists, else the bundle's synthetic local measurements."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edge_sdk.beam.h5reader import read_beam_h5  # noqa: E402
from edge_sdk.beam.kpis import beam_kpis  # noqa: E402
from edge_sdk.beam.taskspec import BeamTaskSpec  # noqa: E402
from edge_sdk.device.trainer import Trainer  # noqa: E402
from edge_sdk.modelspec import iter_batches  # noqa: E402
from edge_sdk.server.onnx_export.testing import EagerReference, rel_err  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "tests" / "device" / "data" / "beam_adam"
REFERENCE_TEST = REPO / "datasets" / "3gpp" / "reference" / "test.h5"
torch.set_num_threads(1)


def _torch_train(tr: Trainer) -> dict[str, np.ndarray]:
    """Eager torch (nn.Linear, F.cross_entropy, torch.optim.Adam) over the same batches and LR schedule."""
    c = tr.config.recipe
    x, y = tr.payload.samples()
    init = tr.initial_state().params
    ref = EagerReference(tr.graph.model, init, tr.graph.optimizer,
                         {"lr": c.lr, "momentum": c.momentum, "weight_decay": c.weight_decay,
                          "beta1": c.beta1, "beta2": c.beta2, "eps": c.eps})
    for t, _, idx in iter_batches(len(x), c.batch_size, tr.config.seed, 0, c.steps):
        idx = np.sort(idx)
        ref.step(x[idx], y[idx], lr=c.lr_at(t))
    return ref.params()


def _top1(params, task, path) -> float:
    spec = BeamTaskSpec.from_dict(task["beam"])
    ds = read_beam_h5(path)
    h = spec.inputs(ds)
    n = len(params) // 2
    for i in range(n):
        h = h @ params[f"fc{i}.weight"].T + params[f"fc{i}.bias"]
        if i < n - 1:
            h = np.maximum(h, 0)
    return float(beam_kpis(h, spec.target_rsrp(ds))["top1"])


def test_device_top1_within_one_point_of_torch():
    tr = Trainer(BUNDLE / "payload.bin", BUNDLE / "graph.onnx", epochs=12, batch_size=32, schedule="cosine")
    dev = tr.train().params
    srv = _torch_train(tr)
    assert max(rel_err(dev[n], srv[n]) for n in dev) < 1e-3
    test_path = REFERENCE_TEST if REFERENCE_TEST.exists() else BUNDLE / "local.h5"
    a, b = _top1(dev, tr.task, test_path), _top1(srv, tr.task, test_path)
    assert abs(a - b) <= 0.01, (a, b)
    assert a > 1.5 / tr.graph.model.num_classes  # it learned something

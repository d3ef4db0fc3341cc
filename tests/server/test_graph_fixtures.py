"""`edge-sdk export-graph`, the shipped device fixtures (staleness), the server inference graph and the
Python API (`write_graph_for_payload` from payload layouts)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from click.testing import CliRunner  # noqa: E402

from edge_sdk.cli.graph_cmd import cli as export_graph_cli  # noqa: E402
from edge_sdk.errors import ConfigError  # noqa: E402
from edge_sdk.graphmeta import TrainGraphSpec, graph_groups_from  # noqa: E402
from edge_sdk.modelspec import ModelSpec, init_params  # noqa: E402
from edge_sdk.payload import GroupLayout  # noqa: E402
from edge_sdk.server.onnx_export.export import export_inference_graph, write_graph_for_payload  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "tests" / "device" / "data"
torch.set_num_threads(1)


@pytest.mark.parametrize("bundle,variant", [("beam_adam", "epoch"), ("soft_sgd", "epoch"), ("beam_adam_step", "step")])
def test_shipped_fixture_graph_is_fresh(bundle, variant, tmp_path):
    """Re-exporting the graph for the shipped payload gives exactly the shipped graph and the digest the payload
    names; otherwise run `.venv/bin/python tools/make_device_fixtures.py`."""
    out = tmp_path / "g.onnx"
    r = CliRunner().invoke(export_graph_cli, ["--payload", str(DATA / bundle / "payload.bin"), "--out", str(out),
                                              "--variant", variant])
    assert r.exit_code == 0, r.output
    res = json.loads(r.output[r.output.index("{"):])
    assert res["payload_names_this_graph"], "stale fixtures: run tools/make_device_fixtures.py"
    assert out.read_bytes() == (DATA / bundle / "graph.onnx").read_bytes()


def test_graph_groups_from_layouts_and_errors(tmp_path):
    layouts = [GroupLayout.for_kind("hi", "uniform_clip", 6, 10, 8, per_feature=True),
               GroupLayout.for_kind("lo", "codebook", 2, 20, 8),
               GroupLayout.for_kind("drop", "none", 0, 5, 8)]
    gg = graph_groups_from(layouts)
    assert [g.per_feature for g in gg] == [True, False, False]
    spec = TrainGraphSpec(ModelSpec(input_dim=8, num_classes=4, hidden=(4,)), gg, "adam")
    assert spec.input_names()[:5] == ["g0.packed", "g0.alpha", "g1.packed", "g1.levels", "labels"]
    with pytest.raises(ConfigError, match="input_dim"):
        write_graph_for_payload(layouts, ModelSpec(input_dim=9, num_classes=4, hidden=(4,)), "adam",
                                tmp_path / "x.onnx")
    with pytest.raises(ConfigError, match="convnet"):
        write_graph_for_payload(layouts, ModelSpec(kind="convnet", num_classes=4, in_shape=(1, 8, 8)), "adam",
                                tmp_path / "x.onnx")
    with pytest.raises(ConfigError, match="optimizer"):
        write_graph_for_payload(layouts, ModelSpec(input_dim=8, num_classes=4, hidden=(4,)), "lamb",
                                tmp_path / "x.onnx")


def test_inference_graph_weights_as_inputs():
    spec = ModelSpec(input_dim=5, num_classes=3, hidden=(6,))
    import tempfile

    with tempfile.TemporaryDirectory() as td:
        info = export_inference_graph(spec, Path(td) / "inf.onnx")
        sess = ort.InferenceSession(str(info.path), providers=["CPUExecutionProvider"])
        assert info.size == (Path(td) / "inf.onnx").stat().st_size
    p = init_params(spec, 0)
    x = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
    (z,) = sess.run(None, {"features": x, **p})
    h = np.maximum(x @ p["fc0.weight"].T + p["fc0.bias"], 0) @ p["fc1.weight"].T + p["fc1.bias"]
    np.testing.assert_allclose(z, h, rtol=1e-5, atol=1e-6)
    assert [i.name for i in sess.get_inputs()] == ["features", *p]


def test_adq_layout_end_to_end(tmp_path):
    """ADQ-style payload: b_high and b_low symmetric_per_sample groups plus a dropped (bits 0) group; the graph
    is exported from the layouts before the payload exists, the payload names it, the device trains on it."""
    from edge_sdk import codecs
    from edge_sdk.device.trainer import Trainer
    from edge_sdk.modelspec import TrainRecipe
    from edge_sdk.payload import SampleGroup, write_payload

    rng = np.random.default_rng(0)
    model = ModelSpec(input_dim=6, num_classes=4, hidden=(8,))
    x = rng.standard_normal((90, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + 2 * (x[:, 1] > 0)
    c_hi, p_hi = codecs.quantize(x[:40], "symmetric_per_sample", 8)
    c_lo, p_lo = codecs.quantize(x[40:80], "symmetric_per_sample", 2)
    groups = [SampleGroup("hi", "symmetric_per_sample", 8, data=c_hi, params=p_hi, labels=y[:40]),
              SampleGroup("lo", "symmetric_per_sample", 2, data=c_lo, params=p_lo, labels=y[40:80]),
              SampleGroup("drop", "none", 0, n=10, d=6)]
    info = write_graph_for_payload([g.layout() for g in groups], model, "adam", tmp_path / "g.onnx")
    recipe = TrainRecipe(optimizer="adam", lr=0.02, batch_size=16).for_epochs(30, 80)
    task = {"kind": "beam", "model": model.to_dict(), "train": recipe.to_payload()}
    write_payload(tmp_path / "p.bin", groups, num_classes=4, task=task, graph=info.digest())
    tr = Trainer(tmp_path / "p.bin", tmp_path / "g.onnx")
    assert tr.data.n == 80
    st = tr.train()
    assert st.history[-1]["loss"] < 0.7 * st.history[0]["loss"]

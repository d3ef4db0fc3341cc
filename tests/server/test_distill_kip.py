"""KIP and the selection baselines as distillation methods (issue #11)."""

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from edge_sdk.server.coresets import select  # noqa: E402
from edge_sdk.server.distill import DistillConfig, distill, method_names  # noqa: E402
from edge_sdk.server.distill.kip import KIPMatcher, KIPSettings, mlp_ntk  # noqa: E402
from tests.server.test_distill import tiny_task  # noqa: E402

FAST_KIP = KIPSettings(teacher_steps=100, target_batch=128)


@pytest.fixture
def fast_kip(monkeypatch):
    monkeypatch.setattr(KIPMatcher, "settings", FAST_KIP)


def test_methods_are_registered():
    for m in ("kip", "quadd-kip", "ptq-kip", "kmeans", "kmedoids", "herding"):
        assert m in method_names()


def test_ntk_is_symmetric_positive_semidefinite():
    X = torch.randn(20, 6, dtype=torch.float64)
    K = mlp_ntk(X, X, (16, 16))
    assert torch.allclose(K, K.T, atol=1e-10)
    assert float(torch.linalg.eigvalsh(K).min()) > -1e-8


def test_quadd_kip_lowers_its_loss_and_moves_the_rows(fast_kip):
    d = tiny_task()
    cfg = DistillConfig(method="quadd-kip", quantizer="codebook", bits=3, lr_data=0.05, iterations=25, seed=0,
                        select="none")
    r = distill(d, cfg, 900)
    r0 = distill(d, DistillConfig(**{**cfg.__dict__, "iterations": 0}), 900)
    assert r.info["host"] == "kip"
    assert r.info["probe_loss_final"] < r.info["probe_loss_init"]
    assert r.point.bytes <= 900 and r.compact.n == r0.compact.n
    assert np.any(r.compact.X != r0.compact.X)  # distillation changed the stored rows
    assert 0.0 < r.info["rows_changed_frac"] <= 1.0 and r.info["move_rms"] > 0 and r.info["move_rms_nn"] > 0
    assert r0.info["rows_changed_frac"] == 0.0 and r0.info["move_rms"] == 0.0  # no iterations: nothing moved


@pytest.mark.parametrize("method", ["kmeans", "kmedoids", "herding"])
def test_selection_methods_match_the_coreset_selectors(method):
    d = tiny_task()
    r = distill(d, DistillConfig(method=method, quantizer="float32", seed=3), budget=900)
    counts = np.bincount(r.compact.y, minlength=4)
    X, y = select(method, d.X_train, d.y_train, counts, 3)
    np.testing.assert_array_equal(r.compact.X, X)
    np.testing.assert_array_equal(r.compact.y, y)
    assert r.losses == [] and r.info["selection"] == method and r.point.bytes <= 900


@pytest.mark.parametrize("method,extra", [("kmeans", ["--quantizer", "codebook", "--bits", "4"]),
                                          ("quadd-kip", ["--bits", "4", "--iterations", "2"])])
def test_cli_on_the_beam_reference_data(tmp_path, method, extra, fast_kip):
    from click.testing import CliRunner

    from edge_sdk.cli.main import cli

    ref = Path(__file__).resolve().parents[2] / "datasets/3gpp/reference"
    out = tmp_path / "run"
    res = CliRunner().invoke(cli, ["distill", "--data", str(ref / "train.h5"), "--test", str(ref / "test.h5"),
                                   "--method", method, "--compression", "180x", *extra, "--seeds", "1",
                                   "--steps", "20", "--no-progress", "--out", str(out)])
    assert res.exit_code == 0, res.output
    rep = json.loads((out / "report.json").read_text())
    assert rep["method"] == method and rep["payload_bytes"] <= rep["budget"]["bytes"]
    assert (out / "graph.onnx").exists()

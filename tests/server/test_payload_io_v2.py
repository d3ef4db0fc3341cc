"""The server writes payload format v2 on request (payload_io / distill --payload-format 2): planned size = file
size, the task blob beside the payload, the stored recipe is what the evaluation used."""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edge_sdk.errors import ConfigError
from edge_sdk.modelspec import TrainRecipe
from edge_sdk.payload import read_payload
from edge_sdk.payload.format_v2 import stored_recipe
from edge_sdk.server.payload_io import PayloadCost, Storage, compact_from_codec, read_compact, write_compact

REF = Path(__file__).resolve().parents[2] / "datasets/3gpp/reference"
TASK = {"kind": "image", "model": {"kind": "mlp", "input_dim": 8, "num_classes": 5, "hidden": [4]},
        "train": TrainRecipe(optimizer="adam", lr=3e-3, schedule="cosine", steps=3000).to_payload()}


@pytest.mark.parametrize("kind,bits", [("affine_feature", 3), ("affine_sample", 5), ("codebook", 2), ("float16", 16)])
def test_v2_file_is_the_planned_size_and_reads_back(tmp_path, kind, bits):
    rng = np.random.default_rng(0)
    X = rng.uniform(-120, -60, (40, 8)).astype(np.float32)
    y = rng.integers(0, 5, 40)
    params = {"levels": np.linspace(-120, -60, 4).astype(np.float32)} if kind == "codebook" else None
    cs = compact_from_codec(X, y, Storage(kind, bits), params)
    cost = PayloadCost(num_classes=5, task=TASK, provenance={"ignored": "in v2"}, payload_format=2)
    want = cost.size(Storage(kind, bits).layouts(40, 8, 5))
    info = write_compact(tmp_path / "p.epl", cs, cost, budget_bytes=want, planned_bytes=want)
    assert info.size == want == (tmp_path / "p.epl").stat().st_size
    assert (tmp_path / "task.json").is_file()
    Xr, yr, soft, p = read_compact(tmp_path / "p.epl")
    order = np.argsort(y, kind="stable")  # v2 keeps rows in class order
    np.testing.assert_array_equal(yr, y[order])
    np.testing.assert_array_equal(Xr, cs.X[order])
    assert p.version[0] == 2 and p.task["model"] == TASK["model"]
    assert TrainRecipe.from_dict(p.recipe) == stored_recipe(TASK["train"])
    if not kind.startswith("affine"):  # v1 cannot hold the affine kinds
        v1 = PayloadCost(num_classes=5, task=TASK).size(Storage(kind, bits).layouts(40, 8, 5))
        assert want < v1  # the lean header


def test_over_budget_and_unknown_format_are_config_errors(tmp_path):
    X = np.zeros((4, 8), np.float32)
    cs = compact_from_codec(X, np.arange(4), Storage("float16", 16))
    with pytest.raises(ConfigError, match="over the budget"):
        write_compact(tmp_path / "p.epl", cs, PayloadCost(num_classes=5, task=TASK, payload_format=2), budget_bytes=50)
    assert not (tmp_path / "p.epl").exists()
    with pytest.raises(ConfigError, match="payload format"):
        PayloadCost(num_classes=5, task=TASK, payload_format=3)


def test_stored_recipe_rounds_floats_to_float32():
    r = stored_recipe(TrainRecipe(optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=5e-4))
    assert r.lr == float(np.float32(0.05)) and r.momentum == float(np.float32(0.9)) and r.steps == 2000


def test_cli_distill_v2_affine_end_to_end(tmp_path):
    from edge_sdk.cli.main import cli

    out = tmp_path / "run"
    res = CliRunner().invoke(cli, ["distill", "--data", str(REF / "train.h5"), "--test", str(REF / "test.h5"),
                                   "--method", "kmeans", "--quantizer", "affine_feature", "--bits", "4",
                                   "--compression", "180x", "--payload-format", "2", "--seeds", "1", "--steps", "30",
                                   "--no-progress", "--out", str(out)])
    assert res.exit_code == 0, res.output
    rep = json.loads((out / "report.json").read_text())
    assert rep["payload_bytes"] == (out / "payload.epl").stat().st_size <= rep["budget"]["bytes"] == 384000 // 180
    with read_payload(out / "payload.epl") as p:  # names the task blob and the graph written beside it
        assert p.version[0] == 2 and p.graph is not None and p.recipe["steps"] == 30
    assert (out / "task.json").is_file() and (out / "graph.onnx").is_file()
    assert rep["extra"]["stored_samples"] > 400  # the v1 header leaves room for ~256 rows at 180x


def test_cli_affine_needs_v2(tmp_path):
    from edge_sdk.cli.main import cli

    res = CliRunner().invoke(cli, ["distill", "--data", str(REF / "train.h5"), "--test", str(REF / "test.h5"),
                                   "--method", "kmeans", "--quantizer", "affine_feature", "--bits", "4",
                                   "--compression", "180x", "--payload-format", "1", "--out", str(tmp_path / "o")])
    assert res.exit_code != 0 and "--payload-format 2" in str(res.exception) + res.output


def test_cli_quantize_v2_end_to_end(tmp_path):
    from edge_sdk.cli.main import cli

    out = tmp_path / "q"
    res = CliRunner().invoke(cli, ["quantize", "--data", str(REF / "train.h5"), "--test", str(REF / "test.h5"),
                                   "--compression", "16x", "--payload-format", "2", "--seeds", "1", "--steps", "20",
                                   "--no-progress", "--out", str(out)])
    assert res.exit_code == 0, res.output
    rep = json.loads((out / "report.json").read_text())
    assert rep["payload_bytes"] == (out / "payload.epl").stat().st_size <= rep["budget"]["bytes"]
    with read_payload(out / "payload.epl") as p:
        assert p.version[0] == 2 and p.graph is not None

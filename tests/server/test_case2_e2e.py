"""BM-Case2 end to end on small data: `edge-sdk quantize --beam-task <Case2 spec>` writes a payload of quantized
temporal windows whose task is the Case2 spec with the temporal model (kind gru) and its training graph; the
torch-free device trains on it and evaluates on local Case2 measurements with the same windows."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")

from edge_sdk.beam.h5writer import write_beam_h5  # noqa: E402
from edge_sdk.beam.synthetic import make_synthetic_beam_dataset  # noqa: E402
from edge_sdk.cli.main import main  # noqa: E402
from edge_sdk.cli.options import parse_beam_task  # noqa: E402
from edge_sdk.errors import ConfigError  # noqa: E402

TASK = {"case": "case2", "setb": "1/4", "history": 3, "horizon": 1, "period_steps": 2}


@pytest.fixture(scope="module")
def case2_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("case2")
    write_beam_h5(d / "train.h5", make_synthetic_beam_dataset(1000, seed=1, case="case2", steps=20))
    write_beam_h5(d / "test.h5", make_synthetic_beam_dataset(400, seed=2, case="case2", steps=20))
    return d


def _device_scores_case2_windows(tmp_path, out, test_h5) -> dict:
    """`device train --eval` on ``out``'s payload + graph; the KPIs must cover exactly the Case2 windows of
    the device's local file (the payload's task spec rebuilt them there)."""
    from edge_sdk.beam.h5reader import read_beam_h5
    from edge_sdk.beam.taskspec import BeamTaskSpec
    from edge_sdk.payload import read_payload

    with read_payload(out / "payload.epl") as p:
        task = p.task
    assert main(["device", "train", "--payload", str(out / "payload.epl"), "--graph", str(out / "graph.onnx"),
                 "--eval", str(test_h5), "--epochs", "2", "--out", str(tmp_path / "dev")]) == 0
    rep = json.loads((tmp_path / "dev" / "report.json").read_text())
    n_windows = len(BeamTaskSpec.from_dict(task["beam"]).labels(read_beam_h5(test_h5)))
    assert rep["kpis"]["n"] == n_windows and 0.0 <= rep["kpis"]["top1"] <= 1.0
    assert np.isfinite(rep["history"][-1]["loss"])
    return task


def test_case2_quadd_distilled_windows_train_on_the_device(tmp_path, case2_files) -> None:
    """QuADD (trajectory matching through the temporal model, 3-bit codebook learned in the loop) distills
    Case2 windows: the stored rows are distilled windows of shape K x |Set B| for the GRU, the payload carries
    the Case2 task and the GRU's training graph, and the torch-free device trains on it and scores its own Case2
    windows. Small settings (few iterations/experts, checkpoint selection off) keep it fast; the CLI with the
    defaults' selection is the slow test below."""
    from edge_sdk.modelspec import TrainRecipe
    from edge_sdk.server.distill.base import DistillConfig
    from edge_sdk.server.pipeline import DataSource, RunConfig, run
    from edge_sdk.server.train_eval import EvalConfig
    from edge_sdk.units import Budget

    data = DataSource(train=case2_files / "train.h5", test=case2_files / "test.h5", beam_task=TASK).load()
    assert data.spec.kind == "gru" and tuple(data.spec.in_shape) == (3, 8)
    method = DistillConfig(method="quadd", iterations=4, select="none", mtt_experts=2, mtt_expert_epochs=3,
                           mtt_max_start=1, mtt_syn_steps=4)
    cfg = RunConfig(method=method, budget=Budget.parse("16x"),
                    eval=EvalConfig(TrainRecipe().with_overrides(steps=30), (0,), "cpu"))
    res = run(data, cfg, tmp_path / "d")
    rep = res.report
    info = rep["extra"]["method_info"]
    assert rep["method"] == "quadd-mtt" and info["host"] == "mtt" and info["mode"] == "quadd"
    assert info["operating_point"]["kind"] == "codebook" and info["operating_point"]["bits"] == 3
    assert info["rows_changed_frac"] > 0  # the stored windows were distilled, not copied
    assert info["probe_loss_final"] < info["probe_loss_init"]  # trajectory matching through the GRU learned
    task = _device_scores_case2_windows(tmp_path, tmp_path / "d", case2_files / "test.h5")
    assert task["beam"]["case"] == "case2" and task["model"]["kind"] == "gru"
    assert task["model"]["in_shape"] == [3, 8]


@pytest.mark.slow
def test_case2_distill_cli_quadd(tmp_path, case2_files) -> None:
    """The documented command (dataset card, "BM-Case2 end to end") on small data: `edge-sdk distill` QuADD with
    its default checkpoint selection on validation, then device training and evaluation (about a minute on one core)."""
    out = tmp_path / "d"
    assert main(["distill", "--method", "quadd", "--data", str(case2_files / "train.h5"), "--test",
                 str(case2_files / "test.h5"), "--compression", "16x", "--beam-task", json.dumps(TASK),
                 "--iterations", "20", "--seeds", "1", "--steps", "50", "--out", str(out), "--no-progress"]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["method"] == "quadd-mtt" and rep["dataset"]["model"]["kind"] == "gru"
    assert rep["extra"]["method_info"]["select"] == "val"
    _device_scores_case2_windows(tmp_path, out, case2_files / "test.h5")


def test_case2_payload_trains_on_the_device(tmp_path) -> None:
    from edge_sdk.payload import read_payload

    write_beam_h5(tmp_path / "train.h5", make_synthetic_beam_dataset(1000, seed=1, case="case2", steps=20))
    write_beam_h5(tmp_path / "test.h5", make_synthetic_beam_dataset(400, seed=2, case="case2", steps=20))
    assert main(["quantize", "--method", "adq", "--data", str(tmp_path / "train.h5"), "--test",
                 str(tmp_path / "test.h5"), "--compression", "16x", "--beam-task", json.dumps(TASK),
                 "--seeds", "1", "--steps", "50", "--out", str(tmp_path / "q"), "--no-progress"]) == 0
    with read_payload(tmp_path / "q" / "payload.epl") as p:
        task = p.task
    assert task["beam"]["case"] == "case2" and task["beam"]["history"] == 3 and task["beam"]["setb"] == "1/4"
    model = task["model"]
    assert model["kind"] == "gru" and model["in_shape"] == [3, 8] and model["input_dim"] == 24
    assert main(["device", "train", "--payload", str(tmp_path / "q" / "payload.epl"), "--graph",
                 str(tmp_path / "q" / "graph.onnx"), "--eval", str(tmp_path / "test.h5"),
                 "--epochs", "2", "--out", str(tmp_path / "dev")]) == 0
    rep = json.loads((tmp_path / "dev" / "report.json").read_text())
    # the device scored its model on the Case2 windows of its local file (400 rows / 20 trajectories)
    from edge_sdk.beam.h5reader import read_beam_h5
    from edge_sdk.beam.taskspec import BeamTaskSpec

    n_windows = len(BeamTaskSpec.from_dict(task["beam"]).labels(read_beam_h5(tmp_path / "test.h5")))
    assert rep["kpis"]["n"] == n_windows and 0.0 <= rep["kpis"]["top1"] <= 1.0
    assert np.isfinite(rep["history"][-1]["loss"])


def test_beam_task_option_errors(tmp_path, capsys) -> None:
    assert parse_beam_task(None) is None
    assert parse_beam_task(json.dumps(TASK))["history"] == 3
    f = tmp_path / "t.json"
    f.write_text(json.dumps(TASK))
    assert parse_beam_task(str(f)) == parse_beam_task(json.dumps(TASK))
    for bad, msg in (("{not json", "not valid JSON"), ("[1, 2]", "neither"), (str(tmp_path / "missing.json"), "neither"),
                     ('{"case": "case3"}', "case"), ('{"history": -1, "case": "case2"}', "history")):
        with pytest.raises(ConfigError, match=msg):
            parse_beam_task(bad)
    assert main(["quantize", "--dataset", "digits", "--compression", "16x", "--model", "gru",
                 "--out", str(tmp_path / "x")]) != 0
    assert "apply to beam data" in capsys.readouterr().err

"""The one entry point (edge_sdk.server.pipeline.run): both families through one path, exact bytes, the report
schema for both commands, no hidden state (inputs untouched, memo keyed on content), the torch thread policy."""

from __future__ import annotations

import copy
from dataclasses import FrozenInstanceError, replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from edge_sdk.errors import ConfigError  # noqa: E402
from edge_sdk.modelspec import ModelSpec, TrainRecipe  # noqa: E402
from edge_sdk.payload import read_payload  # noqa: E402
from edge_sdk.server.adq import QuantizeConfig  # noqa: E402
from edge_sdk.server.adq.family import data_key  # noqa: E402
from edge_sdk.server.adq.sensitivity import SensitivityConfig  # noqa: E402
from edge_sdk.server.datasets import TaskData  # noqa: E402
from edge_sdk.server.distill import DistillConfig  # noqa: E402
from edge_sdk.server.pipeline import (  # noqa: E402
    THREADS_ENV,
    DataSource,
    RunConfig,
    configure_torch_threads,
    resolve_threads,
    run,
    validate_report,  # noqa: E402
)
from edge_sdk.server.train_eval import EvalConfig  # noqa: E402
from edge_sdk.units import Budget  # noqa: E402

EV = EvalConfig(TrainRecipe(steps=30, batch_size=32), seeds=(0, 1))


def blobs_task(n=320, d=8, c=4, seed=0) -> TaskData:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((c, d)) * 2.5
    y = np.arange(n) % c
    X = (centers[y] + rng.standard_normal((n, d))).astype(np.float32)
    yt = np.arange(n // 2) % c
    Xt = (centers[yt] + rng.standard_normal((n // 2, d))).astype(np.float32)
    spec = ModelSpec(kind="mlp", input_dim=d, num_classes=c, hidden=(16,))
    return TaskData("blobs", X, y.astype(np.int64), Xt, yt.astype(np.int64), c, spec,
                    {"kind": "image", "dataset": "blobs", "shape": [1, 1, d],
                     "normalization": {"mean": 0.0, "std": 1.0}, "model": spec.to_dict()})


@pytest.mark.parametrize("method", [
    QuantizeConfig(method="adq", sensitivity=SensitivityConfig(ref_epochs=1)),
    QuantizeConfig(method="uniform"),
    DistillConfig(method="random", quantizer="codebook", bits=3),
    DistillConfig(method="quadd-mtt", quantizer="codebook", bits=2, iterations=3, mtt_experts=1,
                  mtt_expert_epochs=3, mtt_max_start=1, mtt_expert_span=2, mtt_syn_steps=2, select="none"),
])
def test_one_path_for_every_family(method, tmp_path):
    data = blobs_task()
    before = (copy.deepcopy(data.task), data.X_train.copy(), data.y_train.copy())
    res = run(data, RunConfig(method, Budget.parse("8x"), EV), tmp_path / "run")
    rep = res.report
    validate_report(rep)
    assert rep["command"] == ("quantize" if isinstance(method, QuantizeConfig) else "distill")
    assert rep["dataset"] == {"name": "blobs", "n_train": 320, "n_test": 160, "dim": 8, "num_classes": 4,
                              "model": data.spec.to_dict()}
    size = res.payload.stat().st_size
    assert rep["payload_bytes"] == size == rep["extra"]["planned_bytes"] <= rep["budget"]["bytes"] == 320 * 8 * 4 // 8
    assert rep["extra"]["bytes_to_device"] == size + res.graph.stat().st_size
    assert rep["eval"]["config"]["runtime"] == "onnxruntime" and set(rep["timings"]) == {
        "search_s", "plan_s", "build_s", "eval_s", "total_s"}
    p = read_payload(res.payload)
    assert TrainRecipe.from_dict(p.task["train"]) == EV.recipe and p.task["train"] == EV.recipe.to_payload()
    assert p.provenance["method"] == rep["method"] and "library_version" in p.provenance
    assert p.graph == {"sha256": rep["extra"]["graph"]["sha256"], "size": rep["extra"]["graph"]["size"]}
    X, y = p.samples()
    np.testing.assert_array_equal(X, res.compact.X)  # what was evaluated is what was written
    # nothing passed in changed
    assert data.task == before[0] and "train" not in data.task
    np.testing.assert_array_equal(data.X_train, before[1])
    np.testing.assert_array_equal(data.y_train, before[2])


def test_device_repeats_the_reports_seed0_run(tmp_path):
    from edge_sdk.device.evaluate import inference_session, predict
    from edge_sdk.device.trainer import Trainer
    from edge_sdk.server.train_eval import score_metrics

    data = blobs_task()
    res = run(data, RunConfig(DistillConfig(method="random", quantizer="uniform", bits=4), Budget.parse("4x"), EV),
              tmp_path / "run")
    tr = Trainer(res.payload, res.graph)  # no flags: the payload's recipe, seed 0
    st = tr.train()
    top1 = score_metrics(predict(inference_session(tr.model_bytes(st.params)), data.X_test), data.y_test)["top1"]
    assert st.step == EV.recipe.steps and top1 == res.report["kpis"]["top1"]["per_seed"][0]


def test_configs_and_data_are_values():
    data = blobs_task()
    with pytest.raises(FrozenInstanceError):
        data.task = {}  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        QuantizeConfig().method = "full"  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        RunConfig(QuantizeConfig()).graph = False  # type: ignore[misc]


def test_memo_key_is_the_content():
    a = blobs_task()
    b = replace(a, X_train=a.X_train.copy())  # another object, same content
    assert data_key(a) == data_key(b)
    assert data_key(a) != data_key(replace(a, spec=replace(a.spec, hidden=(8,))))  # the scores depend on the model
    c = a.X_train.copy()
    c[0, 0] += 1.0
    assert data_key(a) != data_key(replace(a, X_train=c))


def test_budget_rules(tmp_path):
    data = blobs_task()
    with pytest.raises(ConfigError, match="needs a budget"):
        run(data, RunConfig(QuantizeConfig(method="adq"), None, EV), tmp_path / "a")
    res = run(data, RunConfig(QuantizeConfig(method="full"), None, EV, graph=False), tmp_path / "b")
    assert res.report["budget"] == {"bytes": None, "spec": None, "compression_target": None}
    assert res.report["extra"]["stored_samples"] == 320 and res.report["eval"]["config"]["runtime"] == "torch"
    with pytest.raises(ConfigError, match="not both"):
        DataSource(train="a.h5", test="b.h5", dataset="digits")
    with pytest.raises(ConfigError, match="go together"):
        DataSource(train="a.h5")


# --- the torch thread count of server commands (default 1, env override, validation) ---


def test_resolve_threads(monkeypatch):
    monkeypatch.delenv(THREADS_ENV, raising=False)
    assert resolve_threads() == 1
    assert resolve_threads(3) == 3
    monkeypatch.setenv(THREADS_ENV, "2")
    assert resolve_threads() == 2 and resolve_threads(1) == 1
    monkeypatch.setenv(THREADS_ENV, "two")
    with pytest.raises(ConfigError, match=THREADS_ENV):
        resolve_threads()
    with pytest.raises(ConfigError):
        resolve_threads(-1)


def test_configure_torch_threads(monkeypatch):
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    try:
        assert configure_torch_threads(1) == 1 == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def test_distill_and_quantize_commands_apply_the_thread_policy(monkeypatch, tmp_path):
    """Both server commands set torch's threads before any work (a bad setting fails first, with how to fix it)."""
    from click.testing import CliRunner

    from edge_sdk.cli.main import cli

    monkeypatch.setenv("EDGE_SDK_TORCH_THREADS", "many")
    for cmd in (["distill", "--dataset", "digits", "--compression", "36x"],
                ["quantize", "--dataset", "digits", "--compression", "16x"]):
        res = CliRunner().invoke(cli, [*cmd, "--out", str(tmp_path / "o")])
        assert res.exit_code != 0 and "EDGE_SDK_TORCH_THREADS" in str(res.exception) + res.output
    import torch

    monkeypatch.delenv("EDGE_SDK_TORCH_THREADS")
    res = CliRunner().invoke(cli, ["distill", "--dataset", "digits", "--compression", "36x", "--threads", "1",
                                   "--method", "random", "--seeds", "1", "--steps", "5", "--no-graph", "--no-progress",
                                   "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    assert torch.get_num_threads() == 1

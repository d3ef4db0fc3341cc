"""--method auto (server/distill/auto.py): candidates scored on the validation split, the best kept, its recipe
chosen on the same split; the whole choice goes into the report."""

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from edge_sdk.errors import ConfigError  # noqa: E402
from edge_sdk.modelspec import TrainRecipe  # noqa: E402
from edge_sdk.server.distill.auto import CHECK_RECIPE, AutoConfig, quantizer_options, search_auto  # noqa: E402
from edge_sdk.server.payload_io import PayloadCost  # noqa: E402
from edge_sdk.server.protocol import COMPACT_GRID, ProtocolConfig  # noqa: E402
from tests.server.test_distill import tiny_task  # noqa: E402

SMALL = AutoConfig(kip_iterations=3, protocol=ProtocolConfig(search_seeds=(0,)), teacher_members=1, teacher_steps=60,
                   screen_recipe=TrainRecipe(optimizer="adam", lr=3e-3, schedule="cosine", steps=40, weight_decay=0.0),
                   grid=(TrainRecipe(optimizer="adam", lr=3e-3, schedule="cosine", steps=40, weight_decay=0.0),
                         TrainRecipe(optimizer="sgd", lr=1e-6, steps=5)),
                   check_recipe=TrainRecipe(optimizer="adam", lr=3e-3, schedule="cosine", steps=40, weight_decay=0.0),
                   smoothing=(0.2,))
NO_CHECK = AutoConfig(**{**SMALL.__dict__, "finalists": 0})


def test_quantizer_options_follow_the_payload_format():
    assert ("affine_feature", 4) in quantizer_options(2) and ("affine_feature", 4) not in quantizer_options(1)
    assert ("uniform", 2) in quantizer_options(1) and ("float16", None) in quantizer_options(2)


@pytest.mark.parametrize("fmt", [1, 2])
def test_search_scores_every_candidate_and_keeps_the_best(fmt):
    """With the check stage off, the best screened candidate wins."""
    d = tiny_task()
    cost = PayloadCost(num_classes=4, task={**d.task, "train": SMALL.screen_recipe.to_payload()}, payload_format=fmt)
    c = search_auto(d, 900, AutoConfig(**{**NO_CHECK.__dict__, "payload_format": fmt}), cost)
    scored = [r for r in c.table if r["val_top1"] is not None]
    methods = {r["method"] for r in c.table}
    assert {"random", "kmeans", "quadd-kip"} <= methods
    assert len(c.table) == 2 * (2 * len(quantizer_options(fmt)) + 1)  # every set with data and teacher labels
    assert {r["labels"] for r in c.table} == {"data", "teacher"}
    assert all(0.0 <= r["relabelled_frac"] <= 1.0 for r in c.table if r["labels"] == "teacher" and r["val_top1"])
    best = max(scored, key=lambda r: r["val_top1"])
    assert [r for r in c.table if r["chosen"]] == [best]
    assert (c.method, c.quantizer, c.labels) == (best["method"], best["quantizer"], best["labels"])
    assert c.teacher is not None and c.teacher["members"] == 1
    # the useless recipe loses on validation; the winner is then tried with label smoothing 0.2 (kept if better)
    assert c.recipe.with_overrides(label_smoothing=0.0) == SMALL.grid[0]
    rows = c.recipe_search["rows"]
    assert rows[-1]["stage"] == "smoothing" and rows[-1]["recipe"] == SMALL.grid[0].with_overrides(
        label_smoothing=0.2).to_dict()
    assert (c.recipe.label_smoothing == 0.2) == (rows[-1]["mean"] > rows[0]["mean"])
    assert all(r["bytes"] <= 900 for r in scored) and c.check is None
    assert not any("check_val_top1" in r for r in c.table)
    json.dumps(c.to_dict())


def test_check_stage_rescores_the_finalists_on_more_splits_and_keeps_the_best_mean(monkeypatch):
    from edge_sdk.server import protocol

    searched = []
    real_train = protocol.train_model
    monkeypatch.setattr(protocol, "train_model", lambda *a, **k: searched.append(a[4]) or real_train(*a, **k))
    d = tiny_task()
    cost = PayloadCost(num_classes=4, task={**d.task, "train": SMALL.screen_recipe.to_payload()}, payload_format=2)
    cfg = AutoConfig(**{**SMALL.__dict__, "payload_format": 2, "finalists": 3, "check_splits": 2})
    c = search_auto(d, 900, cfg, cost)
    checked = [r for r in c.table if "check_val_top1" in r]
    screened = sorted((r for r in c.table if r["val_top1"] is not None), key=lambda r: -r["val_top1"])
    assert checked and len(checked) == 3 and all(r in screened[:3] for r in checked)
    assert all(len(r["check_val_top1"]) == 2 and r["check_mean"] == pytest.approx(sum(r["check_val_top1"]) / 2)
               for r in checked)
    chosen = [r for r in c.table if r["chosen"]]
    assert len(chosen) == 1 and chosen[0] in checked
    assert chosen[0]["check_mean"] == max(r["check_mean"] for r in checked)
    assert c.check is not None and c.check["split_seeds"] == [0, 1] and len(c.check["finalists"]) == 3
    # the winner's split-0 check score is reused as its grid row when the check recipe is in the grid
    grid_rows = {json.dumps(r["recipe"], sort_keys=True): r for r in c.recipe_search["rows"]}
    row = grid_rows[json.dumps(SMALL.check_recipe.to_dict(), sort_keys=True)]
    assert row["val_top1"] == [chosen[0]["check_val_top1"][0]]
    # ... and not trained again; the smoothing stage then trains the grid's winner with label smoothing 0.2
    assert searched[:-1] == [r for r in SMALL.grid if r != SMALL.check_recipe]
    assert searched[-1] == SMALL.grid[0].with_overrides(label_smoothing=0.2)
    json.dumps(c.to_dict())


def test_default_check_recipe_is_a_grid_recipe_and_the_config_is_checked():
    assert CHECK_RECIPE in COMPACT_GRID
    assert AutoConfig().smoothing == (0.1, 0.2)
    with pytest.raises(ConfigError, match="check_splits"):
        AutoConfig(check_splits=0)
    with pytest.raises(ConfigError, match="finalists"):
        AutoConfig(finalists=-1)


def test_search_without_teacher_keeps_the_data_labels():
    d = tiny_task()
    cost = PayloadCost(num_classes=4, task={**d.task, "train": SMALL.screen_recipe.to_payload()})
    c = search_auto(d, 900, AutoConfig(**{**SMALL.__dict__, "teacher": False, "kip": False}), cost)
    assert {r["labels"] for r in c.table} == {"data"} and c.labels == "data" and c.teacher is None


def test_auto_needs_a_budget():
    with pytest.raises(ConfigError, match="budget"):
        search_auto(tiny_task(), None, SMALL, PayloadCost(num_classes=4))


def test_cli_auto_rejects_quantizer_choice(tmp_path):
    from click.testing import CliRunner

    from edge_sdk.cli.main import cli

    ref = Path(__file__).resolve().parents[2] / "datasets/3gpp/reference"
    res = CliRunner().invoke(cli, ["distill", "--data", str(ref / "train.h5"), "--test", str(ref / "test.h5"),
                                   "--method", "auto", "--bits", "4", "--compression", "180x", "--out",
                                   str(tmp_path / "o")])
    assert res.exit_code != 0 and "chooses the quantizer" in str(res.exception) + res.output


def test_cli_auto_on_the_beam_reference_data(tmp_path, monkeypatch):
    """--method auto end to end at 180x with payload v2 (small search settings; the default ones take minutes).
    --no-graph: with these settings auto may pick float16 storage, whose graph export fails on main at 02:05 UTC
    for every method (ONNX "X_orig is not output of any previous node"; reported in the #11 note)."""
    from click.testing import CliRunner

    from edge_sdk.cli.main import cli
    from edge_sdk.server.distill import auto
    from edge_sdk.server.distill.kip import KIPMatcher, KIPSettings

    monkeypatch.setattr(auto, "DEFAULT", SMALL)
    monkeypatch.setattr(KIPMatcher, "settings", KIPSettings(teacher_steps=50, target_batch=128))
    ref = Path(__file__).resolve().parents[2] / "datasets/3gpp/reference"
    out = tmp_path / "auto"
    res = CliRunner().invoke(cli, ["distill", "--data", str(ref / "train.h5"), "--test", str(ref / "test.h5"),
                                   "--method", "auto", "--compression", "180x", "--payload-format", "2",
                                   "--iterations", "2", "--seeds", "1", "--no-graph", "--no-progress",
                                   "--teacher-members", "1", "--teacher-steps", "60", "--out", str(out)])
    assert res.exit_code == 0, res.output
    rep = json.loads((out / "report.json").read_text())
    a = rep["extra"]["auto"]
    assert a["method"] == rep["method"] and len(a["candidates"]) == 2 * (2 * len(quantizer_options(2)) + 1)
    if a["labels"] == "teacher":  # the shipped rows carry the teacher's classes, and the report says so
        assert rep["extra"]["method_info"]["labels"] == "teacher"
    assert rep["payload_bytes"] <= rep["budget"]["bytes"] == 384000 // 180
    assert (out / "task.json").is_file()


@pytest.mark.parametrize("flag", [["--steps", "300"], ["--weight-decay", "0.001"], ["--lr", "0.01"],
                                  ["--label-smoothing", "0.1"]])
def test_cli_auto_is_the_default_and_refuses_recipe_flags(tmp_path, flag):
    from click.testing import CliRunner

    from edge_sdk.cli.main import cli

    ref = Path(__file__).resolve().parents[2] / "datasets/3gpp/reference"
    res = CliRunner().invoke(cli, ["distill", "--data", str(ref / "train.h5"), "--test", str(ref / "test.h5"),
                                   "--compression", "180x", *flag, "--out", str(tmp_path / "o")])
    msg = str(res.exception) + res.output
    assert res.exit_code != 0 and "--method auto (the default) chooses the training recipe" in msg
    assert flag[0] in msg and "name a method" in msg


def test_cli_weight_decay_goes_into_the_recipe(tmp_path):
    from click.testing import CliRunner

    from edge_sdk.cli.main import cli

    ref = Path(__file__).resolve().parents[2] / "datasets/3gpp/reference"
    out = tmp_path / "r"
    res = CliRunner().invoke(cli, ["distill", "--data", str(ref / "train.h5"), "--test", str(ref / "test.h5"),
                                   "--method", "random", "--compression", "180x", "--optimizer", "adam",
                                   "--weight-decay", "0.001", "--steps", "20", "--seeds", "1", "--no-graph",
                                   "--no-progress", "--out", str(out)])
    assert res.exit_code == 0, res.output
    rep = json.loads((out / "report.json").read_text())
    assert rep["eval"]["config"]["recipe"]["weight_decay"] == pytest.approx(1e-3)

"""server/teacher.py: teacher labels file stored rows under the class a model trained on the training set predicts;
same bytes, cleaner targets; the run reports and the payload records it."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from edge_sdk.errors import ConfigError  # noqa: E402
from edge_sdk.modelspec import ModelSpec  # noqa: E402
from edge_sdk.server.datasets import TaskData  # noqa: E402
from edge_sdk.server.distill import DistillConfig, distill  # noqa: E402
from edge_sdk.server.equal_bytes import build_baseline  # noqa: E402
from edge_sdk.server.payload_io import PayloadCost, read_compact, write_compact  # noqa: E402
from edge_sdk.server.teacher import TEACHER_RECIPE, TeacherConfig, relabel, train_teacher  # noqa: E402

FAST = TeacherConfig(members=2, recipe=TEACHER_RECIPE.with_overrides(steps=400))
REF = Path(__file__).resolve().parents[2] / "datasets/3gpp/reference"


def noisy_task(n=1200, flip=0.3, seed=0):
    """4 classes decided by the signs of two features; a share ``flip`` of the training labels is replaced by a
    random class (label noise the inputs cannot explain, like fast fading in beam labels)."""
    rng = np.random.default_rng(seed)

    def draw(m):
        X = rng.normal(size=(m, 6)).astype(np.float32)
        return X, ((X[:, 0] > 0).astype(np.int64) * 2 + (X[:, 1] > 0)).astype(np.int64)

    X, clean = draw(n)
    y = np.where(rng.random(n) < flip, rng.integers(0, 4, n), clean)
    Xt, yt = draw(300)
    spec = ModelSpec(kind="mlp", input_dim=6, num_classes=4, hidden=(32,))
    return TaskData("noisy", X, y, Xt, yt, 4, spec, {"kind": "image", "model": spec.to_dict()}), clean


def test_teacher_labels_are_cleaner_than_noisy_data_labels():
    data, clean = noisy_task()
    teacher = train_teacher(data, FAST)
    assert teacher.info["members"] == 2 and teacher.info["rows"] == 1200
    y_t = teacher.labels(data.X_train)
    assert y_t.dtype == np.int64 and y_t.shape == (1200,)
    # the noisy labels agree with the clean rule on ~78 % of rows; the teacher's classes on far more
    assert (data.y_train == clean).mean() < 0.82
    assert (y_t == clean).mean() > 0.92
    assert teacher.labels(np.zeros((0, 6), np.float32)).shape == (0,)


def test_relabel_keeps_the_rows_and_bytes_and_changes_only_labels(tmp_path):
    data, clean = noisy_task()
    teacher = train_teacher(data, FAST)
    cs = build_baseline(data, "random", "affine_feature", 4, 200, seed=0)
    ct = relabel(cs, teacher)
    assert np.array_equal(ct.X, cs.X) and ct.layouts() == cs.layouts()  # same rows, same bytes
    assert np.array_equal(ct.y, teacher.labels(cs.X))  # labels of the decoded rows the device trains on
    frac = ct.info["teacher_relabelled_frac"]
    assert frac == pytest.approx(float((ct.y != cs.y).mean())) and 0.05 < frac < 0.6
    assert ct.info["labels"] == "teacher"
    # the v2 file stores the new labels (class counts, rows in class order) and reads back the same pairs
    cost = PayloadCost(num_classes=4, task={**data.task, "train": TEACHER_RECIPE.to_payload()}, payload_format=2)
    write_compact(tmp_path / "p.epl", ct, cost)
    X_r, y_r, _, _ = read_compact(tmp_path / "p.epl")
    key = lambda X, y: sorted(map(tuple, np.c_[X, y].round(5).tolist()))  # noqa: E731
    assert key(X_r, y_r) == key(ct.X, ct.y)


def test_relabel_refuses_learned_soft_labels():
    data, _ = noisy_task(n=200)
    teacher = train_teacher(data, replace(FAST, members=1))
    from edge_sdk.server.payload_io import compact_float

    cs = compact_float(data.X_train[:20], data.y_train[:20], "float16", soft=np.zeros((20, 4), np.float32))
    with pytest.raises(ConfigError, match="soft labels"):
        relabel(cs, teacher)


def test_config_checks():
    with pytest.raises(ConfigError, match="labels must be one of"):
        DistillConfig(labels="oracle")
    with pytest.raises(ConfigError, match="soft"):
        DistillConfig(method="quadd-mtt", labels="teacher", soft_labels=True)
    with pytest.raises(ConfigError, match="teacher members"):
        TeacherConfig(members=0)
    assert DistillConfig(labels="teacher").provenance_extra() == {"labels": "teacher"}
    assert DistillConfig().provenance_extra() == {}


def test_distill_with_teacher_labels_reports_them():
    data, clean = noisy_task()
    cfg = DistillConfig(method="kmeans", quantizer="codebook", bits=3, labels="teacher", teacher_members=1,
                        teacher_steps=300, select="none")
    r = distill(data, cfg, 600)
    assert r.info["labels"] == "teacher" and r.info["teacher"]["members"] == 1
    assert r.compact.info["labels"] == "teacher"
    assert 0.0 < r.info["teacher_relabelled_frac"] < 1.0
    plain = distill(data, replace(cfg, labels="data"), 600)
    assert np.array_equal(plain.compact.X, r.compact.X)  # same selection and storage, only labels differ
    # the k-means centroids of the noisy classes: the teacher files them closer to the clean rule
    rule = lambda X: (X[:, 0] > 0).astype(np.int64) * 2 + (X[:, 1] > 0)  # noqa: E731
    assert (r.compact.y == rule(r.compact.X)).mean() >= (plain.compact.y == rule(plain.compact.X)).mean()


def test_cli_distill_teacher_labels_end_to_end(tmp_path):
    """`edge-sdk distill --method kmeans --labels teacher` on the beam reference data: payload, graph and report
    (which names the label source; a v1 payload's provenance does too, test_config_checks), and `device train` with
    no flags repeats the server's Top-1."""
    from click.testing import CliRunner

    from edge_sdk.cli.main import cli
    out = tmp_path / "t"
    # a short teacher keeps the test fast; the product default is TEACHER_RECIPE (3 models x 16,000 steps)
    res = CliRunner().invoke(cli, ["distill", "--data", str(REF / "train.h5"), "--test", str(REF / "test.h5"),
                                   "--method", "kmeans", "--quantizer", "codebook", "--bits", "4", "--labels",
                                   "teacher", "--teacher-members", "1", "--teacher-steps", "300",
                                   "--compression", "180x", "--steps", "300", "--seeds", "1", "--no-progress",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    rep = json.loads((out / "report.json").read_text())
    mi = rep["extra"]["method_info"]
    assert mi["labels"] == "teacher" and mi["teacher"]["recipe"]["steps"] == 300 and mi["teacher"]["members"] == 1
    assert rep["payload_bytes"] <= rep["budget"]["bytes"]
    from edge_sdk.payload import read_payload

    with read_payload(out / "payload.epl") as p:  # payload v2 (the default): no provenance in the lean header
        assert p.version[0] == 2 and len(p.samples()[1]) == rep["extra"]["stored_samples"]
    assert (out / "graph.onnx").is_file()
    from tests.server.test_recipe_parity import assert_device_repeats_server_seed0

    assert_device_repeats_server_seed0(out, tmp_path / "device")

"""server/equal_bytes.py: the equal-byte baselines fill the byte budget of a real v2 payload file exactly."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_sdk.errors import ConfigError
from edge_sdk.modelspec import ModelSpec, TrainRecipe
from edge_sdk.payload import read_payload, write_payload_v2
from edge_sdk.server.datasets import TaskData
from edge_sdk.server.equal_bytes import (
    BASELINE_QUANTIZERS,
    build_baseline,
    class_counts,
    max_rows,
    payload_bytes,
)

REPO = Path(__file__).resolve().parents[2]
RECIPE = TrainRecipe(optimizer="adam", lr=3e-3, schedule="cosine", steps=3000, weight_decay=0.0)


def task(n=600, seed=0):
    rng = np.random.default_rng(seed)
    y = np.minimum(rng.geometric(0.3, n) - 1, 5).astype(np.int64)  # imbalanced, 6 classes
    X = (rng.random((n, 8)) * 40 - 120 + y[:, None]).astype(np.float32)  # one-signed like beam RSRP features
    spec = ModelSpec(kind="mlp", input_dim=8, num_classes=6, hidden=(16,))
    return TaskData("t", X, y, X[:50], y[:50], 6, spec, {"kind": "beam", "model": spec.to_dict()})


def write_signed(tmp_path, cs, C, recipe):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = tmp_path / "p.epl"
    info = write_payload_v2(path, list(cs.groups), C, task_digest=hashlib.sha256(b"task").digest(),
                            recipe=recipe.to_payload(), signing_key=Ed25519PrivateKey.generate())
    return path, info.size


@settings(max_examples=15, deadline=None)
@given(st.sampled_from(BASELINE_QUANTIZERS), st.integers(300, 6000))
def test_max_rows_is_the_largest_count_that_fits(qb, budget):
    q, bits = qb
    d = task()
    n = max_rows(budget, q, bits, d, recipe=RECIPE)
    kind = "float16" if q == "float16" else q
    if n == 0:
        assert payload_bytes(kind, bits, 6, 8, 6, recipe=RECIPE) > budget
        return
    assert payload_bytes(kind, bits, n, 8, 6, recipe=RECIPE) <= budget
    if n < d.X_train.shape[0]:
        assert payload_bytes(kind, bits, n + 1, 8, 6, recipe=RECIPE) > budget


@pytest.mark.parametrize("q,bits", [("float16", 16), ("affine_feature", 4), ("codebook", 3)])
@pytest.mark.parametrize("selection", ["random", "kmeans", "herding"])
def test_written_file_is_the_planned_size_and_decodes_to_the_baseline(tmp_path, q, bits, selection):
    d = task()
    budget = 1500
    n = max_rows(budget, q, bits, d, recipe=RECIPE)
    cs = build_baseline(d, selection, q, bits, n, seed=1)
    assert cs.X.shape == (n, 8) and cs.groups[0].kind == q and cs.groups[0].bits == bits
    assert np.bincount(cs.y, minlength=6).tolist() == class_counts(d.y_train, n, 6).tolist()
    path, size = write_signed(tmp_path, cs, 6, RECIPE)
    assert size == path.stat().st_size == payload_bytes(q, bits, n, 8, 6, recipe=RECIPE) <= budget
    with read_payload(path) as p:
        X, y = p.samples()
    order = np.argsort(cs.y, kind="stable")  # v2 stores rows in class order
    np.testing.assert_array_equal(y, cs.y[order])
    np.testing.assert_allclose(X, cs.X[order], rtol=0, atol=1e-3 if q == "float16" else 1e-5)


def test_random_baseline_keeps_real_rows_of_the_right_class():
    d = task()
    cs = build_baseline(d, "random", "float16", 16, 30, seed=0)
    for row, lab in zip(cs.X, cs.y, strict=True):
        hits = np.flatnonzero(np.abs(d.X_train.astype(np.float16).astype(np.float32) - row).max(1) == 0)
        assert hits.size and np.all(d.y_train[hits] == lab)


def test_class_counts_follow_the_prior_with_one_row_per_class_at_least():
    y = np.array([0] * 90 + [1] * 9 + [2] * 1)
    assert class_counts(y, 10, 4).tolist() == [7, 2, 1, 0]  # 1 each + Hamilton split of 7 by 0.9/0.09/0.01
    assert sum(class_counts(y, 37, 4)) == 37


def test_bad_inputs_are_config_errors():
    d = task()
    with pytest.raises(ConfigError):
        build_baseline(d, "random", "float16", 16, 0)
    with pytest.raises(ConfigError, match="selection"):
        build_baseline(d, "nearest", "float16", 16, 10)
    assert max_rows(50, "affine_feature", 4, d) == 0  # not even one row per class fits


def test_accuracy_table_tool_end_to_end(tmp_path):
    """The tool that produces docs/accuracy-per-byte.md, on the reference data with 1 % of the steps."""
    cmd = [sys.executable, str(REPO / "tools/accuracy_table.py"), "--ratios", "180", "--selections", "random",
           "--teacher", "random", "--search-seeds", "0", "--final-seeds", "0", "--step-scale", "0.005", "--figure",
           "--out", str(tmp_path)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((tmp_path / "accuracy-per-byte.json").read_text())
    row = res["180x"]["final"]["random"]
    assert row["bytes"] <= res["180x"]["budget_bytes"] == res["meta"]["full_bytes"] // 180
    # the search ran on the fit part, the final set is rebuilt from the whole training set (what distill ships)
    assert all(r["final_from"] == "train" for r in res["180x"]["final"].values())
    assert row["search"]["rows"] and row["n"] >= row["n_search"]
    assert res["full"]["recipe"] in [s["recipe"] for s in res["full"]["search"]["rows"]]
    for search in (res["full"]["search"], row["search"]):  # every entry gets auto's label-smoothing stage
        assert sorted(r["recipe"]["label_smoothing"] for r in search["rows"] if r.get("stage") == "smoothing") == [
            0.1, 0.2]
    md = (tmp_path / "accuracy-per-byte.md").read_text()
    assert "full data (tuned)" in md and "random + " in md and "--step-scale 0.005" in md
    kip = res["180x"]["final"]["quadd-kip"]  # a distilled entry: same bytes rule, how far its rows moved
    assert kip["bytes"] <= res["180x"]["budget_bytes"] and 0.0 <= kip["moved"]["rows_changed_frac"] <= 1.0
    assert "| quadd-kip |" in md
    t = res["180x"]["final"]["random+teacher"]  # teacher labels: same bytes rule, the share of rows relabelled
    assert t["bytes"] <= res["180x"]["budget_bytes"] and 0.0 <= t["relabelled_frac"] <= 1.0
    assert "teacher labels (" in md
    png = tmp_path / "rate_accuracy_beam.png"  # the rate-accuracy figure and the graph sizes it adds
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res = json.loads((tmp_path / "accuracy-per-byte.json").read_text())
    assert all(r["graph_bytes"] > 1000 for r in res["180x"]["final"].values())
    # a cache written before the final-from-train rule: its search stands, only the final run is redone
    cache_path = tmp_path / "accuracy-per-byte.cache.json"
    cache = json.loads(cache_path.read_text())
    old = cache["180x"]["final"]["random"]
    del old["final_from"], old["test"]
    old["search"]["marker"] = "kept"
    cache_path.write_text(json.dumps(cache))
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    again = json.loads(cache_path.read_text())["180x"]["final"]["random"]
    assert again["final_from"] == "train" and again["search"]["marker"] == "kept" and "test" in again
    assert "recipe search" not in r.stdout and "random: test" in r.stdout


def test_pareto_keeps_only_points_nothing_cheaper_beats():
    import importlib.util

    spec = importlib.util.spec_from_file_location("accuracy_table", REPO / "tools" / "accuracy_table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    pareto = mod.pareto

    pts = [(100, 0.5), (200, 0.4), (300, 0.6), (300, 0.55), (50, 0.3), (400, 0.6)]
    assert pareto(pts) == [(50, 0.3), (100, 0.5), (300, 0.6)]

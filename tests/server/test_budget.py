"""Budget parsing and the planner (server/budget.py): exact sizes, never over the budget."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from edge_sdk.server.budget import (  # noqa: E402
    allocate_per_class,
    budget_from_compression,
    parse_budget,
    parse_compression,
    plan,
    search_sweet_spot,
    write_rd_curve,
)
from edge_sdk.server.payload_io import compact_from_codec, planned_size, read_compact, write_compact  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from edge_sdk.errors import ConfigError  # noqa: E402

TASK = {"kind": "image", "shape": [1, 2, 3], "model": {"kind": "mlp"}}
PROV = {"tool": "test", "seed": 0}
OPTIONS = [("uniform", 2), ("uniform", 8), ("codebook", 1), ("codebook", 3), ("apot", 3), ("float32", 32), ("float16", 16)]


@pytest.mark.parametrize("text,expected", [("16KiB", 16384), ("16kB", 16000), ("1.5MiB", 1572864),
                                           ("3000", 3000), ("3000B", 3000), (" 2 KiB ", 2048), (77, 77)])
def test_parse_budget(text, expected):
    assert parse_budget(text) == expected


@pytest.mark.parametrize("bad", ["", "abc", "16 parsecs", "-5", "0", "0.1", "16k", "2 kib", "16KB"])
def test_parse_budget_errors(bad):
    with pytest.raises(ConfigError):
        parse_budget(bad)


def test_parse_compression():
    assert parse_compression("36x") == 36.0 and parse_compression("180") == 180.0 and parse_compression(4) == 4.0
    for bad in ("x", "0.5x", "nan", "-3x"):
        with pytest.raises(ConfigError):
            parse_compression(bad)
    assert budget_from_compression(36000, 36.0) == 1000
    assert budget_from_compression(36001, 36.0) == 1000
    with pytest.raises(ConfigError):
        budget_from_compression(10, 36.0)


@settings(max_examples=25, deadline=None)
@given(budget=st.integers(200, 40000), d=st.integers(1, 40), classes=st.integers(2, 12))
def test_plan_never_exceeds_budget_and_is_maximal(budget, d, classes):
    pts = plan(budget, options=OPTIONS, n_classes_present=classes, d=d, num_classes=classes, task=TASK,
               provenance=PROV, per_feature=True)
    for p in pts:
        assert p.bytes <= budget and p.n == p.ipc * classes
        assert p.bytes == planned_size(p.kind, p.bits, p.n, d, num_classes=classes, task=TASK, provenance=PROV,
                                       per_feature=p.per_feature)
        bigger = planned_size(p.kind, p.bits, p.n + classes, d, num_classes=classes, task=TASK, provenance=PROV,
                              per_feature=p.per_feature)
        assert bigger > budget  # one more sample per class would not fit
    planned = {(p.quantizer, p.bits) for p in pts}
    for opt in OPTIONS:  # options left out really cannot fit one sample per class
        if opt not in planned:
            q, b = opt
            kind = {"uniform": "uniform_clip", "codebook": "codebook", "apot": "codebook"}.get(q, q)
            assert planned_size(kind, b, classes, d, num_classes=classes, task=TASK, provenance=PROV,
                                per_feature=kind == "uniform_clip") > budget


def test_planned_size_equals_written_file(tmp_path):
    rng = np.random.default_rng(0)
    budget = 3000
    (pt,) = plan(budget, options=[("uniform", 3)], n_classes_present=4, d=10, num_classes=4, task=TASK, provenance=PROV)
    X = rng.standard_normal((pt.n, 10)).astype(np.float32)
    y = np.repeat(np.arange(4), pt.ipc)
    cs = compact_from_codec(X, y, "uniform_clip", 3, {"alpha": np.array([2.0], np.float32)})
    info = write_compact(tmp_path / "p.epl", cs, num_classes=4, task=TASK, provenance=PROV, budget_bytes=budget)
    assert info.size == pt.bytes == (tmp_path / "p.epl").stat().st_size <= budget
    Xr, yr, soft, _ = read_compact(tmp_path / "p.epl")
    np.testing.assert_array_equal(Xr, cs.X)
    np.testing.assert_array_equal(yr, y)
    assert soft is None
    # one more class-row does not fit: the writer refuses
    cs2 = compact_from_codec(np.concatenate([X, X[:4]]), np.concatenate([y, y[:4]]), "uniform_clip", 3,
                             {"alpha": np.array([2.0], np.float32)})
    with pytest.raises(ConfigError, match="over the budget"):
        write_compact(tmp_path / "q.epl", cs2, num_classes=4, task=TASK, provenance=PROV, budget_bytes=pt.bytes)
    assert not (tmp_path / "q.epl").exists()


def test_soft_labels_are_counted(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((8, 5)).astype(np.float32)
    y = np.repeat(np.arange(4), 2)
    soft = rng.standard_normal((8, 4)).astype(np.float32) * 3
    cs = compact_from_codec(X, y, "codebook", 2, {"levels": np.array([-1, -0.3, 0.3, 1], np.float32)}, soft=soft)
    size = planned_size("codebook", 2, 8, 5, num_classes=4, task=TASK, provenance=PROV, soft=True)
    info = write_compact(tmp_path / "s.epl", cs, num_classes=4, task=TASK, provenance=PROV)
    assert info.size == size > planned_size("codebook", 2, 8, 5, num_classes=4, task=TASK, provenance=PROV)
    _, _, s2, _ = read_compact(tmp_path / "s.epl")
    np.testing.assert_array_equal(s2, cs.soft)
    assert np.abs(s2 - soft).max() < np.abs(soft).max() / 100  # 8-bit per-class threshold


def test_plan_tiny_budget_and_sweet_spot(tmp_path):
    assert plan(10, options=OPTIONS, n_classes_present=3, d=4, num_classes=3, task=TASK, provenance=PROV) == []
    pts = plan(4000, options=[("uniform", 2), ("uniform", 8)], n_classes_present=3, d=4, num_classes=3, task=TASK,
               provenance=PROV)
    best, scores = search_sweet_spot(pts, lambda p: -abs(p.bits - 8))
    assert best.bits == 8 and len(scores) == 2
    with pytest.raises(ConfigError):
        search_sweet_spot([], lambda p: 0.0)
    rows = [{"method": "m", "bits": p.bits, "payload_bytes": p.bytes, "top1_mean": 0.5, "top1_std": 0.1} for p in pts]
    write_rd_curve(rows, tmp_path / "rd.parquet", tmp_path / "rd.png")
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "rd.parquet").num_rows == 2
    assert (tmp_path / "rd.png").read_bytes()[:4] == b"\x89PNG"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 1000), min_size=1, max_size=40), st.integers(0, 500))
def test_allocate_proportional_sums_and_tracks_prior(counts, extra):
    n = len(counts) + extra
    a = allocate_per_class(n, counts, "proportional")
    assert sum(a) == n and min(a) >= 1 and len(a) == len(counts)
    quota = [(n - len(counts)) * k / sum(counts) for k in counts]
    assert all(abs(ai - 1 - q) < 1 for ai, q in zip(a, quota, strict=True))  # Hamilton: within one of the quota


def test_allocate_balanced_and_errors():
    assert allocate_per_class(12, [5, 100, 7], "balanced") == [4, 4, 4]
    assert allocate_per_class(12, [1, 2, 1], "proportional") == [3, 6, 3]
    with pytest.raises(ConfigError, match="multiple of the class count"):
        allocate_per_class(10, [5, 5, 5], "balanced")
    with pytest.raises(ConfigError, match="at least one each"):
        allocate_per_class(2, [5, 5, 5], "proportional")
    with pytest.raises(ConfigError, match="unknown class allocation"):
        allocate_per_class(6, [5, 5, 5], "nope")

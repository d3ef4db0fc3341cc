"""The planner (server/budget.py) and the stored-set writer (server/payload_io.py): exact sizes, never over the
budget. The budget type itself is tested in tests/core/test_budget_type.py."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from edge_sdk.errors import ConfigError  # noqa: E402
from edge_sdk.server.budget import allocate_per_class, option_kind, plan, search_sweet_spot, write_rd_curve  # noqa: E402
from edge_sdk.server.payload_io import (  # noqa: E402
    CompactSet,
    PayloadCost,
    SoftStorage,
    Storage,
    compact_from_codec,
    read_compact,
    write_compact,
)

TASK = {"kind": "image", "shape": [1, 2, 3], "model": {"kind": "mlp"}}
PROV = {"tool": "test", "seed": 0}
OPTIONS = [("uniform", 2), ("uniform", 8), ("codebook", 1), ("codebook", 3), ("apot", 3), ("float32", 32), ("float16", 16)]


def _cost(classes: int, **kw) -> PayloadCost:
    return PayloadCost(num_classes=classes, task=TASK, provenance=PROV, **kw)


def _options(per_feature: bool = False):
    return [(q, Storage(option_kind(q), b, per_feature)) for q, b in OPTIONS]


@settings(max_examples=25, deadline=None)
@given(budget=st.integers(200, 40000), d=st.integers(1, 40), classes=st.integers(2, 12))
def test_plan_never_exceeds_budget_and_is_maximal(budget, d, classes):
    cost = _cost(classes)
    pts = plan(budget, options=_options(per_feature=True), n_classes_present=classes, d=d, cost=cost)
    for p in pts:
        assert p.bytes <= budget and p.n == p.ipc * classes
        assert p.bytes == cost.size(p.storage.layouts(p.n, d, classes))
        bigger = cost.size(p.storage.layouts(p.n + classes, d, classes))
        assert bigger > budget  # one more sample per class would not fit
    planned = {(p.quantizer, p.bits) for p in pts}
    for (q, b), (_, storage) in zip(OPTIONS, _options(per_feature=True), strict=True):
        if (q, b) not in planned:  # options left out really cannot fit one sample per class
            assert cost.size(storage.layouts(classes, d, classes)) > budget


def test_planned_size_equals_written_file(tmp_path):
    rng = np.random.default_rng(0)
    budget = 3000
    cost = _cost(4)
    storage = Storage("uniform_clip", 3)
    (pt,) = plan(budget, options=[("uniform", storage)], n_classes_present=4, d=10, cost=cost)
    X = rng.standard_normal((pt.n, 10)).astype(np.float32)
    y = np.repeat(np.arange(4), pt.ipc)
    cs = compact_from_codec(X, y, storage, {"alpha": np.array([2.0], np.float32)})
    info = write_compact(tmp_path / "p.epl", cs, cost, budget_bytes=budget, planned_bytes=pt.bytes)
    assert info.size == pt.bytes == (tmp_path / "p.epl").stat().st_size <= budget
    Xr, yr, soft, _ = read_compact(tmp_path / "p.epl")
    np.testing.assert_array_equal(Xr, cs.X)  # the decoded values of the set are what a device decodes
    np.testing.assert_array_equal(yr, y)
    assert soft is None
    # one more class-row does not fit: the writer refuses, and it refuses a size other than the plan's
    cs2 = compact_from_codec(np.concatenate([X, X[:4]]), np.concatenate([y, y[:4]]), storage,
                             {"alpha": np.array([2.0], np.float32)})
    with pytest.raises(ConfigError, match="over the budget"):
        write_compact(tmp_path / "q.epl", cs2, cost, budget_bytes=pt.bytes)
    with pytest.raises(ConfigError, match="planned"):
        write_compact(tmp_path / "q.epl", cs2, cost, planned_bytes=pt.bytes)
    assert not (tmp_path / "q.epl").exists()


def test_soft_labels_are_counted(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((8, 5)).astype(np.float32)
    y = np.repeat(np.arange(4), 2)
    soft = rng.standard_normal((8, 4)).astype(np.float32) * 3
    storage = Storage("codebook", 2, soft=SoftStorage())
    cs = compact_from_codec(X, y, storage, {"levels": np.array([-1, -0.3, 0.3, 1], np.float32)}, soft=soft)
    cost = _cost(4)
    size = cost.size(storage.layouts(8, 5, 4))
    info = write_compact(tmp_path / "s.epl", cs, cost)
    assert info.size == size > cost.size(Storage("codebook", 2).layouts(8, 5, 4))
    _, _, s2, _ = read_compact(tmp_path / "s.epl")
    np.testing.assert_array_equal(s2, cs.soft)
    assert np.abs(s2 - soft).max() < np.abs(soft).max() / 100  # 8-bit per-class threshold


def test_compact_set_decodes_like_the_payload_reader(tmp_path):
    """Any layout (here two widths of ADQ's kind + a raw group): X/y of the set == what read_payload decodes."""
    from edge_sdk import codecs
    from edge_sdk.payload import SampleGroup

    rng = np.random.default_rng(2)
    x = rng.standard_normal((30, 6)).astype(np.float32)
    y = rng.integers(0, 5, 30)
    c8, p8 = codecs.quantize(x[:10], "symmetric_per_sample", 8)
    c3, p3 = codecs.quantize(x[10:20], "symmetric_per_sample", 3)
    groups = [SampleGroup("b32", "float32", 32, data=x[20:], params={}, labels=y[20:]),
              SampleGroup("b8", "symmetric_per_sample", 8, data=c8, params={"scale": p8["scale"].astype(np.float16)},
                          labels=y[:10]),
              SampleGroup("b3", "symmetric_per_sample", 3, data=c3, params=p3, labels=y[10:20])]
    cs = CompactSet.from_groups(groups, {"note": 1})
    write_compact(tmp_path / "g.epl", cs, _cost(5))
    X, yy, soft, _ = read_compact(tmp_path / "g.epl")
    np.testing.assert_array_equal(X, cs.X)
    np.testing.assert_array_equal(yy, cs.y)
    assert soft is None and cs.n == 30 and cs.info == {"note": 1}
    with pytest.raises(ConfigError, match="no sample"):
        CompactSet.from_groups([])


def test_plan_tiny_budget_and_sweet_spot(tmp_path):
    assert plan(10, options=_options(), n_classes_present=3, d=4, cost=_cost(3)) == []
    pts = plan(4000, options=[("uniform", Storage("uniform_clip", 2)), ("uniform", Storage("uniform_clip", 8))],
               n_classes_present=3, d=4, cost=_cost(3))
    best, scores = search_sweet_spot(pts, lambda p: -abs(p.bits - 8))
    assert best.bits == 8 and len(scores) == 2
    with pytest.raises(ConfigError):
        search_sweet_spot([], lambda p: 0.0)
    rows = [{"method": "m", "bits": p.bits, "payload_bytes": p.bytes, "top1_mean": 0.5, "top1_std": 0.1} for p in pts]
    write_rd_curve(rows, tmp_path / "rd.parquet", tmp_path / "rd.png")
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "rd.parquet").num_rows == 2
    assert (tmp_path / "rd.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rd.parquet", "rd.png"]  # no temp file left


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

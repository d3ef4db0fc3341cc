"""Schema-v1 writer/reader: round trips, chunked appends, resume, finalize rules."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_sdk.beam.dataset import BeamDataset, top1_label
from edge_sdk.beam.h5reader import SCHEMA_NAME, open_beam_h5, partial_path, read_beam_h5
from edge_sdk.beam.h5writer import BeamH5Writer, write_beam_h5
from edge_sdk.beam.synthetic import make_synthetic_beam_dataset
from edge_sdk.errors import DatasetError

ATTRS = {"preset": {"name": "t"}, "seed": 3, "generator_version": "test", "sionna_version": "none"}


def _batch(rng: np.random.Generator, b: int, n_tx: int = 8, n_rx: int = 2, case2: bool = False, t0: int = 0):
    out = {
        "rsrp": rng.uniform(-130, -60, (b, n_tx, n_rx)).astype(np.float32),
        "los": rng.random(b) < 0.3,
        "indoor": rng.random(b) < 0.5,
        "d2d": rng.uniform(10, 200, b).astype(np.float32),
        "ue_pos": rng.normal(0, 50, (b, 3)).astype(np.float32),
        "cell": rng.integers(0, 3, b),
    }
    if case2:
        out["traj_id"] = np.arange(t0, t0 + b) // 4
        out["t_index"] = np.arange(t0, t0 + b) % 4
    return out


@pytest.mark.parametrize("case", ["case1", "case2"])
def test_round_trip_synthetic(tmp_path, case):
    ds = make_synthetic_beam_dataset(300, n_tx=32, n_rx=8, seed=5, case=case, steps=10)
    p = write_beam_h5(tmp_path / "a.h5", ds)
    assert p == tmp_path / "a.h5" and not partial_path(p).exists()
    back = read_beam_h5(p)
    for name, arr in ds.arrays().items():
        got = getattr(back, name)
        assert got.dtype == arr.dtype and np.array_equal(got, arr), name
    assert back.attrs["schema"] == SCHEMA_NAME and back.attrs["schema_version"] == 1
    assert back.attrs["complete"] is True and back.attrs["n_target"] == 300
    assert back.preset["name"] == "synthetic-toy"
    assert back.case == case
    if case == "case2":
        assert back.time_step_s == pytest.approx(0.1)
    with h5py.File(p, "r") as f:
        assert f["rsrp"].fletcher32 and f["rsrp"].compression == "gzip" and f["rsrp"].chunks is not None
        assert f["rsrp"].dtype == np.float16


def test_lazy_reader(tmp_path):
    ds = make_synthetic_beam_dataset(100, seed=1)
    write_beam_h5(tmp_path / "a.h5", ds)
    with open_beam_h5(tmp_path / "a.h5") as f:
        assert f.n == 100 and f.n_tx == 32 and f.n_rx == 8
        assert np.array_equal(f.read("rsrp", slice(10, 20)), ds.rsrp[10:20])
        pieces = list(f.iter_rows(33))
        assert [p.n for p in pieces] == [33, 33, 33, 1]
        assert np.array_equal(np.concatenate([p.label for p in pieces]), ds.label)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    sizes=st.lists(st.integers(0, 40), min_size=1, max_size=6),
    n_tx=st.sampled_from([4, 8, 32]),
    n_rx=st.integers(1, 4),
    case2=st.booleans(),
    kill_at=st.integers(0, 6),
)
def test_writer_chunks_and_resume(tmp_path_factory, sizes, n_tx, n_rx, case2, kill_at):
    """Arbitrary append sizes (crossing chunk boundaries), a 'crash' after some appends, resume, finalize."""
    tmp = tmp_path_factory.mktemp("w")
    rng = np.random.default_rng(sum(sizes) + n_tx)
    attrs = dict(ATTRS, time_step_s=0.02) if case2 else dict(ATTRS)
    case = "case2" if case2 else "case1"
    batches, t0 = [], 0
    for b in sizes:
        batches.append(_batch(rng, b, n_tx, n_rx, case2, t0))
        t0 += b
    total = sum(sizes)
    w = BeamH5Writer.create(tmp / "x.h5", attrs, n_tx, n_rx, case, n_target=total)
    k = min(kill_at, len(batches))
    for b in batches[:k]:
        w.append(b)
    w.close()  # simulated kill between appends
    assert not (tmp / "x.h5").exists() and BeamH5Writer.can_resume(tmp / "x.h5")
    w = BeamH5Writer.open_resume(tmp / "x.h5")
    assert w.n_done == sum(sizes[:k]) and w.attrs["seed"] == 3
    for b in batches[k:]:
        w.append(b)
    if total == 0:  # readers refuse files without rows, so the writer never finalizes one (issue 12)
        with pytest.raises(DatasetError, match="no rows"):
            w.finalize()
        w.close()
        return
    w.finalize()
    ds = read_beam_h5(tmp / "x.h5")
    assert ds.n == total and ds.rsrp.shape == (total, n_tx, n_rx)
    want = np.concatenate([b["rsrp"] for b in batches]).astype(np.float16)
    assert np.array_equal(ds.rsrp, want)
    assert np.array_equal(ds.label, top1_label(want.reshape(total, n_tx, n_rx)))
    if case2:
        assert ds.traj_id is not None and np.array_equal(ds.t_index, np.arange(total) % 4)


def test_resume_truncates_uncommitted_rows(tmp_path):
    """Rows written without the n_done commit (killed mid-append) are dropped on resume."""
    rng = np.random.default_rng(0)
    w = BeamH5Writer.create(tmp_path / "x.h5", ATTRS, 8, 2, "case1")
    w.append(_batch(rng, 10))
    w.close()
    with h5py.File(partial_path(tmp_path / "x.h5"), "r+") as f:  # half-done append: rows but no commit
        f["rsrp"].resize(15, axis=0)
        f["label"].resize(13, axis=0)
    w = BeamH5Writer.open_resume(tmp_path / "x.h5")
    assert w.n_done == 10
    w.append(_batch(rng, 5))
    w.finalize()
    assert read_beam_h5(tmp_path / "x.h5").n == 15


def test_incomplete_file_refused_unless_allowed(tmp_path):
    w = BeamH5Writer.create(tmp_path / "x.h5", ATTRS, 8, 2, "case1", n_target=20)
    w.append(_batch(np.random.default_rng(0), 10))
    w.close()
    part = partial_path(tmp_path / "x.h5")
    with pytest.raises(DatasetError, match="incomplete"):
        read_beam_h5(part)
    assert read_beam_h5(part, allow_incomplete=True).n == 10
    w = BeamH5Writer.open_resume(tmp_path / "x.h5")
    with pytest.raises(DatasetError, match="n_target"):
        w.finalize()
    with pytest.raises(DatasetError, match="exceed n_target"):
        w.append(_batch(np.random.default_rng(1), 11))
    w.append(_batch(np.random.default_rng(1), 10))
    w.finalize()
    with pytest.raises(DatasetError, match="already complete"):
        BeamH5Writer.open_resume(tmp_path / "x.h5")
    with pytest.raises(DatasetError, match="no unfinished run"):
        BeamH5Writer.open_resume(tmp_path / "y.h5")


def test_create_refuses_overwrite_and_bad_attrs(tmp_path):
    write_beam_h5(tmp_path / "a.h5", make_synthetic_beam_dataset(10, seed=0))
    with pytest.raises(DatasetError, match="exists"):
        BeamH5Writer.create(tmp_path / "a.h5", ATTRS, 8, 2, "case1")
    for bad, msg in [
        ({k: v for k, v in ATTRS.items() if k != "seed"}, "seed"),
        (dict(ATTRS, preset="{nope"), "JSON"),
        (dict(ATTRS, schema="x"), "set by the writer"),
        (dict(ATTRS, seed="7"), "int"),
    ]:
        with pytest.raises(DatasetError, match=msg):
            BeamH5Writer.create(tmp_path / "b.h5", bad, 8, 2, "case1")
    with pytest.raises(DatasetError, match="time_step_s"):
        BeamH5Writer.create(tmp_path / "b.h5", ATTRS, 8, 2, "case2")
    with pytest.raises(DatasetError, match="n_tx"):
        BeamH5Writer.create(tmp_path / "b.h5", ATTRS, 7, 2, "case1")
    with pytest.raises(DatasetError, match="case"):
        BeamH5Writer.create(tmp_path / "b.h5", ATTRS, 8, 2, "case3")


def test_append_validation(tmp_path):
    rng = np.random.default_rng(0)
    w = BeamH5Writer.create(tmp_path / "x.h5", ATTRS, 8, 2, "case1")
    good = _batch(rng, 4)
    cases = [
        ({**good, "rsrp": good["rsrp"][:, :7]}, "rsrp"),
        ({**good, "rsrp": np.full((4, 8, 2), np.nan)}, "NaN"),
        ({**good, "rsrp": np.full((4, 8, 2), 1e6)}, "float16"),
        ({k: v for k, v in good.items() if k != "los"}, "los"),
        ({**good, "d2d": good["d2d"][:3]}, "d2d"),
        ({**good, "cell": np.full(4, 1 << 20)}, "cell"),
        ({**good, "cell": np.zeros(4, np.float32)}, "integer"),
        ({**good, "traj_id": np.zeros(4, int)}, "unknown"),
        ({**good, "label": (top1_label(good["rsrp"].astype(np.float16)) + 1) % 8}, "argmax"),
    ]
    for batch, msg in cases:
        with pytest.raises(DatasetError, match=msg):
            w.append(batch)
    assert w.n_done == 0
    w.append({**good, "label": top1_label(good["rsrp"].astype(np.float16))})
    assert w.n_done == 4
    w.finalize()


def test_dataset_validate_and_subset():
    ds = make_synthetic_beam_dataset(50, seed=2)
    sub = ds.subset(np.arange(0, 50, 5))
    assert sub.n == 10 and np.array_equal(sub.rsrp, ds.rsrp[::5])
    bad = BeamDataset(**{**ds.arrays(), "label": ds.label.astype(np.int32)}, attrs=ds.attrs)
    with pytest.raises(DatasetError, match="dtype"):
        bad.validate()
    assert json.loads(ds.attrs["preset"])["name"] == "synthetic-toy"


def test_inspect_crashed_partial(tmp_path):
    """A partial file with uncommitted rows can be inspected (rows past n_done ignored) but not read as complete."""
    rng = np.random.default_rng(0)
    w = BeamH5Writer.create(tmp_path / "x.h5", ATTRS, 8, 2, "case1")
    w.append(_batch(rng, 10))
    w.close()
    part = partial_path(tmp_path / "x.h5")
    with h5py.File(part, "r+") as f:
        f["rsrp"].resize(15, axis=0)
    ds = read_beam_h5(part, allow_incomplete=True)
    assert ds.n == 10 and ds.rsrp.shape == (10, 8, 2)
    with open_beam_h5(part, allow_incomplete=True) as f:
        assert f.read("rsrp", slice(8, None)).shape == (2, 8, 2)
        assert f.read("label", np.array([9, 0, 9])).tolist() == [ds.label[9], ds.label[0], ds.label[9]]
        with pytest.raises(DatasetError, match="out of range"):
            f.read("label", np.array([10]))
    with pytest.raises(DatasetError, match="incomplete"):
        read_beam_h5(part)


def test_resume_after_sigkill(tmp_path):
    """A writer process killed with SIGKILL (no close) leaves a .partial that the next run resumes with the
    committed rows (with HDF5's v110+ superblock the file would stay marked 'open for write' and be unreadable)."""
    import signal
    import subprocess
    import sys

    out = tmp_path / "x.h5"
    code = (
        "import os, signal, numpy as np\n"
        "from edge_sdk.beam.h5writer import BeamH5Writer\n"
        f"w = BeamH5Writer.create({str(out)!r}, {ATTRS!r}, 8, 2, 'case1', n_target=20)\n"
        "rng = np.random.default_rng(0)\n"
        "w.append({'rsrp': rng.uniform(-130, -60, (12, 8, 2)), 'los': np.zeros(12, bool),\n"
        "          'indoor': np.zeros(12, bool), 'd2d': np.full(12, 50.0), 'ue_pos': np.zeros((12, 3)),\n"
        "          'cell': np.zeros(12, int)})\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == -signal.SIGKILL, p.stderr
    assert BeamH5Writer.can_resume(out) and not out.exists()
    w = BeamH5Writer.open_resume(out)
    assert w.n_done == 12
    w.append(_batch(np.random.default_rng(1), 8))
    w.finalize()
    assert read_beam_h5(out).n == 20

"""Mutation / fuzz tests: every damaged or non-conforming file gives DatasetError (never another error)."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

from edge_sdk.beam.h5reader import read_beam_h5
from edge_sdk.beam.h5writer import write_beam_h5
from edge_sdk.beam.synthetic import make_synthetic_beam_dataset
from edge_sdk.errors import DatasetError


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    p = tmp_path_factory.mktemp("fz") / "good.h5"
    write_beam_h5(p, make_synthetic_beam_dataset(400, seed=9, case="case2", steps=10))
    return p


def _copy(good, tmp_path):
    q = tmp_path / "m.h5"
    shutil.copyfile(good, q)
    return q


def _set_attr(name, value):
    def f(h):
        h.attrs[name] = value

    return f


def _del_attr(name):
    def f(h):
        del h.attrs[name]

    return f


def _replace(name, fn):
    def f(h):
        arr = h[name][()]
        del h[name]
        h.create_dataset(name, data=fn(arr))

    return f


MUTATIONS = {
    "schema_name": (_set_attr("schema", "other/thing"), "not an edge-sdk beam dataset"),
    "newer_version": (_set_attr("schema_version", 2), "upgrade edge-sdk"),
    "version_str": (_set_attr("schema_version", "1"), "schema_version"),
    "zero_version": (_set_attr("schema_version", 0), "schema_version"),
    "no_case": (_del_attr("case"), "case"),
    "bad_case": (_set_attr("case", "case9"), "case"),
    "no_seed": (_del_attr("seed"), "seed"),
    "seed_float": (_set_attr("seed", 1.5), "seed"),
    "preset_not_json": (_set_attr("preset", "{x"), "preset"),
    "preset_list": (_set_attr("preset", "[1]"), "preset"),
    "n_tx_mismatch": (_set_attr("n_tx", 64), "shape"),
    "n_tx_huge": (_set_attr("n_tx", 10**9), "n_tx"),
    "n_done_mismatch": (_set_attr("n_done", 399), "n_done|n_target"),
    "n_done_negative": (_set_attr("n_done", -1), "n_done"),
    "incomplete": (_set_attr("complete", False), "incomplete"),
    "complete_not_bool": (_set_attr("complete", 1), "complete"),
    "no_time_step": (_del_attr("time_step_s"), "time_step_s"),
    "missing_rsrp": (lambda h: h.__delitem__("rsrp"), "rsrp"),
    "missing_traj": (lambda h: h.__delitem__("traj_id"), "traj_id"),
    "group_not_dataset": (lambda h: (h.__delitem__("los"), h.create_group("los")), "los"),
    "rsrp_float32": (_replace("rsrp", lambda a: a.astype(np.float32)), "dtype"),
    "label_int32": (_replace("label", lambda a: a.astype(np.int32)), "dtype"),
    "rsrp_2d": (_replace("rsrp", lambda a: a.reshape(len(a), -1)), "shape"),
    "short_d2d": (_replace("d2d", lambda a: a[:-1]), "shape"),
    "ue_pos_2cols": (_replace("ue_pos", lambda a: a[:, :2]), "shape"),
    "wrong_label": (_replace("label", lambda a: ((a + 1) % 32).astype(np.int16)), "argmax"),
    "label_out_of_range": (_replace("label", lambda a: np.full_like(a, 99)), "range"),
    "rsrp_nan": (
        _replace(
            "rsrp", lambda a: np.where(np.arange(a.size).reshape(a.shape) == 7, np.nan, a).astype(np.float16)
        ),
        "NaN",
    ),
}


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_mutation_gives_dataset_error(good, tmp_path, name):
    fn, msg = MUTATIONS[name]
    q = _copy(good, tmp_path)
    with h5py.File(q, "r+") as h:
        fn(h)
    with pytest.raises(DatasetError, match=msg):
        read_beam_h5(q)


def test_not_hdf5_and_empty(tmp_path):
    (tmp_path / "a.h5").write_bytes(b"hello world" * 100)
    (tmp_path / "e.h5").write_bytes(b"")
    for p in ("a.h5", "e.h5"):
        with pytest.raises(DatasetError, match="not an HDF5 file"):
            read_beam_h5(tmp_path / p)
    with pytest.raises(DatasetError, match="directory"):
        read_beam_h5(tmp_path)
    with pytest.raises(FileNotFoundError):
        read_beam_h5(tmp_path / "missing.h5")


def test_max_bytes_checked_before_reading(good):
    with pytest.raises(DatasetError, match="max_bytes"):
        read_beam_h5(good, max_bytes=1000)


@pytest.mark.parametrize("frac", [0.0, 0.01, 0.3, 0.6, 0.9, 0.999])
def test_truncated_file(good, tmp_path, frac):
    data = good.read_bytes()
    q = tmp_path / "t.h5"
    q.write_bytes(data[: int(len(data) * frac)])
    with pytest.raises(DatasetError):
        read_beam_h5(q)


def test_flipped_bytes_in_data_chunks(good, tmp_path):
    """Bit flips inside stored chunks are caught by fletcher32 (or the decompressor) -> DatasetError."""
    with h5py.File(good, "r") as h:
        offsets = [h["rsrp"].id.get_chunk_info(0).byte_offset, h["ue_pos"].id.get_chunk_info(0).byte_offset]
    data = bytearray(good.read_bytes())
    for off in offsets:
        q = tmp_path / f"f{off}.h5"
        d = bytearray(data)
        for j in range(5):
            d[off + 40 + j] ^= 0xFF
        q.write_bytes(bytes(d))
        with pytest.raises(DatasetError, match="damaged"):
            read_beam_h5(q)


def test_random_byte_flips_never_crash_uncontrolled(good, tmp_path):
    """Seeded random corruption (half of the trials in the metadata near the file start): the reader
    either succeeds or raises DatasetError, never another exception."""
    data = good.read_bytes()
    rng = np.random.default_rng(1234)
    outcomes = {"ok": 0, "error": 0}
    for i in range(16):
        d = bytearray(data)
        hi = 8192 if i % 2 else len(d)
        for off in rng.integers(0, hi, 4):
            d[int(off)] ^= int(rng.integers(1, 256))
        q = tmp_path / f"r{i}.h5"
        q.write_bytes(bytes(d))
        try:
            read_beam_h5(q)
            outcomes["ok"] += 1
        except DatasetError:
            outcomes["error"] += 1
    assert outcomes["error"] > 0

"""Sharded datasets stitched by an HDF5 virtual dataset: every reader sees one dataset; a stitched file that is
incomplete, points outside its folder, or disagrees with its shards is refused (edge_sdk.beam.vds)."""

from __future__ import annotations

import os
import shutil

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_sdk.beam.dataset import BeamDataset
from edge_sdk.beam.h5reader import open_beam_h5, read_beam_h5
from edge_sdk.beam.h5writer import stitch_shards, write_beam_h5
from edge_sdk.beam.synthetic import make_synthetic_beam_dataset
from edge_sdk.errors import DatasetError


def _shards(ds: BeamDataset, folder, cuts: list[int], stem: str = "d") -> list:
    """Write rows [cuts[i], cuts[i+1]) of ``ds`` as shard files with the generator's shard attributes."""
    paths = []
    for i in range(len(cuts) - 1):
        part = ds.subset(slice(cuts[i], cuts[i + 1]))
        part.attrs = {**ds.attrs, "shard_index": i, "shard_count": len(cuts) - 1, "row_offset": cuts[i]}
        p = folder / f"{stem}.shard{i:03d}of{len(cuts) - 1:03d}.h5"
        write_beam_h5(p, part)
        paths.append(p)
    return paths


@pytest.fixture(scope="module")
def ds2() -> BeamDataset:
    d = make_synthetic_beam_dataset(300, seed=3, case="case2", steps=10)
    d.attrs.update({"seed": 5, "generator_version": "test/1", "sionna_version": "-"})
    return d


def _same(a: BeamDataset, b: BeamDataset) -> None:
    for name, arr in a.arrays().items():
        np.testing.assert_array_equal(arr, getattr(b, name), err_msg=name)


def test_stitched_file_reads_like_one_dataset(tmp_path, ds2) -> None:
    paths = _shards(ds2, tmp_path, [0, 100, 170, 300])
    out = stitch_shards(tmp_path / "d.h5", paths[::-1])  # any order: sorted by row_offset
    with pytest.raises(DatasetError, match="allow_virtual"):  # refused unless asked for (issue 12)
        read_beam_h5(out)
    got = read_beam_h5(out, allow_virtual=True)
    _same(ds2, got)
    assert got.attrs["shard_count"] == 3 and "row_offset" not in got.attrs
    with open_beam_h5(out, allow_virtual=True) as f:  # lazy reads across shard boundaries, any index order
        idx = np.array([299, 0, 150, 99, 100, 170, 169])
        np.testing.assert_array_equal(f.read("rsrp", idx), ds2.rsrp[idx])
        np.testing.assert_array_equal(f.read("traj_id", slice(95, 105)), ds2.traj_id[95:105])
        assert f.shard_files == [p.name for p in paths]
    # plain h5py reads the stitched file too, from any working directory
    cwd = os.getcwd()
    try:
        os.chdir("/")
        with h5py.File(out, "r") as h:
            np.testing.assert_array_equal(h["label"][:], ds2.label)
    finally:
        os.chdir(cwd)
    with pytest.raises(DatasetError, match="exists"):
        stitch_shards(tmp_path / "d.h5", paths)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.integers(1, 299), min_size=0, max_size=5, unique=True))
def test_any_split_round_trips(tmp_path_factory, ds2, cuts) -> None:
    folder = tmp_path_factory.mktemp("split")
    paths = _shards(ds2, folder, [0, *sorted(cuts), 300])
    _same(ds2, read_beam_h5(stitch_shards(folder / "d.h5", paths), allow_virtual=True))


@pytest.fixture()
def stitched(tmp_path, ds2):
    paths = _shards(ds2, tmp_path, [0, 150, 300])
    return stitch_shards(tmp_path / "d.h5", paths), paths


def test_missing_or_replaced_shard_is_refused(stitched, tmp_path, ds2) -> None:
    out, paths = stitched
    paths[1].rename(tmp_path / "elsewhere.h5")
    with pytest.raises(DatasetError, match="missing"):
        read_beam_h5(out, allow_virtual=True)
    # a shard of another run (other seed) in its place
    other = ds2.subset(slice(150, 300))
    other.attrs = {**ds2.attrs, "seed": 6, "row_offset": 150}
    write_beam_h5(paths[1], other)
    with pytest.raises(DatasetError, match="seed"):
        read_beam_h5(out, allow_virtual=True)
    # a shard at the wrong offset
    other.attrs = {**ds2.attrs, "row_offset": 140}
    write_beam_h5(paths[1], other, overwrite=True)
    with pytest.raises(DatasetError, match="offset"):
        read_beam_h5(out, allow_virtual=True)


def test_symlinked_shard_is_refused(stitched, tmp_path) -> None:
    out, paths = stitched
    real = tmp_path / "real.h5"
    shutil.move(paths[0], real)
    os.symlink(real, paths[0])
    with pytest.raises(DatasetError, match="missing|regular"):
        read_beam_h5(out, allow_virtual=True)


def _vds(path, sources: list[tuple[str, int, int]], n: int, like) -> None:
    """A hand-made stitched file: ``sources`` = (file name, start, stop) mapped to rows [start, stop)."""
    with h5py.File(like, "r") as g, h5py.File(path, "w", libver=("v110", "latest")) as f:
        for k, v in g.attrs.items():
            f.attrs[k] = v
        f.attrs["n_done"] = n
        f.attrs["n_target"] = n
        for name, ds in g.items():
            lay = h5py.VirtualLayout(shape=(n, *ds.shape[1:]), dtype=ds.dtype)
            for fname, a, b in sources:
                lay[a:b] = h5py.VirtualSource(fname, name, shape=(b - a, *ds.shape[1:]), dtype=ds.dtype)
            f.create_virtual_dataset(name, lay)


@pytest.mark.parametrize("case", ["absolute", "parent", "gap", "overlap", "nested"])
def test_crafted_stitched_files_are_refused(stitched, tmp_path, case) -> None:
    out, paths = stitched
    a, b = paths[0].name, paths[1].name
    bad = tmp_path / "bad.h5"
    if case == "absolute":
        _vds(bad, [(str(paths[0].resolve()), 0, 150), (b, 150, 300)], 300, paths[0])
        match = "plain file name"
    elif case == "parent":
        sub = tmp_path / "sub"
        sub.mkdir()
        bad = sub / "bad.h5"
        _vds(bad, [("../" + a, 0, 150), ("../" + b, 150, 300)], 300, paths[0])
        match = "plain file name"
    elif case == "gap":
        _vds(bad, [(a, 0, 150), (b, 160, 310)], 310, paths[0])
        match = "tile"
    elif case == "overlap":
        _vds(bad, [(a, 0, 150), (b, 140, 290)], 290, paths[0])
        match = "tile"
    else:  # a stitched file used as a shard of another stitched file
        shutil.copyfile(out, tmp_path / "inner.h5")
        _vds(bad, [("inner.h5", 0, 300)], 300, paths[0])
        match = "virtual dataset over other files"  # the shard is read with allow_virtual=False
    with pytest.raises(DatasetError, match=match):
        read_beam_h5(bad, allow_virtual=True)

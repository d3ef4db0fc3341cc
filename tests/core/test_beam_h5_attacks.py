"""Untrusted HDF5 input (issue 12): zero rows, compression bombs, oversized chunks, foreign filters, and storage
that points outside the file (external links, soft links, virtual datasets, external raw files) all end in one
typed DatasetError line before any value is read; ``allow_virtual`` / ``allow_external`` opt in. CLI runs are
memory-capped subprocesses (RLIMIT_AS)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from edge_sdk.beam.h5reader import (
    DEFAULT_MAX_BYTES,
    MAX_CHUNK_BYTES,
    H5ReadOptions,
    open_beam_h5,
    read_beam_h5,
)
from edge_sdk.beam.h5writer import write_beam_h5
from edge_sdk.beam.synthetic import make_synthetic_beam_dataset
from edge_sdk.errors import DatasetError

#: address-space cap of the CLI subprocesses: start-up (numpy, h5py, onnxruntime) + far less than a bomb's 2 GiB
RLIMIT_AS = 1536 << 20


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("h5a") / "good.h5"
    write_beam_h5(p, make_synthetic_beam_dataset(64, seed=3))
    return p


def _copy(good: Path, tmp_path: Path, name: str = "m.h5") -> Path:
    q = tmp_path / name
    shutil.copyfile(good, q)
    return q


def _declare_rows(h: h5py.File, n: int) -> None:
    """Declare ``n`` rows in every dataset without writing them (HDF5 stores no chunk for them; reading gives the
    fill value 0, so an all-zero rsrp row has argmax 0 and label 0 is even right)."""
    for name in list(h):
        if n > h[name].shape[0]:
            h[name][:] = 0
        h[name].resize(n, axis=0)
    h.attrs["n_done"] = n
    h.attrs["n_target"] = n


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``edge-sdk ARGS`` in a subprocess whose address space is capped at :data:`RLIMIT_AS`."""
    code = ("import resource, sys\n"
            f"resource.setrlimit(resource.RLIMIT_AS, ({RLIMIT_AS}, {RLIMIT_AS}))\n"
            "from edge_sdk.cli.main import main\n"
            "sys.exit(main(sys.argv[1:]))\n")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300, cwd=cwd)


def _one_typed_line(r: subprocess.CompletedProcess, code: int, *needles: str) -> None:
    assert r.returncode == code, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr and r.stderr.strip().count("\n") == 0, r.stderr[-2000:]
    for n in needles:
        assert n in r.stderr, r.stderr


def test_zero_rows_is_a_typed_error_everywhere(good, tmp_path):
    q = _copy(good, tmp_path)
    with h5py.File(q, "r+") as h:
        _declare_rows(h, 0)
    for fn in (read_beam_h5, open_beam_h5):
        with pytest.raises(DatasetError, match="no rows"):
            fn(q)
    _one_typed_line(cli("data", "info", str(q)), 3, "no rows")
    _one_typed_line(cli("data", "export", str(q), "--parquet", str(tmp_path / "x.parquet")), 3, "no rows")
    assert not (tmp_path / "x.parquet").exists()
    # an unfinished file may still be inspected while it has no rows
    with open_beam_h5(q, allow_incomplete=True) as f:
        assert f.n == 0


def test_writer_refuses_to_finalize_an_empty_file(tmp_path):
    from edge_sdk.beam.h5writer import BeamH5Writer

    w = BeamH5Writer.create(tmp_path / "e.h5", {"preset": {}, "seed": 0, "generator_version": "t",
                                                   "sionna_version": "0"}, n_tx=32, n_rx=8, case="case1")
    with pytest.raises(DatasetError, match="no rows"):
        w.finalize()
    w.close()


def _bomb(good: Path, tmp_path: Path, rows: int, gzip_rows: int = 0) -> Path:
    """``rows`` declared rows of zeros; the first ``gzip_rows`` of them really written (gzip: ~1 KB per MB)."""
    q = _copy(good, tmp_path, f"bomb{rows}.h5")
    with h5py.File(q, "r+") as h:
        _declare_rows(h, rows)
        ds = h["rsrp"]
        block = np.zeros((ds.chunks[0] * 16,) + ds.shape[1:], ds.dtype)
        for s in range(0, gzip_rows, len(block)):
            e = min(gzip_rows, s + len(block))
            ds[s:e] = block[: e - s]
    return q


def test_compression_bomb_refused_from_the_declared_shape(good, tmp_path):
    """The issue's case: a 2.2 MB gzip bomb that `data info` read into 1.6 GB (and `--eval` 3.9 GB)."""
    rows = 3_200_000  # 3.2 M rows x (32 x 8 float16 + the rest) = 1.7 GB declared
    q = _bomb(good, tmp_path, rows, gzip_rows=rows)
    size = q.stat().st_size
    assert size < 4 << 20, size  # ~2 MB of real gzip data
    with pytest.raises(DatasetError, match="max_bytes"):
        open_beam_h5(q)
    _one_typed_line(cli("data", "info", str(q)), 3, "max_bytes", "--max-bytes")
    # device train --eval / device eval: tests/device/test_device_inputs.py::test_eval_data_is_checked_before_training


def test_max_bytes_override_reads_a_big_file(good, tmp_path):
    q = _bomb(good, tmp_path, 300_000)  # 160 MB declared, nothing stored
    with pytest.raises(DatasetError, match="max_bytes"):
        open_beam_h5(q, max_bytes=64 << 20)
    with open_beam_h5(q, **H5ReadOptions(max_bytes=256 << 20).kwargs()) as f:
        assert f.n == 300_000 and f.nbytes <= 256 << 20
    _one_typed_line(cli("data", "info", str(q), "--max-bytes", "64MiB"), 3, "max_bytes")
    r = cli("data", "info", str(q), "--max-bytes", "1GiB", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    _one_typed_line(cli("data", "info", str(q), "--max-bytes", "lots"), 2, "--max-bytes")


def test_default_cap_is_documented_and_options_validate():
    assert DEFAULT_MAX_BYTES == 1 << 30
    with pytest.raises(DatasetError, match="max_bytes"):
        H5ReadOptions(max_bytes=0)


def test_oversized_chunks_refused(good, tmp_path):
    q = _copy(good, tmp_path)
    rows = MAX_CHUNK_BYTES // (32 * 8 * 2) + 1
    with h5py.File(q, "r+") as h:
        del h["rsrp"]
        h.create_dataset("rsrp", shape=(64, 32, 8), maxshape=(None, 32, 8), dtype=np.float16,
                         chunks=(rows, 32, 8), compression="gzip")
        _declare_rows(h, rows)
    with pytest.raises(DatasetError, match="chunks"):
        open_beam_h5(q, max_bytes=1 << 34)


def test_foreign_filter_refused(good, tmp_path):
    q = _copy(good, tmp_path)
    with h5py.File(q, "r+") as h:
        d2d = h["d2d"][()]
        del h["d2d"]
        h.create_dataset("d2d", data=d2d, maxshape=(None,), chunks=(64,), scaleoffset=3)
    with pytest.raises(DatasetError, match="filter"):
        open_beam_h5(q)


def _outside(good: Path, tmp_path: Path, kind: str, source_dir: Path | None = None) -> tuple[Path, np.ndarray]:
    """A copy of ``good`` whose ``d2d`` lives outside the file in the way ``kind`` names."""
    q = _copy(good, tmp_path)
    odir = source_dir or tmp_path
    other = _copy(good, odir, "other.h5")
    with h5py.File(q, "r+") as h:
        arr = h["d2d"][()]
        del h["d2d"]
        if kind == "external_link":
            h["d2d"] = h5py.ExternalLink(other.name if odir == tmp_path else str(other), "/d2d")
        elif kind == "soft_link":
            h.create_dataset("d2d_copy", data=arr, maxshape=(None,), chunks=(64,))
            h["d2d"] = h5py.SoftLink("/d2d_copy")
        elif kind == "virtual":
            layout = h5py.VirtualLayout(shape=arr.shape, dtype=arr.dtype)
            layout[:] = h5py.VirtualSource(other.name if odir == tmp_path else str(other), "d2d", shape=arr.shape)
            h.create_virtual_dataset("d2d", layout)
        else:
            raw = odir / "d2d.raw"
            raw.write_bytes(arr.astype("<f4").tobytes())
            h.create_dataset("d2d", shape=arr.shape, dtype="<f4", external=[(raw.name, 0, arr.nbytes)])
    return q, arr


@pytest.mark.parametrize("kind", ["external_link", "soft_link", "virtual", "external_storage"])
def test_storage_outside_the_file_refused_unless_allowed(good, tmp_path, kind, monkeypatch):
    q, arr = _outside(good, tmp_path, kind)
    monkeypatch.chdir(tmp_path)  # HDF5 resolves external raw storage against the working directory
    with pytest.raises(DatasetError, match="refused|soft link"):
        read_beam_h5(q)
    _one_typed_line(cli("data", "info", str(q), cwd=tmp_path), 3, "--allow-")
    if kind == "soft_link":  # the extra dataset makes the soft-link file non-conforming either way
        return
    # allow_virtual accepts only a stitched sharded dataset (tests/core/test_beam_vds.py), not this one
    with pytest.raises(DatasetError, match="refused|virtual"):
        read_beam_h5(q, allow_virtual=True)
    assert np.array_equal(read_beam_h5(q, allow_external=True).d2d, arr)
    r = cli("data", "info", str(q), "--allow-external", cwd=tmp_path)
    assert r.returncode == 0, r.stderr


def test_stitched_dataset_needs_allow_virtual_and_its_shards_are_checked(tmp_path):
    from edge_sdk.beam.h5writer import stitch_shards

    ds = make_synthetic_beam_dataset(128, seed=4)
    ds.attrs.update({"seed": 5, "generator_version": "test/1", "sionna_version": "-"})
    paths = []
    for i, (a, b) in enumerate([(0, 64), (64, 128)]):
        part = ds.subset(slice(a, b))
        part.attrs = {**ds.attrs, "shard_index": i, "shard_count": 2, "row_offset": a}
        paths.append(tmp_path / f"d.shard{i}of2.h5")
        write_beam_h5(paths[-1], part)
    out = stitch_shards(tmp_path / "d.h5", paths)
    with pytest.raises(DatasetError, match="--allow-virtual"):
        read_beam_h5(out)
    _one_typed_line(cli("data", "info", str(out)), 3, "--allow-virtual")
    assert read_beam_h5(out, allow_virtual=True).n == 128
    assert cli("data", "info", str(out), "--allow-virtual").returncode == 0
    rows = MAX_CHUNK_BYTES // 4 + 1
    with h5py.File(paths[1], "r+") as h:  # a shard's own storage gets the same checks
        d2d = h["d2d"][()]
        del h["d2d"]
        h.create_dataset("d2d", data=d2d, maxshape=(None,), chunks=(rows,), compression="gzip")
    with pytest.raises(DatasetError, match="chunks"):
        read_beam_h5(out, allow_virtual=True)


#: a beam file with a few flipped metadata bytes (case 873 of ``tests/core/test_beam_h5_fuzz.py 3000 6``, kept):
#: libhdf5 (HDF5 2.0.0, h5py 3.16) segfaults reading its root attributes, before any Python check can run
CRASH_FILE = Path(__file__).resolve().parents[1] / "data" / "h5_libhdf5_crash.h5"


def _in_process_read(path: Path) -> subprocess.CompletedProcess:
    code = "import sys; from edge_sdk.beam.h5reader import read_beam_h5; read_beam_h5(sys.argv[1])"
    return subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)


def test_a_file_that_crashes_libhdf5_is_a_typed_error_in_every_command(tmp_path):
    """The file is read in a child process first (``isolate``, on for every command): the crash of the C library
    costs the child, and the command prints one DatasetError line naming the signal (exit 3)."""
    inproc = _in_process_read(CRASH_FILE)
    crashes = inproc.returncode < 0  # a later libhdf5 may refuse the file cleanly instead: then any typed error
    needle = "HDF5 library crashed (SIG" if crashes else "DatasetError"
    with pytest.raises(DatasetError, match=r"crashed \(SIG" if crashes else ""):
        read_beam_h5(CRASH_FILE, **H5ReadOptions().kwargs())
    _one_typed_line(cli("data", "info", str(CRASH_FILE)), 3, needle)
    _one_typed_line(cli("data", "export", str(CRASH_FILE), "--parquet", str(tmp_path / "x.parquet")), 3, needle)
    assert not (tmp_path / "x.parquet").exists()
    # device train --eval / device eval: tests/device/test_device_inputs.py::test_eval_data_is_checked_before_training


def test_isolated_read_equals_the_in_process_read_and_probes_once(good, tmp_path, monkeypatch):
    """A good file reads the same with and without the child; a second isolated open of the unchanged file
    reuses the child's verdict (a command that checks its evaluation file and then reads it starts one child)."""
    import edge_sdk.beam.h5reader as h5reader

    good = _copy(good, tmp_path)
    ds, iso = read_beam_h5(good), read_beam_h5(good, isolate=True)
    assert iso.n == ds.n and all(np.array_equal(getattr(ds, k), getattr(iso, k)) for k in ("rsrp", "label"))
    calls = []
    real_popen = subprocess.Popen
    monkeypatch.setattr(h5reader.subprocess, "Popen", lambda *a, **k: calls.append(a) or real_popen(*a, **k))
    with open_beam_h5(good, isolate=True) as f:
        assert f.n == ds.n
    assert calls == []  # probed above, unchanged since
    with h5py.File(good, "r+") as h:  # a changed file is probed again
        h.attrs["note"] = "touched"
    read_beam_h5(good, isolate=True)
    assert len(calls) == 1


def test_isolated_read_reports_missing_files_and_child_failures(tmp_path, monkeypatch):
    import edge_sdk.beam.h5reader as h5reader

    with pytest.raises(FileNotFoundError):
        h5reader.probe_beam_h5(tmp_path / "nope.h5")
    q = tmp_path / "x.h5"
    write_beam_h5(q, make_synthetic_beam_dataset(16, seed=2))
    with monkeypatch.context() as m:
        m.setattr(h5reader, "PROBE_OPEN_TIMEOUT_S", 0.001)
        with pytest.raises(DatasetError, match="opening it did not finish"):
            h5reader.probe_beam_h5(q)
    with monkeypatch.context() as m:
        m.setattr(h5reader, "PROBE_READ_FLOOR_S", -1.0)
        with pytest.raises(DatasetError, match=r"reading its \d+ declared bytes did not finish"):
            h5reader.probe_beam_h5(q)
    assert h5reader.probe_beam_h5(q) == 16
    # the one-deadline runner (platforms without select() on pipes) gives the same verdicts
    args = ([sys.executable, "-c", "import json; print(json.dumps({'n': 3}))"], dict(os.environ), q)
    assert h5reader._run_probe_one_deadline(*args, 0)[:2] == (0, ['{"n": 3}'])
    monkeypatch.setattr(h5reader, "PROBE_OPEN_TIMEOUT_S", -100.0)
    with pytest.raises(DatasetError, match="did not finish"):
        h5reader._run_probe_one_deadline(*args, 0)


#: flipped metadata bytes on which libhdf5 (HDF5 2.0.0) loops for ever reading a root attribute (case 366 of
#: ``tests/core/test_beam_h5_fuzz.py 3000 7``, kept)
HANG_FILE = Path(__file__).resolve().parents[1] / "data" / "h5_libhdf5_hang.h5"


def test_a_file_that_hangs_libhdf5_is_a_typed_error_after_the_open_deadline(monkeypatch):
    """The child is stopped when it has not passed the metadata checks by ``PROBE_OPEN_TIMEOUT_S`` (20 s; 8 s
    here, still ~10x what a good file needs with start-up on a loaded 2-core machine)."""
    import time

    import edge_sdk.beam.h5reader as h5reader

    monkeypatch.setattr(h5reader, "PROBE_OPEN_TIMEOUT_S", 8.0)
    t0 = time.monotonic()
    with pytest.raises(DatasetError) as exc:
        read_beam_h5(HANG_FILE, **H5ReadOptions().kwargs())
    assert "\n" not in str(exc.value) and time.monotonic() - t0 < 30
    # a later libhdf5 may refuse the file quickly instead; today it loops, and the message says so
    if "did not finish" in str(exc.value):
        assert "stuck on this file" in str(exc.value)

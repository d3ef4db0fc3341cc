"""``edge-sdk data info / export / generate --help`` through the installed console script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from edge_sdk.beam.h5writer import write_beam_h5
from edge_sdk.beam.synthetic import make_synthetic_beam_dataset

EXE = Path(sys.executable).parent / "edge-sdk"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(EXE), *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    c1 = make_synthetic_beam_dataset(200, seed=3)
    c2 = make_synthetic_beam_dataset(60, seed=4, case="case2", steps=20)
    write_beam_h5(d / "c1.h5", c1)
    write_beam_h5(d / "c2.h5", c2)
    return d, c1, c2


def test_info_json_and_text(files):
    d, c1, c2 = files
    r = run("data", "info", str(d / "c1.h5"), "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    s = info["stats"]
    assert s["n"] == 200 and s["n_tx"] == 32 and s["n_rx"] == 8
    assert s["label_hist"] == np.bincount(c1.label, minlength=32).tolist()
    assert s["los_share"] == pytest.approx(c1.los.mean(), abs=1e-4)
    assert s["rsrp_best_dbm"]["p50"] == pytest.approx(
        np.percentile(c1.rsrp.max(axis=(1, 2)).astype(float), 50), abs=1e-3
    )
    assert info["attrs"]["preset"]["name"] == "synthetic-toy" and info["attrs"]["schema_version"] == 1
    r = run("data", "info", str(d / "c2.h5"))
    assert r.returncode == 0 and "trajectories: 3" in r.stdout and "case2" in r.stdout


def test_export_parquet(files, tmp_path):
    d, _, c2 = files
    out = tmp_path / "o.parquet"
    r = run("data", "export", str(d / "c2.h5"), "--parquet", str(out), "--full")
    assert r.returncode == 0, r.stderr
    t = pq.read_table(out)
    assert t.num_rows == 60
    assert t.column_names[:11] == [
        "row",
        "label",
        "los",
        "indoor",
        "d2d",
        "ue_x",
        "ue_y",
        "ue_z",
        "cell",
        "traj_id",
        "t_index",
    ]
    best = np.stack([t.column(f"rsrp_best_tx{k:02d}").to_numpy() for k in range(32)], axis=1)
    np.testing.assert_array_equal(best, c2.best_rx_rsrp())
    full = np.asarray(t.column("rsrp").to_pylist(), dtype=np.float32).reshape(60, 32, 8)
    np.testing.assert_array_equal(full, c2.rsrp.astype(np.float32))
    meta = json.loads(t.schema.metadata[b"edge_sdk.beam"])
    assert meta["case"] == "case2"
    out2 = tmp_path / "l.parquet"
    assert run("data", "export", str(d / "c2.h5"), "--parquet", str(out2), "--layout", "list").returncode == 0
    lst = np.asarray(pq.read_table(out2).column("rsrp_best").to_pylist(), dtype=np.float32)
    np.testing.assert_array_equal(lst, best)


def test_errors_one_line_nonzero(tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5 at all")
    for args in (
        ["data", "info", str(bad)],
        ["data", "export", str(bad), "--parquet", str(tmp_path / "x.parquet")],
    ):
        r = run(*args)
        assert r.returncode == 3
        lines = r.stderr.strip().splitlines()
        assert (
            len(lines) == 1 and lines[0].startswith("error: DatasetError:") and "not an HDF5 file" in lines[0]
        )
    assert not (tmp_path / "x.parquet").exists() and not list(tmp_path.glob("x.parquet.*"))
    r = run("data", "info", str(tmp_path / "missing.h5"))
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1


def test_generate_help_lists_options():
    r = run("data", "generate", "--help")
    assert r.returncode == 0
    for opt in ("--preset", "--samples", "--seed", "--out", "--device", "--batch", "--resume", "--overwrite"):
        assert opt in r.stdout


@pytest.mark.slow
def test_generate_then_info(tmp_path):
    """Real Sionna generator through the CLI (slow; needs the server extra)."""
    pytest.importorskip("torch")
    pytest.importorskip("sionna")
    out = tmp_path / "g.h5"
    r = run("data", "generate", "--samples", "100", "--batch", "50", "--device", "cpu", "--out", str(out))
    assert r.returncode == 0, r.stderr
    info = json.loads(run("data", "info", str(out), "--json").stdout)
    assert info["stats"]["n"] == 100 and info["attrs"]["case"] == "case1"
    assert run("data", "generate", "--samples", "100", "--out", str(out), "--device", "cpu").returncode != 0


def test_generate_onto_existing_file_names_the_real_flag(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("sionna")
    out = tmp_path / "exists.h5"
    out.write_bytes(b"keep me")
    r = run("data", "generate", "--samples", "10", "--device", "cpu", "--out", str(out))
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 3 and len(lines) == 1 and lines[0].startswith("error: DatasetError:")
    assert "pass --overwrite" in lines[0] and "CLI: choose another" not in lines[0]
    assert out.read_bytes() == b"keep me"


@pytest.mark.parametrize("cmd", ["distill", "quantize"])
def test_dataset_with_data_says_not_both(tmp_path, cmd):
    ref = Path(__file__).resolve().parents[2] / "datasets" / "3gpp" / "reference"
    r = run(cmd, "--dataset", "digits", "--data", str(ref / "train.h5"), "--compression", "16x",
            "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and r.stderr.startswith("error: ConfigError: --dataset replaces --data/--test")
    assert "go together" not in r.stderr


REF = Path(__file__).resolve().parents[2] / "datasets" / "3gpp" / "reference"


def test_data_verify_shipped_reference_and_tampering(tmp_path):
    """`edge-sdk data verify` (torch-free): the shipped reference matches its SHA256SUMS; a changed value, a
    missing file, a malformed or path-like SHA256SUMS line each give one DatasetError line (exit 3)."""
    import shutil

    import h5py

    r = run("data", "verify")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count(": OK") == 2
    d = tmp_path / "ref"
    d.mkdir()
    for n in ("SHA256SUMS", "test.h5"):
        shutil.copyfile(REF / n, d / n)
    sums = (REF / "SHA256SUMS").read_text()
    (d / "SHA256SUMS").write_text("".join(ln + "\n" for ln in sums.splitlines() if "train.h5" not in ln))
    assert run("data", "verify", str(d)).returncode == 0
    with h5py.File(d / "test.h5", "r+") as h:
        h["ue_pos"][0, 0] = h["ue_pos"][0, 0] + 1.0
    r = run("data", "verify", str(d))
    assert r.returncode == 3 and "test.h5: MISMATCH" in r.stdout and r.stderr.count("\n") == 1, r.stderr
    assert "DatasetError" in r.stderr
    for bad in (sums, "nonsense\n", "0" * 64 + "  ../train.h5\n"):
        (d / "SHA256SUMS").write_text(bad)
        r = run("data", "verify", str(d))
        assert r.returncode == 3 and "DatasetError" in r.stderr and "Traceback" not in r.stderr, r.stderr
    (d / "SHA256SUMS").unlink()
    r = run("data", "verify", str(d))
    assert r.returncode == 3 and "SHA256SUMS does not exist" in r.stderr

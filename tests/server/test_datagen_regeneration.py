"""Regenerated reference data vs the shipped files: identical (array digest) or equivalent within float rounding
(edge_sdk/beam/reference.py ``compare_datasets``); the slow test regenerates test.h5 and compares."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

pytest.importorskip("torch")

from edge_sdk.beam.reference import MAX_DIFF_SHARE, compare_datasets  # noqa: E402

REF = Path(__file__).resolve().parents[2] / "datasets" / "3gpp" / "reference"


@pytest.fixture
def copy(tmp_path) -> Path:
    f = tmp_path / "test.h5"
    shutil.copyfile(REF / "test.h5", f)
    return f


def _edit(path: Path, name: str, fn) -> None:
    with h5py.File(path, "r+") as h:
        arr = h[name][...]
        h[name][...] = fn(arr)


def _step(x: np.ndarray, k: int) -> np.ndarray:
    """``x`` moved up by ``k`` float steps (ULPs) of its own dtype."""
    out = x.copy()
    for _ in range(k):
        out = np.nextafter(out, np.array(np.inf, dtype=x.dtype))
    return out


def test_an_unchanged_copy_is_identical(copy) -> None:
    c = compare_datasets(copy, REF / "test.h5")
    assert c.identical and c.equivalent and c.summary().startswith("identical")


def test_one_float16_step_in_rsrp_is_equivalent_not_identical(copy) -> None:
    def flip(a):
        a = a.copy()
        a[0, 0, :3] = _step(a[0, 0, :3], 1)
        return a

    _edit(copy, "rsrp", flip)
    c = compare_datasets(copy, REF / "test.h5")
    assert c.equivalent and not c.identical
    rsrp = {f.name: f for f in c.fields}["rsrp"]
    assert rsrp.differing == 3 and rsrp.max_ulps == 1.0 and 0 < rsrp.max_abs <= 0.125
    assert "rsrp: 3 of" in c.summary() and "not bit-identical" in c.summary()


@pytest.mark.parametrize("name, edit, why", [
    ("rsrp", lambda a: np.concatenate([_step(a[:1], 2), a[1:]]), "ULP"),  # two steps: not rounding
    ("d2d", lambda a: np.where(np.arange(a.size) % 50 == 0, _step(a, 1), a), "% of entries"),  # 2% > 1%
    ("ue_pos", lambda a: a + np.float32(0.5), "ULP"),  # moved UEs
    ("indoor", lambda a: ~a, "must be equal"),
    ("los", lambda a: ~a, "must be equal"),
])
def test_more_than_rounding_is_different(copy, name, edit, why) -> None:
    _edit(copy, name, edit)
    c = compare_datasets(copy, REF / "test.h5")
    assert not c.equivalent and not c.identical and why in c.summary(), c.summary()


def test_the_share_limit_is_what_the_second_case_exceeds() -> None:
    assert 1 / 50 > MAX_DIFF_SHARE


def test_a_label_may_change_only_in_a_near_tie(copy) -> None:
    """A drop whose two best beams are one float16 step apart: one rounding step up on the second beam ties
    them, and the label (argmax, first index on a tie) moves to it. That is rounding, hence equivalent."""
    from edge_sdk.beam.dataset import top1_label

    with h5py.File(REF / "test.h5", "r") as h:
        rsrp_all = h["rsrp"][...]
    best = rsrp_all.max(axis=2)
    order = np.argsort(best.astype(np.float64), axis=1, kind="stable")
    first, second = order[:, -1], order[:, -2]
    top, nxt = best[np.arange(len(best)), first], best[np.arange(len(best)), second]
    gap = (top.astype(np.float64) - nxt) / np.spacing(top)
    row = int(np.nonzero((gap == 1) & (second < first))[0][0])
    rsrp = rsrp_all[row].copy()
    rx = int(np.argmax(rsrp[second[row]]))
    rsrp[second[row], rx] = _step(rsrp[second[row], rx : rx + 1], 1)[0]
    assert top1_label(rsrp[None])[0] == second[row]
    with h5py.File(copy, "r+") as h:
        h["rsrp"][row] = rsrp
        lab = h["label"][...]
        lab[row] = second[row]
        h["label"][...] = lab
    c = compare_datasets(copy, REF / "test.h5")
    assert c.equivalent and not c.identical, c.summary()
    assert {f.name: f for f in c.fields}["label"].differing == 1


def test_another_seed_is_different(copy) -> None:
    with h5py.File(copy, "r+") as h:
        h.attrs["seed"] = 3
    c = compare_datasets(copy, REF / "test.h5")
    assert not c.equivalent and "attribute seed" in c.summary()


@pytest.mark.slow
def test_regenerating_test_h5_reproduces_the_shipped_file(tmp_path) -> None:
    """The shipped test.h5 (4,000 drops, seed 2) regenerated on this machine: equivalent to the shipped file (and
    identical on the CPU code paths that made it; the verdict is printed)."""
    import torch

    from edge_sdk.server.datagen.generate import generate_dataset

    torch.set_num_threads(1)
    out = tmp_path / "test.h5"
    generate_dataset("uma-fr2-case1", samples=4000, seed=2, out=out, device="cpu", batch=1000, progress=False)
    c = compare_datasets(out, REF / "test.h5")
    print(f"regenerated test.h5: {c.summary()}")
    assert c.equivalent, c.summary()


# ------------------------------------------------------------------------ tools/make_reference_data.py

def _tool():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_reference_data", REF.parents[2] / "tools" / "make_reference_data.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


def test_check_of_the_shipped_files(capsys) -> None:
    assert _tool().main(["--check"]) == 0
    assert capsys.readouterr().out.count("OK (identical to the shipped SHA256SUMS)") == 2


def test_check_uses_the_shipped_sums_not_the_ones_beside_the_files(tmp_path, capsys) -> None:
    """The check that could not fail: a changed file with its own freshly written SHA256SUMS is still refused."""
    from edge_sdk.beam.reference import SUMS_NAME, array_digest, write_sums

    d = tmp_path / "regen"
    d.mkdir()
    for name in ("train.h5", "test.h5"):
        shutil.copyfile(REF / name, d / name)
    _edit(d / "test.h5", "ue_pos", lambda a: a + np.float32(1.0))
    write_sums(d / SUMS_NAME, {n: array_digest(d / n) for n in ("train.h5", "test.h5")})
    assert _tool().main(["--check", "--dir", str(d)]) == 1
    out = capsys.readouterr().out
    assert "train.h5: OK (identical" in out and "test.h5: MISMATCH, DIFFERENT: ue_pos" in out


def test_check_accepts_a_copy_equivalent_within_rounding(tmp_path, capsys) -> None:
    d = tmp_path / "regen"
    d.mkdir()
    for name in ("train.h5", "test.h5"):
        shutil.copyfile(REF / name, d / name)
    _edit(d / "train.h5", "rsrp", lambda a: np.where(np.arange(a.size).reshape(a.shape) % 100_003 == 0, _step(a, 1), a))
    assert _tool().main(["--check", "--dir", str(d)]) == 0
    assert "train.h5: OK, equivalent within float rounding, not bit-identical: rsrp: 31 of" in capsys.readouterr().out
    (d / "test.h5").unlink()
    assert _tool().main(["--check", "--dir", str(d)]) == 1
    assert "test.h5: MISSING" in capsys.readouterr().out


def test_regeneration_never_writes_over_the_shipped_files(capsys) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in REF.iterdir()}
    assert _tool().main(["--out", str(REF)]) == 2
    assert "--replace-shipped" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in REF.iterdir()} == before
    assert _tool().DEFAULT_OUT.as_posix() == "runs/reference"

"""server/datagen/local_mean.py: the fading-free local mean and independent small-scale fading redraws of an existing
drops file, regenerated chunk by chunk and checked against the stored instantaneous RSRP."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("sionna")

from edge_sdk.errors import ConfigError, DatasetError  # noqa: E402
from edge_sdk.server.datagen.generate import generate_dataset  # noqa: E402
from edge_sdk.server.datagen.local_mean import drops_fading_redraws, drops_local_mean  # noqa: E402


@pytest.fixture(scope="module")
def drops(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("lm")
    # 3 chunks, the last one short: chunk k is seeded by chunk_seed(seed, k)
    generate_dataset("uma-fr2-case2-drops", samples=260, seed=11, out=d / "drops.h5", device="cpu", batch=100,
                     progress=False)
    return d / "drops.h5"


def test_local_mean_of_a_drops_file(drops: Path) -> None:
    lm = drops_local_mean(drops)
    with h5py.File(drops, "r") as f:
        inst = f["rsrp"][:].astype(np.float32).max(axis=2)  # [N, n_tx], best Rx beam
    assert lm.shape == inst.shape == (260, 32) and lm.dtype == np.float32 and np.isfinite(lm).all()
    # the same clusters without the fading: close to the instantaneous RSRP on average, but not equal, and the
    # best beam moves in a minority of drops (17% on 3,000 drops of this preset)
    assert abs(float(np.mean(lm - inst))) < 3.0 and not np.allclose(lm, inst, atol=0.1)
    same = float(np.mean(lm.argmax(1) == inst.argmax(1)))
    assert 0.6 < same < 0.99
    # a prefix regenerates only its chunks and equals the whole file's rows; deterministic
    np.testing.assert_array_equal(drops_local_mean(drops, rows=150), lm[:150])


def test_fading_redraws_of_a_drops_file(drops: Path) -> None:
    """Draw 0 is the stored RSRP; the other draws are new fading of the same clusters (seeded per chunk): the best
    beam moves in a minority of drops, and their mean linear power tends to the local mean."""
    r = drops_fading_redraws(drops, 3)
    with h5py.File(drops, "r") as f:
        stored = f["rsrp"][:].max(axis=2)  # float16 [N, n_tx], best Rx beam
    assert r.shape == (260, 3, 32) and r.dtype == np.float32 and np.isfinite(r).all()
    np.testing.assert_array_equal(r[:, 0].astype(np.float16), stored)
    best = r.argmax(axis=2)
    assert 0.55 < float(np.mean(best[:, 1] == best[:, 0])) < 0.95  # 77% on 20,000 drops of this preset
    assert not np.array_equal(r[:, 1], r[:, 2])
    # deterministic per (seed, chunk): a prefix equals the whole file's rows; another seed draws other phases
    np.testing.assert_array_equal(drops_fading_redraws(drops, 3, rows=150), r[:150])
    other = drops_fading_redraws(drops, 2, rows=100, seed=1)
    np.testing.assert_array_equal(other[:, 0], r[:100, 0])
    assert not np.array_equal(other[:, 1], r[:100, 1])
    # E|sum_m c_m e^{j phi_m}|^2 = sum_m |c_m|^2 over uniform phases: 64 draws average to the local mean
    many = drops_fading_redraws(drops, 65, rows=40)
    lm = drops_local_mean(drops, rows=40)
    mean_db = 10 * np.log10(np.mean(np.power(10.0, many[:, 1:] / 10.0), axis=1))
    top = lm.argmax(axis=1)
    err = np.abs(mean_db[np.arange(40), top] - lm[np.arange(40), top])
    assert float(np.median(err)) < 0.5 and float(np.median(np.abs(many[np.arange(40), 0, top] - lm[np.arange(40), top]))) > 0.5
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ConfigError, match="draws must be an integer"):
            drops_fading_redraws(drops, bad)  # type: ignore[arg-type]


def test_local_mean_refuses_what_it_cannot_reproduce(drops: Path, tmp_path: Path) -> None:
    bad = tmp_path / "tampered.h5"
    shutil.copy(drops, bad)
    with h5py.File(bad, "r+") as f:
        f["rsrp"][120, 3, 2] = f["rsrp"][120, 3, 2] + np.float16(1.0)
    drops_local_mean(bad, rows=100)  # the first chunk is untouched
    with pytest.raises(DatasetError, match="drops 100-199 differ from the stored ones"):
        drops_local_mean(bad)
    with pytest.raises(DatasetError, match="drops 100-199 differ from the stored ones"):
        drops_fading_redraws(bad, 2)
    with pytest.raises(DatasetError, match="rows must be in"):
        drops_local_mean(drops, rows=0)
    with pytest.raises(DatasetError, match="rows must be in"):
        drops_local_mean(drops, rows=261)
    with pytest.raises(DatasetError, match="cannot open"):
        drops_local_mean(tmp_path / "missing.h5")
    other = tmp_path / "gpu.h5"
    shutil.copy(drops, other)
    with h5py.File(other, "r+") as f:
        f.attrs["device_type"] = "cuda"
    with pytest.raises(DatasetError, match="generated on cuda"):
        drops_local_mean(other)
    with h5py.File(other, "r+") as f:
        f.attrs["device_type"] = "cpu"
        f.attrs["complete"] = False
    with pytest.raises(DatasetError, match="incomplete"):
        drops_local_mean(other)
    for attr, value in (("preset", "{not json"), ("preset", '{"name": 3}'), ("chunk_size", "x")):
        broken = tmp_path / f"broken-{attr}.h5"
        shutil.copy(drops, broken)
        with h5py.File(broken, "r+") as f:
            f.attrs[attr] = value
        with pytest.raises(DatasetError, match="no usable generator record"):
            drops_local_mean(broken)
    with h5py.File(broken, "r+") as f:
        del f.attrs["chunk_size"]
    with pytest.raises(DatasetError, match="no usable generator record"):
        drops_local_mean(broken)
    c2 = tmp_path / "c2.h5"
    generate_dataset("uma-fr2-case2", samples=100, seed=1, out=c2, device="cpu", batch=100, progress=False)
    for fn in (drops_local_mean, lambda p: drops_fading_redraws(p, 2)):
        with pytest.raises(DatasetError, match="BM-Case1 drops files only"):
            fn(c2)

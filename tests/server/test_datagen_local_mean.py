"""server/datagen/local_mean.py: the fading-free local mean of an existing drops file, regenerated chunk by chunk
and checked against the stored instantaneous RSRP."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("sionna")

from edge_sdk.errors import DatasetError  # noqa: E402
from edge_sdk.server.datagen.generate import generate_dataset  # noqa: E402
from edge_sdk.server.datagen.local_mean import drops_local_mean  # noqa: E402


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


def test_local_mean_refuses_what_it_cannot_reproduce(drops: Path, tmp_path: Path) -> None:
    bad = tmp_path / "tampered.h5"
    shutil.copy(drops, bad)
    with h5py.File(bad, "r+") as f:
        f["rsrp"][120, 3, 2] = f["rsrp"][120, 3, 2] + np.float16(1.0)
    drops_local_mean(bad, rows=100)  # the first chunk is untouched
    with pytest.raises(DatasetError, match="drops 100-199 differ from the stored ones"):
        drops_local_mean(bad)
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
    with pytest.raises(DatasetError, match="BM-Case1 drops files only"):
        drops_local_mean(c2)

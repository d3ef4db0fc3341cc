"""The shipped reference data (datasets/3gpp/reference): digests in SHA256SUMS and basic physical sanity."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from edge_sdk.beam.h5reader import read_beam_h5  # noqa: E402
from edge_sdk.beam.reference import SUMS_NAME, array_digest, read_sums  # noqa: E402

REF = Path(__file__).resolve().parents[2] / "datasets" / "3gpp" / "reference"


def test_reference_digests_match() -> None:
    sums = read_sums(REF / SUMS_NAME)
    assert set(sums) == {"train.h5", "test.h5"}
    for name, digest in sums.items():
        assert array_digest(REF / name) == digest, f"{name} differs from SHA256SUMS; rerun tools/make_reference_data.py"
    total = sum((REF / n).stat().st_size for n in sums)
    assert total <= 10 * 2**20


def test_digest_detects_change(tmp_path) -> None:
    import shutil

    import h5py

    f = tmp_path / "t.h5"
    shutil.copyfile(REF / "test.h5", f)
    before = array_digest(f)
    with h5py.File(f, "r+") as h:
        h["ue_pos"][0, 0] = h["ue_pos"][0, 0] + 1.0
    assert array_digest(f) != before


@pytest.fixture(scope="module")
def train():
    return read_beam_h5(REF / "train.h5")


def test_reference_shape_and_shares(train) -> None:
    assert train.n == 12_000 and train.n_tx == 32 and train.n_rx == 8
    assert train.attrs["preset_name"] == "uma-fr2-case1" and train.attrs["device_type"] == "cpu"
    assert abs(train.indoor.mean() - 0.8) < 0.02
    # LOS share of outdoor UEs vs the UMa LOS probability averaged over the drop distances
    out = ~train.indoor
    d = train.d2d[out].astype(np.float64)
    p = np.where(d <= 18, 1.0, 18 / d + np.exp(-d / 63) * (1 - 18 / d))
    assert abs(train.los[out].mean() - p.mean()) < 4 * math.sqrt(p.mean() * (1 - p.mean()) / out.sum()) + 0.01
    assert not train.los[train.indoor].any()  # indoor links are NLOS (O2I)


def test_los_best_beam_points_at_ue(train) -> None:
    """End-to-end beam geometry: for outdoor LOS drops the best Tx beam's azimuth is close to the UE azimuth
    seen from the sector boresight (60 deg), and the zenith row follows the elevation."""
    m = train.los
    az_ue = np.degrees(np.arctan2(train.ue_pos[m, 1], train.ue_pos[m, 0])) - 60.0
    k_az = train.label[m] % 8
    az_beam = np.degrees(np.arcsin(np.sin(np.radians(60)) * (2 * k_az - 7) / 7))
    err = np.abs(az_beam - az_ue)
    assert np.median(err) < 10.0, np.median(err)
    zen_ue = 90 + np.degrees(np.arctan2(25.0 - 1.5, train.d2d[m]))
    k_zen = train.label[m] // 8
    assert np.corrcoef(zen_ue, k_zen)[0, 1] > 0.5


def test_link_budget_los(train) -> None:
    """Best-pair RSRP of LOS drops = P_RE (11.8 dBm) - PL_LOS(d_3D) + beamformed gain. The gain cannot exceed
    8 + 10 log10(32) + 5 + 10 log10(4) = 34.1 dBi (element + array gains, gNB + UE); element/beam pointing losses,
    the K-factor split and shadow fading (sigma 4 dB) put the median some dB below that."""
    m = train.los
    d3 = np.hypot(train.d2d[m].astype(np.float64), 25.0 - 1.5)
    pl = 28.0 + 22 * np.log10(d3) + 20 * np.log10(30.0)
    gain = train.rsrp[m].astype(np.float64).max(axis=(1, 2)) - 11.80 + pl
    assert 15.0 < np.median(gain) < 30.0, np.median(gain)
    assert np.percentile(gain, 95) < 34.1 + 2 * 4.0  # + 2 sigma of shadow fading

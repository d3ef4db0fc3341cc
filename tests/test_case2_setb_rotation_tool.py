"""tools/case2_setb_rotation.py: the rotating Set B 1/4 patterns, the staggered-sweep windows, and the tool end to
end on small real generated trajectories."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("sionna")

from edge_sdk.beam.h5reader import SERVER_DATA, read_beam_h5  # noqa: E402
from edge_sdk.beam.taskspec import setb_pattern  # noqa: E402
from edge_sdk.server.datagen.generate import generate_dataset  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import case2_setb_rotation as R  # noqa: E402

sys.path.pop(0)


def test_rotating_patterns_partition_set_a() -> None:
    for n_tx in (32, 64):
        pats = R.rotating_patterns(n_tx)
        assert pats.shape == (4, n_tx // 4)
        assert sorted(pats.ravel().tolist()) == list(range(n_tx))  # disjoint, and together every beam once
        np.testing.assert_array_equal(pats[0], setb_pattern(n_tx, "1/4"))  # phase 0 is the fixed Set B


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("rot")
    kw = dict(device="cpu", batch=500, progress=False)
    generate_dataset("uma-fr2-case2", samples=1000, seed=1, out=d / "v30-train.h5", **kw)
    generate_dataset("uma-fr2-case2", samples=500, seed=2, out=d / "v30-test.h5", **kw)
    return d


def test_staggered_windows_hold_every_beam_once(data: Path) -> None:
    ds = read_beam_h5(data / "v30-test.h5", **SERVER_DATA.kwargs())
    p = 8
    w = R.staggered_windows(ds, p)
    m = len(w["y"])
    assert m == 5 * 68 and w["sweep"].shape == (m, 32) and w["seen"].all()  # K = 4 periods cover all 32 beams
    assert ((w["age"] >= 0) & (w["age"] <= 3)).all() and (w["latest"].sum(1) == 8).all()
    best = ds.best_rx_rsrp().astype(np.float32)
    pats = R.rotating_patterns(32)
    key = {(int(a), int(b)): i for i, (a, b) in enumerate(zip(ds.traj_id, ds.t_index, strict=True))}
    rng = np.random.default_rng(0)
    for i in rng.choice(m, 20, replace=False):  # rebuild windows by hand from (trajectory, time step)
        traj, t_last = int(w["traj"][i]), int(w["t_last"][i])
        assert w["phase"][i] == (t_last // p) % 4
        np.testing.assert_array_equal(w["last_sweep"][i], best[key[(traj, t_last)]])
        for age in range(4):
            r = key[(traj, t_last - age * p)]
            q = ((t_last - age * p) // p) % 4
            np.testing.assert_array_equal(w["sweep"][i, pats[q]], best[r, pats[q]])
            assert (w["age"][i, pats[q]] == age).all()
        assert w["y"][i] == ds.label[key[(traj, t_last + p)]]
    x = R.features(w)
    assert x.shape == (m, 36) and np.isfinite(x).all() and (x[:, :32].max(1) == 0).all()


def test_tool_end_to_end(data: Path, capsys) -> None:
    out = data / "out"
    R.main(["--data", str(data), "--out", str(out), "--max-epochs", "1", "--patience", "1", "--lr", "0.003",
            "--bootstrap", "50"])
    r = json.loads((out / "rotation.json").read_text())
    t = r["tests"][str(data / "v30-test.h5")]
    assert t["windows"] == 5 * 68 and len(t["mlp"]["per_seed"]) == 3 and r["chosen_lr"] == 0.003
    for name in ("sh_seta", "sh_staggered", "sh_latest_setb"):
        assert 0.0 <= t["baselines"][name]["top1"] <= 1.0
        assert t["bootstrap"]["acc"][name]["point"] == pytest.approx(t["baselines"][name]["top1"])
    assert t["bootstrap"]["acc"]["mlp"]["point"] == pytest.approx(t["mlp"]["top1_mean"])
    assert "S&H staggered sweep" in (out / "rotation.md").read_text() and "S&H Set A" in capsys.readouterr().out

"""tools/case2_eval.py --spatial on real generated data (small): the spatial model is pre-trained on independent
drops of the Case2 configuration (preset uma-fr2-case2-drops), cached, and feeds the temporal models; drops of
another configuration are refused."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("sionna")

from edge_sdk.beam.h5reader import SERVER_DATA, read_beam_h5  # noqa: E402
from edge_sdk.beam.taskspec import BeamTaskSpec  # noqa: E402
from edge_sdk.errors import DatasetError  # noqa: E402
from edge_sdk.server.case2 import check_same_configuration  # noqa: E402
from edge_sdk.server.datagen.generate import generate_dataset  # noqa: E402
from edge_sdk.server.datagen.local_mean import drops_fading_redraws  # noqa: E402
from edge_sdk.server.datagen.presets import load_preset  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import case2_eval  # noqa: E402
import case2_pool  # noqa: E402
import case2_static  # noqa: E402
from case2_setb_rotation import rotating_patterns  # noqa: E402

sys.path.pop(0)


def test_drops_preset_is_the_case2_configuration() -> None:
    a, b = load_preset("uma-fr2-case2").to_dict(), load_preset("uma-fr2-case2-drops").to_dict()
    assert b["case"] == "case1" and "trajectory" not in b
    assert {k for k in set(a) | set(b) if a.get(k) != b.get(k)} == {"name", "description", "case", "trajectory"}
    for name in ("uma-fr2-case2", "uma-fr2-case2-60kmh", "uma-fr2-case2-90kmh"):  # one set of drops serves all
        check_same_configuration(b, load_preset(name).to_dict())
    with pytest.raises(DatasetError, match="scenario.indoor_probability"):
        check_same_configuration(load_preset("uma-fr2-case1").to_dict(), a)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("c2tool")
    kw = dict(device="cpu", batch=500, progress=False)
    generate_dataset("uma-fr2-case2", samples=1000, seed=1, out=d / "c2" / "v30-train.h5", **kw)
    generate_dataset("uma-fr2-case2", samples=500, seed=2, out=d / "c2" / "v30-test.h5", **kw)
    generate_dataset("uma-fr2-case2-drops", samples=500, seed=3, out=d / "drops.h5", **kw)
    generate_dataset("uma-fr2-case1", samples=100, seed=4, out=d / "case1.h5", **kw)
    return d


def test_case2_eval_spatial_end_to_end(files: Path, capsys) -> None:
    out = files / "eval"
    args = ["--data", str(files / "c2"), "--out", str(out), "--group", "target", "--setb", "1/4", "--max-epochs", "1",
            "--patience", "1", "--lr", "0.01", "--spatial", str(files / "drops.h5"), "--spatial-hidden", "16"]
    case2_eval.main(args)
    r = json.loads((out / "v30-p160-k4-f1-1of4-spatial.json").read_text())
    assert r["spatial"]["n_drops"] == 500 and r["spatial"]["hidden"] == [16]
    assert {"sh_spatial", "avg_spatial", "sh_seta", "sh_setb"} <= set(r["baselines"])
    assert 0.0 <= r["spatial_same_instant_test"]["top1"] <= 1.0 and r["n_test"] == 5 * 68
    for kind in ("mlp", "gru"):
        assert r["models"][kind]["candidate"]["features"] in ("spatial", "spatial+setb")
        assert {row["spec"]["features"] for row in r["selection"][kind]} == {"spatial", "spatial+setb"}
        assert len(r["models"][kind]["per_seed"]) == 3
    assert "pre-trained spatial model" in capsys.readouterr().out
    cached = sorted(p.name for p in out.glob("spatial-*"))
    assert cached == ["spatial-1of4-16-nall.json", "spatial-1of4-16-nall.npz"]
    mtime = (out / cached[1]).stat().st_mtime
    (out / "v30-p160-k4-f1-1of4-spatial.json").unlink()  # rerun: the cached spatial model is reused
    case2_eval.main(args)
    assert (out / cached[1]).stat().st_mtime == mtime
    assert json.loads((out / "v30-p160-k4-f1-1of4-spatial.json").read_text())["models"]["gru"]["per_seed"]


def test_case2_eval_spatial_target_local_mean(files: Path) -> None:
    """--spatial-target local_mean trains the spatial model on the Top-1 of the drops' fading-free local mean
    (regenerated from the file, cached per file) and records it; it refuses trajectory rows (instantaneous labels)."""
    out = files / "eval-lm"
    args = ["--data", str(files / "c2"), "--out", str(out), "--group", "target", "--setb", "1/4", "--max-epochs", "1",
            "--patience", "1", "--lr", "0.01", "--spatial", str(files / "drops.h5"), "--spatial-hidden", "16",
            "--spatial-target", "local_mean"]
    case2_eval.main([*args, "--spatial-only"])
    lm = np.load(out / f"localmean-{files.name}-drops.npy")
    assert lm.shape == (500, 32) and lm.dtype == np.float32
    rec = json.loads((out / "spatial-1of4-16-nall-lm.json").read_text())
    assert rec["target"] == "local_mean" and rec["n_drops"] == 500
    case2_eval.main(args)  # the temporal models on it (the cached spatial model and local mean are reused)
    r = json.loads((out / "v30-p160-k4-f1-1of4-spatial.json").read_text())
    assert r["spatial"]["target"] == "local_mean" and r["models"]["gru"]["per_seed"]
    with pytest.raises(SystemExit):
        case2_eval.main([*args, "--spatial-rows", str(files / "c2" / "v30-train.h5")])
    with pytest.raises(SystemExit):
        case2_eval.main(["--data", str(files / "c2"), "--out", str(out), "--spatial-target", "local_mean"])


def test_case2_pool_end_to_end(files: Path, capsys) -> None:
    """tools/case2_pool.py pools two cached spatial models (instantaneous and local-mean labels) over the periods:
    fitted on the train trajectories, scored with bootstrap intervals; a missing cache is refused."""
    out = files / "eval-pool"
    base = ["--data", str(files / "c2"), "--out", str(out), "--group", "target", "--setb", "1/4", "--spatial",
            str(files / "drops.h5"), "--spatial-hidden", "16", "--spatial-only"]
    case2_eval.main(base)
    case2_eval.main([*base, "--spatial-target", "local_mean"])
    models = [out / "spatial-1of4-16-nall.json", out / "spatial-1of4-16-nall-lm.json"]
    args = ["--data", str(files / "c2"), "--out", str(out / "pool"), "--bootstrap", "50",
            "--test", f"{files / 'c2' / 'v30-test.h5'}:3"]
    for m in models:
        args += ["--spatial-model", str(m)]
    case2_pool.main(args)
    r = json.loads((out / "pool" / "pool.json").read_text())
    assert r["names"] == ["spatial-1of4-16-nall", "spatial-1of4-16-nall-lm"] and len(r["grid"]) == 8 * 3
    f = r["fitted"]
    assert f["train_top1"] == max(g["top1"] for g in r["grid"]) >= f["hold_first_train_top1"]
    t = r["tests"][f"{files / 'c2' / 'v30-test.h5'}:3"]
    assert t["trajectories"] == 3 and t["windows"] == 3 * 68
    acc = t["bootstrap"]["acc"]
    for name in ("sh_seta", "sh_setb", "hold:spatial-1of4-16-nall", "hold:spatial-1of4-16-nall-lm", "pooling"):
        assert acc[name]["point"] == pytest.approx(t["kpis"][name]["top1"])
    assert "S&H Set A - pooling" in (out / "pool" / "pool.md").read_text() and "pooling" in capsys.readouterr().out
    # the same windows split by the step of their latest measurement (time since the track's t0)
    parts = t["by_position"]
    assert [p["steps"] for p in parts] == [[24, 46], [47, 68], [69, 91]] and sum(p["windows"] for p in parts) == 3 * 68
    for name in ("sh_seta", "pooling"):
        overall = sum(p["acc"][name] * p["windows"] for p in parts) / (3 * 68)
        assert overall == pytest.approx(t["kpis"][name]["top1"])
    with pytest.raises(SystemExit, match="run it first"):
        case2_pool.main([*args[:4], "--spatial-model", str(out / "missing.json")])

    # rotating Set B: one spatial model per phase (case2_eval --spatial-pattern), pooled phase by phase
    for q in (1, 2, 3):
        case2_eval.main([*base, "--spatial-pattern", str(q)])
        rec = json.loads((out / f"spatial-1of4-16-nall-r{q}.json").read_text())
        assert rec["task"]["setb"] == "explicit" and rec["task"]["setb_indices"] == rotating_patterns(32)[q].tolist()
    phases = ",".join(str(out / f"spatial-1of4-16-nall{t}.json") for t in ("", "-r1", "-r2", "-r3"))
    rot = ["--data", str(files / "c2"), "--out", str(out / "rot"), "--bootstrap", "50", "--rotating",
           "--test", f"{files / 'c2' / 'v30-test.h5'}:3", "--spatial-model", phases]
    case2_pool.main(rot)
    rr = json.loads((out / "rot" / "pool.json").read_text())
    assert rr["rotating"] and rr["names"] == ["spatial-1of4-16-nall+rotating"] and len(rr["grid"]) == 2 * 3
    tr = rr["tests"][f"{files / 'c2' / 'v30-test.h5'}:3"]
    # S&H of the best measured beam: the strongest beam of the latest period's pattern, phase (t // 8) % 4
    te = read_beam_h5(files / "c2" / "v30-test.h5", **SERVER_DATA.kwargs())
    te = te.subset(np.isin(te.traj_id, np.unique(te.traj_id)[:3]))
    spec = BeamTaskSpec(n_tx=32, setb="1/4", case="case2", history=4, horizon=1, period_steps=8)
    _, win, tgt = spec._case2_rows(te)
    last, best = win[:, -1], te.best_rx_rsrp()
    pats = rotating_patterns(32)[(te.t_index[last] // 8) % 4]
    held = pats[np.arange(len(last)), np.take_along_axis(best[last], pats, 1).argmax(1)]
    assert tr["kpis"]["sh_setb"]["top1"] == pytest.approx(float(np.mean(held == te.label[tgt])))
    with pytest.raises(SystemExit, match="4 comma-separated"):
        case2_pool.main([*rot[:-1], str(models[0])])
    with pytest.raises(SystemExit, match="overlapping Set B"):
        case2_pool.main([*rot[:-1], ",".join([str(models[0])] * 4)])
    with pytest.raises(SystemExit, match="need --rotating"):
        case2_pool.main([a for a in rot if a != "--rotating"])
    with pytest.raises(SystemExit):
        case2_eval.main([*base[:-1], "--spatial-pattern", "1"])  # needs --spatial-only

    # tools/case2_static.py: the same predictors on a static channel (independent fading redraws of drops)
    static = out / "static"
    case2_static.main(["--pool", str(out / "pool" / "pool.json"), "--drops", str(files / "drops.h5"), "--rows", "120",
                       "--targets", "2", "--bootstrap", "50", "--out", str(static)])
    s = json.loads((static / "static.json").read_text())
    assert s["rows"] == 120 and s["history"] == 4 and s["names"] == r["names"]
    draws = drops_fading_redraws(files / "drops.h5", 6, rows=120)  # K = 4 looks (draw 0 the latest) + 2 targets
    targets = draws[:, 4:].argmax(axis=2)
    sh_seta = float(np.mean(draws[:, 0].argmax(axis=1)[:, None] == targets))
    acc = s["bootstrap"]["acc"]
    assert acc["sh_seta"]["point"] == pytest.approx(sh_seta)
    assert acc["sh_seta"]["lo"] <= sh_seta <= acc["sh_seta"]["hi"]
    d = s["bootstrap"]["diff"]["sh_seta-pooling"]["point"]
    assert d == pytest.approx(acc["sh_seta"]["point"] - acc["pooling"]["point"])
    assert set(s["trajectories"]) == set(r["tests"]) and "S&H Set A - pooling" in (static / "static.md").read_text()
    with pytest.raises(SystemExit, match="rotating Set B pool"):
        case2_static.main(["--pool", str(out / "rot" / "pool.json"), "--drops", str(files / "drops.h5"), "--out",
                           str(static)])
    with pytest.raises(SystemExit, match="not a pool.json"):
        case2_static.main(["--pool", str(static / "static.json"), "--drops", str(files / "drops.h5"), "--out",
                           str(static)])


def test_case2_eval_refuses_drops_of_another_configuration(files: Path) -> None:
    with pytest.raises(DatasetError, match="scenario.indoor_probability"):
        case2_eval.main(["--data", str(files / "c2"), "--out", str(files / "bad"), "--group", "target", "--setb",
                         "1/4", "--max-epochs", "1", "--spatial", str(files / "case1.h5"), "--spatial-hidden", "16"])


def test_case2_eval_score_on_another_test_set(files: Path, capsys) -> None:
    """--score-on retrains the cached chosen models (no new selection), which reproduces them exactly (the same
    test file gives the cached Top-1 per seed), scores them on another test file with per-trajectory bootstrap
    intervals, and saves the per-window predictions; --report adds the table."""
    out = files / "scored"
    args = ["--data", str(files / "c2"), "--out", str(out), "--group", "target", "--setb", "1/4", "--max-epochs", "1",
            "--patience", "1", "--lr", "0.01", "--spatial", str(files / "drops.h5"), "--spatial-hidden", "16"]
    with pytest.raises(SystemExit, match="run the evaluation first"):
        case2_eval.main([*args, "--score-on", str(files / "c2" / "v30-test.h5")])
    case2_eval.main(args)
    cached = json.loads((out / "v30-p160-k4-f1-1of4-spatial.json").read_text())
    case2_eval.main([*args, "--score-on", str(files / "c2" / "v30-test.h5"), "--bootstrap", "200"])
    same = json.loads((out / "v30-p160-k4-f1-1of4-spatial-on-c2-v30-test-tall.json").read_text())
    assert same["same_models_as_cached"] == {"mlp": True, "gru": True}
    for kind in ("mlp", "gru"):
        assert [p["top1"] for p in same["models"][kind]["per_seed"]] == [
            p["top1"] for p in cached["models"][kind]["per_seed"]]
        assert same["bootstrap"]["acc"][kind]["point"] == pytest.approx(cached["models"][kind]["mean"]["top1"])
    for b in ("sh_seta", "sh_setb", "sh_spatial"):
        assert same["bootstrap"]["acc"][b]["point"] == pytest.approx(cached["baselines"][b]["top1"])
    assert same["spatial_hold_split"] == cached["spatial_hold_split"]
    gap = same["target"]["gap"]
    assert gap["lo"] <= gap["point"] <= gap["hi"] and same["target"]["verdict_at_level"] in ("met", "not met",
                                                                                          "undecided")
    # another test file (here the first 3 training trajectories, only to exercise the path): other windows
    case2_eval.main([*args, "--score-on", str(files / "c2" / "v30-train.h5"), "--test-traj", "3", "--bootstrap",
                     "200"])
    other = json.loads((out / "v30-p160-k4-f1-1of4-spatial-on-c2-v30-train-t3.json").read_text())
    assert other["test_traj"] == 3 and other["n_test"] == 3 * 68 and other["same_models_as_cached"]["gru"]
    with np.load(out / "v30-p160-k4-f1-1of4-spatial-on-c2-v30-train-t3.npz") as z:
        assert z["gru_top1"].shape == (3, 3 * 68) and len(np.unique(z["traj_id"])) == 3
        assert float((z["gru_top1"] == z["genie"]).mean()) == pytest.approx(other["bootstrap"]["acc"]["gru"]["point"])
    assert "target" in capsys.readouterr().out
    md = case2_eval.report(out)
    assert "other test sets" in md and "v30-train.h5" in md


def test_case2_eval_breakdown_and_spatial_rows(files: Path, capsys) -> None:
    """--breakdown splits the spatial model's same-instant Top-1 by LOS / distance / step on held-out drops and on
    trajectory files; --spatial-rows adds trajectory instants to its training, and refuses rows that could hold
    the setting's train / validation / test trajectories."""
    out = files / "bd"
    args = ["--data", str(files / "c2"), "--out", str(out), "--group", "target", "--setb", "1/4", "--spatial",
            str(files / "drops.h5"), "--spatial-hidden", "16", "--spatial-epochs", "1", "--spatial-only"]
    case2_eval.main([*args, "--breakdown", str(files / "c2" / "v30-test.h5")])
    bd = json.loads((out / "spatial-1of4-16-nall-e1-breakdown.json").read_text())
    assert set(bd) == {"held-out drops", str(files / "c2" / "v30-test.h5")}
    assert bd["held-out drops"]["n"] == 50 and "step" not in bd["held-out drops"]["by"]
    traj = bd[str(files / "c2" / "v30-test.h5")]
    assert traj["n"] == 500 and sum(b["n"] for b in traj["by"]["step"].values()) == 500
    assert "held-out drops: 50 rows" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        case2_eval.main([a for a in args if a != "--spatial-only"] + ["--breakdown", str(files / "drops.h5")])
    assert "--breakdown needs --spatial-only" in capsys.readouterr().err
    rows = ["--spatial-rows", str(files / "c2" / "v30-train.h5")]
    with pytest.raises(SystemExit, match="skip at least"):  # the training file itself: its train trajectories
        case2_eval.main([*args, *rows, "--train-traj", "5", "--spatial-rows-skip", "4"])
    with pytest.raises(SystemExit, match="test trajectories"):
        case2_eval.main([*args, "--spatial-rows", str(files / "c2" / "v30-test.h5")])
    case2_eval.main([*args, *rows, "--train-traj", "5", "--spatial-rows-skip", "5"])
    rec = json.loads((out / "spatial-1of4-16-nall-rows-c2-v30-train-skip5-e1.json").read_text())
    assert rec["case2_rows"] == [400, 100]  # trajectories 5-9: 4 to training, 1 to early stopping

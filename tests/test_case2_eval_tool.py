"""tools/case2_eval.py --spatial on real generated data (small): the spatial model is pre-trained on independent
drops of the Case2 configuration (preset uma-fr2-case2-drops), cached, and feeds the temporal models; drops of
another configuration are refused."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("sionna")

from edge_sdk.errors import DatasetError  # noqa: E402
from edge_sdk.server.case2 import check_same_configuration  # noqa: E402
from edge_sdk.server.datagen.generate import generate_dataset  # noqa: E402
from edge_sdk.server.datagen.presets import load_preset  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import case2_eval  # noqa: E402

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


def test_case2_eval_refuses_drops_of_another_configuration(files: Path) -> None:
    with pytest.raises(DatasetError, match="scenario.indoor_probability"):
        case2_eval.main(["--data", str(files / "c2"), "--out", str(files / "bad"), "--group", "target", "--setb",
                         "1/4", "--max-epochs", "1", "--spatial", str(files / "case1.h5"), "--spatial-hidden", "16"])

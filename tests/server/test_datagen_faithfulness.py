"""Slow: a small run of `edge-sdk data faithfulness` end to end (the full table is made by the command in the
dataset card); fast: `--stats` on the shipped reference data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

EXE = Path(sys.executable).parent / "edge-sdk"
REF = Path(__file__).resolve().parents[2] / "datasets" / "3gpp" / "reference"


def test_faithfulness_stats_of_the_reference() -> None:
    r = subprocess.run([str(EXE), "data", "faithfulness", "--stats", str(REF / "train.h5")], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    assert st["n"] == 12_000 and sum(st["label_hist"]) == 12_000 and len(st["label_hist_by_zenith_row"]) == 4


@pytest.mark.slow
def test_faithfulness_small_run(tmp_path) -> None:
    from edge_sdk.server.datagen.faithfulness import FaithfulnessConfig, run

    res = run(FaithfulnessConfig(tmp_path, train=6000, test=2000, epochs=5))
    saved = json.loads((tmp_path / "faithfulness.json").read_text())
    assert saved["n_train"] == 6000 and len(saved["case1"]) == 4 and "case2" not in saved
    by = {(r["setb"], r["rx_mode"]): r for r in res["case1"]}
    # the model must beat the best-of-Set-B baseline clearly, and best-of-Set-B must be near |B|/|A|
    assert by[("1/4", "best")]["mlp"]["top1"] > by[("1/4", "best")]["best_of_setb"]["top1"] + 0.2
    assert 0.1 < by[("1/4", "best")]["best_of_setb"]["top1"] < 0.45
    assert by[("1/4", "best")]["mlp"]["top1"] > by[("1/4", "random")]["mlp"]["top1"]

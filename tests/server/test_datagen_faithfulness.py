"""Slow: a small run of tools/faithfulness.py end to end (the full table is made by the command in the card)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

TOOL = Path(__file__).resolve().parents[2] / "tools" / "faithfulness.py"


@pytest.mark.slow
def test_faithfulness_small_run(tmp_path) -> None:
    spec = importlib.util.spec_from_file_location("faithfulness", TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    res = mod.main(["--out", str(tmp_path), "--train", "6000", "--test", "2000", "--epochs", "5"])
    saved = json.loads((tmp_path / "faithfulness.json").read_text())
    assert saved["n_train"] == 6000 and len(saved["case1"]) == 4 and "case2" not in saved
    by = {(r["setb"], r["rx_mode"]): r for r in res["case1"]}
    # the model must beat the best-of-Set-B baseline clearly, and best-of-Set-B must be near |B|/|A|
    assert by[("1/4", "best")]["mlp"]["top1"] > by[("1/4", "best")]["best_of_setb"]["top1"] + 0.2
    assert 0.1 < by[("1/4", "best")]["best_of_setb"]["top1"] < 0.45
    assert by[("1/4", "best")]["mlp"]["top1"] > by[("1/4", "random")]["mlp"]["top1"]

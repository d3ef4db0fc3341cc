"""tools/bench_fleet.py runs end to end on small fleets (a smoke run; the figures come from `make bench`)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_fleet_quick(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("bench_fleet", ROOT / "tools" / "bench_fleet.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    res = mod.main(tmp_path, quick=True)
    saved = json.loads((tmp_path / "fleet.json").read_text())
    assert saved["scale"]["device_rounds"] == 600 and res["no_memo"]["process_speedup"] > 0
    assert saved["scale_100k"]["device_rounds"] == 600
    assert {b["backend"] for b in saved["backends"]} >= {"inline", "process"}

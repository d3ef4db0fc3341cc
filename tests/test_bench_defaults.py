"""tools/bench_defaults.py (issue 11 item 8): it runs the documented default commands, quiet and beside a
competing process that really takes CPU, and writes its JSON; it is kept out of `make bench`. The timings
themselves come from `make bench-defaults`, never from a test."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_defaults_benchmark_has_its_own_make_target():
    bench = _load("bench")
    assert "defaults" not in bench.discover() and "defaults" in bench.SEPARATE
    assert "bench-defaults:" in (ROOT / "Makefile").read_text()


def test_cpu_seconds_counts_a_busy_child():
    mod = _load("bench_defaults")
    p = subprocess.Popen([sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 5: pass"])
    try:
        time.sleep(1.5)
        assert mod._cpu_seconds(p.pid) > 0.5
        assert mod._cpu_seconds(os.getpid()) > 0
    finally:
        p.kill()
        p.wait()


@pytest.mark.slow
def test_defaults_benchmark_runs_quiet_and_contended(tmp_path):
    mod = _load("bench_defaults")
    res = mod.main(tmp_path, ("180x",), ("quantize",))
    assert [r["condition"] for r in res["rows"]] == ["quiet", "contended"]
    assert all(r["rc"] == 0 and r["method"] == "adq" and r["payload_bytes"] for r in res["rows"])
    assert res["competitor_cores"] > 0.5  # the competitor really competed
    assert json.loads((tmp_path / "defaults.json").read_text())["rows"] == res["rows"]

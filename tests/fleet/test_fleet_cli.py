"""`edge-sdk fleet ...` end to end on small data, and its one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import scenario_toml

from edge_sdk.cli.main import main

CLI = [sys.executable, "-m", "edge_sdk.cli"]


def test_simulate_then_report(release_dir: Path, tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text(scenario_toml(release_dir, devices=50))
    out = tmp_path / "run"
    r = subprocess.run([*CLI, "fleet", "simulate", "--scenario", str(f), "--out", str(out), "--devices", "12",
                        "--backend", "process", "--workers", "2", "--seed", "5"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert "ttm p50" in r.stdout and "devices.parquet" in r.stdout
    s = json.loads((out / "summary.json").read_text())
    assert s["devices"] == 12 and s["seed"] == 5 and s["backend"]["backend"] == "process"
    r = subprocess.run([*CLI, "fleet", "report", str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "Top-1 p10/p50/p90" in r.stdout and "ttm_cdf.png" in r.stdout


def test_presets_and_links_commands(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["fleet", "presets"]) == 0
    out = capsys.readouterr().out
    assert "lte-mixed-1k" in out and "rural-3g-10k" in out and "evdo-driving" in out
    assert main(["fleet", "links", "--seconds", "20000"]) == 0
    out = capsys.readouterr().out
    assert out.count("trace") == out.count("model") >= 6


def test_bad_scenario_is_one_line(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "bad.toml"
    f.write_text('[scenario]\nname = "x"\ndevices = 3\nspeed = "fast"\n')
    rc = main(["fleet", "simulate", "--scenario", str(f), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0
    assert err.startswith("error: ScenarioError: scenario") and "unknown key 'speed'" in err
    rc = main(["fleet", "simulate", "--scenario", "no-such-preset", "--out", str(tmp_path / "o")])
    assert rc == 2 and "not a preset" in capsys.readouterr().err
    rc = main(["fleet", "report", str(tmp_path)])
    assert rc == 2 and "summary.json is missing" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()

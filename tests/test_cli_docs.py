"""docs/cli.md is generated from the commands' --help and must be current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_cli_docs_are_current() -> None:
    res = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen_cli_docs.py"), "--check"], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr + "\n(run `python tools/gen_cli_docs.py` and commit docs/cli.md)"


def test_version_flag() -> None:
    import edge_sdk

    res = subprocess.run([sys.executable, "-m", "edge_sdk.cli", "--version"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and edge_sdk.__version__ in res.stdout

"""The docs are true, end to end: every shell block marked ``run`` in README.md, docs/ and the dataset cards is
executed, line by line in page order, at a small scale (slow suite; conventions in docs/README.md).

The scratch folder holds copies of ``datasets/`` and ``tests/data/`` and a link to ``tools/``, so a block may write
anywhere under it (``runs/...``) without touching the checkout; ``edge-sdk`` and ``.venv/bin/python`` are this
environment's. Options in ``check_docs.SMALL_SCALE`` are replaced by small values; ``make`` lines are not run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import check_docs  # noqa: E402

sys.path.pop(0)

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def _pages_with_run_blocks() -> list[Path]:
    return [p for p in check_docs.doc_pages() if any(c.run for c in check_docs.fenced_commands(p))]


def _workspace(tmp: Path) -> Path:
    ws = tmp / "ws"
    ws.mkdir()
    shutil.copytree(ROOT / "datasets", ws / "datasets")
    (ws / "tests").mkdir()
    shutil.copytree(ROOT / "tests" / "data", ws / "tests" / "data")
    (ws / "tools").symlink_to(ROOT / "tools")
    (ws / ".venv").symlink_to(BIN.parent)  # the running venv (its pyvenv.cfg makes .venv/bin/python that venv)
    return ws


def test_some_page_has_run_blocks() -> None:
    assert _pages_with_run_blocks(), "no doc page marks a block `run`"


@pytest.mark.parametrize("page", _pages_with_run_blocks(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_run_blocks_work_as_written(tmp_path, page) -> None:
    ws = _workspace(tmp_path)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "COLUMNS": "100"}
    ran = 0
    for c in check_docs.fenced_commands(page):
        if not c.run or c.tokens[0] == "make":
            continue
        toks = check_docs.small_scale(c.tokens)
        r = subprocess.run(toks, cwd=ws, env=env, capture_output=True, text=True, timeout=900)
        assert r.returncode == c.expect_exit, (
            f"{c.where()}: `{' '.join(toks)}` exited {r.returncode} (the page says {c.expect_exit})\n"
            f"{r.stdout[-2000:]}\n{r.stderr[-3000:]}")
        if c.expect_exit == 0:
            assert "Traceback" not in r.stderr
        ran += 1
    assert ran > 0

#!/usr/bin/env python3
"""Type-check every layer (``edge_sdk/``, ``server/``, ``device/``) as the one package ``edge_sdk``.

Why a tool: the folders ``server/`` and ``device/`` are installed as ``edge_sdk.server`` and ``edge_sdk.device``
through setuptools' ``package-dir`` (docs/architecture.md). mypy maps files to modules by folder, so run on the
source folders it sees a top-level ``server`` package, cannot resolve ``edge_sdk.server`` / ``edge_sdk.device``
imports, and types every cross-layer call as ``Any``. An editable install in setuptools' ``strict`` mode would
give mypy a static tree, but it hides every new module until the next reinstall (a trap for a team that adds
files daily). So this tool builds the installed layout itself, on every run, from the packaging config:

1. read ``[tool.setuptools] package-dir`` and ``packages`` from pyproject.toml (the one source of truth);
2. build ``build/typecheck/edge_sdk/...`` with a symlink per source file (``*.py``, ``*.pyi``, ``py.typed``);
3. run mypy (settings from ``[tool.mypy]``) on that tree;
4. print mypy's report with every path mapped back to the real source file, so editors and people see
   ``server/budget.py:12: error: ...``.

    python tools/typecheck.py            # make lint runs this; exit status is mypy's
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TREE = ROOT / "build" / "typecheck"


def package_dirs(pyproject: Path = ROOT / "pyproject.toml") -> dict[str, Path]:
    """``{package name: source folder}`` for every package in ``[tool.setuptools] packages``."""
    cfg = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]
    mapping: dict[str, str] = cfg.get("package-dir", {})
    out: dict[str, Path] = {}
    for pkg in cfg["packages"]:
        # the longest mapped prefix decides the folder (edge_sdk.server.adq -> server/adq)
        best = max((p for p in mapping if pkg == p or pkg.startswith(p + ".")), key=len, default=None)
        if best is None:
            folder = ROOT / pkg.replace(".", "/")
        else:
            rest = pkg[len(best):].lstrip(".")
            folder = ROOT / mapping[best] / rest.replace(".", "/")
        out[pkg] = folder
    return out


def build_tree(tree: Path = TREE) -> dict[str, str]:
    """Create the link tree; returns ``{tree path: source path}`` (both relative to the repository root)."""
    if tree.exists():
        shutil.rmtree(tree)
    back: dict[str, str] = {}
    for pkg, folder in package_dirs().items():
        dest = tree / pkg.replace(".", "/")
        dest.mkdir(parents=True, exist_ok=True)
        for src in sorted(folder.iterdir()):
            if src.is_file() and (src.suffix in (".py", ".pyi") or src.name == "py.typed"):
                link = dest / src.name
                link.symlink_to(src)
                back[str(link.relative_to(ROOT))] = str(src.relative_to(ROOT))
    return back


def main(argv: list[str] | None = None) -> int:
    from mypy import api

    back = build_tree()
    args = ["--config-file", str(ROOT / "pyproject.toml"), str((TREE / "edge_sdk").relative_to(ROOT)), *(argv or [])]
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        stdout, stderr, status = api.run(args)
    finally:
        os.chdir(cwd)
    pattern = re.compile("|".join(re.escape(k) for k in sorted(back, key=len, reverse=True)))
    sys.stdout.write(pattern.sub(lambda m: back[m.group(0)], stdout))
    sys.stderr.write(stderr)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

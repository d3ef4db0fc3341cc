#!/usr/bin/env python3
"""Write docs/cli.md from the real `--help` of every edge-sdk command (tests/test_cli_docs.py keeps it current).

Usage: .venv/bin/python tools/gen_cli_docs.py [--check]     (or: make cli-docs)

Each block is exactly what `edge-sdk <command> --help` prints in a terminal 100 columns wide: the text comes from
running the console entry point (`edge_sdk.cli.main.main`) with COLUMNS=100, so the root group's context
settings (``-h`` as well as ``--help``, the content width) and every lazily loaded subcommand are rendered as a
user sees them. The command tree comes from `edge_sdk.cli.main.iter_commands`.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from pathlib import Path

from edge_sdk.cli.main import iter_commands
from edge_sdk.cli.main import main as run_cli

DOC = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
COLUMNS = 100

INTRO = """# `edge-sdk` command line

Generated from the commands' own `--help` by `make cli-docs` (`.venv/bin/python tools/gen_cli_docs.py`): each
block is what `edge-sdk <command> --help` prints in a terminal 100 columns wide; `tests/test_cli_docs.py` fails
when this page differs from it.

* One entry point, `edge-sdk`, with subcommand groups; `edge-sdk --version` prints the package version;
  `-h` and `--help` show a command's help.
* Server commands (`data generate`, `distill`, `quantize`, `export-graph`) need the `server` extra (torch);
  `serve` needs the `serve` extra (Starlette + uvicorn, no torch); the others run on a device with the base
  package only.
* Errors print one line, `error: <ErrorClass>: <what is wrong and how to fix it>`, and exit non-zero (no
  traceback; `EDGE_SDK_DEBUG=1` shows it). Exit codes: 1 generic, 2 usage/config (also a missing or unreadable
  file), 3 dataset, 4 payload, 5 device, 6 release/store/transfer. Warnings print one line,
  `warning: <Category>: <message> (<file>:<line>)`.
"""


def help_text(path: list[str], columns: int = COLUMNS) -> str:
    """What ``edge-sdk <path> --help`` prints in a terminal ``columns`` wide (run through the real entry point)."""
    out = io.StringIO()
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(columns)
    try:
        with contextlib.redirect_stdout(out):
            rc = run_cli([*path, "--help"])
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old
    if rc != 0:
        raise RuntimeError(f"`edge-sdk {' '.join(path)} --help` exited with {rc}")
    return out.getvalue()


def render() -> str:
    parts = [INTRO]
    for path, _ in iter_commands():
        name = " ".join(["edge-sdk", *path])
        parts.append(f"\n## `{name}`\n\n```text\n{help_text(path).rstrip()}\n```\n")
    return "".join(parts)


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not DOC.exists() or DOC.read_text(encoding="utf-8") != text:
            print("docs/cli.md is stale: run `make cli-docs`", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text, encoding="utf-8")
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

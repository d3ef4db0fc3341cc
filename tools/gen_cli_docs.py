#!/usr/bin/env python3
"""Write docs/cli.md from the `--help` of every edge-sdk command (tests/test_cli_docs.py keeps it current).

Usage: python tools/gen_cli_docs.py [--check]
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from edge_sdk.cli.main import cli

DOC = Path(__file__).resolve().parents[1] / "docs" / "cli.md"

INTRO = """# `edge-sdk` command line

Generated from the commands' own `--help` by `python tools/gen_cli_docs.py` (a test fails when this page is stale).

* One entry point, `edge-sdk`, with subcommand groups; `edge-sdk --version` prints the package version.
* Server commands (`data generate`, `distill`, `quantize`, `export-graph`) need the `server` extra (torch); the
  others run on a device with the base package only.
* Errors print one line, `error: <ErrorClass>: <what is wrong and how to fix it>`, and exit non-zero (no
  traceback; `EDGE_SDK_DEBUG=1` shows it). Exit codes: 1 generic, 2 usage/config, 3 dataset, 4 payload, 5 device,
  6 release/store/transfer.
"""


def _walk(cmd: click.Command, path: list[str], ctx: click.Context | None):
    c = click.Context(cmd, info_name=" ".join(path), parent=None, terminal_width=100, max_content_width=100)
    yield path, cmd.get_help(c)
    if isinstance(cmd, click.Group):
        for name in cmd.list_commands(c):
            sub = cmd.get_command(c, name)
            if sub is not None and not sub.hidden:
                yield from _walk(sub, [*path, name], c)


def render() -> str:
    parts = [INTRO]
    for path, text in _walk(cli, ["edge-sdk"], None):
        parts.append(f"\n## `{' '.join(path)}`\n\n```text\n{text.rstrip()}\n```\n")
    return "".join(parts)


def main() -> int:
    text = render()
    if "--check" in sys.argv:
        if not DOC.exists() or DOC.read_text() != text:
            print("docs/cli.md is stale: run `python tools/gen_cli_docs.py`", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text)
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Hints name the real flags (issue 16: "pass overwrite=True (CLI: choose another --out)" although --overwrite
existed). Every ``--option`` written in a string of the package (error messages, hints, help texts, docstrings) is
an option of some `edge-sdk` command, or of the tool script the same string names."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import click

from edge_sdk.cli.main import iter_commands

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIRS = ("edge_sdk", "server", "device", "fleet", "serve")
_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
_TOOL = re.compile(r"tools/(\w+)\.py")


def cli_options() -> set[str]:
    opts: set[str] = set()
    for _path, cmd in iter_commands():
        ctx = click.Context(cmd, help_option_names=["-h", "--help"])
        opts.update(cmd.get_help_option_names(ctx))
        for p in cmd.params:
            opts.update(p.opts)
            opts.update(p.secondary_opts)
    return opts


def tool_options(name: str) -> set[str]:
    path = ROOT / "tools" / f"{name}.py"
    return set(re.findall(r"add_argument\(\s*[\"'](--[a-z][a-z0-9-]*)", path.read_text())) if path.exists() else set()


def named_flags() -> list[tuple[str, str, set[str]]]:
    """(flag, 'file:line', options of the tool scripts named in the same string) for every flag in a string."""
    out = []
    for d in PACKAGE_DIRS:
        for f in sorted((ROOT / d).rglob("*.py")):
            for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    tools = set().union(*(tool_options(t) for t in _TOOL.findall(node.value)))
                    for flag in _FLAG.findall(node.value):
                        out.append((flag, f"{f.relative_to(ROOT)}:{node.lineno}", tools))
    return out


def test_every_flag_named_in_the_package_exists() -> None:
    opts = cli_options()
    found = named_flags()
    assert len(found) > 50 and "--overwrite" in opts  # the scan does see the package's hints
    bad = [f"{where}: {flag}" for flag, where, tools in found if flag not in opts and flag not in tools]
    assert not bad, "strings name options that no edge-sdk command (nor the tool they name) has:\n" + "\n".join(bad)


def test_a_stale_flag_would_be_found() -> None:
    assert "--no-such-flag" not in cli_options()
    assert _FLAG.findall("exists; pass --no-such-flag (or --out)") == ["--no-such-flag", "--out"]
    assert "--replace-shipped" in tool_options("make_reference_data")

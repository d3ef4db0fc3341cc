#!/usr/bin/env python3
"""Keep README.md's `make demo` output block equal to what the demo prints.

    .venv/bin/python tools/readme_demo.py           # copy runs/demo/demo-report.txt (written by `make demo`) into README.md
    .venv/bin/python tools/readme_demo.py --check   # README's block has the report's rows (numbers may differ)

The block is the ```text fence after the line that starts with ``README_MARKER``. ``--check`` compares the
*shape* of the two texts: for each line, the words before its first figure (row labels, section titles), so a
renamed row, a dropped section or a new table in the demo fails the check while the figures of another run do
not (the slow suite runs a small demo and checks the README against it: tests/test_readme_demo.py).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
REPORT = Path("runs") / "demo" / "demo-report.txt"
README_MARKER = "One run of `make demo`"


def _block_span(lines: list[str]) -> tuple[int, int]:
    """(first, last) line index of the fenced block's content after the marker line."""
    try:
        at = next(i for i, ln in enumerate(lines) if ln.startswith(README_MARKER))
    except StopIteration:
        raise SystemExit(f"error: README.md has no line starting with {README_MARKER!r}") from None
    try:
        start = next(i for i in range(at + 1, len(lines)) if lines[i].startswith("```"))
        end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("```"))
    except StopIteration:
        raise SystemExit(f"error: no ``` block after the line {at + 1} of README.md") from None
    return start + 1, end


def readme_block(readme: str) -> str:
    lines = readme.splitlines()
    a, b = _block_span(lines)
    return "\n".join(lines[a:b]) + "\n"


def replace_block(readme: str, report: str) -> str:
    lines = readme.splitlines()
    a, b = _block_span(lines)
    new = lines[:a] + report.rstrip("\n").splitlines() + lines[b:]
    return "\n".join(new) + ("\n" if readme.endswith("\n") else "")


def shape(text: str) -> list[str]:
    """Each non-empty line's words before its first number, spaces collapsed (the rows and titles, not figures)."""
    out = []
    for ln in text.splitlines():
        head = re.split(r"(?<![A-Za-z-])\d", ln, maxsplit=1)[0]  # "Top-1", "L1-RSRP" are words, not figures
        head = " ".join(head.split())
        if ln.strip():
            out.append(head)
    return out


def shape_problems(block: str, report: str) -> list[str]:
    a, b = shape(block), shape(report)
    if a == b:
        return []
    import difflib

    return ["README.md's demo block does not have the rows the demo prints (- README, + demo; figures ignored):",
            *difflib.unified_diff(a, b, lineterm="", n=1)][:60]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--report", type=Path, default=REPORT, help="the demo's report (default: %(default)s)")
    ap.add_argument("--readme", type=Path, default=README, help="the README to update or check (default: %(default)s)")
    ap.add_argument("--check", action="store_true", help="only check that the README's block has the report's rows")
    args = ap.parse_args(argv)
    try:
        report = args.report.read_text(encoding="utf-8")
        readme = args.readme.read_text(encoding="utf-8")
    except OSError as exc:
        print(f"error: {exc.strerror}: {exc.filename} (run `make demo` first)", file=sys.stderr)
        return 2
    if args.check:
        found = shape_problems(readme_block(readme), report)
        print("\n".join(found) if found else f"{args.readme.name}: the demo block has the rows of {args.report}")
        return 1 if found else 0
    args.readme.write_text(replace_block(readme, report), encoding="utf-8")
    print(f"copied {args.report} into {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

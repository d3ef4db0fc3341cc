"""README.md's `make demo` block is what the demo prints (issue 16: the README showed 61 s and no fleet or
transfer tables after both had been added to the demo). tools/readme_demo.py copies the demo's report into the
README; the slow test runs a small demo and checks that the README has every row it prints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import readme_demo  # noqa: E402

sys.path.pop(0)

README = """# x

One run of `make demo` on a machine:

```text
old
```

## next
"""
REPORT = """====
edge-sdk demo: 3GPP BM-Case1
Top-1 %            64.7 ± 0.9     65.2
times:
  server: distill (QuADD) + 3-seed eval      44.7 s
  total                                      61.2 s
"""


def test_replace_block_puts_the_report_between_the_fences() -> None:
    new = readme_demo.replace_block(README, REPORT)
    assert readme_demo.readme_block(new) == REPORT
    assert new.startswith("# x\n\nOne run of `make demo`") and new.endswith("```\n\n## next\n")


def test_shape_ignores_figures_but_not_rows() -> None:
    other_run = REPORT.replace("64.7 ± 0.9     65.2", "61.0 ± 1.3  60.9").replace("61.2", "112.0")
    assert readme_demo.shape_problems(other_run, REPORT) == []
    assert readme_demo.shape_problems(REPORT.replace("Top-1 %", "Top-1 (%)"), REPORT)
    missing_section = REPORT + "====\nfleet: 200 devices\n"
    assert readme_demo.shape_problems(REPORT, missing_section)


def test_cli_copies_then_checks(tmp_path) -> None:
    readme, report = tmp_path / "README.md", tmp_path / "demo-report.txt"
    readme.write_text(README, encoding="utf-8")
    report.write_text(REPORT, encoding="utf-8")
    args = ["--readme", str(readme), "--report", str(report)]
    assert readme_demo.main([*args, "--check"]) == 1  # "old" is not the report
    assert readme_demo.main(args) == 0
    assert readme_demo.main([*args, "--check"]) == 0
    assert readme_demo.main(["--readme", str(readme), "--report", str(tmp_path / "none.txt")]) == 2


def test_readme_has_a_demo_block() -> None:
    block = readme_demo.readme_block((ROOT / "README.md").read_text(encoding="utf-8"))
    assert "edge-sdk demo:" in block and "times:" in block and "total" in block


@pytest.mark.slow
def test_readme_block_has_the_rows_the_demo_prints(tmp_path) -> None:
    out = tmp_path / "demo"
    r = subprocess.run([sys.executable, "tools/demo.py", "--quick", "--fleet-devices", "10", "--out", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    report = (out / "demo-report.txt").read_text(encoding="utf-8")
    assert report.startswith("=" * 112) and "\n$ " not in report  # the tables only, no command echo
    printed = iter(r.stdout.splitlines())
    assert all(any(ln == p for p in printed) for ln in report.splitlines())  # what was printed, in order
    found = readme_demo.shape_problems(readme_demo.readme_block((ROOT / "README.md").read_text(encoding="utf-8")),
                                       report)
    assert not found, "\n".join(found) + "\n(run `make demo` then `.venv/bin/python tools/readme_demo.py`)"

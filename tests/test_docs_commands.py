"""The docs are true: every command shown in README.md, docs/ and the dataset cards is checked against the real
CLI, Makefile and tool scripts (tools/check_docs.py; conventions in docs/README.md). The slow suite also runs the
blocks marked ``run`` (tests/test_docs_run.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import check_docs  # noqa: E402

sys.path.pop(0)


def test_every_doc_command_is_true() -> None:
    found = check_docs.problems()
    assert not found, "commands in the docs that the repository does not have:\n" + "\n".join(found)


def test_every_doc_page_is_covered() -> None:
    pages = {p.relative_to(ROOT).as_posix() for p in check_docs.doc_pages()}
    assert {"README.md", "docs/cli.md", "datasets/3gpp/README.md"} <= pages
    assert {p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md")} <= pages
    assert len(check_docs.commands()) > 50  # the pages do show commands; an empty scan would pass vacuously


def _problems(tmp_path: Path, text: str) -> list[str]:
    page = tmp_path / "page.md"
    page.write_text(text, encoding="utf-8")
    return [p.split(": ", 1)[1] for p in check_docs.problems([page])]


GOOD_BLOCK = """
```bash
# comment lines are skipped
edge-sdk payload keygen --out-dir runs/keys --name demo
edge-sdk payload sign runs/q/payload.epl --key runs/keys/demo.key && edge-sdk payload verify runs/q/payload.epl
edge-sdk data generate --preset uma-fr2-case1 --samples 200 --seed 3 \\
    --out runs/g.h5 --device cpu
EDGE_SDK_DEBUG=1 edge-sdk payload inspect runs/q/payload.epl --json
.venv/bin/python tools/make_reference_data.py --check
.venv/bin/python -m edge_sdk.cli payload inspect x.epl
make test
make install TORCH_INDEX=https://download.pytorch.org/whl/cpu
python3 -m venv .venv
edge-sdk payload keygen --out-dir runs/keys --name demo   # exit 2 (a key is never replaced)
```
"""


def test_a_true_block_passes(tmp_path) -> None:
    assert _problems(tmp_path, GOOD_BLOCK) == []
    cmds = check_docs.commands([tmp_path / "page.md"])
    assert [c.line for c in cmds[:3]] == [4, 5, 5] and cmds[-1].expect_exit == 2
    assert cmds[3].tokens[-2:] == ["--device", "cpu"]  # a continuation line belongs to its command


@pytest.mark.parametrize("line, why", [
    ("edge-sdk payload keygen --outdir runs/k", "No such option '--outdir'"),  # a renamed flag
    ("edge-sdk payload genkey --out-dir runs/k", "has no command 'genkey'"),  # a dead command
    ("edge-sdk data generate --device tpu --out x.h5", "'tpu' is not one of"),  # a value the option refuses
    ("edge-sdk data generate --samples many --out x.h5", "'many' is not a valid integer"),
    ("edge-sdk payload keygen --name k", "Missing option '--out-dir'"),  # required option left out
    ("edge-sdk payload", "needs a subcommand"),
    ("python tools/make_reference_data.py --check", "use .venv/bin/python"),
    ("python -m edge_sdk.cli --help", "use .venv/bin/python"),
    (".venv/bin/python tools/make_reference_data.py --chek", "has no option '--chek'"),
    (".venv/bin/python tools/no_such_tool.py", "no such script"),
    ("make tests", "no target 'tests'"),
    ("bash tools/nope.sh", "no such script"),
])
def test_a_false_command_fails(tmp_path, line, why) -> None:
    found = _problems(tmp_path, f"```bash\n{line}\n```\n")
    assert len(found) == 1 and why in found[0], found


def test_console_blocks_check_prompt_lines_only(tmp_path) -> None:
    text = "```console\n$ edge-sdk payload inspect p.epl\nerror: edge-sdk nonsense --x\n$ edge-sdk payload bad\n```\n"
    found = _problems(tmp_path, text)
    assert len(found) == 1 and "'bad'" in found[0]


def test_no_check_blocks_and_other_languages_are_skipped(tmp_path) -> None:
    text = "```bash no-check\nedge-sdk nonsense\n```\n\n```text\nedge-sdk nonsense\n```\n\n```python\nedge-sdk = 1\n```\n"
    assert _problems(tmp_path, text) == []


def test_inline_spans(tmp_path) -> None:
    ok = ("Run `edge-sdk device train --payload P --graph G` (synopsis `edge-sdk payload verify PATH [--public-key "
          "KEY ...]`, `edge-sdk export-graph --payload P --out G.onnx [--optimizer sgd|adam]`); the domain string "
          "`edge-sdk payload v1 ed25519`; `edge-sdk <command> --help`; see `tools/check_docs.py`, `docs/cli.md`, "
          "the function `server/onnx_export/testing.cached_training_graph`; `make cli-docs`.")
    assert _problems(tmp_path, ok) == []
    bad = ("`edge-sdk device train --payloads P`, `edge-sdk export-graph --optimizer rmsprop`, "
           "`python tools/bench.py --out x`, `tools/no_such.py`, `make nope`")
    found = _problems(tmp_path, bad)
    assert len(found) == 5, found


def test_merge_conflict_markers_fail(tmp_path) -> None:
    found = _problems(tmp_path, "text\n<<<<<<< HEAD\nours\n=======\ntheirs\n>>>>>>> main\n")
    assert len(found) == 3 and all("merge-conflict" in f for f in found)


def test_small_scale_rewrites_only_listed_options() -> None:
    toks = "edge-sdk data generate --samples 100000 --out x.h5".split()
    assert check_docs.small_scale(toks) == "edge-sdk data generate --samples 200 --out x.h5 --batch 100".split()
    assert check_docs.small_scale(["edge-sdk", "payload", "inspect", "p"]) == ["edge-sdk", "payload", "inspect", "p"]


def test_readme_device_dependency_list_is_the_base_install() -> None:
    """The README's "a device: ..." install line names exactly the base dependencies of pyproject.toml (issue 16:
    it once left out click and tqdm)."""
    import re
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    base = {re.split(r"[<>=!~\[;\s]", d, maxsplit=1)[0].lower() for d in deps}
    lines = [ln for ln in (ROOT / "README.md").read_text(encoding="utf-8").splitlines() if "# a device:" in ln]
    assert len(lines) == 1, lines
    listed = {w.strip().lower() for w in lines[0].split("# a device:", 1)[1].split(",")}
    assert listed == base, f"README lists {sorted(listed)}, pyproject.toml's base install is {sorted(base)}"

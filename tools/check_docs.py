#!/usr/bin/env python3
"""Check that the commands the docs show are commands the repository has (the "docs are true" check).

    .venv/bin/python tools/check_docs.py            # every doc page: print each problem, exit 1 if any
    .venv/bin/python tools/check_docs.py --list     # also list every command found, with its page and line
    make check-docs                                 # the same as the first line

The conventions (also in docs/README.md) — a doc page is README.md, any Markdown file under docs/ and
datasets/ (the dataset cards):

* A fenced block whose language is ``bash``, ``sh``, ``shell`` or ``console`` holds shell commands (in a
  ``console`` block only the lines that start with ``$ ``). Every command line in it is checked here (fast suite,
  tests/test_docs_commands.py):
  - ``edge-sdk ...`` is parsed by the real click command tree: the command must exist, every option must exist,
    values must convert (choices, numbers), required options and arguments must be there. Paths are not
    checked for existence (the block may create them).
  - ``.venv/bin/python tools/X.py ...``: the script exists and every ``--option`` is one its argparse parser
    defines. ``.venv/bin/python -m edge_sdk.cli ...`` is checked like ``edge-sdk``.
  - ``make TARGET [VAR=value]``: the target exists in the Makefile.
  - a bare ``python``/``python3`` running a repository script or module is an error: a newcomer's shell has no
    venv active, so docs use ``.venv/bin/python`` (which ``make install`` creates) or a make target.
  - ``bash PATH`` / ``sh PATH``: the script exists. Other programs (pip, cd, export, ...) are not checked.
* A block whose info string carries ``run`` (```` ```bash run ````) is also EXECUTED, line by line in order, in a
  scratch folder at a small scale by the slow suite (tests/test_docs_run.py, ``make test-slow``); options listed in
  ``SMALL_SCALE`` are replaced by small values. A line that is meant to fail ends with ``# exit N``.
  ``make`` lines are never executed there (only checked).
* A block whose info string carries ``no-check`` is skipped (for a deliberately wrong command, e.g. an error
  example); use it rarely and say why next to it.
* Inline code in prose is checked too: a span starting with ``edge-sdk `` that names an option (``--x``) is parsed
  like a fenced command except that missing required options are allowed (synopsis brackets ``[...]``,
  alternatives ``a|b`` and ``...`` are understood); a span ``python tools/...`` must say ``.venv/bin/python``; a span
  that is a repository path (``tools/x.py``, ``docs/x.md``, ``datasets/...``) must exist; ``make X`` must be a target.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import re
import shlex
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHELL_LANGS = {"bash", "sh", "shell", "console"}
#: folders whose Markdown files are doc pages (plus README.md at the root)
DOC_DIRS = ("docs", "datasets")
#: inline spans that are repository paths start with one of these folders
REPO_DIRS = ("tools", "docs", "datasets", "tests", "server", "device", "edge_sdk")
#: a repository-path span ends with "/" or one of these suffixes (``server/x.func`` is a Python name, not a path)
FILE_SUFFIXES = ("py", "md", "toml", "json", "sh", "txt", "h5", "epl", "onnx", "parquet", "png", "erm", "pub", "cfg")
#: options the slow suite replaces (or adds) when it executes a ``run`` block: command path -> {option: value}
SMALL_SCALE: dict[str, dict[str, str]] = {
    "data generate": {"--samples": "200", "--batch": "100"},
    "distill": {"--iterations": "5", "--steps": "20", "--seeds": "1"},
    "quantize": {"--steps": "20", "--seeds": "1", "--ref-epochs": "1"},
    "device train": {"--epochs": "2"},
}


@dataclass
class DocCommand:
    """One command line found in a doc page."""

    page: Path
    line: int
    text: str  # the command as written (continuations joined, comment removed)
    kind: str  # "fenced" or "inline"
    run: bool = False  # in a ```bash run block
    expect_exit: int = 0  # "# exit N" comment
    tokens: list[str] = field(default_factory=list)

    def where(self) -> str:
        return f"{self.page.relative_to(ROOT) if self.page.is_relative_to(ROOT) else self.page}:{self.line}"


def doc_pages(root: Path = ROOT) -> list[Path]:
    """README.md and every Markdown file under docs/ and datasets/."""
    pages = [root / "README.md"] if (root / "README.md").exists() else []
    for d in DOC_DIRS:
        pages += sorted(p for p in (root / d).rglob("*.md") if p.is_file())
    return pages


_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})(.*)$")
_EXIT = re.compile(r"#\s*exit\s+(\d+)\b")


def _split_commands(line: str) -> list[list[str]]:
    """Tokens of each simple command in a shell line (split at ``;``, ``&&``, ``||``, ``|``; comments removed)."""
    lex = shlex.shlex(line, posix=True, punctuation_chars=";&|")
    lex.whitespace_split = True
    lex.commenters = "#"
    cmds: list[list[str]] = [[]]
    try:
        for tok in lex:
            if tok and set(tok) <= set(";&|"):
                cmds.append([])
            else:
                cmds[-1].append(tok)
    except ValueError:  # unbalanced quotes: report the whole line as one command
        return [line.split()]
    return [c for c in cmds if c]


def fenced_commands(page: Path) -> Iterator[DocCommand]:
    """Command lines of the shell blocks of ``page``."""
    lines = page.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, info = m.group(2), m.group(3).strip().split()
        i += 1
        body: list[tuple[int, str]] = []
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append((i + 1, lines[i]))
            i += 1
        i += 1
        lang = info[0].lower() if info else ""
        if lang not in SHELL_LANGS or "no-check" in info[1:]:
            continue
        run = "run" in info[1:]
        pending, pending_line = "", 0
        for n, raw in body:
            text = raw.rstrip()
            if lang == "console":
                if not text.lstrip().startswith("$ ") and not pending:
                    continue
                text = text.lstrip()[2:] if not pending else text
            if not pending:
                pending_line = n
            if text.endswith("\\"):
                pending += text[:-1] + " "
                continue
            full = (pending + text).strip()
            pending = ""
            if not full or full.startswith("#"):
                continue
            m_exit = _EXIT.search(full)
            for toks in _split_commands(full):
                yield DocCommand(page, pending_line, full.split("#")[0].strip() if "#" in full else full, "fenced",
                                 run=run, expect_exit=int(m_exit.group(1)) if m_exit else 0, tokens=toks)


_INLINE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")


def inline_spans(page: Path) -> Iterator[tuple[int, str]]:
    """``(line, text)`` of every inline code span outside fenced blocks."""
    in_fence = ""
    for n, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        m = _FENCE.match(line)
        if m:
            if not in_fence:
                in_fence = m.group(2)
            elif line.strip().startswith(in_fence):
                in_fence = ""
            continue
        if in_fence:
            continue
        for s in _INLINE.finditer(line):
            yield n, s.group(1).strip()


def _synopsis_tokens(text: str) -> list[str]:
    """Tokens of a synopsis-style span: ``[--json]`` -> ``--json``, ``sgd|adam`` -> ``sgd``, ``...`` dropped."""
    out = []
    for tok in text.replace("[", " ").replace("]", " ").split():
        if tok in ("...", "…"):
            continue
        if "|" in tok:
            tok = tok.split("|")[0]
        out.append(tok)
    return out


# ---------------------------------------------------------------------------------------------------- checks


@contextlib.contextmanager
def _paths_unchecked() -> Iterator[None]:
    """click.Path accepts any value while docs are parsed (a doc block may create its files first)."""
    import click

    orig = click.Path.convert

    def convert(self, value, param, ctx):  # noqa: ANN001
        return value

    click.Path.convert = convert  # type: ignore[method-assign]
    try:
        yield
    finally:
        click.Path.convert = orig  # type: ignore[method-assign]


def check_cli(args: list[str], strict: bool) -> str | None:
    """Parse ``edge-sdk ARGS`` with the real command tree; None when it parses, else what is wrong.
    ``strict=False`` (prose): missing required parameters are fine."""
    import click

    from edge_sdk.cli.main import cli

    ctx = cli.make_context("edge-sdk", [], resilient_parsing=True)
    cmd: click.Command = cli
    path = ["edge-sdk"]
    args = list(args)
    while isinstance(cmd, click.Group) and args and not args[0].startswith("-"):
        if _placeholder(args[0]):
            return None  # `edge-sdk <command> --help`: a placeholder, nothing more to check
        sub = cmd.get_command(ctx, args[0])
        if sub is None:
            return f"`{' '.join(path)}` has no command {args[0]!r} (has: {', '.join(cmd.list_commands(ctx))})"
        path.append(args.pop(0))
        ctx = sub.make_context(path[-1], [], parent=ctx, resilient_parsing=True)
        cmd = sub
    if isinstance(cmd, click.Group):
        if not args or any(a in ("-h", "--help", "--version") for a in args):
            return None if (args or not strict) else f"`{' '.join(path)}` needs a subcommand"
        return f"`{' '.join(path)}` has no option {args[0]!r}"
    parent = ctx.parent
    with _paths_unchecked():
        try:
            cmd.make_context(path[-1], args, parent=parent)
        except click.exceptions.Exit:
            return None
        except click.MissingParameter as exc:
            return None if not strict else f"`{' '.join(path)}`: {exc.format_message()}"
        except click.ClickException as exc:
            return f"`{' '.join(path)}`: {exc.format_message()}"
    return None


def _placeholder(tok: str) -> bool:
    """``<command>``, ``<name>``: a placeholder the reader fills in."""
    return "<" in tok and ">" in tok


_ARGPARSE_CACHE: dict[Path, set[str]] = {}


def script_options(script: Path) -> set[str]:
    """Option strings (``--out``, ``-n``) an argparse script defines (read from its source, not run)."""
    if script not in _ARGPARSE_CACHE:
        opts = {"-h", "--help"}
        for node in ast.walk(ast.parse(script.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add_argument":
                for a in node.args:
                    if isinstance(a, ast.Constant) and isinstance(a.value, str) and a.value.startswith("-"):
                        opts.add(a.value)
        _ARGPARSE_CACHE[script] = opts
    return _ARGPARSE_CACHE[script]


def _check_script(script_arg: str, rest: list[str]) -> str | None:
    if _placeholder(script_arg):
        return None
    script = ROOT / script_arg
    if not script.exists():
        return f"no such script: {script_arg}"
    if script.suffix == ".py":
        opts = script_options(script)
        for a in rest:
            if a.startswith("-") and not re.fullmatch(r"-\d.*", a):
                name = a.split("=", 1)[0]
                if name not in opts:
                    return f"{script_arg} has no option {name!r} (it has: {', '.join(sorted(opts))})"
    return None


def make_targets(root: Path = ROOT) -> set[str]:
    text = (root / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([A-Za-z0-9][A-Za-z0-9_.-]*)\s*:(?!=)", text, flags=re.M))


_BARE_PYTHON = re.compile(r"^python(3(\.\d+)?)?$")


def check_tokens(tokens: list[str], strict: bool = True) -> str | None:
    """What is wrong with one command (None if nothing). See the module docstring for the rules."""
    toks = list(tokens)
    while toks and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", toks[0]):  # VAR=value prefixes
        toks.pop(0)
    if not toks:
        return None
    prog, args = toks[0], toks[1:]
    if prog in ("edge-sdk", ".venv/bin/edge-sdk"):
        return check_cli(args, strict)
    if prog == ".venv/bin/python" or _BARE_PYTHON.match(prog):
        target = None
        if args[:2] == ["-m", "edge_sdk.cli"]:
            target = "module"
        elif args[:1] == ["-m"] and len(args) > 1 and args[1].split(".")[0] in ("edge_sdk", "tools"):
            target = "module"
        elif args and not args[0].startswith("-") and (args[0].endswith(".py") or (ROOT / args[0]).exists()):
            target = "script"
        if _BARE_PYTHON.match(prog):
            if target is None:
                return None  # e.g. python3 -m venv .venv
            return (f"use .venv/bin/python instead of {prog} (a fresh shell has no venv active; `make install` "
                    "creates .venv), or a make target")
        if target == "module" and args[1] == "edge_sdk.cli":
            return check_cli(args[2:], strict)
        if target == "script":
            return _check_script(args[0], args[1:])
        return None
    if prog == "make":
        targets = make_targets()
        for a in args:
            if a.startswith("-") or "=" in a or _placeholder(a):
                continue
            if a not in targets:
                return f"Makefile has no target {a!r}"
        return None
    if prog in ("bash", "sh") and args and not args[0].startswith("-"):
        return None if (ROOT / args[0]).exists() else f"no such script: {args[0]}"
    return None


def commands(pages: list[Path] | None = None) -> list[DocCommand]:
    """Every command (fenced and inline) of the doc pages."""
    out: list[DocCommand] = []
    for page in pages if pages is not None else doc_pages():
        out.extend(fenced_commands(page))
        for n, span in inline_spans(page):
            first = span.split()[0] if span.split() else ""
            if first in ("edge-sdk", "make", ".venv/bin/python", "python", "python3", ".venv/bin/edge-sdk"):
                toks = _synopsis_tokens(span)
                out.append(DocCommand(page, n, span, "inline", tokens=toks))
            elif re.fullmatch(rf"({'|'.join(REPO_DIRS)})/[\w./-]*(/|\.({'|'.join(FILE_SUFFIXES)}))", span):
                out.append(DocCommand(page, n, span, "path", tokens=[span]))
    return out


def problem(c: DocCommand) -> str | None:
    """What is wrong with ``c`` (None if nothing)."""
    if c.kind == "path":
        return None if (ROOT / c.text.rstrip("/")).exists() else f"no such file: {c.text}"
    if c.kind == "inline":
        if c.tokens[0] in ("edge-sdk", ".venv/bin/edge-sdk") and not any(t.startswith("-") for t in c.tokens[1:]):
            # prose naming a command (or a format string such as `edge-sdk payload v1 ed25519`): the path is
            # checked only when it resolves; options are what a renamed flag breaks
            return None
        return check_tokens(c.tokens, strict=False)
    return check_tokens(c.tokens, strict=True)


def problems(pages: list[Path] | None = None) -> list[str]:
    """``page:line: `command`: what is wrong`` for every command of the doc pages that fails its check (and
    every merge-conflict marker left in a page)."""
    out = []
    for page in pages if pages is not None else doc_pages():
        for n, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            if re.match(r"(<{7}|>{7}) |={7}$", line):
                out.append(f"{DocCommand(page, n, '', 'marker').where()}: a merge-conflict marker")
    for c in commands(pages):
        p = problem(c)
        if p:
            out.append(f"{c.where()}: `{c.text}`: {p}")
    return out


def small_scale(tokens: list[str]) -> list[str]:
    """``tokens`` of an ``edge-sdk`` command with the options in :data:`SMALL_SCALE` set to their small values."""
    toks = list(tokens)
    if not toks or toks[0] not in ("edge-sdk", ".venv/bin/edge-sdk"):
        return toks
    for name, opts in SMALL_SCALE.items():
        words = name.split()
        if toks[1 : 1 + len(words)] != words:
            continue
        for opt, val in opts.items():
            if opt in toks:
                i = toks.index(opt)
                if i + 1 < len(toks):
                    toks[i + 1] = val
            else:
                toks += [opt, val]
    return toks


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--list", action="store_true", help="list every command found")
    ap.add_argument("pages", nargs="*", type=Path, help="pages to check (default: every doc page)")
    a = ap.parse_args(argv)
    pages = [p.resolve() for p in a.pages] or None
    if a.list:
        for c in commands(pages):
            print(f"{c.where()}: [{c.kind}{' run' if c.run else ''}] {c.text}")
    found = problems(pages)
    for p in found:
        print(p)
    n = len(commands(pages))
    print(f"{n} commands checked in {len(pages or doc_pages())} pages: "
          + (f"{len(found)} problem(s)" if found else "all true"), file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())

"""Every command turns a missing input file into ONE clean line on stderr (no traceback, no ``[Errno 2]``), and
warnings print without a source line.

``MISSING_INPUT`` names, per command, an invocation whose input file does not exist. A command that takes a path
must appear there or in ``OUTPUT_ONLY`` (with the reason): a new command without a row fails
``test_every_command_with_a_path_is_covered`` (add a row when you add a command).
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import click
import pytest

from edge_sdk.cli.main import describe_os_error, format_warning, iter_commands

ROOT = Path(__file__).resolve().parents[2]
EXE = Path(sys.executable).parent / "edge-sdk"
if not EXE.exists():  # pragma: no cover
    EXE = ROOT / ".venv" / "bin" / "edge-sdk"
SAMPLE = ROOT / "tests" / "data" / "payload_v1_sample.epl"
M = "{missing}"  # replaced by a path that does not exist
OUT = "{out}"  # replaced by a fresh output path

#: command -> argv (after the command) whose input file is missing
MISSING_INPUT: dict[str, list[list[str]]] = {
    "payload inspect": [[M]],
    "payload verify": [[M], [str(SAMPLE), "--public-key", M]],
    "payload sign": [[M, "--key", M]],
    "data generate": [["--preset", M + ".toml", "--out", OUT + ".h5"]],
    "data info": [[M]],
    "data verify": [[M]],
    "data faithfulness": [["--stats", M]],
    "data export": [[M, "--parquet", OUT + ".parquet"]],
    "distill": [["--data", M, "--test", M, "--compression", "36x", "--out", OUT]],
    "quantize": [["--data", M, "--test", M, "--compression", "16x", "--out", OUT]],
    "export-graph": [["--payload", M, "--out", OUT + ".onnx"]],
    "device train": [["--payload", M, "--graph", M, "--out", OUT]],
    "device eval": [["--model", M, "--data", M]],
    "store add": [["--store", OUT, "--channel", "a/b", M]],
    "store ls": [["--store", M]],
    "store show": [["--store", M, "--channel", "a/b"]],
    "store verify": [["--store", M]],
    "store gc": [["--store", M]],
    "store set-channel": [["--store", M, "--channel", "a/b", "--manifest", "sha256:" + "0" * 64]],
    "fleet simulate": [["--scenario", M + ".toml", "--out", OUT]],
    "fleet report": [[M]],
    "device fetch": [["--url", "http://127.0.0.1:9", "--channel", "a/b", "--cache", OUT, "--token-file", M],
                     ["--url", "http://127.0.0.1:9", "--channel", "a/b", "--cache", OUT, "--trusted-key", M]],
    "serve": [["--store", M, "--port", "0"]],
    "token revoke": [["--tokens", M, "--name", "x"]],
}
#: commands whose only paths are outputs (nothing to read), with the reason
OUTPUT_ONLY: dict[str, str] = {
    "payload keygen": "writes a key pair; refusing to replace one is tested in test_cli_payload.py",
    "token add": "creates the token file when it is missing",
    "token ls": "a missing token file is an empty one (nothing to read)",
}


def _path_commands() -> list[str]:
    out = []
    for path, cmd in iter_commands():
        if not isinstance(cmd, click.Group) and any(isinstance(p.type, click.Path) for p in cmd.params):
            out.append(" ".join(path))
    return out


def test_every_command_with_a_path_is_covered() -> None:
    missing = [c for c in _path_commands() if c not in MISSING_INPUT and c not in OUTPUT_ONLY]
    assert not missing, f"add a missing-input row to MISSING_INPUT for: {missing}"
    assert not (set(MISSING_INPUT) | set(OUTPUT_ONLY)) - set(_path_commands()), "stale rows"


@pytest.mark.parametrize("command, args", [(c, a) for c, rows in MISSING_INPUT.items() for a in rows],
                         ids=lambda x: x if isinstance(x, str) else " ".join(x))
def test_missing_input_is_one_clean_line(tmp_path, command, args) -> None:
    missing = str(tmp_path / "no-such-dir" / "nope")
    argv = [a.replace(M, missing).replace(OUT, str(tmp_path / "out")) for a in args]
    r = subprocess.run([str(EXE), *command.split(), *argv], capture_output=True, text=True, timeout=120)
    lines = r.stderr.strip().splitlines()
    assert r.returncode != 0, r.stdout
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "no-such-dir/nope" in lines[0] and "[Errno" not in lines[0] and "Traceback" not in r.stderr


def test_os_error_line_names_the_file() -> None:
    try:
        open("/no/such/file")  # noqa: SIM115
    except OSError as exc:
        assert describe_os_error(exc) == "No such file or directory: /no/such/file"
    assert describe_os_error(FileNotFoundError("no such file: x")) == "no such file: x"


def test_usage_errors_are_one_line() -> None:
    r = subprocess.run([str(EXE), "payload", "inspect"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip() == ("error: MissingParameter: Missing argument 'PATH'. "
                                "(see 'edge-sdk payload inspect -h')")
    r = subprocess.run([str(EXE), "no-such-command"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "No such command" in r.stderr


def test_warnings_print_one_line_without_source() -> None:
    line = format_warning(UserWarning("careful"), UserWarning, "/x/y/mod.py", 12, "    source_line()\n")
    assert line == "warning: UserWarning: careful (mod.py:12)\n"
    code = ("import warnings; from edge_sdk.cli import main as m; warnings.formatwarning = m.format_warning; "
            "warnings.warn('careful', UserWarning)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stderr == "warning: UserWarning: careful (<string>:1)\n"


def test_main_installs_the_one_line_warning_format(monkeypatch) -> None:
    from edge_sdk.cli import main as m

    monkeypatch.delenv("EDGE_SDK_DEBUG", raising=False)
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)
    assert m.main(["--version"]) == 0
    assert warnings.formatwarning is m.format_warning

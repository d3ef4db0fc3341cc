"""server/threads.py: the torch thread count of server commands (default 1, env override, validation)."""

import pytest

from edge_sdk.errors import ConfigError
from edge_sdk.server.threads import ENV, configure_torch_threads, resolve_threads


def test_resolve(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert resolve_threads() == 1
    assert resolve_threads(3) == 3
    monkeypatch.setenv(ENV, "2")
    assert resolve_threads() == 2 and resolve_threads(1) == 1
    monkeypatch.setenv(ENV, "two")
    with pytest.raises(ConfigError, match=ENV):
        resolve_threads()
    with pytest.raises(ConfigError):
        resolve_threads(-1)


def test_configure(monkeypatch):
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    try:
        assert configure_torch_threads(1) == 1 == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def test_distill_and_quantize_commands_apply_the_thread_policy(monkeypatch, tmp_path):
    """Both server commands set torch's threads before any work (a bad setting fails first, with how to fix it)."""
    from click.testing import CliRunner

    from edge_sdk.cli.main import cli

    monkeypatch.setenv("EDGE_SDK_TORCH_THREADS", "many")
    for cmd in (["distill", "--dataset", "digits", "--compression", "36x"],
                ["quantize", "--dataset", "digits", "--compression", "16x"]):
        res = CliRunner().invoke(cli, [*cmd, "--out", str(tmp_path / "o")])
        assert res.exit_code != 0 and "EDGE_SDK_TORCH_THREADS" in str(res.exception) + res.output
    import torch

    monkeypatch.delenv("EDGE_SDK_TORCH_THREADS")
    res = CliRunner().invoke(cli, ["distill", "--dataset", "digits", "--compression", "36x", "--threads", "1",
                                   "--method", "random", "--seeds", "1", "--steps", "5", "--no-graph", "--no-progress",
                                   "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    assert torch.get_num_threads() == 1

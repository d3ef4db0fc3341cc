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

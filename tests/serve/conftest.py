"""Fixtures of the server tests: an in-process server on a free loopback port over a published release
(always stopped at the end). Helpers are in serve_helpers.py."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from serve_helpers import Served, make_store, make_tokens

from edge_sdk.serve.app import ServeConfig
from edge_sdk.serve.server import start_in_thread


@pytest.fixture
def served(tmp_path: Path, release_files) -> Iterator[Served]:
    """Server with token auth over a store with channel beam-uma/stable (+ channel other/stable)."""
    store, m = make_store(tmp_path, release_files)
    tokens = make_tokens(tmp_path / "tokens.json")
    log = io.StringIO()
    srv = start_in_thread(ServeConfig(store=store.root, tokens=tmp_path / "tokens.json"), log_out=log)
    try:
        yield Served(srv, store, m, log, tokens, tmp_path)
    finally:
        srv.stop()


@pytest.fixture
def open_served(tmp_path: Path, release_files) -> Iterator[Served]:
    """Server without --tokens (everything readable, nobody admin)."""
    store, m = make_store(tmp_path, release_files)
    log = io.StringIO()
    srv = start_in_thread(ServeConfig(store=store.root), log_out=log)
    try:
        yield Served(srv, store, m, log, {}, tmp_path)
    finally:
        srv.stop()



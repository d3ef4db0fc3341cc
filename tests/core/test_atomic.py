"""edge_sdk.atomic: the one atomic-write implementation, including the path-based form."""

from __future__ import annotations

import os
import stat

import pytest

from edge_sdk.atomic import atomic_path, atomic_write_bytes, commit_file


def test_atomic_path_commits_on_success(tmp_path):
    target = tmp_path / "sub" / "t.bin"
    with atomic_path(target, make_parents=True) as tmp:
        assert tmp.parent == target.parent and not tmp.exists() and not target.exists()
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [p.name for p in target.parent.iterdir()] == ["t.bin"]


def test_atomic_path_leaves_old_file_and_no_temp_on_error(tmp_path):
    target = tmp_path / "t.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("writer crashed")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.bin"]


def test_atomic_path_needs_the_writer_to_create_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="did not create"), atomic_path(tmp_path / "t.bin"):
        pass
    assert not list(tmp_path.iterdir())


def test_commit_file_fsyncs_then_renames(tmp_path, monkeypatch):
    calls = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd)))
    tmp = tmp_path / ".x.partial"
    tmp.write_bytes(b"data")
    assert commit_file(tmp, tmp_path / "x", mode=0o600) == tmp_path / "x"
    assert (tmp_path / "x").read_bytes() == b"data" and not tmp.exists() and len(calls) >= 1
    assert stat.S_IMODE((tmp_path / "x").stat().st_mode) == 0o600


def test_atomic_write_bytes_roundtrip(tmp_path):
    atomic_write_bytes(tmp_path / "a" / "b", b"xyz", make_parents=True)
    assert (tmp_path / "a" / "b").read_bytes() == b"xyz"

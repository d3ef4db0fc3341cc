"""edge_sdk.progress: a bar on a terminal, rare plain lines (no carriage returns) in logs."""

from __future__ import annotations

import io

from edge_sdk.progress import LineProgress, progress_bar, progress_mode


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_mode_follows_the_stream_and_the_environment(monkeypatch):
    monkeypatch.delenv("EDGE_SDK_PROGRESS", raising=False)
    assert progress_mode(io.StringIO()) == "lines" and progress_mode(_Tty()) == "bar"
    monkeypatch.setenv("EDGE_SDK_PROGRESS", "off")
    assert progress_mode(_Tty()) == "off"


def test_lines_are_rare_and_plain():
    out = io.StringIO()
    bar = LineProgress(total=1000, desc="train", unit="step", stream=out, every_s=3600)
    for _ in range(1000):
        bar.update(1)
    bar.set_postfix(loss="0.5")
    bar.close()
    text = out.getvalue()
    assert "\r" not in text and text.count("\n") == 1
    assert text.startswith("train: 1000/1000 step (100%)") and "loss=0.5" in text


def test_off_and_iterable(monkeypatch, capsys):
    monkeypatch.setenv("EDGE_SDK_PROGRESS", "lines")
    assert list(progress_bar(range(3), desc="x")) == [0, 1, 2]
    assert capsys.readouterr().err.count("\n") == 1
    monkeypatch.setenv("EDGE_SDK_PROGRESS", "off")
    with progress_bar(total=5) as bar:
        bar.update(5)
    assert list(progress_bar(range(2), disable=True)) == [0, 1]
    assert capsys.readouterr().err == ""

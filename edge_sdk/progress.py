"""Progress reporting for long work: a live bar on a terminal, rare plain lines in logs.

API::

    from edge_sdk.progress import progress_bar
    with progress_bar(total=2000, desc="device train", unit="step") as bar:   # or progress_bar(iterable, ...)
        bar.update(1); bar.set_postfix(loss="0.123")

Mode (``EDGE_SDK_PROGRESS`` overrides the choice): ``bar`` — a tqdm bar, used when stderr is a terminal;
``lines`` — used when stderr is not a terminal (CI logs, ``make ... > log``): one plain line
``desc: 500/2000 step (25%), 12 s, loss=0.123`` at most every ``EDGE_SDK_PROGRESS_EVERY`` seconds (default 30)
and one at the end, never a carriage return; ``off`` — nothing.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

MODES = ("bar", "lines", "off")


def progress_mode(stream: TextIO | None = None) -> str:
    """``EDGE_SDK_PROGRESS`` if set to a known mode, else ``bar`` on a terminal and ``lines`` otherwise."""
    env = os.environ.get("EDGE_SDK_PROGRESS", "").strip().lower()
    if env in MODES:
        return env
    s = stream if stream is not None else sys.stderr
    try:
        return "bar" if s.isatty() else "lines"
    except (AttributeError, ValueError):
        return "lines"


class LineProgress:
    """A tqdm-like reporter that writes plain lines, rarely (see the module docstring)."""

    def __init__(self, iterable: Iterable[Any] | None = None, *, total: int | None = None, desc: str = "",
                 unit: str = "it", initial: int = 0, stream: TextIO | None = None, every_s: float | None = None,
                 **_: Any) -> None:
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total, self.desc, self.unit, self.n = total, desc, unit, int(initial)
        self.stream = stream if stream is not None else sys.stderr
        self.every_s = every_s if every_s is not None else float(os.environ.get("EDGE_SDK_PROGRESS_EVERY", "30"))
        self.postfix = ""
        self.t0 = self.last = time.monotonic()
        self.closed = False

    def _line(self) -> str:
        pct = f" ({100.0 * self.n / self.total:.0f}%)" if self.total else ""
        of = f"/{self.total}" if self.total is not None else ""
        post = f", {self.postfix}" if self.postfix else ""
        return f"{self.desc}: {self.n}{of} {self.unit}{pct}, {time.monotonic() - self.t0:.0f} s{post}"

    def update(self, n: int = 1) -> None:
        self.n += int(n)
        now = time.monotonic()
        if now - self.last >= self.every_s:
            self.last = now
            print(self._line(), file=self.stream, flush=True)

    def set_postfix(self, **kw: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in kw.items())

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            print(self._line(), file=self.stream, flush=True)

    def __iter__(self) -> Iterator[Any]:
        assert self.iterable is not None
        try:
            for x in self.iterable:
                yield x
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Off(LineProgress):
    def update(self, n: int = 1) -> None:
        self.n += int(n)

    def close(self) -> None:
        self.closed = True


def progress_bar(iterable: Iterable[Any] | None = None, **kw: Any) -> Any:
    """A progress reporter for the current output (module docstring); tqdm keyword arguments are accepted
    (``total``, ``desc``, ``unit``, ``initial``, ``leave``, ``disable``)."""
    mode = "off" if kw.pop("disable", False) else progress_mode()
    if mode == "bar":
        from tqdm import tqdm

        return tqdm(iterable, **kw)
    return (LineProgress if mode == "lines" else _Off)(iterable, **kw)

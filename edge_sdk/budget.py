"""Byte budgets: the one value type for "how large may the payload be", parsed once.

A user writes a budget in one of three forms; :meth:`Budget.parse` reads them all:

* **bytes** — the whole payload file: ``"16KiB"``, ``"16 kB"``, ``"3000"`` (a bare number is bytes;
  units per :func:`edge_sdk.units.parse_bytes`: IEC ``KiB``/``MiB``, SI ``kB``/``MB``, ambiguous spellings refused);
* **ratio** — compression against the full training set's float32 features: ``"36x"`` (payload <= 1/36 of them);
* **fraction** — the same as a saved share: ``"93.75%"`` or ``"0.9375"`` (= ``"16x"``; ratio ``1 / (1 - c)``).

The reference of ratios and fractions is ``full_float32_bytes = N_train * D * 4`` (labels not counted,
``TaskData.full_float32_bytes``); :meth:`Budget.resolve` turns any form into bytes:
``floor(full_float32_bytes / ratio)`` (a tiny tolerance keeps exact ratios such as 16x exact).
Glossary (docs/architecture.md): *compression* is always this ratio (>= 1, "36x"); a *fraction* is only an input
spelling.

    from edge_sdk.budget import Budget
    b = Budget.parse("36x")
    b.resolve(392_384)            # -> 10899 bytes
    b.describe(392_384)           # {"bytes": 10899, "spec": "36x", "compression_target": 36.0} (report.json)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from edge_sdk.errors import ConfigError
from edge_sdk.units import parse_bytes

KINDS = ("bytes", "ratio")


def _number(text: str, spec: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"cannot parse budget {spec!r}: use bytes (16KiB), a ratio (36x) or a saved fraction "
                          "(93.75%)") from None


@dataclass(frozen=True)
class Budget:
    """A byte budget: ``kind="bytes"`` with ``value`` bytes, or ``kind="ratio"`` with ``value`` >= 1 (the
    compression target); ``spec`` is what the user wrote (kept for reports)."""

    kind: str
    value: float
    spec: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"budget kind must be one of {KINDS}, got {self.kind!r}")
        v = self.value
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ConfigError(f"budget value must be a finite number, got {v!r}")
        if self.kind == "bytes" and (v < 1 or v != int(v)):
            raise ConfigError(f"a byte budget must be a whole number >= 1, got {v!r}")
        if self.kind == "ratio" and v < 1:
            raise ConfigError(f"a compression ratio must be >= 1 (e.g. 36x), got {v!r}")

    @classmethod
    def of_bytes(cls, n: int) -> Budget:
        return cls("bytes", int(n), str(int(n)))

    @classmethod
    def of_ratio(cls, r: float) -> Budget:
        return cls("ratio", float(r), f"{float(r):g}x")

    @classmethod
    def parse(cls, text: str | int | float | Budget) -> Budget:
        """Any form in the module docstring -> a Budget (a typed ConfigError says which forms exist)."""
        if isinstance(text, Budget):
            return text
        if isinstance(text, bool):
            raise ConfigError(f"cannot parse budget {text!r}")
        if isinstance(text, int):
            return cls("bytes", text, str(text))
        s = str(text).strip()
        low = s.lower()
        if low.endswith("x"):
            return cls("ratio", _number(low[:-1], s), s)
        if low.endswith("%"):
            return cls._from_fraction(_number(low[:-1], s) / 100.0, s)
        try:
            v: float | None = float(low)
        except ValueError:
            v = None  # not a plain number: a size with a unit
        if v is not None and 0.0 < v < 1.0:
            return cls._from_fraction(v, s)
        try:
            return cls("bytes", parse_bytes(s, "budget"), s)
        except ConfigError as exc:
            raise ConfigError(f"{exc}; a budget is bytes (16KiB, 16 kB, 3000), a compression ratio (36x) or a "
                              "saved fraction (93.75%, 0.9375)") from None

    @classmethod
    def _from_fraction(cls, c: float, spec: str) -> Budget:
        if not 0.0 <= c < 1.0:
            raise ConfigError(f"a saved fraction must be in [0, 1) (e.g. 93.75% or 0.9375), got {spec!r}")
        return cls("ratio", 1.0 / (1.0 - c), spec)

    @property
    def compression_target(self) -> float | None:
        """The ratio for ratio budgets, None for byte budgets."""
        return float(self.value) if self.kind == "ratio" else None

    def resolve(self, full_float32_bytes: int) -> int:
        """Budget in bytes for a training set whose float32 features take ``full_float32_bytes``."""
        if self.kind == "bytes":
            return int(self.value)
        b = int(math.floor(full_float32_bytes / self.value + 1e-9))
        if b < 1:
            raise ConfigError(f"compression {self.spec or self.value} of {full_float32_bytes} bytes leaves no budget")
        return b

    def describe(self, full_float32_bytes: int) -> dict[str, Any]:
        """The report's ``budget`` block: ``{"bytes", "spec", "compression_target"}``."""
        return {"bytes": self.resolve(full_float32_bytes), "spec": self.spec or str(self.value),
                "compression_target": self.compression_target}

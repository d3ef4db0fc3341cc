"""Quantities with explicit units: byte sizes, data rates and durations, and byte budgets (:class:`Budget`).

One parser for every place a user writes a size, a rate or a time (scenario files, CLI options). Nothing is
guessed: a quantity is ``"<number> <unit>"`` (the space is optional) and the unit says

* **bit or byte**: ``bit`` / ``B`` (``"8 kbit"`` = 1,000 bytes; ``"8 kB"`` = 8,000 bytes);
* **SI or IEC prefix**: ``k``/``M``/``G``/``T`` = 10^3/10^6/10^9/10^12, ``Ki``/``Mi``/``Gi``/``Ti`` =
  2^10/2^20/2^30/2^40.

Ambiguous spellings are refused with a message that names the two readings: ``"KB"`` (kB or KiB?), ``"Mb"``
(Mbit or MB?), ``"mb"``. Rates are a size unit per second: ``"1.5 Mbit/s"``, ``"200 kB/s"``, ``"1 MiB/s"``;
the networking spellings ``bps``/``kbps``/``Mbps``/``Gbps`` mean *bits* per second (SI). Durations:
``us``, ``ms``, ``s``, ``min``, ``h``, ``d``.

A bare number is accepted only where the caller says what it means: :func:`parse_bytes` (payload budgets,
``--budget``) reads ``"3000"`` / ``3000`` as bytes, as the CLI always did.

Results: sizes in bytes (``int``; a size in bits must be a whole number of bytes), rates in **bytes per
second** (``float``), durations in seconds (``float``). Every error is a :class:`edge_sdk.errors.ConfigError`.

Byte budgets (:class:`Budget`): the one value type for "how large may the payload be", parsed once.

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

    from edge_sdk.units import Budget
    b = Budget.parse("36x")
    b.resolve(392_384)            # -> 10899 bytes
    b.describe(392_384)           # {"bytes": 10899, "spec": "36x", "compression_target": 36.0} (report.json)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from edge_sdk.errors import ConfigError

_PREFIX = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30,
           "Ti": 2**40}
#: unit -> bytes per unit (bits as 1/8)
SIZE_UNITS: dict[str, float] = {}
for _p, _m in _PREFIX.items():
    SIZE_UNITS[f"{_p}B"] = float(_m)
    SIZE_UNITS[f"{_p}bit"] = _m / 8.0
SIZE_UNITS.update({"byte": 1.0, "bytes": 1.0, "bits": 0.125})
#: networking spellings, always bits per second with SI prefixes
_BPS = {"bps": 1 / 8, "kbps": 1e3 / 8, "Mbps": 1e6 / 8, "Gbps": 1e9 / 8}
DURATION_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}

_AMBIGUOUS = {
    "KB": "kB (1,000 bytes) or KiB (1,024 bytes)", "Kb": "kbit or KiB", "kb": "kbit (1,000 bits) or kB (1,000 bytes)",
    "Mb": "Mbit (10^6 bits) or MB (10^6 bytes)", "mb": "Mbit or MB", "MiBit": "Mibit", "Gb": "Gbit or GB",
    "gb": "Gbit or GB", "K": "kB or KiB", "M": "MB or MiB", "G": "GB or GiB", "Kbit": "kbit (SI) or Kibit (IEC)",
    "kib": "KiB", "mib": "MiB", "Kbps": "kbps", "MBps": "MB/s (bytes) or Mbps (bits)", "KBps": "kB/s or kbps",
    "sec": "s", "m": "min (minutes) or ms", "hr": "h",
}
_QTY = re.compile(r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-z/]+)?\s*$")


def _split(text: object, what: str, example: str) -> tuple[float, str]:
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise ConfigError(f"{what} must be a string like {example!r}, got {type(text).__name__}")
    if not isinstance(text, str):
        raise ConfigError(f"cannot parse {what} {text!r} has no unit: write it with one, e.g. {example!r}")
    m = _QTY.match(text)
    if m is None:
        raise ConfigError(f"cannot parse {what} {text!r} is not '<number> <unit>', e.g. {example!r}")
    value = float(m.group(1))
    unit = m.group(2) or ""
    if not unit:
        raise ConfigError(f"cannot parse {what} {text!r} has no unit: write it with one, e.g. {example!r}")
    if not math.isfinite(value):
        raise ConfigError(f"cannot parse {what} {text!r} is not a finite number")
    if value < 0:
        raise ConfigError(f"cannot parse {what} {text!r} is negative")
    return value, unit


def _ambiguous(what: str, text: str, unit: str) -> ConfigError:
    return ConfigError(f"cannot parse {what} {text!r}: unit {unit!r} is ambiguous, write {_AMBIGUOUS[unit]}")


def parse_size(text: object, what: str = "size") -> int:
    """Bytes in ``text`` (e.g. ``"8 KiB"`` -> 8192, ``"12 kbit"`` -> 1500). Must be a whole number of bytes."""
    value, unit = _split(text, what, "8 KiB")
    if unit in _AMBIGUOUS:
        raise _ambiguous(what, str(text), unit)
    if unit not in SIZE_UNITS:
        raise ConfigError(f"cannot parse {what} {text!r}: unknown size unit {unit!r}; use B, kB, MB, GB, KiB, MiB, GiB "
                          "or bit, kbit, Mbit, Gbit")
    nbytes = value * SIZE_UNITS[unit]
    if abs(nbytes - round(nbytes)) > 1e-6 * max(1.0, nbytes):
        raise ConfigError(f"cannot parse {what} {text!r} is {nbytes} bytes, not a whole number of bytes")
    return int(round(nbytes))


def parse_rate(text: object, what: str = "rate") -> float:
    """Bytes per second in ``text`` (e.g. ``"8 Mbit/s"`` -> 1e6, ``"1 MiB/s"`` -> 1048576.0, ``"5 Mbps"``)."""
    value, unit = _split(text, what, "5 Mbit/s")
    if unit in _BPS:
        return value * _BPS[unit]
    if unit in _AMBIGUOUS:
        raise _ambiguous(what, str(text), unit)
    if not unit.endswith("/s"):
        raise ConfigError(f"cannot parse {what} {text!r}: a rate needs '/s' (e.g. '5 Mbit/s', '200 kB/s') or bps/kbps/Mbps/Gbps")
    base = unit[:-2]
    if base in _AMBIGUOUS:
        raise _ambiguous(what, str(text), base)
    if base not in SIZE_UNITS:
        raise ConfigError(f"cannot parse {what} {text!r}: unknown unit {base!r} before '/s'; use bit, kbit, Mbit, B, kB, MB, "
                          "KiB, MiB")
    return value * SIZE_UNITS[base]


def parse_duration(text: object, what: str = "duration") -> float:
    """Seconds in ``text`` (e.g. ``"200 ms"`` -> 0.2, ``"6 h"`` -> 21600.0)."""
    value, unit = _split(text, what, "200 ms")
    if unit in _AMBIGUOUS:
        raise _ambiguous(what, str(text), unit)
    if unit not in DURATION_UNITS:
        raise ConfigError(f"cannot parse {what} {text!r}: unknown time unit {unit!r}; use us, ms, s, min, h, d")
    return value * DURATION_UNITS[unit]


def mbit_per_s(bytes_per_s: float) -> float:
    """Bytes per second -> megabits per second (SI: 1 Mbit = 10^6 bits)."""
    return bytes_per_s * 8.0 / 1e6


def format_size(nbytes: float) -> str:
    """Human-readable SI size: ``"812 B"``, ``"18.2 kB"``, ``"3.40 MB"``."""
    n = float(nbytes)
    for unit, div in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= div:
            v = n / div
            return f"{v:.3g} {unit}" if v < 100 else f"{v:.0f} {unit}"
    return f"{n:.0f} B"


def parse_bytes(text: object, what: str = "size") -> int:
    """A positive byte count where a bare number means bytes: ``3000`` / ``"3000"`` -> 3000, otherwise
    :func:`parse_size` (``"8 KiB"``, ``"16kB"``, ``"1.5MiB"``). Used for payload and download budgets."""
    if isinstance(text, bool):
        raise ConfigError(f"{what} must be a number of bytes, got {text!r}")
    if isinstance(text, int):
        val = text
    elif isinstance(text, str) and re.fullmatch(r"\s*\d+\s*", text):
        val = int(text)
    else:
        val = parse_size(text, what)
    if val <= 0:
        raise ConfigError(f"{what} must be > 0 bytes, got {text!r}")
    return int(val)


def format_bytes(n: int) -> str:
    """``12345`` -> ``"12,345 B"``; ``2_500_000`` -> ``"2.38 MiB"`` (tables and logs, IEC above 1 MiB)."""
    if n < 1024 * 1024:
        return f"{n:,} B"
    if n < 1024**3:
        return f"{n / 1024**2:.2f} MiB"
    return f"{n / 1024**3:.2f} GiB"


# ------------------------------------------------------------------ byte budgets (module docstring)

BUDGET_KINDS = ("bytes", "ratio")


def _budget_number(text: str, spec: str) -> float:
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
        if self.kind not in BUDGET_KINDS:
            raise ConfigError(f"budget kind must be one of {BUDGET_KINDS}, got {self.kind!r}")
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
            return cls("ratio", _budget_number(low[:-1], s), s)
        if low.endswith("%"):
            return cls._from_fraction(_budget_number(low[:-1], s) / 100.0, s)
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

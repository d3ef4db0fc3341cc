"""Quantities with explicit units: byte sizes, data rates and durations.

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
"""

from __future__ import annotations

import math
import re

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

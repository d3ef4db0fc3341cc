"""Byte sizes as people type them: ``"16KiB"`` -> 16384, ``"16kB"`` -> 16000, ``"1.5MiB"``, ``"3000"``.

Binary units KiB/MiB/GiB (and bare K/M = KiB/MiB), decimal units kB/MB/GB, case-insensitive. One parser for
every layer: payload byte budgets (server), a device's download budget and rate cap (device fetch).
"""

from __future__ import annotations

import math
import re

from edge_sdk.errors import ConfigError

#: unit (lower case) -> bytes
BYTE_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "k": 1024, "kib": 1024, "m": 1024**2,
              "mib": 1024**2, "gib": 1024**3}
_NUMBER = re.compile(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*")


def parse_bytes(text: str | int, what: str = "size") -> int:
    """Bytes (int > 0) from ``text`` (``"8KiB"``, ``"16kB"``, ``"2048"``, ``"2048B"``) or an int.

    ``what`` names the quantity in the error message (``"budget"``, ``"rate"``)."""
    if isinstance(text, bool):
        raise ConfigError(f"{what} must be a number of bytes, got {text!r}")
    if isinstance(text, int):
        val = text
    else:
        m = _NUMBER.fullmatch(str(text))
        if not m or m.group(2).lower() not in BYTE_UNITS:
            raise ConfigError(
                f"cannot parse {what} {text!r}: use a number of bytes with an optional unit, e.g. 16KiB, 16kB, 1.5MiB, 3000"
            )
        val = math.floor(float(m.group(1)) * BYTE_UNITS[m.group(2).lower()])
    if val <= 0:
        raise ConfigError(f"{what} must be > 0 bytes, got {text!r}")
    return int(val)


def format_bytes(n: int) -> str:
    """``12345`` -> ``"12,345 B"``; ``2_500_000`` -> ``"2.38 MiB"`` (for tables and logs)."""
    if n < 1024 * 1024:
        return f"{n:,} B"
    if n < 1024**3:
        return f"{n / 1024**2:.2f} MiB"
    return f"{n / 1024**3:.2f} GiB"

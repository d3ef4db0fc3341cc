"""edge_sdk.units: explicit units, never guessed (bit vs byte, SI k vs IEC Ki)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_sdk.errors import ConfigError
from edge_sdk.units import format_bytes, mbit_per_s, parse_bytes, parse_duration, parse_rate, parse_size


@pytest.mark.parametrize("text, nbytes", [
    ("8 KiB", 8192), ("8KiB", 8192), ("8 kB", 8000), ("1 MiB", 1_048_576), ("1 MB", 1_000_000),
    ("2 GiB", 2 * 2**30), ("12 kbit", 1500), ("8 bit", 1), ("16 bits", 2), ("10 B", 10), ("3 bytes", 3),
    ("1.5 kB", 1500), ("0.5 KiB", 512), ("1 Mibit", 131072), ("1e3 B", 1000), ("0 B", 0),
])
def test_sizes(text: str, nbytes: int) -> None:
    assert parse_size(text) == nbytes


@pytest.mark.parametrize("text, bps", [
    ("8 Mbit/s", 1e6), ("5 Mbps", 625_000.0), ("1 MiB/s", 1_048_576.0), ("200 kB/s", 200_000.0),
    ("1 Gbps", 1.25e8), ("64 kbit/s", 8000.0), ("100 bps", 12.5), ("1 KiB/s", 1024.0), ("2 B/s", 2.0),
])
def test_rates_in_bytes_per_second(text: str, bps: float) -> None:
    assert parse_rate(text) == pytest.approx(bps)


def test_bit_and_byte_rates_differ_by_8() -> None:
    assert parse_rate("1 MB/s") == pytest.approx(8 * parse_rate("1 Mbit/s"))
    assert mbit_per_s(parse_rate("13.9 Mbit/s")) == pytest.approx(13.9)


@pytest.mark.parametrize("text, seconds", [
    ("200 ms", 0.2), ("1.5 s", 1.5), ("2 min", 120.0), ("6 h", 21600.0), ("1 d", 86400.0), ("250 us", 2.5e-4),
])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text, hint", [
    ("8 KB", "kB (1,000 bytes) or KiB"), ("5 Mb", "Mbit"), ("5 mb", "Mbit or MB"), ("3 K", "kB or KiB"),
    ("1 Kbit", "Kibit"),
])
def test_ambiguous_size_units_are_refused_with_both_readings(text: str, hint: str) -> None:
    with pytest.raises(ConfigError, match="ambiguous") as e:
        parse_size(text, "budget")
    assert hint in str(e.value) and "budget" in str(e.value)


@pytest.mark.parametrize("bad", ["5 Mb/s", "5 MBps", "5 KB/s", "5 Mbit", "5 MB", "fast", "5", 5, 5.0, True, None,
                                 "-1 Mbit/s", "nan Mbit/s", "inf Mbit/s", "5 furlongs/s"])
def test_bad_rates(bad: object) -> None:
    with pytest.raises(ConfigError):
        parse_rate(bad)


@pytest.mark.parametrize("bad", ["8", 8, "8 KB", "8 xB", "1 bit", "3 kbit/s", "-1 B", "", " ", "KiB", "1e999 B"])
def test_bad_sizes(bad: object) -> None:
    with pytest.raises(ConfigError):
        parse_size(bad)


@pytest.mark.parametrize("bad", ["5", "5 m", "5 sec", "5 hr", "-1 s", "5 Mbit/s"])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ConfigError):
        parse_duration(bad)


@given(st.integers(0, 2**40), st.sampled_from(["B", "kB", "MB", "KiB", "MiB", "GiB"]))
def test_size_roundtrip(n: int, unit: str) -> None:
    mult = {"B": 1, "kB": 1000, "MB": 10**6, "KiB": 1024, "MiB": 2**20, "GiB": 2**30}[unit]
    assert parse_size(f"{n} {unit}") == n * mult


@given(st.text(max_size=30))
def test_parsers_only_raise_config_errors(text: str) -> None:
    for parse in (parse_size, parse_rate, parse_duration):
        try:
            v = parse(text)
        except ConfigError:
            continue
        assert v >= 0 and math.isfinite(v)


def test_format_bytes() -> None:
    assert format_bytes(812) == "812 B"
    assert format_bytes(18_206) == "18,206 B"
    assert format_bytes(2_500_000) == "2.38 MiB"


@pytest.mark.parametrize("text, nbytes", [("16KiB", 16384), ("16kB", 16000), ("16k", 16384), ("16K", 16384),
                                          ("1.5MiB", 1572864), ("3000", 3000), ("3000B", 3000), (" 2 kib ", 2048),
                                          (77, 77), ("2g", 2 * 2**30), ("16KB", 16000)])
def test_command_line_sizes(text: object, nbytes: int) -> None:
    """The command-line form (budgets): bare numbers are bytes, one-letter K/M/G are binary."""
    assert parse_bytes(text) == nbytes


@pytest.mark.parametrize("bad", ["", "abc", "16 parsecs", "-5", "0", "0.1", True, "1 Mbit/s"])
def test_command_line_size_errors(bad: object) -> None:
    with pytest.raises(ConfigError):
        parse_bytes(bad)

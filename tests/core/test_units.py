"""edge_sdk.units: sizes, rates and durations with explicit units; nothing ambiguous is guessed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_sdk.errors import ConfigError
from edge_sdk.units import format_bytes, parse_bytes, parse_duration, parse_rate, parse_size


@pytest.mark.parametrize("text,expected", [
    ("8 KiB", 8192), ("8KiB", 8192), ("10 kB", 10_000), ("2 MB", 2_000_000), ("1.5 MiB", 1_572_864),
    ("12 kbit", 1500), ("8 bit", 1), ("3 B", 3), ("1 GiB", 2**30), ("2 bytes", 2),
])
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["8", 8, "8 KB", "8 kb", "8 Mb", "8 K", "8 M", "3 bit", "-1 kB", "nan kB", "8 parsec",
                                 "kB", True])
def test_parse_size_refuses_ambiguous_or_unitless(bad):
    with pytest.raises(ConfigError):
        parse_size(bad)


@pytest.mark.parametrize("text,expected", [
    ("8 Mbit/s", 1e6), ("5 Mbps", 625_000), ("200 kB/s", 200_000), ("1 MiB/s", 1_048_576), ("64 KiB/s", 65536),
    ("100 bps", 12.5),
])
def test_parse_rate(text, expected):
    assert parse_rate(text) == pytest.approx(expected)


@pytest.mark.parametrize("bad", ["8 MB", "8 MBps", "8 Mb/s", "8 KB/s", "fast", "8"])
def test_parse_rate_errors(bad):
    with pytest.raises(ConfigError):
        parse_rate(bad)


@pytest.mark.parametrize("text,expected", [("200 ms", 0.2), ("6 h", 21600), ("90 s", 90), ("30 min", 1800),
                                           ("2 d", 172800), ("5 us", 5e-6)])
def test_parse_duration(text, expected):
    assert parse_duration(text) == pytest.approx(expected)


@pytest.mark.parametrize("bad", ["5 m", "5", "5 sec", "soon"])
def test_parse_duration_errors(bad):
    with pytest.raises(ConfigError):
        parse_duration(bad)


def test_parse_bytes_bare_numbers_are_bytes():
    assert parse_bytes(3000) == parse_bytes("3000") == parse_bytes(" 3000 ") == 3000
    assert parse_bytes("8KiB") == 8192
    for bad in ("0", 0, -3, "16k", "0 B", True):
        with pytest.raises(ConfigError):
            parse_bytes(bad)


@given(st.integers(1, 2**40))
def test_parse_bytes_roundtrip(n):
    assert parse_bytes(str(n)) == n == parse_size(f"{n} B")


def test_format_bytes():
    assert format_bytes(12345) == "12,345 B" and format_bytes(3 * 2**20) == "3.00 MiB"

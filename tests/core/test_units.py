"""edge_sdk.units: sizes, rates and durations with explicit units, nothing ambiguous guessed; Budget: one value
type for every budget form, parsed once (bytes, ratio, saved fraction)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_sdk.errors import ConfigError
from edge_sdk.units import Budget, format_bytes, parse_bytes, parse_duration, parse_rate, parse_size


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


# --- Budget ---


@pytest.mark.parametrize("text,kind,value", [
    ("16KiB", "bytes", 16384), ("16kB", "bytes", 16000), ("1.5MiB", "bytes", 1572864), ("3000", "bytes", 3000),
    ("3000B", "bytes", 3000), (" 2 KiB ", "bytes", 2048), (77, "bytes", 77),
    ("36x", "ratio", 36.0), ("36X", "ratio", 36.0), ("1x", "ratio", 1.0), ("93.75%", "ratio", 16.0),
    ("0.9375", "ratio", 16.0), ("50%", "ratio", 2.0), ("0%", "ratio", 1.0),
])
def test_forms(text, kind, value):
    b = Budget.parse(text)
    assert (b.kind, b.value) == (kind, pytest.approx(value))
    assert Budget.parse(b) is b


@pytest.mark.parametrize("bad", ["", "abc", "16 parsecs", "-5", "0", "16k", "2 kib", "16KB", "x", "0.5x", "nanx",
                                 "-3x", "100%", "150%", "1.5", True])
def test_bad_forms_are_config_errors(bad):
    with pytest.raises(ConfigError):
        Budget.parse(bad)


def test_resolve_and_describe():
    assert Budget.parse("36x").resolve(36000) == 1000 == Budget.parse("36x").resolve(36001)
    assert Budget.parse("16x").resolve(100 * 8 * 4) == 200 == Budget.parse("93.75%").resolve(3200)
    assert Budget.parse("5000").resolve(10) == 5000  # bytes ignore the reference
    with pytest.raises(ConfigError, match="leaves no budget"):
        Budget.parse("36x").resolve(10)
    assert Budget.parse("36x").describe(36000) == {"bytes": 1000, "spec": "36x", "compression_target": 36.0}
    assert Budget.of_bytes(99).describe(1) == {"bytes": 99, "spec": "99", "compression_target": None}
    assert Budget.of_ratio(180).spec == "180x"


@given(st.integers(1, 10**7), st.floats(1.0, 1e4, allow_nan=False))
def test_ratio_budget_is_the_largest_that_meets_the_ratio(ref, r):
    b = Budget.of_ratio(r)
    try:
        n = b.resolve(ref)
    except ConfigError:
        assert ref / r < 1 + 1e-6
        return
    assert ref / n >= r * (1 - 1e-9) and ref / (n + 1) < r

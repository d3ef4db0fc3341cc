"""edge_sdk.budget.Budget: one value type for every budget form, parsed once (bytes, ratio, saved fraction)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_sdk.budget import Budget
from edge_sdk.errors import ConfigError


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

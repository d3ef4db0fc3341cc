"""docs/transfer.md against the code: byte table, constants, body keys, limits, errors table, MUST rules."""

from __future__ import annotations

import re
from pathlib import Path

from edge_sdk.release import channel as C
from edge_sdk.release import digest as D
from edge_sdk.release import errors as E
from edge_sdk.release import manifest as M

ROOT = Path(__file__).resolve().parents[2]
SPEC = (ROOT / "docs" / "transfer.md").read_text()


def _section(title: str) -> str:
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", SPEC, re.S | re.M)
    assert m, title
    return m.group(1)


def _tables(title: str) -> list[list[list[str]]]:
    """Every table of a section, each as rows of cells (header row dropped)."""
    tables: list[list[list[str]]] = []
    cur: list[list[str]] | None = None
    for line in _section(title).splitlines():
        if line.startswith("|"):
            if cur is None:
                cur = []
                tables.append(cur)
            if not line.startswith("| ---"):
                cur.append([c.strip() for c in line.strip().strip("|").split("|")])
        else:
            cur = None
    return [t[1:] for t in tables]


def test_byte_table_matches_code():
    rows = _tables("Manifest byte layout")[0]
    consts = {}
    for _offset, _size, _field, const in rows:
        for name, value in re.findall(r"`(\w+)` = `?([0-9a-f ]+|\d+)`?", const):
            consts[name] = value
    assert bytes.fromhex(consts.pop("MAGIC")) == M.MAGIC
    for name, value in consts.items():
        assert getattr(M, name) == int(value), name
    fixed = [(int(o), int(s)) for o, s, *_ in rows if o.isdigit() and s.isdigit()]
    assert fixed == [(0, 8), (8, 1), (9, 1), (10, 2), (12, 4)]
    assert sum(s for _, s in fixed) == M.PREFIX_SIZE
    trailer = [int(s) for o, s, *_ in rows if not o.isdigit() and s.isdigit()]
    assert trailer == [M.DIGEST_SIZE, M.KEY_ID_SIZE, M.SIGNATURE_SIZE]
    assert f"`{M.SIGNATURE_DOMAIN[:-1].decode()}`" in _section("Manifest byte layout")
    assert M.SIGNATURE_DOMAIN[-1] == 0 and f"the {len(M.SIGNATURE_DOMAIN) - 1} bytes" in _section("Manifest byte layout")
    assert f"The magic is `{M.MAGIC.decode('latin-1').encode('unicode_escape').decode()}`" in SPEC


def test_body_keys_match_code():
    body, identity, tier = _tables("Manifest body")[:3]
    assert {r[0].strip("`") for r in body} == M.BODY_KEYS
    assert {r[0].strip("`") for r in identity} == M.IDENTITY_KEYS
    assert {r[0].strip("`") for r in tier} == M.TIER_KEYS
    text = _section("Manifest body")
    for rx in (M.RELEASE_NAME_RE, M.TIER_NAME_RE, M.BLOB_TYPE_RE, M.KPI_NAME_RE, M.TASK_KIND_RE):
        assert f"`{rx.pattern[:-2]}`" in text, rx.pattern
    for t in M.RESERVED_TYPES:
        assert f"`{t}`" in text


def test_channel_table_matches_code():
    rows = _tables("Channels")[0]
    assert {r[0].strip("`") for r in rows} == C.RECORD_KEYS
    assert f"`CHANNEL_HISTORY` = {C.CHANNEL_HISTORY}" in _section("Channels")
    assert f"at most {C.MAX_RECORD_BYTES:,} bytes" in _section("Channels")
    assert f"1 to {C.MAX_SEGMENTS} segments" in _section("Channels")
    assert f"`{C.SEGMENT_RE.pattern[:-2]}`" in _section("Channels")


def test_limits_table_matches_code():
    rows = _tables("Limits")[0]
    documented = {}
    for name, value in rows:
        n = name.strip("`")
        documented[n] = int(value)
        assert getattr(M, n, getattr(D, n, None)) == int(value), n
    assert {n for n in dir(M) if n.startswith("MAX_")} | {"MAX_BLOB_BYTES"} == set(documented)


def test_errors_table_matches_code():
    documented = {r[0].strip("`") for r in _tables("Errors")[0]}
    assert documented == set(E.__all__) - {"ReleaseError"}
    for name in documented:
        assert issubclass(getattr(E, name), E.ReleaseError)


def test_every_must_rule_has_a_test():
    rules = re.findall(r"^\d+\. \*\*([A-Z]\d\d)\*\*", _section("MUST rules"), re.M)
    assert len(rules) == len(set(rules)) >= 20
    for prefix in sorted({r[0] for r in rules}):
        nums = [int(r[1:]) for r in rules if r[0] == prefix]
        assert nums == list(range(1, len(nums) + 1)), f"{prefix} rules are not numbered 1..n"
    tests = "".join(p.read_text() for p in (ROOT / "tests").rglob("test_*.py"))
    names = re.findall(r"^(?:async )?def (test_\w+)", tests, re.M)
    for r in rules:
        assert any(re.search(rf"_{r}(_|$)", n) for n in names), f"no test named after rule {r}"

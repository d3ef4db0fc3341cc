"""docs/payload-format.md against the code: byte table, constants, limits, errors table, MUST rules."""

from __future__ import annotations

import re
from pathlib import Path

from edge_sdk.payload import errors as E
from edge_sdk.payload import format as F

ROOT = Path(__file__).resolve().parents[2]
SPEC = (ROOT / "docs" / "payload-format.md").read_text()


def _section(title: str) -> str:
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", SPEC, re.S | re.M)
    assert m, title
    return m.group(1)


def _table(title: str) -> list[list[str]]:
    rows = []
    for line in _section(title).splitlines():
        if line.startswith("|") and not line.startswith("| ---"):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows[1:]  # drop the column names


def test_byte_table_matches_code():
    rows = _table("Byte layout")
    consts = {}
    for _offset, _size, _field, const in rows:
        for name, value in re.findall(r"`(\w+)` = `?([0-9a-f ]+|\d+)`?", const):
            consts[name] = value
    assert bytes.fromhex(consts.pop("MAGIC")) == F.MAGIC
    for name, value in consts.items():
        assert getattr(F, name) == int(value), name
    # fixed offsets and sizes of the prefix and trailer
    fixed = [(int(o), int(s)) for o, s, *_ in rows if o.isdigit() and s.isdigit()]
    assert fixed == [(0, 8), (8, 1), (9, 1), (10, 2), (12, 4)]
    assert sum(s for _, s in fixed) == F.PREFIX_SIZE
    trailer = [int(s) for o, s, *_ in rows if not o.isdigit() and s.isdigit()]
    assert trailer == [F.DIGEST_SIZE, F.KEY_ID_SIZE, F.SIGNATURE_SIZE]
    assert f"`{F.SIGNATURE_DOMAIN[:-1].decode()}`" in _section("Byte layout") and F.SIGNATURE_DOMAIN[-1] == 0
    assert len(F.SIGNATURE_DOMAIN) == 28


def test_limits_table_matches_code():
    rows = _table("Limits")
    assert rows
    names = set()
    for name, value in rows:
        names.add(name.strip("`"))
        assert getattr(F, name.strip("`")) == int(value), name
    assert {n for n in dir(F) if n.startswith("MAX_")} | {"HEADER_MAX_BYTES"} == names


def test_errors_table_matches_code():
    rows = _table("Errors")
    documented = {r[0].strip("`") for r in rows}
    assert documented == set(E.__all__) - {"PayloadError"}
    for name in documented:
        assert issubclass(getattr(E, name), E.PayloadError)


def test_header_keys_documented():
    top = {r[0].strip("`") for r in _table("Header (JSON)") if len(r) == 3 and r[0].startswith("`")}
    # the first table of the section lists the top-level keys, the second the group keys
    assert {"c", "g", "l", "o", "p", "s", "t", "id", "k", "b", "r", "x", "q", "e", "m"} <= top | {"n", "d"}
    assert set(F.EXTRA_DTYPES) == set(re.search(r"Dtypes \(always little-endian\): (.*?)\.", SPEC).group(1)
                                      .replace("`", "").split())


def test_every_must_rule_has_a_test():
    rules = re.findall(r"^\d+\. \*\*(R\d\d)\*\*", _section("MUST rules"), re.M)
    assert rules == [f"R{i:02d}" for i in range(1, len(rules) + 1)] and len(rules) >= 16
    tests = "".join(p.read_text() for p in (ROOT / "tests" / "core").glob("test_*.py"))
    names = re.findall(r"^def (test_\w+)", tests, re.M)
    for r in rules:
        assert any(re.search(rf"_{r}(_|$)", n) for n in names), f"no test named after rule {r}"


def test_header_bytes_doc():
    """The header size quoted in the spec is what the code produces."""
    from edge_sdk.payload import GroupLayout
    from edge_sdk.payload.format import plan_payload

    lay = GroupLayout.for_kind("b3", "codebook", 3, 320, 16)
    plan = plan_payload([lay], 32, {}, {}, {"sha256": "0" * 64, "size": 123456})
    n = len(plan.header_bytes())
    m = re.search(r"has a \*\*(\d+)-byte\*\* header", SPEC)
    assert m and int(m.group(1)) == n


def test_row_alignment_cost_doc():
    from edge_sdk.bitpack import row_bytes

    assert max(8 * row_bytes(d, b) - d * b for d in range(1, 100) for b in range(1, 9)) == 7
    assert "at most **7 bits per\nsample**" in SPEC
    assert row_bytes(13, 3) == 5 and 8 * 5 - 39 == 1  # the doc's example


def test_quantizer_table_matches_codecs():
    """The "Quantizer kinds" table (bits, params and shapes, code range) is what edge_sdk.codecs implements."""
    from edge_sdk import codecs

    rows = {r[0].strip("`"): r for r in _table("Quantizer kinds")}
    assert set(rows) == set(codecs.QUANTIZER_KINDS)
    for kind, (_, bits, params, code_range, _formula) in rows.items():
        lo, _, hi = bits.partition("..")
        allowed = tuple(range(int(lo), int(hi or lo) + 1))
        assert allowed == codecs.ALLOWED_BITS[kind], kind
        for b in allowed:
            names = set(re.findall(r"`(\w+)`", params))
            assert names == set(codecs.param_shapes(kind, b, 5, 7)), kind
            if kind in ("none", "float16", "float32"):
                assert code_range.startswith("none"), kind
                continue
            q = codecs.q_max(b) if b >= 2 else 0
            top = {"2Q": 2 * q, "2^b - 1": (1 << b) - 1}[code_range.split("..")[1].strip()]
            assert code_range.startswith("0..") and top == codecs.code_max(kind, b), (kind, b)


def test_every_limit_raises_its_documented_error_R06():
    """Each limit of the table, exceeded by one, gives LimitExceeded (HEADER_MAX_BYTES: HeaderTooLarge)."""
    import copy

    import numpy as np
    import pytest

    from edge_sdk.payload import SampleGroup, encode_payload, read_payload
    from edge_sdk.payload.reader import decode_header

    base = encode_payload([SampleGroup("a", "codebook", 2, data=np.zeros((2, 3), np.uint8),
                                       params={"levels": np.arange(4, dtype=np.float32)}, labels=np.array([0, 1]),
                                       extra={"w": np.zeros(2, np.float32)})], 2, {}, {})
    hlen = int.from_bytes(base[12:16], "little")
    header = decode_header(base[16:16 + hlen])
    over = {
        "MAX_GROUPS": lambda h: h["g"].extend(copy.deepcopy([h["g"][0]] * F.MAX_GROUPS)),
        "MAX_SECTIONS": lambda h: h["s"].extend([[0, 0, "00000000"]] * F.MAX_SECTIONS),
        "MAX_N": lambda h: h["g"][0].update(n=F.MAX_N + 1),
        "MAX_TOTAL_ROWS": lambda h: h["g"].extend([{"id": f"z{i}", "k": "none", "b": 0, "n": F.MAX_N, "d": 3}
                                                   for i in range(F.MAX_TOTAL_ROWS // F.MAX_N)]),
        "MAX_D": lambda h: h["g"][0].update(d=F.MAX_D + 1),
        "MAX_VALUES": lambda h: h["g"][0].update(n=F.MAX_N, d=F.MAX_VALUES // F.MAX_N + 1),
        "MAX_CLASSES": lambda h: h.update(c=F.MAX_CLASSES + 1),
        "MAX_NDIM": lambda h: h["g"][0]["e"]["w"].__setitem__(2, [1] * (F.MAX_NDIM + 1)),
        "MAX_NAME_CHARS": lambda h: h["g"][0].update(id="a" * (F.MAX_NAME_CHARS + 1)),
        "MAX_SECTION_BYTES": lambda h: h["s"][0].__setitem__(1, F.MAX_SECTION_BYTES + 1),
        "MAX_GRAPH_BYTES": lambda h: h.update(o=["0" * 64, F.MAX_GRAPH_BYTES + 1]),
    }
    documented = {r[0].strip("`") for r in _table("Limits")}
    assert set(over) | {"HEADER_MAX_BYTES", "MAX_JSON_DEPTH"} == documented
    for name, fn in over.items():
        h = copy.deepcopy(header)
        fn(h)
        with pytest.raises(E.PayloadError) as exc:
            F.parse_header_v1(h)
        assert type(exc.value) is E.LimitExceeded, (name, exc.value)
    deep = {"t": {}}
    cur = deep["t"]
    for _ in range(F.MAX_JSON_DEPTH - 1):  # the header object is depth 1, "t" depth 2, ... one level too deep
        cur["x"] = {}
        cur = cur["x"]
    hb = F.canonical_json(header | deep)
    assert F.json_depth(hb) == F.MAX_JSON_DEPTH + 1
    with pytest.raises(E.LimitExceeded):
        decode_header(hb)
    in_string = F.canonical_json(header | {"t": {"s": '"\\[[[[{{{{' * 40}})  # brackets in strings do not count
    assert F.json_depth(in_string) == F.json_depth(F.canonical_json(header)) == 6
    big = bytearray(base[:16])
    big[12:16] = (F.HEADER_MAX_BYTES + 1).to_bytes(4, "little")
    with pytest.raises(E.HeaderTooLarge):
        read_payload(bytes(big))

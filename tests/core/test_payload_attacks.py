"""Known attack files (tests/data/payload_attacks/): each crafted file must be rejected with its documented
error, from the header alone where the attack is about sizes (no allocation). The manifest
(``manifest.json``) names the error and the mitigation of each. Generated once by
``python tests/core/test_payload_attacks.py --regenerate`` from the valid base below.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from edge_sdk.payload import errors as E
from edge_sdk.payload import read_payload

DIR = Path(__file__).resolve().parents[1] / "data" / "payload_attacks"
MANIFEST = json.loads((DIR / "manifest.json").read_text()) if (DIR / "manifest.json").exists() else {}


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_attack_file_rejected(name):
    entry = MANIFEST[name]
    data = (DIR / name).read_bytes()
    with pytest.raises(getattr(E, entry["error"])):
        with read_payload(data) as p:
            p.decode_all()


def test_manifest_complete():
    assert len(MANIFEST) >= 25
    assert {p.name for p in DIR.glob("*.epl")} == set(MANIFEST)
    for entry in MANIFEST.values():
        assert entry["mitigation"] and entry["error"] in E.__all__


# ------------------------------------------------------------------------------------- generation
def _base() -> bytes:
    from edge_sdk.payload import SampleGroup, encode_payload

    g = SampleGroup("a", "codebook", 2, data=np.array([[0, 1, 2], [3, 2, 1]], np.uint8),
                    params={"levels": np.array([-1, -0.5, 0.5, 1], np.float32)}, labels=np.array([1, 0]),
                    extra={"w": np.array([1.0, 2.0], np.float32)})
    return encode_payload([g], 2, {"kind": "beam"}, {"method": "attack-base"})


def _symmetric_base() -> bytes:
    from edge_sdk.payload import SampleGroup, encode_payload

    g = SampleGroup("s", "symmetric_per_sample", 2, data=np.array([[0, 1, 2], [2, 1, 0]], np.uint8),
                    params={"scale": np.array([0.5, 2.0], np.float32)}, labels=np.array([1, 0]))
    return encode_payload([g], 2, {"kind": "beam"}, {"method": "attack-base"})


def _patch_data(b: bytes, at: int, value: bytes) -> bytes:
    """Overwrite data-area bytes at ``at`` and fix every CRC and the digest, so that only the value rules
    behind the checksums can catch the change."""
    import zlib

    hlen = int.from_bytes(b[12:16], "little")
    pre, h, data = b[:16], json.loads(b[16:16 + hlen]), bytearray(b[16 + hlen:-32])
    data[at:at + len(value)] = value
    for sec in h["s"]:
        sec[2] = f"{zlib.crc32(bytes(data[sec[0]:sec[0] + sec[1]])):08x}"
    hb = json.dumps(h, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return _assemble(pre, hb, bytes(data))


def _assemble(prefix: bytes, header: bytes, data: bytes, hlen: int | None = None) -> bytes:
    pre = bytearray(prefix)
    pre[12:16] = (len(header) if hlen is None else hlen).to_bytes(4, "little")
    body = bytes(pre) + header + data
    return body + hashlib.sha256(body).digest()


def _attacks() -> dict[str, tuple[bytes, str, str]]:
    b = _base()
    hlen = int.from_bytes(b[12:16], "little")
    pre, hb, data = b[:16], b[16:16 + hlen], b[16 + hlen:-32]
    h = json.loads(hb)

    def enc(obj):
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    def hmod(fn):
        x = json.loads(hb)
        fn(x)
        return _assemble(pre, enc(x), data)

    del h
    sym = _symmetric_base()
    sym_hlen = int.from_bytes(sym[12:16], "little")
    sym_data = sym[16 + sym_hlen:-32]
    out = {
        "header_len_4gib.epl": (pre[:12] + (0xFFFFFFFF).to_bytes(4, "little"), "HeaderTooLarge",
                                "header length capped at HEADER_MAX_BYTES before reading (R04)"),
        "n_times_d_2e55.epl": (hmod(lambda x: x["g"][0].update(n=1 << 24, d=1 << 24)), "LimitExceeded",
                               "n, d, n*d checked against MAX_N/MAX_D/MAX_VALUES with Python ints (R06)"),
        "zero_bit_labels_huge_n.epl": (hmod(lambda x: (x.update(c=1), x["g"][0].update(d=0, n=1 << 30))),
                                       "LimitExceeded",
                                       "0-byte rows still count against MAX_N / MAX_TOTAL_ROWS, so 0-bit labels "
                                       "cannot make the reader allocate n int64 labels (R06)"),
        "extra_shape_overflow.epl": (hmod(lambda x: x["g"][0]["e"]["w"].__setitem__(2, [1 << 32] * 3)),
                                     "LimitExceeded", "extra element count checked before use (R06)"),
        "overlapping_sections.epl": (hmod(lambda x: x["s"][1].__setitem__(0, 0)), "BadOffsets",
                                     "sections must be contiguous in table order (R07)"),
        "section_reused.epl": (hmod(lambda x: x["g"][0]["q"]["levels"].__setitem__(0, 0)), "BadOffsets",
                               "each section referenced exactly once, length == shape (R07)"),
        "length_lies.epl": (hmod(lambda x: x["s"][0].__setitem__(1, 1 << 39)), "BadOffsets",
                            "section length must equal the size its shape implies (R07)"),
        "deep_json.epl": (_assemble(pre, b"[" * 5000 + b"]" * 5000, b""), "LimitExceeded",
                          "JSON nesting depth measured before parsing, capped at MAX_JSON_DEPTH (R06)"),
        "duplicate_keys.epl": (_assemble(pre, hb.replace(b'{"c":2,', b'{"c":2,"c":2,'), data), "HeaderInvalid",
                               "duplicate JSON keys rejected (R05)"),
        "nan_in_task.epl": (_assemble(pre, hb.replace(b'"t":{"kind":"beam"}', b'"t":{"kind":NaN}'), data),
                            "HeaderInvalid", "NaN/Infinity rejected; header must be canonical (R05)"),
        "trailing_bytes.epl": (b + b"\0" * 16, "TrailingBytes", "exact file size (R08)"),
        "truncated_data.epl": (b[:-40], "Truncated", "exact file size (R08)"),
        "unknown_flag.epl": (_assemble(pre[:10] + b"\x04\x00" + pre[12:], hb, data), "HeaderInvalid",
                             "unknown flag bits rejected (R03)"),
        "major_version_3.epl": (pre[:8] + b"\x03\x00" + b[10:], "UnsupportedVersion",
                                "fixed set of accepted versions (R02)"),
        "crc_mismatch_labels.epl": (_assemble(pre, hb, data[:-1] + b"\x03"), "ChecksumMismatch",
                                   "section CRC32 checked before use (R10)"),
        "digest_only_changed.epl": (b[:-1] + bytes([b[-1] ^ 1]), "DigestMismatch",
                                    "content SHA-256 verified on open (R09)"),
        # the codebook rows are 3 values x 2 bits = 6 bits in 1 byte: bits 6, 7 are padding
        "code_padding_bits.epl": (_patch_data(b, 0, bytes([data[0] | 0x80])), "InvalidValue",
                                  "padding bits of every code row checked on first use, CRC fixed up (R11)"),
        # labels: 2 labels x 1 bit in the last section (1 byte): bits 2..7 are padding
        "label_padding_bits.epl": (_patch_data(b, len(data) - 1, bytes([data[-1] | 0x10])), "InvalidValue",
                                   "padding bits after the last label checked before labels are used (R11)"),
        "code_off_grid.epl": (_patch_data(sym, 0, bytes([sym_data[0] | 0x03])), "InvalidValue",
                              "symmetric codes must lie in [0, 2Q]; code 2**b - 1 is refused (R17)"),
        "nan_param.epl": (_patch_data(b, 2, np.array([np.nan], "<f4").tobytes()), "InvalidValue",
                          "quantizer parameters must be finite (scale >= 0, alpha > 0) (R18)"),
        "explicit_default_role.epl": (hmod(lambda x: x["g"][0].update(r="samples")), "HeaderInvalid",
                                      "default values are omitted: one byte form per content (R05)"),
        "explicit_empty_meta.epl": (hmod(lambda x: x["g"][0].update(m={})), "HeaderInvalid",
                                    "empty q/e/m objects are omitted: one byte form per content (R05)"),
        "graph_size_2pow40.epl": (hmod(lambda x: x.update(o=["0" * 64, 1 << 40])), "LimitExceeded",
                                  "the declared graph size is capped at MAX_GRAPH_BYTES (R06)"),
        "extra_ndim_9.epl": (hmod(lambda x: x["g"][0]["e"]["w"].__setitem__(2, [1] * 9)), "LimitExceeded",
                             "array dimensions capped at MAX_NDIM (R06)"),
        "group_id_257_chars.epl": (hmod(lambda x: x["g"][0].update(id="a" * 257)), "LimitExceeded",
                                   "names capped at MAX_NAME_CHARS (R06)"),
        "v1_affine_kind.epl": (hmod(lambda x: x["g"][0].update(k="affine_set", q={"hi": [1, "f4", [1]], "lo": [2, "f4", [1]]})),
                               "HeaderInvalid", "a v1.0 header may only name the six v1 kinds (R19)"),
    }
    out.update(_v2_attacks())
    return out


def _v2_base() -> bytes:
    from edge_sdk import codecs
    from edge_sdk.payload import Q8Param, SampleGroup, encode_payload_v2

    x = np.array([[-1.0, 0.0, -2.5], [0.0, -0.5, -3.0], [-4.0, -1.0, 0.0], [0.0, -3.5, -1.5]], np.float32)
    p = codecs.affine_params_for(x, "affine_sample")
    lo = Q8Param.fit(p["lo"], "down")
    codes, _ = codecs.quantize(x, "affine_sample", 2, {"lo": lo.values(), "hi": p["hi"]})
    g = SampleGroup("s", "affine_sample", 2, data=codes, params={"lo": lo, "hi": p["hi"]}, labels=np.array([1, 0, 2, 1]),
                    param_encodings={"hi": "c4"})
    recipe = {"version": 1, "optimizer": "adam", "lr": 0.003, "schedule": "cosine", "steps": 300, "batch_size": 128}
    return encode_payload_v2([g], 3, task_digest=hashlib.sha256(b"task").digest(), recipe=recipe, label_mode="counts")


def _v2_attacks() -> dict[str, tuple[bytes, str, str]]:
    """v2.0 attack files. Layout of the base: header = task digest (32), C-1 (2), label mode (1), group count
    (1), group (role, kind, bits, n, d, lo enc, hi enc = 7), recipe; data = codes (4 rows x 1 B), hi (c4: 4 B),
    lo (q8: 8 + 4 B), class counts (3 x 3 bits: 2 B)."""
    from edge_sdk.payload.format_v2 import varint

    b = _v2_base()
    hlen = int.from_bytes(b[12:16], "little")
    pre, hb, data = b[:16], b[16:16 + hlen], b[16 + hlen:-32]
    g0 = 36

    def h(new: bytes) -> bytes:
        return _assemble(pre, new, data)

    def d(at: int, value: bytes) -> bytes:
        x = bytearray(data)
        x[at:at + len(value)] = value
        return _assemble(pre, hb, bytes(x))

    lo_at, counts_at = 4 + 4, 4 + 4 + 12
    return {
        "v2_header_trailing_byte.epl": (h(hb + b"\0"), "HeaderInvalid", "the v2 header must be consumed exactly (R19)"),
        "v2_varint_not_minimal.epl": (h(hb[:g0 + 3] + bytes([0x84, 0x00]) + hb[g0 + 4:]), "HeaderInvalid",
                                      "varints must be minimal: one byte form per content (R19)"),
        "v2_varint_11_bytes.epl": (h(hb[:g0 + 3] + b"\xff" * 11 + hb[g0 + 4:]), "HeaderInvalid",
                                   "a varint is read for at most 10 bytes (R19)"),
        "v2_n_2pow40.epl": (h(hb[:g0 + 3] + varint(1 << 40) + hb[g0 + 4:]), "LimitExceeded",
                            "n checked against MAX_N as it is parsed, before anything is allocated (R06)"),
        "v2_unknown_kind_code.epl": (h(hb[:g0 + 1] + b"\x63" + hb[g0 + 2:]), "HeaderInvalid",
                                     "unknown enum codes rejected (R19)"),
        "v2_unknown_param_encoding.epl": (h(hb[:g0 + 5] + b"\x09" + hb[g0 + 6:]), "HeaderInvalid",
                                          "unknown parameter encodings rejected (R19)"),
        "v2_unknown_flag.epl": (_assemble(pre[:10] + b"\x0b\x00" + pre[12:], hb, data), "HeaderInvalid",
                                "flag bits other than 0, 1 and 2 rejected (R19)"),
        "v2_smoothing_flag_without_recipe.epl": (_assemble(pre[:10] + b"\x04\x00" + pre[12:], hb, data),
                                                 "HeaderInvalid", "flag bit 2 (label smoothing) needs bit 1 (R19)"),
        "v2_smoothing_flag_missing_value.epl": (_assemble(pre[:10] + b"\x06\x00" + pre[12:], hb, data),
                                                "HeaderInvalid", "flag bit 2 makes the recipe end with "
                                                "label_smoothing f4; a header without it is refused (R19)"),
        "v2_smoothing_zero.epl": (_assemble(pre[:10] + b"\x06\x00" + pre[12:], hb + np.array([0.0], "<f4").tobytes(),
                                            data), "HeaderInvalid",
                                  "flag bit 2 with label_smoothing 0 is not the one encoding of that recipe (R19)"),
        "v2_smoothing_one.epl": (_assemble(pre[:10] + b"\x06\x00" + pre[12:], hb + np.array([1.0], "<f4").tobytes(),
                                           data), "HeaderInvalid",
                                 "label_smoothing must be in (0, 1) (RECIPE_BOUNDS, R19)"),
        "v2_header_len_2pow17.epl": (pre[:12] + (1 << 17).to_bytes(4, "little"), "HeaderTooLarge",
                                     "v2 header length capped at HEADER_MAX_BYTES_V2 before reading (R04)"),
        "v2_counts_sum_wrong.epl": (d(counts_at, bytes([data[counts_at] ^ 0x01])), "InvalidValue",
                                    "class counts must sum to N (R20)"),
        "v2_counts_padding.epl": (d(counts_at + 1, bytes([data[counts_at + 1] | 0x80])), "InvalidValue",
                                  "padding bits of the count stream must be zero (R11)"),
        "v2_q8_nan_base.epl": (d(lo_at, np.array([np.nan], "<f4").tobytes()), "InvalidValue",
                               "q8 base and step must be finite, step >= 0 (R21)"),
        "v2_c4_inf.epl": (d(4, np.array([np.inf], "<f4").tobytes()), "InvalidValue",
                          "a c4 constant must be finite (R21)"),
        "v2_lo_above_hi.epl": (d(lo_at, np.array([5.0, 0.0], "<f4").tobytes()), "InvalidValue",
                               "affine lo <= hi (R18)"),
        "v2_recipe_negative_lr.epl": (h(hb[:-20] + np.array([-0.003], "<f4").tobytes() + hb[-16:]), "HeaderInvalid",
                                      "recipe values range-checked (R24)"),
        "v2_digest_changed.epl": (b[:-1] + bytes([b[-1] ^ 1]), "DigestMismatch",
                                  "the unsigned v2 trailer is the content SHA-256, verified on open (R22)"),
        "v2_truncated.epl": (b[:-5], "Truncated", "exact file size (R08)"),
    }


def regenerate() -> None:  # pragma: no cover - run by hand
    DIR.mkdir(parents=True, exist_ok=True)
    manifest = {}
    for name, (data, err, why) in _attacks().items():
        (DIR / name).write_bytes(data)
        manifest[name] = {"error": err, "mitigation": why}
    (DIR / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__" and "--regenerate" in sys.argv:
    regenerate()

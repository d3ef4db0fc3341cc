"""Mutation fuzzing of the payload reader: every mutated input must either decode completely or raise a
PayloadError — never another exception, never a huge allocation.

Each test runs this file as a subprocess under ``resource.setrlimit(RLIMIT_AS)`` (address space capped
at the baseline after imports + 768 MiB), so an allocation driven by a lying header fails loudly as a
MemoryError. Deterministic seeds. Mutations: truncation at many offsets, random bit flips (with and without
a recomputed digest, so the parser behind the digest is exercised too), prefix rewrites (version, flags,
header length), and semantic header rewrites (lengths, offsets, counts, shapes, kinds, huge n*d) with the
header length and digest fixed up.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edge_sdk.schema import cap_address_space

HERE = Path(__file__).resolve()
RLIMIT_EXTRA = 768 << 20


def _run(mode: str, cases: int, seed: int) -> dict:
    r = subprocess.run([sys.executable, str(HERE), mode, str(cases), str(seed)], capture_output=True, text=True,
                       timeout=240)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("mode, cases, seed", [("raw", 2600, 1), ("header", 2600, 2), ("v2", 2600, 3)])
def test_mutation_fuzz_only_payload_errors(mode, cases, seed):
    res = _run(mode, cases, seed)
    assert res["cases"] == cases
    assert res["bad"] == [], res["bad"][:5]
    assert res["rlimit_set"]
    assert sum(res["errors"].values()) + res["ok"] == cases
    # the mutations reach deep into the parser, not just the digest check
    assert len(res["errors"]) >= {"raw": 5, "header": 6, "v2": 6}[mode], res["errors"]


# ------------------------------------------------------------------------------------- the fuzzer
def _bases():
    import numpy as np

    from edge_sdk import codecs
    from edge_sdk.payload import SampleGroup, encode_payload, generate_keypair

    rng = np.random.default_rng(0)
    x = rng.normal(size=(9, 13)).astype(np.float32)
    c1, p1 = codecs.quantize(x, "symmetric_per_sample", 3)
    c2, p2 = codecs.quantize(x[:4], "codebook", 2, {"levels": np.linspace(-1, 1, 4).astype(np.float16)})
    c3, p3 = codecs.quantize(x[:3], "uniform_clip", 5, {"alpha": np.ones(13, np.float32)})
    groups = [
        SampleGroup("a", "symmetric_per_sample", 3, data=c1, params=p1, labels=rng.integers(0, 300, 9),
                    extra={"w": np.arange(9, dtype=np.int16), "m": np.ones((2, 3), np.float64)}, meta={"k": [1, 2]}),
        SampleGroup("b", "codebook", 2, data=c2, params={"levels": p2["levels"].astype(np.float16)},
                    labels=rng.integers(0, 300, 4)),
        SampleGroup("z", "none", 0, n=5, d=13),
        SampleGroup("u", "uniform_clip", 5, data=c3, params=p3, labels=rng.integers(0, 300, 3)),
        SampleGroup("r", "float16", 16, data=x[:2], labels=rng.integers(0, 300, 2)),
        SampleGroup("soft", "float32", 32, data=rng.random((18, 300)).astype(np.float32)[:, :300],
                    role="soft_labels"),
    ]
    priv, _ = generate_keypair()
    task = {"kind": "beam", "model": {"kind": "mlp", "hidden": [64]}}
    small = [SampleGroup("q", "codebook", 1, data=(x[:3] > 0).astype(np.uint8),
                         params={"levels": np.array([-1, 1], np.float32)}, labels=np.array([0, 1, 1]))]
    return [
        encode_payload(groups, 300, task, {"seed": 1}, {"sha256": "ab" * 32, "size": 10}),
        encode_payload(groups, 300, task, {"seed": 1}, None, signing_key=priv),
        encode_payload(small, 2),
    ]


def _bases_v2():
    import hashlib

    import numpy as np

    from edge_sdk import codecs
    from edge_sdk.payload import Q8Param, SampleGroup, encode_payload_v2, generate_keypair

    rng = np.random.default_rng(1)
    x = rng.normal(size=(9, 13)).astype(np.float32)
    pa = codecs.affine_params_for(x, "affine_sample")
    lo = Q8Param.fit(pa["lo"], "down")
    c1, _ = codecs.quantize(x, "affine_sample", 3, {"lo": lo.values(), "hi": pa["hi"]})
    c2, p2 = codecs.quantize(x[:4], "affine_feature", 5)
    c3, p3 = codecs.quantize(x[:3], "uniform_clip", 2, {"alpha": np.ones(13, np.float32)})
    groups = [
        SampleGroup("a", "affine_sample", 3, data=c1, params={"lo": lo, "hi": pa["hi"]}, labels=rng.integers(0, 300, 9)),
        SampleGroup("b", "affine_feature", 5, data=c2, params=p2, labels=rng.integers(0, 300, 4)),
        SampleGroup("z", "none", 0, n=5, d=13),
        SampleGroup("u", "uniform_clip", 2, data=c3, params=p3, labels=rng.integers(0, 300, 3)),
    ]
    recipe = {"version": 1, "optimizer": "adam", "lr": 0.003, "schedule": "step", "steps": 5000, "batch_size": 256,
              "decay_every": 100, "gamma": 0.5}
    digest = hashlib.sha256(b"t").digest()
    priv, _ = generate_keypair()
    return [encode_payload_v2(groups, 300, task_digest=digest, recipe=recipe, label_mode="counts"),
            encode_payload_v2(groups, 300, label_mode="packed"),
            encode_payload_v2(groups, 300, task_digest=digest, recipe=recipe, signing_key=priv)]


def _mut_v2(rng, base: bytes) -> bytes:
    """Byte flips / truncation / prefix rewrites; for unsigned files behind a recomputed digest too."""
    import hashlib

    signed = base[10] & 1
    body = bytearray(base[:-72] if signed else base[:-32])
    op = rng.integers(0, 4)
    if op == 0:
        return bytes(base[: rng.integers(0, len(base))])
    if op == 1:
        b = bytearray(base)
        for _ in range(rng.integers(1, 6)):
            b[int(rng.integers(0, len(b)))] ^= 1 << int(rng.integers(0, 8))
        return bytes(b)
    if op == 2:  # header/data flips behind the digest
        for _ in range(rng.integers(1, 4)):
            i = int(rng.integers(16, len(body)))
            body[i] = int(rng.integers(0, 256)) if rng.integers(0, 2) else body[i] ^ (1 << int(rng.integers(0, 8)))
    else:  # prefix fields
        f = rng.integers(0, 3)
        if f == 0:
            body[9] = int(rng.integers(0, 3))
        elif f == 1:
            body[10:12] = int(rng.integers(0, 8)).to_bytes(2, "little")
        else:
            body[12:16] = int(rng.integers(0, 1 << 17)).to_bytes(4, "little")
    return bytes(body) + (hashlib.sha256(bytes(body)).digest() if not signed else bytes(base[-72:]))


def _fix(body: bytes, signed_tail: bytes = b"") -> bytes:
    import hashlib

    return body + hashlib.sha256(body).digest() + signed_tail


def _split(b: bytes):
    hlen = int.from_bytes(b[12:16], "little")
    signed = b[10] & 1
    tail = 32 + (96 if signed else 0)
    return bytearray(b[:16]), b[16:16 + hlen], b[16 + hlen:len(b) - tail], (b[-96:] if signed else b"")


def _rebuild(pre: bytearray, hb: bytes, data: bytes, sig: bytes) -> bytes:
    pre = bytearray(pre)
    pre[12:16] = len(hb).to_bytes(4, "little")
    return _fix(bytes(pre) + hb + data, sig)


def _mut_raw(rng, base: bytes) -> bytes:
    op = rng.integers(0, 6)
    b = bytearray(base)
    if op == 0:  # truncate
        return bytes(b[: rng.integers(0, len(b))])
    if op == 1:  # bit flips, digest not fixed
        for _ in range(rng.integers(1, 9)):
            i = int(rng.integers(0, len(b)))
            b[i] ^= 1 << int(rng.integers(0, 8))
        return bytes(b)
    if op in (2, 3):  # bit flips behind a recomputed digest (header or data)
        pre, hb, data, sig = _split(base)
        body = bytearray(bytes(pre) + hb + data)
        lo = 16 if op == 2 else 16 + len(hb)
        if lo >= len(body):
            lo = 16
        for _ in range(rng.integers(1, 5)):
            i = int(rng.integers(lo, len(body)))
            body[i] ^= 1 << int(rng.integers(0, 8))
        return _fix(bytes(body), sig)
    if op == 4:  # prefix fields
        pre, hb, data, sig = _split(base)
        f = rng.integers(0, 4)
        if f == 0:
            pre[8], pre[9] = int(rng.integers(0, 256)), int(rng.integers(0, 256))
        elif f == 1:
            pre[10:12] = int(rng.integers(0, 65536)).to_bytes(2, "little")
        else:
            pre[12:16] = int(rng.integers(0, 1 << 32)).to_bytes(4, "little")
        return _fix(bytes(pre) + hb + data, sig)
    # op 5: append/insert/delete bytes
    i = int(rng.integers(0, len(b)))
    k = int(rng.integers(1, 64))
    if rng.integers(0, 2):
        return bytes(b[:i] + rng.integers(0, 256, k, dtype="u1").tobytes() + b[i:])
    return bytes(b[:i] + b[i + k:])


_HUGE = [0, 1, -1, 2, 7, 8, 255, 256, 1 << 24, (1 << 24) + 1, 1 << 31, 1 << 32, 1 << 40, 1 << 63, 1 << 70]


def _paths(obj, prefix=()):
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, prefix + (i,))
    return out


def _mut_header(rng, base: bytes) -> bytes:
    pre, hb, data, sig = _split(base)
    h = json.loads(hb)
    for _ in range(int(rng.integers(1, 4))):
        paths = [p for p in _paths(h) if p]
        path = paths[int(rng.integers(0, len(paths)))]
        parent = h
        for k in path[:-1]:
            parent = parent[k]
        key = path[-1]
        op = rng.integers(0, 7)
        old = parent[key]
        if op == 0 or isinstance(old, int) and not isinstance(old, bool) and op < 4:
            new = _HUGE[int(rng.integers(0, len(_HUGE)))]
            if isinstance(old, int) and rng.integers(0, 2):
                new = old + int(rng.integers(-3, 4))
        elif op == 1:
            new = [None, True, "x", 1.5, [], {}, [1, "f4", [3]], "symmetric_per_sample", "soft_labels", "f8"][
                int(rng.integers(0, 10))]
        elif op == 2 and isinstance(old, list) and old:
            new = old[:-1] if rng.integers(0, 2) else old + [old[-1]]
        elif op == 3 and isinstance(parent, dict):
            del parent[key]
            continue
        elif op == 4 and isinstance(parent, list) and len(parent) > 1:
            j = int(rng.integers(0, len(parent)))
            parent[key], parent[j] = parent[j], parent[key]
            continue
        elif op == 5 and isinstance(parent, dict):
            parent[str(rng.choice(["x", "zz", "r", "e", "m", "q"]))] = old
            continue
        else:
            new = copy_any(old)
        parent[key] = new
    hb2 = json.dumps(h, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    if rng.integers(0, 4) == 0:  # also lie about lengths in the data area
        data = data[: max(0, len(data) - int(rng.integers(0, 9)))] + b"\0" * int(rng.integers(0, 9))
    return _rebuild(pre, hb2, data, sig)


def copy_any(v):
    return json.loads(json.dumps(v))


def fuzz(mode: str, cases: int, seed: int) -> dict:
    import numpy as np

    from edge_sdk.payload import PayloadError, read_payload

    bases = _bases_v2() if mode == "v2" else _bases()
    limited = cap_address_space(RLIMIT_EXTRA)
    rng = np.random.default_rng(seed)
    errors: dict[str, int] = {}
    ok = 0
    bad = []
    for i in range(cases):
        base = bases[i % len(bases)]
        data = {"raw": _mut_raw, "header": _mut_header, "v2": _mut_v2}[mode](rng, base)
        try:
            with read_payload(data) as p:
                p.decode_all()
            ok += 1
        except PayloadError as exc:
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
        except BaseException as exc:  # noqa: BLE001 - anything else is a finding
            bad.append({"case": i, "error": f"{type(exc).__name__}: {str(exc)[:200]}", "hex": data[:600].hex()})
    return {"mode": mode, "cases": cases, "ok": ok, "errors": errors, "bad": bad, "rlimit_set": limited}


if __name__ == "__main__":
    print(json.dumps(fuzz(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))

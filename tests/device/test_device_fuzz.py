"""Mutation fuzzing beyond the payload parser: the device trainer fed payloads whose header fields were mutated
but still verify (unsigned, digest fixed), graphs whose self-description was mutated (the payload names the new
graph), and mutated checkpoints on resume. Every outcome must be success or a typed one-line EdgeSdkError:
never another exception, a hang, or an unbounded allocation.

Each mode runs this file as a subprocess under ``RLIMIT_AS`` = address space after start-up + 1 GiB, with a
timeout. Deterministic seeds. The default run takes well under a minute; ``-m slow`` runs ten times as many.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import traceback
from pathlib import Path

import pytest

from edge_sdk.schema import cap_address_space

HERE = Path(__file__).resolve()
RLIMIT_EXTRA = 1 << 30
TIMEOUT = 300


def _run(mode: str, cases: int, seed: int) -> dict:
    r = subprocess.run([sys.executable, str(HERE), mode, str(cases), str(seed)], capture_output=True, text=True,
                       timeout=TIMEOUT, cwd=HERE.parent)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def _check(res: dict, cases: int, min_kinds: int) -> None:
    assert res["rlimit_set"]
    assert res["cases"] == cases and sum(res["errors"].values()) + res["ok"] == cases
    assert res["bad"] == [], res["bad"][:3]
    assert len(res["errors"]) >= min_kinds, res["errors"]  # the mutations reach several checks
    assert res["ok"] >= 1, res  # and the unmutated controls (every 50th case) still train


@pytest.mark.parametrize("mode, cases, kinds", [("task", 120, 2), ("checkpoint", 300, 1), ("graph", 60, 1)])
def test_device_fuzz(mode, cases, kinds):
    if mode == "graph":
        pytest.importorskip("onnx")
    _check(_run(mode, cases, 11), cases, kinds)


@pytest.mark.slow
@pytest.mark.parametrize("mode, cases, kinds", [("task", 1500, 3), ("checkpoint", 3000, 1), ("graph", 600, 1)])
def test_device_fuzz_long(mode, cases, kinds):
    if mode == "graph":
        pytest.importorskip("onnx")
    _check(_run(mode, cases, 12), cases, kinds)


# ------------------------------------------------------------------------------------------ the fuzzer
_VALUES = [None, True, False, 0, 1, -1, 2, 3, 7, 64, 255, 1 << 20, 1 << 31, 1 << 63, 10**30, -(10**30), 0.0, 0.5,
           -0.5, 1e-300, 1e300, 1.5, "", "x", "32", "1/4", "adam", "cosine", "mlp", [], [1], [60000, 60000], ["a"],
           {}, {"a": 1}, [[[[1]]]]]


def _paths(obj, prefix=()):
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, prefix + (i,))
    return out


def mutate_json(rng, obj, times: int):
    """``obj`` (a deep copy) with ``times`` random edits: replace a value (pool above, or a nearby number),
    delete a key, add an unknown key, drop/duplicate a list entry."""
    obj = copy.deepcopy(obj)
    for _ in range(times):
        paths = [p for p in _paths(obj) if p]
        if not paths:
            break
        path = paths[int(rng.integers(0, len(paths)))]
        parent = obj
        for k in path[:-1]:
            parent = parent[k]
        key = path[-1]
        op = int(rng.integers(0, 6))
        old = parent[key]
        if op == 0 and isinstance(parent, dict):
            del parent[key]
        elif op == 1 and isinstance(parent, dict):
            parent["zz_" + str(int(rng.integers(0, 9)))] = old
        elif op == 2 and isinstance(old, list) and old:
            parent[key] = old[:-1] if rng.integers(0, 2) else old + [old[-1]]
        elif op == 3 and isinstance(old, (int, float)) and not isinstance(old, bool):
            parent[key] = type(old)(old * float(rng.choice([-1, 0, 2, 1000, 1e-6])))
        else:
            parent[key] = copy.deepcopy(_VALUES[int(rng.integers(0, len(_VALUES)))])
    return obj


def _one_line(exc: BaseException) -> bool:
    return "\n" not in str(exc)


def fuzz(mode: str, cases: int, seed: int) -> dict:
    import hashlib
    import shutil
    import tempfile

    import numpy as np
    from inputs import ADAM, SOFT, graph_with_meta, with_graph, with_header

    from edge_sdk.device.checkpoint import CHECKPOINT_NAME
    from edge_sdk.device.evaluate import evaluate_beam
    from edge_sdk.device.trainer import Trainer
    from edge_sdk.errors import EdgeSdkError

    tmp = Path(tempfile.mkdtemp(prefix="edge-fuzz-"))
    rng = np.random.default_rng(seed)
    bundles = [(ADAM, (ADAM / "payload.bin").read_bytes(), (ADAM / "graph.onnx").read_bytes()),
               (SOFT, (SOFT / "payload.bin").read_bytes(), (SOFT / "graph.onnx").read_bytes())]
    good_ckpt = None
    if mode == "checkpoint":
        Trainer(ADAM / "payload.bin", ADAM / "graph.onnx", epochs=3).train(tmp / "base", stop_after_epochs=1)
        good_ckpt = (tmp / "base" / CHECKPOINT_NAME).read_bytes()
    # warm up (imports, first ORT session) before the address-space cap is measured
    Trainer(ADAM / "payload.bin", ADAM / "graph.onnx", epochs=1)
    limited = cap_address_space(RLIMIT_EXTRA)
    errors: dict[str, int] = {}
    ok = 0
    bad = []
    for i in range(cases):
        folder, payload, graph = bundles[i % len(bundles)]
        run = tmp / f"c{i}"
        run.mkdir()
        try:
            if i % 50 == 0:  # a control: unmutated inputs must train
                if mode == "checkpoint":
                    assert good_ckpt is not None
                    (run / CHECKPOINT_NAME).write_bytes(good_ckpt)
            elif mode == "task":
                part = ["t", "p", "t", "t"][i % 4]
                edits = int(rng.integers(1, 4))
                payload = with_header(payload, lambda h, part=part, edits=edits: h.update(
                    {part: mutate_json(rng, h[part], edits)}))
            elif mode == "graph":
                graph = graph_with_meta(graph, lambda m: mutate_json(rng, m, int(rng.integers(1, 3))))
                payload = with_graph(payload, graph)
            elif mode == "checkpoint":
                assert good_ckpt is not None
                b = bytearray(good_ckpt)
                op = int(rng.integers(0, 5))
                if op == 0:
                    b = b[: int(rng.integers(0, len(b)))]
                elif op == 1:  # bit flips anywhere
                    for _ in range(int(rng.integers(1, 6))):
                        j = int(rng.integers(0, len(b)))
                        b[j] ^= 1 << int(rng.integers(0, 8))
                elif op == 2:  # bit flips inside the JSON header
                    hlen = int.from_bytes(b[:8], "little")
                    for _ in range(int(rng.integers(1, 4))):
                        j = int(rng.integers(8, 8 + hlen))
                        b[j] ^= 1 << int(rng.integers(0, 7))
                elif op == 3:  # the 8-byte header length
                    b[:8] = int(rng.choice([0, 1, 7, len(b), 1 << 24, 1 << 40, 1 << 63])).to_bytes(8, "little")
                else:  # insert / delete bytes
                    j = int(rng.integers(0, len(b)))
                    b = b[:j] + bytes(int(rng.integers(1, 40))) + b[j:] if rng.integers(0, 2) else b[:j] + b[j + 9:]
                (run / CHECKPOINT_NAME).write_bytes(bytes(b))
            (run / "p.epl").write_bytes(payload)
            (run / "g.onnx").write_bytes(graph)
            tr = Trainer(run / "p.epl", run / "g.onnx", epochs=3 if mode == "checkpoint" else 1)
            st = tr.train(run, resume=mode == "checkpoint", stop_after_epochs=2 if mode == "checkpoint" else 1)
            model = tr.model_bytes(st.params)
            if tr.task.get("kind") == "beam":
                evaluate_beam(model, folder / "local.h5", tr.task)
            ok += 1
        except EdgeSdkError as exc:
            name = type(exc).__name__
            errors[name] = errors.get(name, 0) + 1
            if not _one_line(exc):
                bad.append({"case": i, "error": f"{name} message has several lines: {str(exc)[:300]}"})
        except BaseException as exc:  # noqa: BLE001 - anything else is a finding
            bad.append({"case": i, "error": f"{type(exc).__name__}: {str(exc)[:300]}",
                        "where": traceback.format_exc()[-1200:],
                        "payload_sha256": hashlib.sha256(payload).hexdigest()})
    shutil.rmtree(tmp, ignore_errors=True)  # every case's files (several MB per run) are done with
    return {"mode": mode, "cases": cases, "ok": ok, "errors": errors, "bad": bad, "rlimit_set": limited}


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))
    print(json.dumps(fuzz(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))

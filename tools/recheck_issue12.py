#!/usr/bin/env python3
"""Re-check every case class of issue 12's "Why" against a tree of edge-sdk: the checked-out package (default) or
any git revision (``--rev REV``: its sources are unpacked to a temporary directory and imported instead of the
installed package, with this checkout's virtual environment).

Each case is one ``edge-sdk`` command in a subprocess whose address space is capped (``--rlimit``, default
4 GiB), with a timeout. Outcomes:

* ``crash``  - a Python traceback, a signal, exit 130 ("Aborted."), a timeout or running out of the memory cap;
* ``accepted`` - exit 0 on an input that is wrong (the command read it as if it were fine);
* ``typed``  - a typed one-line ``error: <Class>: ...`` with the documented exit code (for the payload attack
  files: the class the spec names, else ``wrong-class``).

Classes (the issue's wording): ``payload`` - the attack files of tests/data/payload_attacks (``payload
verify``; the expected class from its manifest.json); ``task`` - task-spec fields of a payload that still
verifies unsigned; ``graph`` - graph metadata, model spec and graph file cases (``device train``);
``checkpoint`` - corrupted / crafted checkpoints (``device train --resume``; the tree's own checkpoint format:
``checkpoint.npz`` before issue 12, ``checkpoint.safetensors`` after); ``hdf5`` - zero rows, a gzip bomb,
links and storage out of the file (``data info``, ``device eval``, ``device train --eval``).

    .venv/bin/python tools/recheck_issue12.py --out runs/recheck-after.json
    .venv/bin/python tools/recheck_issue12.py --rev 865e134 --out runs/recheck-before.json
    .venv/bin/python tools/recheck_issue12.py --show runs/recheck-before.json runs/recheck-after.json

prints one table (cases per class and outcome, peak RSS) and writes every case's outcome as JSON.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"edge_sdk": "edge_sdk", "server": "edge_sdk/server", "device": "edge_sdk/device",
            "serve": "edge_sdk/serve", "fleet": "edge_sdk/fleet"}


# ----------------------------------------------------------------------------------------------- the tree
@dataclass
class Tree:
    """Where the CLI under test comes from: ``pkg`` is None for the installed package, else a directory that
    holds an ``edge_sdk`` package assembled from a revision; ``src`` is that revision's checkout."""

    src: Path
    pkg: Path | None
    label: str


def unpack_rev(rev: str, work: Path) -> Tree:
    src, pkg = work / "src", work / "pkg"
    src.mkdir()
    data = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        tf.extractall(src, filter="data")
    for name, dest in PACKAGES.items():  # the package-dir mapping of pyproject.toml
        if (src / name).is_dir():
            shutil.copytree(src / name, pkg / dest)
    sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", rev], capture_output=True, text=True,
                         check=True).stdout.strip()
    return Tree(src, pkg, f"rev {sha}")


BOOT = """
import resource, sys
lim = int(sys.argv[1]); pkg = sys.argv[2]
resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
if pkg:
    sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")]
    sys.path.insert(0, pkg)
from edge_sdk.cli.main import main
sys.exit(main(sys.argv[3:]))
"""


@dataclass
class Outcome:
    cls: str
    case: str
    outcome: str
    rc: int | None
    seconds: float
    peak_rss_mb: float
    message: str


def run_cli(tree: Tree, argv: list[str], rlimit: int, timeout: float, cwd: Path) -> tuple[int | None, str, float, float]:
    """(exit code, or None after a timeout; stderr; seconds; peak RSS of this child in MiB, from wait4)."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        p = subprocess.Popen([sys.executable, "-c", BOOT, str(rlimit), str(tree.pkg or ""), *argv], cwd=cwd,
                             stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, "EDGE_SDK_PROGRESS": "off"})
        timer = threading.Timer(timeout, p.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(p.pid, 0)
        finally:
            timed_out = not timer.is_alive()
            timer.cancel()
        p.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        text = err.read().decode(errors="replace")
    rc = None if timed_out else p.returncode
    return rc, text, time.perf_counter() - t0, usage.ru_maxrss / 1024.0


def classify(rc: int | None, err: str, expected: str | None = None) -> str:
    if rc is None:
        return "crash"
    if "Traceback" in err or rc < 0 or rc == 130 or "MemoryError" in err or rc not in (0, 1, 2, 3, 4, 5):
        return "crash"
    if rc == 0:
        return "accepted"
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    m = re.match(r"error: (\w+):", lines[-1]) if lines else None
    if len(lines) > 2 or not (m or lines[-1].startswith(("Error:", "Usage:"))):
        return "crash"  # several lines of output that are not a typed error
    if expected is not None and (m is None or m.group(1) != expected):
        return "wrong-class"
    return "typed"


# ------------------------------------------------------------------------------------------- payload edits
def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def with_header(payload: bytes, fn: Callable[[dict[str, Any]], Any]) -> bytes:
    """The unsigned v1 payload with its header rewritten by ``fn``; header length and digest fixed, so it
    verifies."""
    assert payload[10] & 1 == 0, "unsigned payloads only"
    hlen = int.from_bytes(payload[12:16], "little")
    h = copy.deepcopy(json.loads(payload[16:16 + hlen]))
    fn(h)
    hb = canonical_json(h)
    pre = bytearray(payload[:16])
    pre[12:16] = len(hb).to_bytes(4, "little")
    body = bytes(pre) + hb + payload[16 + hlen:-32]
    return body + hashlib.sha256(body).digest()


def graph_with_meta(graph: bytes, fn: Callable[[Any], Any] | None, raw: str | None = None) -> bytes:
    import onnx

    m = onnx.load_from_string(graph)
    for prop in m.metadata_props:
        if prop.key == "edge_sdk.train_graph":
            prop.value = raw if raw is not None else json.dumps(fn(json.loads(prop.value)))  # type: ignore[misc]
    return m.SerializeToString()


def with_graph(payload: bytes, graph: bytes) -> bytes:
    return with_header(payload, lambda h: h.update(o=[hashlib.sha256(graph).hexdigest(), len(graph)]))


TASK_CASES: dict[str, Callable[[dict[str, Any]], Any]] = {
    "train.batch_size str": lambda t: t["train"].update(batch_size="32"),
    "train.batch_size bool": lambda t: t["train"].update(batch_size=True),
    "train.epochs 1e9": lambda t: t["train"].update(epochs=10**9),
    "train.lr -1": lambda t: t["train"].update(lr=-1),
    "train.lr list": lambda t: t["train"].update(lr=[1]),
    "train.schedule int": lambda t: t["train"].update(schedule=3),
    "train.momentum 1.5": lambda t: t["train"].update(momentum=1.5),
    "train unknown key": lambda t: t["train"].update(surprise=1),
    "train list": lambda t: t.update(train=[1, 2]),
    "beam.scale_db str": lambda t: t["beam"].update(scale_db="loud"),
    "beam.n_tx str": lambda t: t["beam"].update(n_tx="32"),
    "beam.setb_indices mixed": lambda t: t["beam"].update(setb_indices=[1, "a"]),
    "beam.history 1e9": lambda t: t["beam"].update(history=10**9),
    "beam list": lambda t: t.update(beam=[]),
    "kind unknown": lambda t: t.update(kind="telepathy"),
    "kind int": lambda t: t.update(kind=7),
    "task unknown key": lambda t: t.update(extra_key=1),
    "model.hidden str item": lambda t: t["model"].update(hidden=[32, "64"]),
    "model.hidden int": lambda t: t["model"].update(hidden=32),
    "model.num_classes float": lambda t: t["model"].update(num_classes=2.5),
    "model.hidden 2^20": lambda t: t["model"].update(hidden=[1 << 20]),
    "model.hidden 65 layers": lambda t: t["model"].update(hidden=[8] * 65),
    "model list": lambda t: t.update(model=[]),
}

GRAPH_META_CASES: dict[str, tuple[Callable[[Any], Any] | None, str | None]] = {
    "meta is a list": (lambda m: [m], None),
    "meta lacks groups": (lambda m: {k: v for k, v in m.items() if k != "groups"}, None),
    "meta hidden 60000x60000": (lambda m: {**m, "model": {**m["model"], "hidden": [60000, 60000]}}, None),
    "meta model str": (lambda m: {**m, "model": "mlp"}, None),
    # the fixture graph is a version-2 (epoch) graph since issue 15: an unsupported version, and the other variant
    "meta version 3": (lambda m: {**m, "version": 3}, None),
    "meta version 1 on an epoch graph": (lambda m: {**m, "version": 1 if m.get("version") == 2 else 2}, None),
    "meta version bool": (lambda m: {**m, "version": True}, None),
    "meta optimizer lbfgs": (lambda m: {**m, "optimizer": "lbfgs"}, None),
    "meta group bits 40": (lambda m: {**m, "groups": [{**m["groups"][0], "bits": 40}, *m["groups"][1:]]}, None),
    "meta one group dropped": (lambda m: {**m, "groups": m["groups"][:1]}, None),
    "meta inputs reversed": (lambda m: {**m, "inputs": m["inputs"][::-1]}, None),
    "meta extra key": (lambda m: {**m, "extra": 5}, None),
    "meta not JSON": (None, "{not json"),
    "meta 100k brackets": (None, "[" * 100000),
    "meta missing": (None, ""),
}


# ------------------------------------------------------------------------------------------ checkpoints
def _zip_bomb(path: Path, first: str, meta: bytes | None, nbytes: int = 2 << 30) -> None:
    """An npz whose first member is ``nbytes`` of float32 zeros (deflate: ~2 MB on disk)."""
    n = nbytes // 4
    header = {"descr": "<f4", "fortran_order": False, "shape": (n,)}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open(f"{first}.npy", "w", force_zip64=True) as f:
            buf = io.BytesIO()
            np.lib.format.write_array_header_1_0(buf, header)
            f.write(buf.getvalue())
            block = bytes(1 << 24)
            for _ in range(nbytes // len(block)):
                f.write(block)
        if meta is not None:
            buf = io.BytesIO()
            np.save(buf, np.frombuffer(meta, np.uint8))
            z.writestr("__meta__.npy", buf.getvalue())


class Checkpoints:
    """Read and re-write the tree's checkpoint format (npz before issue 12, safetensors with a digest after)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.raw = path.read_bytes()
        self.npz = path.suffix == ".npz"
        if self.npz:
            with np.load(io.BytesIO(self.raw), allow_pickle=False) as z:
                self.arrays = {k: z[k] for k in z.files if k != "__meta__"}
                self.meta = json.loads(bytes(z["__meta__"]).decode())
        else:
            from safetensors.numpy import load

            self.arrays = load(self.raw)
            hlen = int.from_bytes(self.raw[:8], "little")
            self.meta = json.loads(json.loads(self.raw[8:8 + hlen])["__metadata__"]["meta"])

    def encode(self, arrays: dict[str, np.ndarray] | None = None, meta: Any = None, *, raw_meta: bytes | None = None,
               plain: bool = False) -> bytes:
        arrays = self.arrays if arrays is None else arrays
        meta = self.meta if meta is None else meta
        if self.npz:
            buf = io.BytesIO()
            m = raw_meta if raw_meta is not None else json.dumps(meta).encode()
            np.savez(buf, **arrays, __meta__=np.frombuffer(m, np.uint8))  # type: ignore[arg-type]
            return buf.getvalue()
        from safetensors.numpy import save

        if plain or raw_meta is not None:  # a plain safetensors file (no edge-sdk digest)
            return save(arrays, {"format": (raw_meta or b"").decode()} if raw_meta is not None else None)
        from edge_sdk.device.checkpoint import encode_checkpoint

        return encode_checkpoint(meta, arrays)  # a valid digest: only the checks behind it can object


def checkpoint_cases(ck: Checkpoints, tmp: Path) -> dict[str, bytes]:
    a = ck.arrays
    p2 = next(k for k, v in a.items() if k.startswith("p:") and v.ndim == 2)
    p1 = next(k for k, v in a.items() if k.startswith("p:") and v.ndim == 1)
    s_last = sorted(k for k in a if k.startswith("s:"))[-1]
    raw = ck.raw
    flip_data, flip_head = bytearray(raw), bytearray(raw)
    flip_data[len(raw) // 2] ^= 0x10
    flip_head[20] ^= 0x10
    bomb = tmp / "bomb.npz"
    _zip_bomb(bomb, p2, json.dumps(ck.meta).encode())
    return {
        "0 bytes": b"",
        "4 bytes": raw[:4],
        "truncated": raw[: len(raw) // 2],
        "bit flip (data)": bytes(flip_data),
        "bit flip (header)": bytes(flip_head),
        "trailing bytes": raw + b"\0" * 8,
        "huge header length": (1 << 62).to_bytes(8, "little") + raw[8:],
        "zip bomb (2 MB -> 2 GiB)": bomb.read_bytes(),
        "text": b"hello, I am a checkpoint" * 10,
        "wrong shape": ck.encode({**a, p2: np.zeros((a[p2].shape[0] + 1, *a[p2].shape[1:]), np.float32)}),
        "wrong dtype": ck.encode({**a, p1: a[p1].astype(np.float64)}, plain=True),
        "extra tensor": ck.encode({**a, "p:evil": np.zeros(1, np.float32)}),
        "missing tensor": ck.encode({k: v for k, v in a.items() if k != s_last}),
        "NaN values": ck.encode({**a, p1: np.full_like(a[p1], np.nan)}),
        "format version 2": ck.encode(meta={**ck.meta, "version": 2}) if ck.npz
        else raw.replace(b'"version":"1"', b'"version":"2"', 1),
        "foreign metadata": ck.encode(raw_meta=b"pickle-please"),
        "meta epoch str": ck.encode(meta={**ck.meta, "epoch": "1"}),
        "meta epoch 1e6": ck.encode(meta={**ck.meta, "epoch": 10**6}),
        "meta history bad": ck.encode(meta={**ck.meta, "history": [{"epoch": 1}]}),
        "meta is a list": ck.encode(meta=[ck.meta]),
        "other payload": ck.encode(meta={**ck.meta, "payload_sha256": "0" * 64}),
        "other config": ck.encode(meta={**ck.meta, "config": {**ck.meta["config"], "lr": 1.0}}),
    }


# ------------------------------------------------------------------------------------------------- HDF5
def hdf5_cases(local: Path, tmp: Path) -> dict[str, Path]:
    import h5py

    out: dict[str, Path] = {}

    def copy(name: str) -> Path:
        q = tmp / f"{name}.h5"
        shutil.copyfile(local, q)
        out[name] = q
        return q

    def declare(h: Any, n: int) -> None:
        for k in list(h):
            h[k][:] = 0
            h[k].resize(n, axis=0)
        h.attrs["n_done"] = n
        h.attrs["n_target"] = n

    with h5py.File(copy("zero rows"), "r+") as h:
        declare(h, 0)
    rows = 3_200_000  # 1.7 GB declared, written as gzip'd zeros: a ~2 MB file
    with h5py.File(copy("gzip bomb"), "r+") as h:
        declare(h, rows)
        for k in list(h):
            ds = h[k]
            block = np.zeros(((ds.chunks or (4096,))[0] * 16,) + ds.shape[1:], ds.dtype)
            for s in range(0, rows, len(block)):
                ds[s:min(rows, s + len(block))] = block[: min(rows, s + len(block)) - s]
    other = tmp / "other.h5"
    shutil.copyfile(local, other)
    with h5py.File(copy("external link"), "r+") as h:
        del h["d2d"]
        h["d2d"] = h5py.ExternalLink(other.name, "/d2d")
    with h5py.File(copy("virtual dataset over another file"), "r+") as h:
        arr = h["d2d"][()]
        del h["d2d"]
        layout = h5py.VirtualLayout(shape=arr.shape, dtype=arr.dtype)
        layout[:] = h5py.VirtualSource(str(other), "d2d", shape=arr.shape)
        h.create_virtual_dataset("d2d", layout)
    with h5py.File(copy("external raw storage"), "r+") as h:
        arr = h["d2d"][()]
        del h["d2d"]
        raw = tmp / "d2d.raw"
        raw.write_bytes(arr.astype("<f4").tobytes())
        h.create_dataset("d2d", shape=arr.shape, dtype="<f4", external=[(str(raw), 0, arr.nbytes)])
    # flipped metadata bytes that make libhdf5 itself segfault (found by tests/core/test_beam_h5_fuzz.py, kept)
    crash = Path(__file__).resolve().parents[1] / "tests" / "data" / "h5_libhdf5_crash.h5"
    out["libhdf5 crash (flipped metadata bytes)"] = tmp / "libhdf5-crash.h5"
    shutil.copyfile(crash, out["libhdf5 crash (flipped metadata bytes)"])
    return out


def payload_class(name: str) -> str:
    return "payload-v2" if name.startswith("v2_") else "payload"


# ---------------------------------------------------------------------------------------------- the run
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rev", default=None, help="git revision to test (default: the installed package)")
    ap.add_argument("--classes", default="payload,task,graph,checkpoint,hdf5")
    ap.add_argument("--rlimit", type=int, default=4096, help="address-space cap per case, MiB")
    ap.add_argument("--timeout", type=float, default=180.0, help="seconds per case")
    ap.add_argument("--out", type=Path, default=None, help="write the outcomes as JSON here")
    ap.add_argument("--show", type=Path, nargs="+", default=None, help="only print the tables of saved runs")
    args = ap.parse_args()
    if args.show:
        for f in args.show:
            d = json.loads(f.read_text())
            rs = [Outcome(**r) for r in d["results"]]
            for r in rs:
                r.cls = payload_class(r.case) if r.cls.startswith("payload") else r.cls
            print_table(Tree(ROOT, None, f"{d['tree']} ({f})"), rs)
        return 0
    classes = args.classes.split(",")
    rlimit = args.rlimit << 20
    work = Path(tempfile.mkdtemp(prefix="recheck12-"))
    try:
        tree = unpack_rev(args.rev, work) if args.rev else Tree(ROOT, None, "installed package")
        results = run_all(tree, classes, rlimit, args.timeout, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_table(tree, results)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"tree": tree.label, "rlimit_mib": args.rlimit,
                                        "results": [asdict(r) for r in results]}, indent=1) + "\n")
    return 0


def run_all(tree: Tree, classes: list[str], rlimit: int, timeout: float, work: Path) -> list[Outcome]:
    fx = tree.src / "tests" / "device" / "data" / "beam_adam"
    payload, graph, local = (fx / "payload.bin").read_bytes(), (fx / "graph.onnx").read_bytes(), fx / "local.h5"
    cases = work / "cases"
    cases.mkdir()
    results: list[Outcome] = []

    def run(cls: str, case: str, argv: list[str], expected: str | None = None) -> None:
        rc, err, secs, rss = run_cli(tree, argv, rlimit, timeout, cases)
        last = err.strip().splitlines()[-1][:240] if err.strip() else ""
        results.append(Outcome(cls, case, classify(rc, err, expected), rc, round(secs, 2), round(rss, 1), last))
        print(f"{cls:10s} {case:38s} {results[-1].outcome:11s} rc={rc} {last[:100]}", flush=True)

    def files(name: str, p: bytes, g: bytes = graph) -> tuple[str, str]:
        pp, gg = cases / f"{name}.epl", cases / f"{name}.onnx"
        pp.write_bytes(p)
        gg.write_bytes(g)
        return str(pp), str(gg)

    def train(name: str, p: bytes, g: bytes = graph, *extra: str) -> list[str]:
        pp, gg = files(name, p, g)
        return ["device", "train", "--payload", pp, "--graph", gg, "--epochs", "1", "--quiet",
                "--out", str(cases / f"out-{name}"), *extra]

    if "payload" in classes:
        attacks = ROOT / "tests" / "data" / "payload_attacks"
        manifest = json.loads((attacks / "manifest.json").read_text())
        for name in sorted(manifest):  # v2 files (issue 11's lean format) only mean something to a v2 reader
            run(payload_class(name), name, ["payload", "verify", str(attacks / name)], manifest[name]["error"])
    if "task" in classes:
        for i, (name, fn) in enumerate(TASK_CASES.items()):
            run("task", name, train(f"task{i}", with_header(payload, lambda h, fn=fn: fn(h["t"]))))
    if "graph" in classes:
        for i, (name, (fn, raw)) in enumerate(GRAPH_META_CASES.items()):
            g = graph_with_meta(graph, fn, raw)
            run("graph", name, train(f"graph{i}", with_graph(payload, g), g))
        big = with_header(payload, lambda h: h["t"]["model"].update(hidden=[60000, 60000]))
        run("graph", "task model hidden 60000x60000", train("gbig", big))
        g = graph_with_meta(graph, lambda m: {**m, "model": {**m["model"], "hidden": [60000, 60000]}})
        run("graph", "task+meta hidden 60000x60000", train("gbig2", with_graph(big, g), g))
        for name, g in {"graph 0 bytes": b"", "graph truncated": graph[: len(graph) // 2],
                        "graph random bytes": bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8)),
                        "graph + trailing bytes": graph + b"\0" * 64}.items():
            run("graph", name, train(name.replace(" ", "_"), with_graph(payload, g), g))
    if "checkpoint" in classes:
        base = cases / "ckpt-base"
        rc, err, *_ = run_cli(tree, train("ckpt", payload)[:-2] + ["--out", str(base)], rlimit, timeout, cases)
        if rc != 0:
            raise SystemExit(f"cannot train the checkpoint base run: {err[-2000:]}")
        ck_path = next(base.glob("checkpoint.*"))
        ck = Checkpoints(ck_path)
        pp, gg = files("ckpt", payload)
        for i, (name, data) in enumerate(checkpoint_cases(ck, cases).items()):
            out = cases / f"ck{i}"
            shutil.copytree(base, out)
            (out / ck_path.name).write_bytes(data)
            run("checkpoint", name, ["device", "train", "--payload", pp, "--graph", gg, "--epochs", "2", "--resume",
                                     "--quiet", "--out", str(out)])
            shutil.rmtree(out, ignore_errors=True)
    if "hdf5" in classes:
        pp, gg = files("h5", payload)
        model = cases / "h5model"
        rc, err, *_ = run_cli(tree, ["device", "train", "--payload", pp, "--graph", gg, "--epochs", "1", "--quiet",
                                     "--out", str(model)], rlimit, timeout, cases)
        if rc != 0:
            raise SystemExit(f"cannot train the model for evaluation: {err[-2000:]}")
        for name, q in hdf5_cases(local, cases).items():
            run("hdf5", f"data info: {name}", ["data", "info", str(q)])
            run("hdf5", f"device eval: {name}", ["device", "eval", "--model", str(model / "model.onnx"), "--data",
                                                 str(q), "--task-from", pp])
            run("hdf5", f"train --eval: {name}", ["device", "train", "--payload", pp, "--graph", gg, "--epochs", "1",
                                                  "--quiet", "--eval", str(q), "--out", str(cases / "h5o")])
            shutil.rmtree(cases / "h5o", ignore_errors=True)
    return results


def print_table(tree: Tree, results: list[Outcome]) -> None:
    kinds = ["crash", "accepted", "wrong-class", "typed"]
    print(f"\nissue 12 re-check on {tree.label}")
    print(f"{'class':12s} {'cases':>5s} " + " ".join(f"{k:>11s}" for k in kinds) + f" {'max RSS MiB':>12s}")
    for cls in dict.fromkeys(r.cls for r in results):
        rs = [r for r in results if r.cls == cls]
        print(f"{cls:12s} {len(rs):5d} " + " ".join(f"{sum(r.outcome == k for r in rs):11d}" for k in kinds)
              + f" {max(r.peak_rss_mb for r in rs):12.0f}")


if __name__ == "__main__":
    sys.exit(main())

"""Device training speed against the runtimes a user could pick instead, and against the machine's matmul limit.

    make bench-peers            # creates .venv-peers/<peer> (tools/peers/install_peers.sh), then runs this
    .venv/bin/python tools/bench_peers.py --out bench-results [--quick]

Peers (each in its own venv, driven by tools/peers/worker.py; what each runs: tools/peers/peer_<name>.py):
edge-sdk (its epoch graph on stock onnxruntime, through the device executor), edge-sdk with the format-v1 step
graph (before), eager torch, onnxruntime-training 1.19.2, LiteRT (hand-written backward), ExecuTorch training,
and "numpy matmul limit" (only the step's matmuls, numpy/BLAS).

Cases: MLP 8-128-128-32 (the beam model) and 64-256-256-32, batch 32/128/512, SGD with momentum and Adam, one
thread and all threads. Every peer starts from the same initial parameters (``edge_sdk.modelspec.init_params``)
and trains on the same rows in the same batch order: edge-sdk reads them bit-packed (4-bit codebook) and
dequantizes in its graph, the others get the dequantized float32 rows. Parity: the loss of each of the first
20 steps within 1e-4 of eager torch. Timing: per case, all peers are set up side by side, then R repetitions,
each one epoch (4096 samples) per peer in rotating order; per-step time = median over repetitions, spread =
(max - min) / median. Ratios are peer time / edge-sdk time (> 1: edge-sdk is faster). GFLOP/s = the step's
matmul FLOPs / step time; "% limit" = the same as a fraction of the numpy limit at the same shapes and threads.
Also: peak RSS of one training run per runtime (a fresh process each), and the installed size of each venv.
Prints the tables and writes ``<out>/peers.json``. Timings are only meaningful on a quiet machine: run it under
``/work/bin/cpujob -n 2`` (or nothing else running).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PEERS_DIR = Path(os.environ.get("PEERS_DIR", ROOT / ".venv-peers"))
WORKER = ROOT / "tools" / "peers" / "worker.py"
MODELS = {"beam": [8, 128, 128, 32], "wide": [64, 256, 256, 32]}
BATCHES = (32, 128, 512)
OPTIMIZERS = ("sgd", "adam")
N_ROWS = 4096
PARITY_STEPS = 20
PARITY_TOL = 1e-4
HP = {"sgd": {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.0},
      "adam": {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0}}


@dataclass(frozen=True)
class Peer:
    name: str
    module: str  # tools/peers/peer_<module>.py
    venv: str  # .venv-peers/<venv>
    build_venv: str | None = None  # where build() runs (default: venv)
    optimizers: tuple[str, ...] = OPTIMIZERS
    why_not: dict[str, str] = field(default_factory=dict)
    parity: bool = True

    def python(self, build: bool = False) -> Path:
        return PEERS_DIR / ((self.build_venv or self.venv) if build else self.venv) / "bin" / "python"


PEERS = (
    Peer("edge-sdk", "edge_sdk", "edge-sdk"),
    Peer("eager torch", "torch", "torch"),
    Peer("onnxruntime-training", "ort_training", "ort-training", optimizers=("adam",),
         why_not={"sgd": "SGD (SGDOptimizerV2) has no momentum; the Optimizer keeps state only for AdamW"}),
    Peer("LiteRT", "litert", "litert", build_venv="litert-build"),
    Peer("ExecuTorch", "executorch", "executorch", optimizers=("sgd",),
         why_not={"adam": "the training extension ships only an SGD optimizer"}),
    Peer("edge-sdk v1 step graph", "edge_sdk_step", "edge-sdk"),
    Peer("numpy matmul limit", "numpy_limit", "edge-sdk", parity=False),
)
REFERENCE = "eager torch"
OURS = "edge-sdk"
LIMIT = "numpy matmul limit"


def step_flops(dims: list[int], batch: int) -> int:
    """Matmul FLOPs of one MLP training step: forward, weight gradients, input gradients above layer 0."""
    pairs = [dims[i] * dims[i + 1] for i in range(len(dims) - 1)]
    return 2 * batch * (2 * sum(pairs) + sum(pairs[1:]))


def installed(peer: Peer) -> tuple[bool, str]:
    """(ready, why not): a venv is ready when install_peers.sh left its stamp file; why not = pip's last error
    lines of each missing venv (its install log)."""
    why = []
    for v in dict.fromkeys([peer.venv, peer.build_venv or peer.venv]):
        if any((PEERS_DIR / v).glob(".ok-*")):
            continue
        log = PEERS_DIR / f"{v}.install.log"
        lines = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
        errors = [ln for ln in lines if "ERROR" in ln or "error:" in ln] or lines
        why.append(f"{v} not installed: " + (" | ".join(errors[-3:]) if errors else "no venv (run make bench-peers)"))
    return not why, "; ".join(why)


def venv_mb(name: str) -> float | None:
    d = PEERS_DIR / name
    if not d.exists():
        return None
    out = subprocess.run(["du", "-sk", str(d)], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0]) / 1024.0


# ------------------------------------------------------------------------------------------------- data
def prepare(work: Path, models: dict[str, list[int]]) -> dict[str, dict[str, Any]]:
    """Per model: the float rows (npz), the 4-bit codebook payload + graphs for edge-sdk, batch index files."""
    from edge_sdk import codecs
    from edge_sdk.modelspec import ModelSpec, init_params
    from edge_sdk.payload import SampleGroup, write_payload
    from edge_sdk.server.onnx_export.export import export_training_graph

    out: dict[str, dict[str, Any]] = {}
    for name, dims in models.items():
        rng = np.random.default_rng(len(dims) * 1000 + dims[0])
        d, c = dims[0], dims[-1]
        raw = rng.standard_normal((N_ROWS, d)).astype(np.float32)
        levels = np.quantile(raw, (np.arange(16) + 0.5) / 16).astype(np.float32)
        codes, qp = codecs.quantize(raw, "codebook", 4, {"levels": levels})
        x = codecs.dequantize(codes, "codebook", 4, qp).astype(np.float32)
        teacher = rng.standard_normal((d, c)).astype(np.float32)
        y = np.argmax(x @ teacher + 0.5 * rng.standard_normal((N_ROWS, c)), axis=1).astype(np.int64)
        spec = ModelSpec(input_dim=d, num_classes=c, hidden=tuple(dims[1:-1]))
        params = init_params(spec, 0)
        npz = work / f"data-{name}.npz"
        np.savez(npz, x=x, y=y, **{f"p:{k}": v for k, v in params.items()})
        info: dict[str, Any] = {"dims": dims, "data": str(npz), "graphs": {}, "payloads": {}, "batches": {}}
        group = SampleGroup("cb4", "codebook", 4, data=codes, params=qp, labels=y)
        for opt in OPTIMIZERS:
            for variant in ("epoch", "step"):
                g = export_training_graph(spec, [group.layout()], opt, work / f"graph-{name}-{opt}-{variant}.onnx",
                                          variant=variant)
                p = work / f"payload-{name}-{opt}-{variant}.bin"
                write_payload(p, [group], num_classes=c, task={"kind": "beam", "model": spec.to_dict()},
                              graph=g.digest())
                info["graphs"][(opt, variant)] = str(g.path)
                info["payloads"][(opt, variant)] = str(p)
        perm = np.random.default_rng(7).permutation(N_ROWS)
        for b in BATCHES:
            bf = work / f"batches-{name}-{b}.npy"
            np.save(bf, np.sort(perm.reshape(-1, b), axis=1).astype(np.int64))
            info["batches"][b] = str(bf)
        out[name] = info
    return out


def case_for(peer: Peer, model: str, prep: dict[str, Any], batch: int, opt: str, threads: int, work: Path
             ) -> dict[str, Any]:
    info = prep[model]
    case: dict[str, Any] = {"peer": peer.name, "model": model, "dims": info["dims"], "batch": batch,
                            "optimizer": opt, "threads": threads, "hp": HP[opt], "data": info["data"],
                            "batches": info["batches"][batch]}
    if peer.module in ("edge_sdk", "edge_sdk_step"):
        variant = "epoch" if peer.module == "edge_sdk" else "step"
        case.update(graph=info["graphs"][(opt, variant)], payload=info["payloads"][(opt, variant)])
    elif peer.module == "ort_training":
        case["artifact"] = str(work / "artifacts" / f"ort-training-{model}-{opt}")
    elif peer.module in ("litert", "executorch"):
        case["artifact"] = str(work / "artifacts" / f"{peer.module}-{model}-{batch}-{opt}")
    return case


# ---------------------------------------------------------------------------------------------- workers
class Worker:
    """A peer's worker process (tools/peers/worker.py serve) in the peer's venv, with ``threads`` threads.

    Between requests the process is stopped (SIGSTOP; SIGCONT before the next one): an idle runtime's thread
    pool keeps spinning for a while after its work (OpenMP's and onnxruntime's busy-wait), and with 2 threads
    per process that spinning took the cores from the peer being timed (eager torch measured 15-50x slower,
    numpy's matmuls 10x). Stopped, the other peers cost the timed one nothing."""

    def __init__(self, peer: Peer, threads: int, log: Path) -> None:
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
                   OPENBLAS_NUM_THREADS=str(threads), PYTHONPATH=str(WORKER.parent), TF_CPP_MIN_LOG_LEVEL="3")
        self.peer = peer
        self.log = open(log, "a")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen([str(peer.python()), str(WORKER), "serve", peer.module], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, text=True, env=env, cwd=WORKER.parent)

    def _signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def ask(self, **msg: Any) -> dict[str, Any]:
        assert self.proc.stdin and self.proc.stdout
        self._signal(signal.SIGCONT)
        try:
            self.proc.stdin.write(json.dumps(msg) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        finally:
            if msg.get("op") != "quit":
                self._signal(signal.SIGSTOP)
        if not line:
            return {"ok": False, "error": f"worker exited (code {self.proc.poll()}); see {self.log.name}"}
        return json.loads(line)

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                self.ask(op="quit")
                self.proc.wait(timeout=30)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            self.proc.kill()
        self.log.close()


def build_artifacts(peers: list[Peer], cases: list[dict[str, Any]], work: Path, logs: Path) -> dict[str, str]:
    """Run each peer's build() once over all its cases in its build venv; returns {peer: error}."""
    errors = {}
    for peer in peers:
        mine = [c for c in cases if c["peer"] == peer.name and "artifact" in c]
        if not mine:
            continue
        f = work / f"build-{peer.module}.json"
        f.write_text(json.dumps(mine))
        t0 = time.perf_counter()
        env = dict(os.environ, PYTHONPATH=str(WORKER.parent), TF_CPP_MIN_LOG_LEVEL="3")
        with open(logs / f"build-{peer.module}.log", "w") as log:
            r = subprocess.run([str(peer.python(build=True)), str(WORKER), "build", peer.module, str(f)],
                               stdout=log, stderr=log, env=env, cwd=WORKER.parent)
        print(f"  built {peer.name} artifacts ({len(mine)} cases) in {time.perf_counter() - t0:.0f} s"
              + ("" if r.returncode == 0 else f" -- FAILED, see {logs / f'build-{peer.module}.log'}"), flush=True)
        if r.returncode != 0:
            errors[peer.name] = f"build failed (exit {r.returncode}); see build-{peer.module}.log"
    return errors


# ---------------------------------------------------------------------------------------------- running
def run_cases(peers: list[Peer], prep: dict[str, Any], work: Path, logs: Path, threads_list: list[int],
              batches: tuple[int, ...], reps: int, models: list[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for threads in threads_list:
        workers = {p.name: Worker(p, threads, logs / f"{p.module}-t{threads}.log") for p in peers}
        try:
            for model in models:
                for opt in OPTIMIZERS:
                    for b in batches:
                        rows.append(run_case(workers, peers, prep, work, model, b, opt, threads, reps))
        finally:
            for w in workers.values():
                w.close()
    return rows


def run_case(workers: dict[str, Worker], peers: list[Peer], prep: dict[str, Any], work: Path, model: str,
             batch: int, opt: str, threads: int, reps: int) -> dict[str, Any]:
    dims = prep[model]["dims"]
    row: dict[str, Any] = {"model": model, "dims": dims, "batch": batch, "optimizer": opt, "threads": threads,
                           "step_mflop": step_flops(dims, batch) / 1e6, "peers": {}}
    active = []
    for p in peers:
        res: dict[str, Any] = {}
        row["peers"][p.name] = res
        if opt not in p.optimizers:
            res["skip"] = p.why_not.get(opt, "optimizer not offered")
            continue
        r = workers[p.name].ask(op="setup", case=case_for(p, model, prep, batch, opt, threads, work))
        if not r["ok"]:
            res["error"] = r["error"]
            continue
        res["info"] = r.get("info", {})
        active.append(p)
    # parity: the first PARITY_STEPS losses of every peer against eager torch
    ref = None
    if REFERENCE in [p.name for p in active]:
        r = workers[REFERENCE].ask(op="parity", steps=PARITY_STEPS)
        ref = np.asarray(r["losses"]) if r["ok"] else None
    for p in active:
        if not p.parity:
            continue
        r = workers[p.name].ask(op="parity", steps=PARITY_STEPS)
        res = row["peers"][p.name]
        if not r["ok"]:
            res["error"] = r["error"]
            continue
        losses = np.asarray(r["losses"])
        res["loss_after_steps"] = float(losses[-1])
        if ref is not None:
            res["parity_max_abs"] = float(np.max(np.abs(losses - ref)))
            res["parity_ok"] = bool(res["parity_max_abs"] <= PARITY_TOL)
    active = [p for p in active if "error" not in row["peers"][p.name]]
    steps = N_ROWS // batch  # one epoch per repetition
    for p in active:  # warm-up: one epoch each
        workers[p.name].ask(op="time", steps=steps)
    times: dict[str, list[float]] = {p.name: [] for p in active}
    for rep in range(reps):
        order = active[rep % len(active):] + active[: rep % len(active)]
        for p in order:
            r = workers[p.name].ask(op="time", steps=steps)
            if r["ok"]:
                times[p.name].append(r["seconds"] / steps)
            else:
                row["peers"][p.name]["error"] = r["error"]
    ours = float(np.median(times[OURS])) if times.get(OURS) else None
    limit = float(np.median(times[LIMIT])) if times.get(LIMIT) else None
    for name, ts in times.items():
        if not ts:
            continue
        med = float(np.median(ts))
        res = row["peers"][name]
        res.update(step_ms=med * 1e3, spread=float((max(ts) - min(ts)) / med), reps=len(ts),
                   gflops=row["step_mflop"] / 1e3 / med)
        if ours:
            res["ratio_to_edge_sdk"] = med / ours
        if limit:
            res["fraction_of_limit"] = limit / med
    print(f"  {model} {'-'.join(map(str, dims))} b={batch} {opt} t={threads}: "
          + ", ".join(f"{n} {row['peers'][n].get('step_ms', float('nan')):.3f}" for n in times), flush=True)
    return row


def measure_rss(peers: list[Peer], prep: dict[str, Any], work: Path, logs: Path, model: str, batch: int,
                epochs: int) -> dict[str, Any]:
    """Peak RSS of a fresh process per runtime that loads its model and trains ``epochs`` epochs (1 thread):
    Adam where the runtime offers it, else SGD with momentum."""
    out: dict[str, Any] = {}
    for p in peers:
        if p.name == LIMIT:
            continue
        opt = "adam" if "adam" in p.optimizers else "sgd"
        case = case_for(p, model, prep, batch, opt, 1, work)
        f = work / f"rss-{p.module}.json"
        f.write_text(json.dumps(case))
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
                   PYTHONPATH=str(WORKER.parent), TF_CPP_MIN_LOG_LEVEL="3")
        with open(logs / f"rss-{p.module}.log", "w") as log:
            r = subprocess.run([str(p.python()), str(WORKER), "rss", p.module, str(f), str(epochs * N_ROWS // batch)],
                               stdout=subprocess.PIPE, stderr=log, text=True, env=env, cwd=WORKER.parent)
        if r.returncode == 0:
            out[p.name] = dict(json.loads(r.stdout.strip().splitlines()[-1]), optimizer=opt)
        else:
            out[p.name] = {"error": f"exit {r.returncode}; see rss-{p.module}.log"}
    return out


# ---------------------------------------------------------------------------------------------- output
def _fmt_ratio(res: dict[str, Any]) -> str:
    if "skip" in res:
        return "n/a"
    if "error" in res:
        return "error"
    if "ratio_to_edge_sdk" not in res:
        return "-"
    mark = "" if res.get("parity_ok", True) else "!"
    return f"{res['ratio_to_edge_sdk']:.2f}x{mark}"


def print_tables(res: dict[str, Any]) -> None:
    names = [p for p in res["peers"] if p not in (OURS, LIMIT)]
    short = {"eager torch": "torch", "onnxruntime-training": "ort-train", "LiteRT": "litert",
             "ExecuTorch": "executorch", "edge-sdk v1 step graph": "ours v1"}
    print("\nOne optimizer step: edge-sdk time (ms, median of interleaved epochs), each peer's time as a ratio to it "
          "(> 1: edge-sdk faster; ! = parity failed), and the numpy matmul limit")
    head = f"{'model':<15}{'thr':>4}{'opt':>5}{'batch':>6}{'edge-sdk':>10}{'spread':>7}"
    head += "".join(f"{short.get(n, n):>11}" for n in names) + f"{'limit ms':>10}{'GFLOP/s':>9}{'% limit':>8}"
    print(head)
    for row in res["rows"]:
        o = row["peers"].get(OURS, {})
        lim = row["peers"].get(LIMIT, {})
        line = (f"{'-'.join(map(str, row['dims'])):<15}{row['threads']:>4}{row['optimizer']:>5}{row['batch']:>6}"
                f"{o.get('step_ms', float('nan')):>10.3f}{100 * o.get('spread', float('nan')):>6.0f}%")
        line += "".join(f"{_fmt_ratio(row['peers'].get(n, {})):>11}" for n in names)
        line += (f"{lim.get('step_ms', float('nan')):>10.3f}{o.get('gflops', float('nan')):>9.1f}"
                 f"{100 * o.get('fraction_of_limit', float('nan')):>7.0f}%")
        print(line)
    print("\nGFLOP/s (matmul FLOPs of the step / step time) and fraction of the numpy limit at the same shapes, "
          "batch 512, 1 thread")
    for row in res["rows"]:
        if row["batch"] != 512 or row["threads"] != 1:
            continue
        cells = []
        for n, r in row["peers"].items():
            if "gflops" in r and n != LIMIT:
                cells.append(f"{short.get(n, n)} {r['gflops']:.1f} ({100 * r.get('fraction_of_limit', 0):.0f}%)")
        lim = row["peers"].get(LIMIT, {})
        print(f"  {'-'.join(map(str, row['dims']))} {row['optimizer']}: limit {lim.get('gflops', float('nan')):.1f} "
              f"GFLOP/s; " + ", ".join(cells))
    sgemm: dict[int, list[float]] = {}
    for row in res["rows"]:
        g = row["peers"].get(LIMIT, {}).get("info", {}).get("sgemm512_gflops")
        if g:
            sgemm.setdefault(row["threads"], []).append(g)
    if sgemm:
        print("numpy float32 sgemm 512x512x512 (reference peak): " + ", ".join(
            f"{t} thread(s) {np.median(v):.1f} GFLOP/s" for t, v in sorted(sgemm.items())))
    parity = [(row, n, r) for row in res["rows"] for n, r in row["peers"].items() if r.get("parity_ok") is False]
    print(f"\nparity (first {PARITY_STEPS} losses within {PARITY_TOL} of eager torch): "
          + ("all ok" if not parity else "; ".join(f"{n} {row['model']} b={row['batch']} {row['optimizer']} "
                                                   f"max diff {r['parity_max_abs']:.2e}" for row, n, r in parity)))
    skipped = {(n, r["skip"]) for row in res["rows"] for n, r in row["peers"].items() if "skip" in r}
    for n, why in sorted(skipped):
        print(f"  n/a: {n}: {why}")
    for n, why in res.get("not_installed", {}).items():
        print(f"  not installed: {n}: {why}")
    if res.get("rss"):
        print(f"\npeak RSS of one training run ({res['rss_case']}), fresh process, and installed venv size")
        print(f"{'runtime':<26}{'peak RSS MB':>12}{'venv MB':>10}")
        for n, r in res["rss"].items():
            p = next(p for p in PEERS if p.name == n)
            size = res["venv_mb"].get(p.venv)
            rss = r.get("peak_rss_mb")
            print(f"{n:<26}{(f'{rss:.1f}' if rss else r.get('error', '-')):>12}"
                  f"{(f'{size:.0f}' if size else '-'):>10}   ({r.get('optimizer', '')})")
        b = res["venv_mb"].get("litert-build")
        if b:
            print(f"{'(LiteRT build: tensorflow-cpu)':<26}{'':>12}{b:>10.0f}   (server side, not on the device)")


def main(out_dir: Path, quick: bool = False, peer_names: list[str] | None = None, reps: int | None = None,
         models: list[str] | None = None, batches: tuple[int, ...] | None = None,
         threads: list[int] | None = None) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    logs = out_dir / "peers-logs"
    logs.mkdir(exist_ok=True)
    all_threads = os.cpu_count() or 1
    threads_list = threads or ([1] if quick else sorted({1, all_threads}))
    batches = batches or ((128,) if quick else BATCHES)
    models = models or (["beam"] if quick else list(MODELS))
    reps = reps or (3 if quick else 7)
    chosen = [p for p in PEERS if peer_names is None or p.name in peer_names or p.module in peer_names]
    ready, not_installed = [], {}
    for p in chosen:
        ok, why = installed(p)
        (ready.append(p) if ok else not_installed.__setitem__(p.name, why))
    res: dict[str, Any] = {"n_rows": N_ROWS, "reps": reps, "hp": HP, "parity_steps": PARITY_STEPS,
                           "parity_tol": PARITY_TOL, "threads_all": all_threads, "not_installed": not_installed,
                           "peers": [p.name for p in ready], "rows": []}
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as td:
        work = Path(td)
        (work / "artifacts").mkdir()
        t0 = time.perf_counter()
        prep = prepare(work, {m: MODELS[m] for m in models})
        print(f"  data, payloads and edge-sdk graphs in {time.perf_counter() - t0:.0f} s", flush=True)
        cases = [case_for(p, m, prep, b, o, 1, work) for p in ready for m in models for b in batches for o in OPTIMIZERS
                 if o in p.optimizers]
        for name, err in build_artifacts(ready, cases, work, logs).items():
            not_installed[name] = err
        ready = [p for p in ready if p.name not in not_installed]
        res["rows"] = run_cases(ready, prep, work, logs, threads_list, batches, reps, models)
        res["rss_case"] = f"MLP {'-'.join(map(str, MODELS['beam']))}, batch 128, 5 epochs of {N_ROWS} rows, 1 thread"
        res["rss"] = measure_rss(ready, prep, work, logs, "beam", 128, 5)
    res["venv_mb"] = {v: venv_mb(v) for v in sorted({p.venv for p in PEERS} | {"litert-build"})}
    print_tables(res)
    (out_dir / "peers.json").write_text(json.dumps(res, indent=1, default=str) + "\n")
    return res


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "bench-results")
    ap.add_argument("--quick", action="store_true", help="beam MLP, batch 128, 1 thread, 3 repetitions")
    ap.add_argument("--peer", action="append", help="only these peers (name or module); repeatable")
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--model", action="append", choices=list(MODELS), help="only these models; repeatable")
    ap.add_argument("--batch", action="append", type=int, help="only these batch sizes; repeatable")
    ap.add_argument("--threads", action="append", type=int, help="only these thread counts; repeatable")
    a = ap.parse_args()
    # a TERM (cpujob's time limit, kill) unwinds through the finally blocks, which wake and close the workers
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    main(a.out, a.quick, a.peer, a.reps, a.model, tuple(a.batch) if a.batch else None, a.threads)
    sys.exit(0)

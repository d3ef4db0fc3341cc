"""Where a device training step spends its time: onnxruntime's profiler on the training graph, per op type.

    .venv/bin/python tools/profile_device_step.py [--dims 8-128-128-32] [--batch 128] [--optimizer adam]
                                                  [--variant epoch|step|both] [--threads 1] [--out DIR]

Exports the graph for one 4-bit codebook group (the beam payload layout), trains ``--steps`` steps with profiling
on (the epoch variant one epoch of 4096 rows per ``run()``, as the device does), and prints, per op type, the
kernel time per step, its share, and the node count; "outside kernels" is the rest of ``run()`` (the executor's
per-node overhead, Loop bookkeeping, input/output copies). The profiler itself adds per-node overhead, so use
the shares, not the absolute times (``tools/bench_peers.py`` times without it). Writes ``profile-<variant>.json``
(the aggregated table) to ``--out``.
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MATMUL_OPS = {"MatMul", "Gemm", "FusedGemm", "FusedMatMul"}
CONTAINER_OPS = {"Loop", "Scan", "If"}


def profile(dims: list[int], batch: int, optimizer: str, variant: str, threads: int, steps: int,
            rows: int = 4096) -> dict[str, Any]:
    import onnxruntime as ort

    from edge_sdk.graphmeta import HYPER_NAMES, GraphGroup, TrainGraphSpec
    from edge_sdk.modelspec import ModelSpec, init_params
    from edge_sdk.server.onnx_export.export import training_graph_bytes
    from edge_sdk.server.onnx_export.testing import random_group_batch

    model = ModelSpec(input_dim=dims[0], num_classes=dims[-1], hidden=tuple(dims[1:-1]))
    spec = TrainGraphSpec(model, (GraphGroup("cb4", "codebook", 4, dims[0]),), optimizer, variant=variant)
    graph = training_graph_bytes(spec)
    rng = np.random.default_rng(0)
    hp = {"lr": 1e-3, "momentum": 0.9, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0}
    params = init_params(model, 0)
    with tempfile.TemporaryDirectory() as td:
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.enable_profiling = True
        so.profile_file_prefix = str(Path(td) / "prof")
        sess = ort.InferenceSession(graph, so, providers=["CPUExecutionProvider"])
        if variant == "epoch":
            k = rows // batch
            gb = random_group_batch(0, spec.groups[0], rows, rng)
            theta = np.concatenate([params[n].reshape(-1) for n, _ in model.param_shapes()])
            feed = {**gb.feed, "labels": rng.integers(0, dims[-1], rows).astype(np.int64),
                    "batches": np.sort(rng.permutation(rows).reshape(k, batch), axis=1).astype(np.int64),
                    "theta": theta, **{s: np.zeros_like(theta) for s in spec.flat_state_names()}}
            for h in HYPER_NAMES[optimizer]:
                feed[h] = (np.full(k, hp["lr"], np.float32) if h == "lr" else np.arange(1, k + 1, dtype=np.float32)
                           if h == "step" else np.asarray(hp[h], np.float32))
            runs = max(1, steps // k)
            per_run = k
        else:
            gb = random_group_batch(0, spec.groups[0], batch, rng)
            feed = {**gb.feed, "labels": rng.integers(0, dims[-1], batch).astype(np.int64), **params}
            feed.update({n: np.zeros_like(params[n.rsplit(".", 1)[0]]) for n in spec.state_names()})
            feed.update({h: np.asarray(1.0 if h == "step" else hp[h], np.float32) for h in HYPER_NAMES[optimizer]})
            runs, per_run = steps, 1
        sess.run(None, feed)  # warm-up (profiled too; dropped below)
        for _ in range(runs):
            sess.run(None, feed)
        events = json.loads(Path(sess.end_profiling()).read_text())
    run_us = [e["dur"] for e in events if e.get("cat") == "Session" and e["name"] == "model_run"][1:]
    kern: dict[str, float] = collections.defaultdict(float)
    count: collections.Counter[str] = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            if e["args"]["op_name"] in CONTAINER_OPS:  # its time is its body's kernels (counted) + bookkeeping
                continue
            kern[e["args"]["op_name"]] += e["dur"]
            count[e["args"]["op_name"]] += 1
    total_runs = runs + 1
    n_steps = total_runs * per_run
    per_step_run = float(np.sum(run_us)) / (runs * per_run)
    ops = {op: {"us_per_step": us / n_steps, "nodes_per_step": count[op] / n_steps} for op, us in kern.items()}
    kernel_total = sum(v["us_per_step"] for v in ops.values())
    return {"dims": dims, "batch": batch, "optimizer": optimizer, "variant": variant, "threads": threads,
            "graph_bytes": len(graph), "run_us_per_step": per_step_run, "kernel_us_per_step": kernel_total,
            "matmul_us_per_step": sum(v["us_per_step"] for op, v in ops.items() if op in MATMUL_OPS),
            "ops": dict(sorted(ops.items(), key=lambda kv: -kv[1]["us_per_step"]))}


def print_profile(p: dict[str, Any]) -> None:
    run = p["run_us_per_step"]
    print(f"\n{p['variant']} graph, MLP {'-'.join(map(str, p['dims']))}, batch {p['batch']}, {p['optimizer']}, "
          f"{p['threads']} thread(s), {p['graph_bytes']} B: {run:.0f} us per step under the profiler, "
          f"matmul kernels {p['matmul_us_per_step']:.0f} us ({100 * p['matmul_us_per_step'] / run:.0f}%)")
    print(f"{'op':<18}{'us/step':>9}{'share':>8}{'nodes/step':>11}")
    for op, v in p["ops"].items():
        print(f"{op:<18}{v['us_per_step']:>9.1f}{100 * v['us_per_step'] / run:>7.1f}%{v['nodes_per_step']:>11.1f}")
    rest = run - p["kernel_us_per_step"]
    print(f"{'outside kernels':<18}{rest:>9.1f}{100 * rest / run:>7.1f}%")


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dims", default="8-128-128-32")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--optimizer", choices=["sgd", "adam"], default="adam")
    ap.add_argument("--variant", choices=["epoch", "step", "both"], default="both")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=320)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    dims = [int(d) for d in a.dims.split("-")]
    res = []
    for variant in (["step", "epoch"] if a.variant == "both" else [a.variant]):
        p = profile(dims, a.batch, a.optimizer, variant, a.threads, a.steps)
        print_profile(p)
        res.append(p)
        if a.out:
            a.out.mkdir(parents=True, exist_ok=True)
            (a.out / f"profile-{variant}.json").write_text(json.dumps(p, indent=1) + "\n")
    return res


if __name__ == "__main__":
    main()

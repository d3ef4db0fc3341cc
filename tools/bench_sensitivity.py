"""Benchmark: ADQ sensitivity scoring throughput (samples/s), batched ``vmap(grad)`` vs a per-sample loop.

Both compute S(d) = 1 - cos(g(x), g(Q_2(x))) (two per-sample gradients per sample) for the same frozen
model and data in one run, check that they agree, and report the speed ratio. Models: the beam MLP
(D = 8 -> 128 -> 128 -> 32) and the digits ConvNet (1x8x8, width 32, depth 2). torch uses 1 thread.

    .venv/bin/python tools/bench_sensitivity.py --out bench-results      # table + bench-results/sensitivity.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from edge_sdk.atomic import atomic_write_text


def _case(spec, n_vmap: int, n_loop: int, batch: int) -> dict:
    from edge_sdk.server.adq.sensitivity import sensitivity_loop, sensitivity_scores
    from edge_sdk.server.adq.training import as_module
    from edge_sdk.server.models import init_torch_params

    rng = np.random.default_rng(0)
    model = as_module(spec, init_torch_params(spec, 0))
    x = rng.standard_normal((n_vmap, spec.input_dim)).astype(np.float32)
    y = rng.integers(0, spec.num_classes, n_vmap)
    sensitivity_scores(model, x[:batch], y[:batch], batch_size=batch)  # warm-up (vmap tracing)
    sensitivity_loop(model, x[:4], y[:4])
    t0 = time.perf_counter()
    s_v = sensitivity_scores(model, x, y, batch_size=batch)
    t_v = time.perf_counter() - t0
    t0 = time.perf_counter()
    s_l = sensitivity_loop(model, x[:n_loop], y[:n_loop])
    t_l = time.perf_counter() - t0
    return {
        "model": spec.kind, "params": spec.num_params(), "input_dim": spec.input_dim, "batch_size": batch,
        "n_vmap": n_vmap, "n_loop": n_loop,
        "vmap_samples_per_s": n_vmap / t_v, "loop_samples_per_s": n_loop / t_l,
        "speedup": (n_vmap / t_v) / (n_loop / t_l),
        "max_abs_diff": float(np.abs(s_v[:n_loop] - s_l).max()),
    }


def main(out_dir: Path, quick: bool = False) -> dict:
    import torch

    from edge_sdk.modelspec import ModelSpec

    torch.set_num_threads(1)
    cases = [
        ("beam MLP", ModelSpec(kind="mlp", input_dim=8, num_classes=32, hidden=(128, 128)), 4096, 256, 512),
        ("digits ConvNet", ModelSpec(kind="convnet", input_dim=64, num_classes=10, in_shape=(1, 8, 8), width=32,
                                     depth=2), 1024, 128, 256),
    ]
    if quick:
        cases = [(n, s, nv // 8, nl // 4, b // 4) for n, s, nv, nl, b in cases]
    rows = []
    for name, spec, nv, nl, b in cases:
        r = _case(spec, nv, nl, b)
        r["case"] = name
        rows.append(r)
    print(f"{'case':16s} {'params':>8s} {'vmap samp/s':>12s} {'loop samp/s':>12s} {'speedup':>8s} {'max|dS|':>9s}")
    for r in rows:
        print(f"{r['case']:16s} {r['params']:8d} {r['vmap_samples_per_s']:12.0f} {r['loop_samples_per_s']:12.0f} "
              f"{r['speedup']:7.1f}x {r['max_abs_diff']:9.1e}")
    res = {"name": "sensitivity", "rows": rows, "torch": torch.__version__, "threads": 1,
           "machine": platform.machine(), "cpu_count": os.cpu_count()}
    atomic_write_text(out_dir / "sensitivity.json", json.dumps(res, indent=1), make_parents=True)
    return res


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("bench-results"))
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    main(a.out, a.quick)

"""Device benchmarks: ORT training step vs eager torch, peak RSS of a device training process vs the same training
in torch, end-to-end device time for a demo-size payload. Contract: docs/contracts.md (Benchmarks).

    .venv/bin/python tools/bench_device.py --out bench-results [--quick]

The step timing runs the v1 step graph (one ``run()`` per step); the device's default epoch graph and the other
on-device runtimes are compared in tools/bench_peers.py (``make bench-peers``). Target: device peak RSS <= 150 MB.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

TORCH_TRAIN = r"""
import json, sys, time
import numpy as np, torch
torch.set_num_threads(1)
from edge_sdk.payload import read_payload
from edge_sdk.modelspec import ModelSpec, TrainRecipe, epoch_order, init_params
from edge_sdk.server.onnx_export.testing import EagerReference
p = read_payload(sys.argv[1]); epochs = int(sys.argv[2])
task = p.task; tr = TrainRecipe.from_dict(task["train"]); spec = ModelSpec.from_dict(task["model"])
x, y = p.samples()
ref = EagerReference(spec, init_params(spec, 0), tr.optimizer,
                     {"lr": tr.lr, "momentum": tr.momentum, "weight_decay": tr.weight_decay, "beta1": tr.beta1,
                      "beta2": tr.beta2, "eps": tr.eps})
t0 = time.perf_counter(); bs = tr.batch_size
for e in range(epochs):
    o = epoch_order(len(x), 0, e)
    for s in range(0, len(x), bs):
        i = np.sort(o[s:s + bs]); ref.step(x[i], y[i])
from edge_sdk.device.trainer import peak_rss_mb
print(json.dumps({"seconds": time.perf_counter() - t0, "peak_rss_mb": peak_rss_mb()}))
"""


def _median_time(fn, n: int) -> float:
    for _ in range(max(3, n // 10)):
        fn()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def bench_step(batch: int, hidden: tuple[int, ...], n: int) -> dict:
    """Median time of one Adam training step: ORT graph (unpack 4-bit codebook codes + dequantize + step) vs
    eager torch (nn.Linear + F.cross_entropy + torch.optim.Adam on already-dequantized float input)."""
    import onnxruntime as ort
    import torch

    from edge_sdk.graphmeta import HYPER_NAMES, GraphGroup, TrainGraphSpec
    from edge_sdk.modelspec import ModelSpec, init_params
    from edge_sdk.server.onnx_export.testing import (
        EagerReference,
        cached_training_graph,
        init_state,
        random_group_batch,
    )

    torch.set_num_threads(1)
    model = ModelSpec(input_dim=8, num_classes=32, hidden=hidden)
    spec = TrainGraphSpec(model, (GraphGroup("cb4", "codebook", 4, 8),), "adam")
    graph = cached_training_graph(spec)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(graph, so, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    gb = random_group_batch(0, spec.groups[0], batch, rng)
    y = rng.integers(0, 32, batch).astype(np.int64)
    params = init_params(model, 0)
    hp = {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0, "step": 1.0}
    feed = {**gb.feed, "labels": y, **{h: np.asarray(hp[h], np.float32) for h in HYPER_NAMES["adam"]},
            **params, **init_state(spec, params)}
    t_ort = _median_time(lambda: sess.run(None, feed), n)
    ref = EagerReference(model, params, "adam", hp)
    t_torch = _median_time(lambda: ref.step(gb.x, y), n)
    return {"batch": batch, "hidden": list(hidden), "ort_step_ms": t_ort * 1e3, "torch_step_ms": t_torch * 1e3,
            "speedup": t_torch / t_ort, "graph_bytes": len(graph), "threads": 1}


def bench_e2e(tmp: Path, n_train: int, epochs: int) -> dict:
    """Device CLI training (subprocess) on a demo-size payload vs the same training in torch (subprocess)."""
    from edge_sdk.server.onnx_export.fixtures import BundleSpec, make_bundle

    b = make_bundle(tmp / "bundle", BundleSpec(n_train=n_train, n_local=2000, hidden=(128, 128),
                                                train=(("epochs", epochs), ("batch_size", 128), ("lr", 2e-3))))
    out = tmp / "run"
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", "import sys; from edge_sdk.cli.main import main; sys.exit(main())",
                        "device", "train", "--payload", str(tmp / "bundle" / "payload.bin"), "--graph",
                        str(tmp / "bundle" / "graph.onnx"), "--eval", str(tmp / "bundle" / "local.h5"),
                        "--quiet", "--out", str(out)], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"device train failed: {r.stderr}")
    rep = json.loads((out / "report.json").read_text())
    t = subprocess.run([sys.executable, "-c", TORCH_TRAIN, str(tmp / "bundle" / "payload.bin"), str(epochs)],
                       capture_output=True, text=True)
    if t.returncode != 0:
        raise RuntimeError(f"torch train failed: {t.stderr}")
    tj = json.loads(t.stdout.strip().splitlines()[-1])
    return {"n_train": b["n_train"], "epochs": epochs, "payload_bytes": b["payload_bytes"],
            "graph_bytes": b["graph_bytes"], "bytes_received": rep["bytes_received"],
            "device_process_s": wall, "device_train_s": rep["train_seconds"], "device_steps_per_s": rep["steps_per_s"],
            "device_peak_rss_mb": rep["peak_rss_mb"], "torch_train_s": tj["seconds"],
            "torch_peak_rss_mb": tj["peak_rss_mb"], "device_top1": rep["kpis"]["top1"]}


def main(out_dir: Path, quick: bool = False) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    res: dict = {"step": [], "e2e": None}
    for batch in (256,) if quick else (64, 256):
        res["step"].append(bench_step(batch, (128, 128), 50 if quick else 200))
    with tempfile.TemporaryDirectory() as td:
        res["e2e"] = bench_e2e(Path(td), 2000 if quick else 8000, 3 if quick else 10)
    print("one Adam step, MLP 8-128-128-32, 1 thread")
    print(f"{'batch':>6} {'ORT ms':>8} {'torch ms':>9} {'speedup':>8}")
    for s in res["step"]:
        print(f"{s['batch']:>6} {s['ort_step_ms']:>8.3f} {s['torch_step_ms']:>9.3f} {s['speedup']:>7.2f}x")
    e = res["e2e"]
    print(f"\ndemo payload: {e['n_train']} samples, {e['epochs']} epochs; payload {e['payload_bytes']} B + graph "
          f"{e['graph_bytes']} B = {e['bytes_received']} B received")
    print(f"{'':<8} {'train s':>8} {'peak RSS MB':>12}")
    print(f"{'device':<8} {e['device_train_s']:>8.2f} {e['device_peak_rss_mb']:>12.1f}   "
          f"(process {e['device_process_s']:.2f} s, {e['device_steps_per_s']:.0f} steps/s, top1 {e['device_top1']:.3f})")
    print(f"{'torch':<8} {e['torch_train_s']:>8.2f} {e['torch_peak_rss_mb']:>12.1f}")
    (out_dir / "device.json").write_text(json.dumps(res, indent=1) + "\n")
    return res


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="device runtime benchmarks")
    ap.add_argument("--out", type=Path, default=ROOT / "bench-results")
    ap.add_argument("--quick", action="store_true", help="fewer repetitions, smaller demo payload")
    a = ap.parse_args()
    main(a.out, a.quick)

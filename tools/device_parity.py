#!/usr/bin/env python3
"""Device (onnxruntime graph) vs server (torch) training of the same payload: Top-1 per seed and schedule.

For each run directory (``payload.epl`` + ``graph.onnx`` written by ``edge-sdk distill`` / ``quantize`` on beam
data), each seed and each learning-rate schedule, the payload's recipe is run twice from the same init and batch
order: by the device runtime (``edge_sdk.device.trainer.Trainer``) and by torch
(``edge_sdk.server.train_eval.train_model``); both models are scored on the test set. Prints a table and writes
JSON. The difference measures how far float rounding (a pre-activation within rounding of a ReLU kink takes
different branches) carries after the recipe's steps — the reason the server evaluates with the device runtime.

    .venv/bin/python tools/device_parity.py runs/r36 runs/r180 --test datasets/3gpp/reference/test.h5 \\
        --train datasets/3gpp/reference/train.h5 --seeds 5 --schedules constant,cosine --out parity.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT / "datasets" / "3gpp" / "reference"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="directories holding payload.epl and graph.onnx")
    ap.add_argument("--train", type=Path, default=REF / "train.h5")
    ap.add_argument("--test", type=Path, default=REF / "test.h5")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--schedules", default="constant,cosine")
    ap.add_argument("--out", type=Path, default=None, help="JSON output")
    a = ap.parse_args(argv)

    import numpy as np
    import torch

    from edge_sdk.atomic import atomic_write_text
    from edge_sdk.device.trainer import Trainer
    from edge_sdk.modelspec import ModelSpec
    from edge_sdk.server.datasets import load_beam
    from edge_sdk.server.payload_io import read_compact
    from edge_sdk.server.train_eval import predict, score_metrics, train_model

    torch.set_num_threads(1)
    rows = []
    print(f"{'run':24s} {'schedule':9s} {'seed':>4s} {'device top1':>12s} {'torch top1':>11s} {'diff (pts)':>10s}")
    for run in a.runs:
        X, y, soft, p = read_compact(run / "payload.epl")
        spec = ModelSpec.from_dict(p.task["model"])
        data = load_beam(a.train, a.test, task_spec=p.task["beam"], hidden=spec.hidden)
        for sched in a.schedules.split(","):
            for seed in range(a.seeds):
                tr = Trainer(run / "payload.epl", run / "graph.onnx", seed=seed, schedule=sched)
                st = tr.train()
                dev_params = {k: torch.from_numpy(v) for k, v in st.params.items()}
                dev = score_metrics(predict(spec, dev_params, data.X_test), data.y_test, data.rsrp_test)["top1"]
                srv_params = train_model(spec, X, y, seed, tr.config.recipe, soft=soft)
                srv = score_metrics(predict(spec, srv_params, data.X_test), data.y_test, data.rsrp_test)["top1"]
                rows.append({"run": str(run), "schedule": sched, "seed": seed, "steps": tr.config.recipe.steps,
                             "device_top1": dev, "torch_top1": srv, "diff_points": 100 * (dev - srv)})
                print(f"{str(run)[-24:]:24s} {sched:9s} {seed:4d} {dev:12.4f} {srv:11.4f} {100 * (dev - srv):+10.2f}",
                      flush=True)
    for sched in a.schedules.split(","):
        d = np.abs([r["diff_points"] for r in rows if r["schedule"] == sched])
        print(f"{sched}: |diff| mean {d.mean():.2f}, max {d.max():.2f} points over {d.size} runs")
    if a.out is not None:
        atomic_write_text(a.out, json.dumps({"rows": rows}, indent=1) + "\n", make_parents=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

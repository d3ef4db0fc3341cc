"""Regenerate the device-test fixtures under tests/device/data/ (needs the server extra: torch).

The device tests run in a torch-free venv (tools/test_device_minimal.sh), so the training graphs they use are
exported here beforehand and shipped. tests/server/test_graph_fixtures.py fails when they are stale (graph or
payload bytes differ from a fresh export). Idempotent; ~1 min on 2 cores.

    .venv/bin/python tools/make_device_fixtures.py [--out tests/device/data]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: bundle name -> BundleSpec keyword arguments
BUNDLES: dict[str, dict] = {
    "beam_adam": {"layout": "two", "optimizer": "adam", "hidden": (32,),
                  "train": (("epochs", 3), ("batch_size", 64), ("lr", 3e-3))},
    "soft_sgd": {"layout": "soft", "optimizer": "sgd", "hidden": (16,), "n_train": 256, "n_local": 64,
                 "train": (("epochs", 2), ("batch_size", 32), ("lr", 0.05), ("momentum", 0.9))},
    # the same payload as beam_adam with a format-v1 (step variant) graph: devices keep training old graphs
    "beam_adam_step": {"layout": "two", "optimizer": "adam", "hidden": (32,), "variant": "step",
                       "train": (("epochs", 3), ("batch_size", 64), ("lr", 3e-3))},
}


def build(out: Path, names: list[str] | None = None) -> dict[str, dict]:
    import torch

    from edge_sdk.server.onnx_export.fixtures import BundleSpec, make_bundle

    torch.set_num_threads(1)
    res = {}
    for name in names or list(BUNDLES):
        res[name] = make_bundle(out / name, BundleSpec(**BUNDLES[name]))
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "tests" / "device" / "data")
    args = ap.parse_args()
    res = build(args.out)
    (args.out / "MANIFEST.json").write_text(json.dumps(res, indent=1, sort_keys=True) + "\n")
    for name, r in res.items():
        print(f"{name}: payload {r['payload_bytes']} B, graph {r['graph_bytes']} B")


if __name__ == "__main__":
    main()

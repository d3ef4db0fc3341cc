#!/usr/bin/env python3
"""Which edge-sdk modules does one payload cross, from ``edge-sdk distill`` to ``edge-sdk device train``?

Runs, in this process, ``edge-sdk distill`` (QuADD, 36x by default, small iteration/step counts: the path, not
the result, is measured) and then ``edge-sdk device train`` with no flags on its output, with a profiler hook that
records the module of every Python function called. Prints the ``edge_sdk.*`` modules whose functions ran (code
that runs at import — module and class bodies — is not counted), grouped by layer, and their count; ``--json``
writes the list.

    .venv/bin/python tools/data_path_modules.py [--data TRAIN.h5 --test TEST.h5] [--json out.json]

Run it on two checkouts to compare (docs/architecture.md gives the figures and the command for each).
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT / "datasets" / "3gpp" / "reference"


def trace(argv_list: list[list[str]]) -> set[str]:
    """Run each ``edge-sdk`` argv in turn; the ``edge_sdk.*`` modules whose functions were called."""
    from edge_sdk.cli.main import main

    seen: set[str] = set()

    def prof(frame, event, arg):  # noqa: ANN001 - sys.setprofile signature
        if event == "call":
            name = frame.f_globals.get("__name__", "")
            # functions only (CO_OPTIMIZED): module bodies and class bodies that run at import are not counted
            if name.startswith("edge_sdk") and frame.f_code.co_flags & inspect.CO_OPTIMIZED:
                seen.add(name)

    for argv in argv_list:
        sys.setprofile(prof)
        try:
            rc = main(argv)
        finally:
            sys.setprofile(None)
        if rc != 0:
            raise SystemExit(f"edge-sdk {' '.join(argv)} failed with exit code {rc}")
    return seen


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REF / "train.h5")
    ap.add_argument("--test", type=Path, default=REF / "test.h5")
    ap.add_argument("--compression", default="36x")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="data-path-") as tmp:
        out = Path(tmp) / "run"
        distill = ["distill", "--data", str(a.data), "--test", str(a.test), "--method", "quadd", "--compression",
                   a.compression, "--iterations", "2", "--seeds", "1", "--steps", "20", "--no-progress",
                   "--out", str(out)]
        device = ["device", "train", "--payload", str(out / "payload.epl"), "--graph", str(out / "graph.onnx"),
                  "--eval", str(a.test), "--quiet", "--out", str(Path(tmp) / "device")]
        mods = sorted(trace([distill, device]))
    layers: dict[str, list[str]] = {}
    for m in mods:
        part = m.split(".")[1] if m.count(".") else "edge_sdk"
        layer = {"server": "server", "device": "device", "cli": "cli"}.get(part, "core")
        layers.setdefault(layer, []).append(m)
    for layer in ("cli", "core", "server", "device"):
        print(f"{layer} ({len(layers.get(layer, []))}): {', '.join(layers.get(layer, []))}")
    print(f"total: {len(mods)} modules")
    if a.json is not None:
        a.json.write_text(json.dumps({"modules": mods, "count": len(mods)}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

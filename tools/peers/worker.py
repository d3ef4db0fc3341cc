"""One training runtime ("peer") in its own venv, driven by tools/bench_peers.py over stdin/stdout.

Each peer module ``tools/peers/peer_<name>.py`` (stdlib + numpy + its runtime only; nothing from this repo is
importable in a peer venv except in the edge-sdk venv) defines:

* ``OPTIMIZERS``: the optimizers its training API offers (``{"sgd", "adam"}`` or a subset), with
  ``UNSUPPORTED_WHY`` explaining any missing one;
* ``build(cases)`` (optional): write each case's ``artifact`` (the runtime's model file) — run once, in the
  peer's build venv;
* ``Trainer(case, data)``: the model from the case's initial parameters; ``run(batch_ids) -> losses`` takes one
  optimizer step per id (a row of ``data.batches``) in order and returns each step's loss.

Commands (one JSON object per line on stdin, one JSON answer per line on stdout):
``{"op": "setup", "case": {...}}`` -> ``{"ok": true, "info": {...}}``;
``{"op": "parity", "steps": N}`` -> the losses of N steps from the initial parameters (a fresh trainer);
``{"op": "time", "steps": N}`` -> ``{"seconds": wall time of N steps}`` (the trainer keeps training);
``{"op": "rss"}`` -> peak RSS (MiB) of this process so far; ``{"op": "quit"}``.

Other entry points: ``worker.py build <peer> <cases.json>``; ``worker.py rss <peer> <case.json> <steps>``
(a fresh process that sets up one case, trains ``steps`` steps and prints its peak RSS).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent


@dataclass
class Data:
    """The shared training data of a case: dequantized features, labels, batch index rows, initial params."""

    x: np.ndarray  # float32 [N, D]
    y: np.ndarray  # int64 [N]
    batches: np.ndarray  # int64 [S, B]: step s trains on rows batches[s] (sorted)
    params: dict[str, np.ndarray]  # fc{i}.weight [out, in], fc{i}.bias [out]

    @classmethod
    def load(cls, case: dict[str, Any]) -> Data:
        with np.load(case["data"]) as z:
            x, y = z["x"], z["y"]
            params = {k[2:]: z[k] for k in z.files if k.startswith("p:")}
        return cls(x, y, np.load(case["batches"]), params)

    def batch(self, s: int) -> tuple[np.ndarray, np.ndarray]:
        rows = self.batches[s % len(self.batches)]
        return np.ascontiguousarray(self.x[rows]), np.ascontiguousarray(self.y[rows])

    def layer_params(self) -> list[tuple[np.ndarray, np.ndarray]]:
        n = len(self.params) // 2
        return [(self.params[f"fc{i}.weight"], self.params[f"fc{i}.bias"]) for i in range(n)]


def peak_rss_mb() -> float:
    """VmHWM of this process (MiB)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def load_peer(name: str) -> Any:
    sys.path.insert(0, str(HERE))
    return importlib.import_module("peer_" + name.replace("-", "_"))


def serve(name: str) -> None:
    peer = load_peer(name)
    out = sys.stdout
    sys.stdout = sys.stderr  # runtimes that print must not corrupt the protocol
    case: dict[str, Any] = {}
    data: Data | None = None
    trainer: Any = None
    step = 0

    def answer(obj: dict[str, Any]) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    for line in sys.stdin:
        msg = json.loads(line)
        op = msg["op"]
        try:
            if op == "quit":
                answer({"ok": True})
                return
            if op == "setup":
                case, step = msg["case"], 0
                data = Data.load(case)
                trainer = peer.Trainer(case, data)
                answer({"ok": True, "info": getattr(trainer, "info", {})})
            elif op == "parity":
                assert data is not None
                fresh = peer.Trainer(case, data)
                losses = fresh.run(list(range(int(msg["steps"]))))
                answer({"ok": True, "losses": [float(v) for v in losses]})
            elif op == "time":
                n = int(msg["steps"])
                ids = [(step + i) for i in range(n)]
                t0 = time.perf_counter()
                losses = trainer.run(ids)
                dt = time.perf_counter() - t0
                step += n
                answer({"ok": True, "seconds": dt, "last_loss": float(losses[-1])})
            elif op == "rss":
                answer({"ok": True, "peak_rss_mb": peak_rss_mb()})
            else:
                answer({"ok": False, "error": f"unknown op {op!r}"})
        except Exception as exc:  # noqa: BLE001 - report to the driver, keep serving
            answer({"ok": False, "error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()})


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "serve":
        serve(argv[1])
        return 0
    if len(argv) >= 3 and argv[0] == "build":
        peer = load_peer(argv[1])
        cases = json.loads(Path(argv[2]).read_text())
        peer.build(cases)
        return 0
    if len(argv) >= 4 and argv[0] == "rss":
        peer = load_peer(argv[1])
        case = json.loads(Path(argv[2]).read_text())
        data = Data.load(case)
        trainer = peer.Trainer(case, data)
        losses = trainer.run(list(range(int(argv[3]))))
        print(json.dumps({"peak_rss_mb": peak_rss_mb(), "last_loss": float(losses[-1]), "pid": os.getpid()}))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

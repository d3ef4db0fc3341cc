"""The machine's limit: only the matmuls of one training step, in numpy (its BLAS), at the step's shapes —
per layer the forward ``X W^T`` ``[B, in] x [in, out]``, the weight gradient ``dH^T X`` and, above the first
layer, the input gradient ``dH W``. Nothing else (no activation, loss or optimizer), so a runtime's step time
can only approach it. Threads: ``OPENBLAS_NUM_THREADS``/``OMP_NUM_THREADS`` set before numpy loads (the driver
starts this worker with them). ``info`` also gives the 512x512x512 sgemm rate for reference.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

OPTIMIZERS = {"sgd", "adam"}
UNSUPPORTED_WHY: dict[str, str] = {}
PARITY = False  # computes no update


def step_flops(dims: list[int], batch: int) -> int:
    """Matmul FLOPs of one training step of an MLP with layer widths ``dims`` (2 per multiply-add)."""
    pairs = [dims[i] * dims[i + 1] for i in range(len(dims) - 1)]
    return 2 * batch * (2 * sum(pairs) + sum(pairs[1:]))


def sgemm_gflops(n: int = 512, reps: int = 20) -> float:
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    a @ a
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ a
        ts.append(time.perf_counter() - t0)
    return 2 * n**3 / float(np.median(ts)) / 1e9


class Trainer:
    def __init__(self, case: dict[str, Any], data: Any) -> None:
        rng = np.random.default_rng(0)
        dims, b = [int(d) for d in case["dims"]], int(case["batch"])
        self.mats = []
        for i in range(len(dims) - 1):
            x = rng.standard_normal((b, dims[i])).astype(np.float32)
            w = rng.standard_normal((dims[i + 1], dims[i])).astype(np.float32)
            g = rng.standard_normal((b, dims[i + 1])).astype(np.float32)
            self.mats.append((i, x, w, g))
        self.info = {"sgemm512_gflops": sgemm_gflops(), "step_mflop": step_flops(dims, b) / 1e6}

    def run(self, ids: list[int]) -> list[float]:
        for _ in ids:
            for i, x, w, g in self.mats:
                x @ w.T
                g.T @ x
                if i > 0:
                    g @ w
        return [float("nan")] * len(ids)

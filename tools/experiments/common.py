"""Shared helpers for the accuracy-per-byte experiments (issue #11, phase 1).

Everything here is torch on CPU, one process, small MLPs: data loading (cached npz of the reference beam
task), a stratified validation split carved from the TRAINING set, a training loop with the optimizers the
device graph implements (SGD with momentum / Adam, coupled L2 weight decay, constant or cosine schedule),
validation curves for early stopping, and test scoring. Results are written as JSON by the experiment
scripts; nothing here reads the test set except :func:`test_top1`.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from edge_sdk.modelspec import ModelSpec, epoch_order, init_params

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("ACC_CACHE", "/work/scratch/acc/beam.npz"))
TRAIN_H5 = REPO / "datasets/3gpp/reference/train.h5"
TEST_H5 = REPO / "datasets/3gpp/reference/test.h5"


@dataclass
class Beam:
    X: np.ndarray  # fit part of the training set [N, 8]
    y: np.ndarray
    Xv: np.ndarray  # validation part (carved from training) [M, 8]
    yv: np.ndarray
    Xall: np.ndarray  # the whole training set
    yall: np.ndarray
    Xt: np.ndarray  # test
    yt: np.ndarray
    rsrp_t: np.ndarray
    spec: ModelSpec

    @property
    def full_bytes(self) -> int:
        return int(self.Xall.shape[0] * self.Xall.shape[1] * 4)


def load(val_frac: float = 0.15, split_seed: int = 0, hidden=(128, 128)) -> Beam:
    if CACHE.exists():
        z = np.load(CACHE)
        Xa, ya, Xt, yt, rt = z["X_train"], z["y_train"], z["X_test"], z["y_test"], z["rsrp_test"]
    else:
        from edge_sdk.server.datasets import load_beam

        d = load_beam(TRAIN_H5, TEST_H5)
        Xa, ya, Xt, yt, rt = d.X_train, d.y_train, d.X_test, d.y_test, d.rsrp_test
    rng = np.random.Generator(np.random.PCG64(split_seed + 424242))
    hold = []
    for c in np.unique(ya):
        idx = np.flatnonzero(ya == c)
        k = min(int(round(val_frac * len(idx))), len(idx) - 1)
        hold.append(rng.permutation(idx)[:k])
    h = np.sort(np.concatenate(hold))
    keep = np.setdiff1d(np.arange(len(ya)), h)
    spec = ModelSpec(kind="mlp", input_dim=int(Xa.shape[1]), num_classes=32, hidden=tuple(hidden))
    return Beam(Xa[keep], ya[keep], Xa[h], ya[h], Xa, ya, Xt, yt, rt, spec)


@dataclass(frozen=True)
class Recipe:
    optimizer: str = "adam"  # adam | sgd (momentum 0.9)
    lr: float = 1e-3
    steps: int = 2000
    batch_size: int = 128
    schedule: str = "constant"  # constant | cosine
    weight_decay: float = 0.0
    momentum: float = 0.9
    label_smoothing: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _params(spec: ModelSpec, seed: int) -> list[torch.Tensor]:
    return [torch.from_numpy(a).clone().requires_grad_(True) for a in init_params(spec, seed).values()]


def mlp(params: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    h = x
    n = len(params) // 2
    for i in range(n):
        h = F.linear(h, params[2 * i], params[2 * i + 1])
        if i < n - 1:
            h = torch.relu(h)
    return h


def train(spec: ModelSpec, X: np.ndarray, y: np.ndarray, seed: int, r: Recipe,
          eval_every: int = 0, Xv: np.ndarray | None = None, yv: np.ndarray | None = None,
          soft: np.ndarray | None = None, augment=None) -> tuple[list[torch.Tensor], list[tuple[int, float]]]:
    """Train a fresh MLP (init_params(spec, seed), batches in epoch_order) for ``r.steps`` updates.
    Returns the final params and, with ``eval_every``, the validation curve [(step, top1)]."""
    Xt = torch.from_numpy(np.ascontiguousarray(X, np.float32))
    yt = torch.from_numpy(np.asarray(y, np.int64))
    st = torch.from_numpy(np.ascontiguousarray(soft, np.float32)) if soft is not None else None
    p = _params(spec, seed)
    m = [torch.zeros_like(q) for q in p]
    v = [torch.zeros_like(q) for q in p]
    n = Xt.shape[0]
    curve: list[tuple[int, float]] = []
    Xvt = torch.from_numpy(Xv) if Xv is not None else None
    t, ep = 0, 0
    T = r.steps
    b1, b2, eps = 0.9, 0.999, 1e-8
    while t < T:
        order = torch.from_numpy(epoch_order(n, seed, ep))
        for s in range(0, n, r.batch_size):
            idx = order[s : s + r.batch_size]
            xb = Xt[idx] if augment is None else augment(Xt[idx], idx, t)
            logits = mlp(p, xb)
            if st is not None:
                loss = -(torch.softmax(st[idx], 1) * torch.log_softmax(logits, 1)).sum(1).mean()
            else:
                loss = F.cross_entropy(logits, yt[idx], label_smoothing=r.label_smoothing)
            grads = torch.autograd.grad(loss, p)
            lr = r.lr if r.schedule == "constant" else r.lr * 0.5 * (1 + math.cos(math.pi * t / T))
            with torch.no_grad():
                if r.optimizer == "sgd":
                    for q, g, b in zip(p, grads, m, strict=False):
                        g = g + r.weight_decay * q if r.weight_decay else g
                        b.mul_(r.momentum).add_(g)
                        q.sub_(lr * b)
                else:
                    bc1 = 1 - b1 ** (t + 1)
                    bc2 = 1 - b2 ** (t + 1)
                    for q, g, mm, vv in zip(p, grads, m, v, strict=False):
                        g = g + r.weight_decay * q if r.weight_decay else g
                        mm.mul_(b1).add_(g, alpha=1 - b1)
                        vv.mul_(b2).addcmul_(g, g, value=1 - b2)
                        q.sub_((lr / bc1) * mm / (vv.sqrt() / math.sqrt(bc2) + eps))
            t += 1
            if eval_every and t % eval_every == 0 and Xvt is not None:
                with torch.no_grad():
                    curve.append((t, float((mlp(p, Xvt).argmax(1).numpy() == yv).mean())))
            if t >= T:
                break
        ep += 1
    return [q.detach() for q in p], curve


@torch.no_grad()
def top1(p: list[torch.Tensor], X: np.ndarray, y: np.ndarray) -> float:
    return float((mlp(p, torch.from_numpy(np.ascontiguousarray(X, np.float32))).argmax(1).numpy() == y).mean())


@torch.no_grad()
def test_kpis(p: list[torch.Tensor], b: Beam) -> dict[str, float]:
    from edge_sdk.beam.kpis import beam_kpis

    s = mlp(p, torch.from_numpy(b.Xt)).numpy()
    k = beam_kpis(s, b.rsrp_t)
    return {kk: float(vv) for kk, vv in k.items()}


def mean_std(xs) -> tuple[float, float]:
    a = np.asarray(xs, float)
    return float(a.mean()), float(a.std())


def save(name: str, obj: Any) -> Path:
    out = REPO / "tools/experiments/results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=float))
    os.replace(tmp, path)
    return path


class Timer:
    def __enter__(self):
        self.t = time.perf_counter()
        return self

    def __exit__(self, *a):
        self.s = time.perf_counter() - self.t

"""The evaluation protocol shared by ``distill`` and ``quantize``: train fresh models on a compact set with
several seeds and report the mean and std of the task KPIs on the real test set.

API (also used by server/adq)::

    from edge_sdk.server.train_eval import EvalConfig, evaluate_compact, train_model, score_metrics
    cfg = EvalConfig(steps=2000, batch_size=128, lr=0.05, seeds=(0, 1, 2))
    res = evaluate_compact(spec, X, y, data, cfg)           # X float32 [N, D]; y int64 [N] or soft [N, C]
    res.mean["top1"], res.std["top1"], res.per_seed, res.seconds

``data`` is a :class:`edge_sdk.server.datasets.TaskData` (only ``X_test``, ``y_test``, ``rsrp_test`` are
read): beam tasks report ``edge_sdk.beam.kpis.beam_kpis`` (top1..top4, top1_1db, RSRP differences);
image tasks report ``top1`` (and ``top5`` when there are > 5 classes).

Protocol (identical for every method, reproducible on the device):

* parameters start from ``init_params(spec, seed)``;
* optimizer: SGD with momentum ``momentum`` and L2 weight decay ``weight_decay``, constant learning rate
  ``lr``, exactly ``torch.optim.SGD`` semantics (dampening 0, no Nesterov): ``d = g + wd * p``;
  ``buf = d`` (first step) else ``buf = momentum * buf + d``; ``p -= lr * buf`` (written out by hand so
  the device graph's SGD can be checked against it line by line);
* ``steps`` updates on mini-batches of ``batch_size``; epoch ``e`` visits the samples in the order
  ``epoch_order(N, seed, e)``, cut into consecutive batches (the last batch of an epoch may be smaller);
  the run stops after exactly ``steps`` updates. A fixed number of *updates* (not epochs) is used so that a
  32-sample and a 20,000-sample set get the same optimisation effort — and "same epochs" for every method
  would otherwise mean 600x more compute for the full set;
* loss: cross-entropy with hard labels, or with the soft targets ``softmax(y_soft)`` when ``y`` is a float
  ``[N, C]`` array of logits (MTT soft labels);
* the model of the **last** step is evaluated once on the test set (no best-epoch-on-test selection).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from edge_sdk.server.models import forward, init_torch_params
from torch import Tensor

from edge_sdk.errors import ConfigError
from edge_sdk.modelspec import ModelSpec, epoch_order


@dataclass(frozen=True)
class EvalConfig:
    """Training recipe for evaluation runs (the same for every method)."""

    steps: int = 2000
    batch_size: int = 128
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    seeds: tuple[int, ...] = (0, 1, 2)
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ConfigError("EvalConfig needs steps >= 1, batch_size >= 1 and lr > 0")
        if len(self.seeds) < 1:
            raise ConfigError("EvalConfig needs at least one seed (the protocol asks for >= 3)")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["seeds"] = list(self.seeds)
        return d

    def device_recipe(self) -> dict[str, Any]:
        """The training recipe as stored in a payload's ``task["train"]`` (read by ``edge_sdk.device``'s
        ``TrainConfig``): SGD with momentum and coupled weight decay, constant learning rate, this batch size.
        ``steps`` is the server's update count; a device trains whole epochs (``epochs`` chosen by the caller)."""
        return {"optimizer": "sgd", "lr": self.lr, "momentum": self.momentum, "weight_decay": self.weight_decay,
                "batch_size": self.batch_size, "schedule": "constant", "steps": self.steps}


@dataclass
class EvalResult:
    """KPIs of ``len(seeds)`` fresh models: per seed, mean and std (population std, ddof=0)."""

    per_seed: list[dict[str, float]]
    mean: dict[str, float]
    std: dict[str, float]
    seeds: list[int]
    seconds: float
    config: dict[str, Any] = field(default_factory=dict)

    def kpis(self) -> dict[str, dict[str, Any]]:
        """``{kpi: {"mean", "std", "per_seed"}}`` (the report.json ``kpis`` block)."""
        return {
            k: {"mean": self.mean[k], "std": self.std[k], "per_seed": [s[k] for s in self.per_seed]}
            for k in self.mean
        }


def _batches(n: int, seed: int, batch_size: int, steps: int):
    done, epoch = 0, 0
    while True:
        order = epoch_order(n, seed, epoch)
        for s in range(0, n, batch_size):
            yield order[s : s + batch_size]
            done += 1
            if done >= steps:
                return
        epoch += 1


def train_model(spec: ModelSpec, X: np.ndarray | Tensor, y: np.ndarray | Tensor, seed: int, cfg: EvalConfig) -> dict[str, Tensor]:
    """Train one fresh model (protocol in the module docstring); returns the final parameters."""
    dev = torch.device(cfg.device)
    Xt = torch.as_tensor(np.asarray(X, np.float32) if not isinstance(X, Tensor) else X.detach()).float().to(dev)
    yt = torch.as_tensor(y if isinstance(y, Tensor) else np.asarray(y)).to(dev)
    if Xt.shape[0] == 0:
        raise ConfigError("cannot train on an empty compact set")
    if Xt.shape[0] != yt.shape[0]:
        raise ConfigError(f"X has {Xt.shape[0]} rows but labels have {yt.shape[0]}")
    soft = yt.is_floating_point()
    if soft:
        target_all = torch.softmax(yt.float(), dim=1)
    else:
        target_all = yt.long()
    params = init_torch_params(spec, seed, dev, requires_grad=True)
    names = list(params)
    bufs: list[Tensor | None] = [None] * len(names)
    for idx in _batches(Xt.shape[0], seed, cfg.batch_size, cfg.steps):
        it = torch.from_numpy(idx).to(dev)
        loss = F.cross_entropy(forward(spec, params, Xt[it]), target_all[it])
        grads = torch.autograd.grad(loss, [params[n] for n in names])
        with torch.no_grad():
            for i, (n, g) in enumerate(zip(names, grads, strict=True)):
                p = params[n]
                d_p = g + cfg.weight_decay * p if cfg.weight_decay else g
                if cfg.momentum:
                    bufs[i] = d_p.clone() if bufs[i] is None else bufs[i].mul_(cfg.momentum).add_(d_p)
                    d_p = bufs[i]
                p.sub_(cfg.lr * d_p)
    return {k: v.detach() for k, v in params.items()}


@torch.no_grad()
def predict(spec: ModelSpec, params: dict[str, Tensor], X: np.ndarray, batch: int = 4096) -> np.ndarray:
    """Logits float32 ``[N, C]`` for test inputs (batched)."""
    dev = next(iter(params.values())).device
    out = []
    for s in range(0, X.shape[0], batch):
        xb = torch.from_numpy(np.ascontiguousarray(X[s : s + batch], np.float32)).to(dev)
        out.append(forward(spec, params, xb).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, spec.num_classes), np.float32)


def score_metrics(scores: np.ndarray, y_test: np.ndarray, rsrp_test: np.ndarray | None = None) -> dict[str, float]:
    """KPIs of ``scores`` [N, C]: beam KPIs when ``rsrp_test`` [N, C] is given, else top-1 (/top-5) accuracy."""
    if rsrp_test is not None:
        from edge_sdk.beam.kpis import beam_kpis

        return {k: float(v) for k, v in beam_kpis(scores, rsrp_test).items()}
    pred = scores.argmax(1)
    out = {"top1": float((pred == y_test).mean())}
    if scores.shape[1] > 5:
        top5 = np.argsort(-scores, axis=1)[:, :5]
        out["top5"] = float((top5 == y_test[:, None]).any(1).mean())
    return out


def evaluate_compact(spec: ModelSpec, X, y, data, cfg: EvalConfig, progress: bool = False) -> EvalResult:
    """Train ``len(cfg.seeds)`` fresh models on ``(X, y)`` and score each on ``data``'s real test set."""
    t0 = time.perf_counter()
    per_seed = []
    seeds = list(cfg.seeds)
    it = seeds
    if progress:
        from tqdm import tqdm

        it = tqdm(seeds, desc="eval seeds", leave=False)
    for seed in it:
        params = train_model(spec, X, y, seed, cfg)
        scores = predict(spec, params, data.X_test)
        per_seed.append(score_metrics(scores, data.y_test, getattr(data, "rsrp_test", None)))
    keys = list(per_seed[0])
    mean = {k: float(np.mean([p[k] for p in per_seed])) for k in keys}
    std = {k: float(np.std([p[k] for p in per_seed])) for k in keys}
    return EvalResult(per_seed, mean, std, seeds, time.perf_counter() - t0, cfg.to_dict())

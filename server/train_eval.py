"""The evaluation protocol shared by ``distill`` and ``quantize``: train fresh models on a compact set with
several seeds and report the mean and std of the task KPIs on the real test set.

API (also used by server/adq)::

    from edge_sdk.modelspec import TrainRecipe
    from edge_sdk.server.train_eval import EvalConfig, evaluate_compact, train_model, score_metrics
    cfg = EvalConfig(recipe=TrainRecipe(steps=2000, batch_size=128, lr=0.05), seeds=(0, 1, 2))
    res = evaluate_compact(spec, X, y, data, cfg, soft=None)   # X float32 [N, D]; y int64 [N]; soft [N, C] logits
    res.mean["top1"], res.std["top1"], res.per_seed, res.seconds
    params = train_model(spec, X, y, seed, recipe, soft=None, device="cpu")   # one run of the recipe

``data`` is a :class:`edge_sdk.server.datasets.TaskData` (only ``X_test``, ``y_test``, ``rsrp_test`` are
read): beam tasks report ``edge_sdk.beam.kpis.beam_kpis`` (top1..top4, top1_1db, RSRP differences);
image tasks report ``top1`` (and ``top5`` when there are > 5 classes).

Protocol (identical for every method, reproduced by the device): one run of the
:class:`edge_sdk.modelspec.TrainRecipe` per seed — initial parameters ``init_params(spec, seed)``, batches in
``epoch_order``, exactly ``recipe.steps`` updates, the recipe's optimizer, schedule and loss (all defined in
:mod:`edge_sdk.modelspec`; the optimizers are written out by hand so the device graph's update can be checked
against them line by line). A fixed number of *updates* (not epochs) is used so that a 32-sample and a
20,000-sample set get the same optimisation effort. The model of the **last** update is evaluated once on the
test set (no best-epoch-on-test selection). The payload carries ``recipe.to_payload()`` as ``task["train"]``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from edge_sdk.errors import ConfigError
from edge_sdk.modelspec import ModelSpec, TrainRecipe, iter_batches
from edge_sdk.server.models import forward, init_torch_params


@dataclass(frozen=True)
class EvalConfig:
    """How compact sets are evaluated: one run of ``recipe`` per seed, on a torch ``device``."""

    recipe: TrainRecipe = TrainRecipe()
    seeds: tuple[int, ...] = (0, 1, 2)
    device: str = "cpu"

    def __post_init__(self) -> None:
        if not isinstance(self.recipe, TrainRecipe):
            raise ConfigError(f"EvalConfig.recipe must be a TrainRecipe, got {type(self.recipe).__name__}")
        if len(self.seeds) < 1:
            raise ConfigError("EvalConfig needs at least one seed (the protocol asks for >= 3)")

    def to_dict(self) -> dict[str, Any]:
        return {"recipe": self.recipe.to_dict(), "seeds": list(self.seeds), "device": self.device}


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


def _update(r: TrainRecipe, t: int, ps: list[Tensor], grads: list[Tensor], state: list[list[Tensor]]) -> None:
    """One optimizer update of the tensors ``ps`` in place (torch.optim.SGD / Adam semantics with L2 weight decay, the
    formulas the ONNX graphs repeat: ``server/onnx_export/step.optimizer_update``), every tensor at once with
    ``torch._foreach_*`` (the same element-wise operations in the same order as one tensor at a time, so the
    result is bit-identical, with ~6x fewer Python-level calls). ``state`` starts empty and is filled on the first
    update (SGD: [momentum buffers]; Adam: [exp_avg list, exp_avg_sq list])."""
    lr = r.lr_at(t)
    d_p = torch._foreach_add(grads, torch._foreach_mul(ps, r.weight_decay)) if r.weight_decay else grads
    if r.optimizer == "sgd":
        if r.momentum:
            if not state:
                state.append([g.clone() for g in d_p])
            else:
                torch._foreach_mul_(state[0], r.momentum)
                torch._foreach_add_(state[0], d_p)
            d_p = state[0]
        torch._foreach_sub_(ps, torch._foreach_mul(d_p, lr))
        return
    if not state:
        state.extend([[torch.zeros_like(p) for p in ps], [torch.zeros_like(p) for p in ps]])
    m, v = state
    torch._foreach_mul_(m, r.beta1)
    torch._foreach_add_(m, d_p, alpha=1.0 - r.beta1)
    torch._foreach_mul_(v, r.beta2)
    torch._foreach_addcmul_(v, d_p, d_p, value=1.0 - r.beta2)
    k = t + 1
    step_size = lr / (1.0 - r.beta1**k)
    denom = torch._foreach_sqrt(v)
    torch._foreach_div_(denom, (1.0 - r.beta2**k) ** 0.5)
    torch._foreach_add_(denom, r.eps)
    upd = torch._foreach_div(m, denom)
    torch._foreach_mul_(upd, step_size)
    torch._foreach_sub_(ps, upd)


def _loss(logits: Tensor, y: Tensor, soft: Tensor | None, soft_weight: float, label_smoothing: float = 0.0) -> Tensor:
    """The recipe's loss (edge_sdk.modelspec): hard CE against the label-smoothed target, soft CE against
    ``softmax(soft)``, or their mix. ``label_smoothing = 0`` takes torch's plain path (bit-identical to before)."""
    if soft is None or soft_weight != 1.0:
        hard = (F.cross_entropy(logits, y, label_smoothing=label_smoothing) if label_smoothing > 0.0
                else F.cross_entropy(logits, y))
        if soft is None:
            return hard
    soft_ce = F.cross_entropy(logits, torch.softmax(soft, dim=1))
    if soft_weight == 1.0:
        return soft_ce
    return (1.0 - soft_weight) * hard + soft_weight * soft_ce


def train_model(spec: ModelSpec, X: np.ndarray | Tensor, y: np.ndarray | Tensor, seed: int, recipe: TrainRecipe, *,
                soft: np.ndarray | Tensor | None = None, device: str = "cpu") -> dict[str, Tensor]:
    """One run of ``recipe`` (edge_sdk.modelspec) with ``seed`` on ``X`` float32 [N, D], hard labels ``y`` int [N]
    and optional soft-label logits ``soft`` [N, C]; returns the final parameters (no argument is modified)."""
    if not isinstance(recipe, TrainRecipe):
        raise ConfigError(f"train_model needs a TrainRecipe, got {type(recipe).__name__}")
    dev = torch.device(device)
    Xt = torch.as_tensor(np.asarray(X, np.float32) if not isinstance(X, Tensor) else X.detach()).float().to(dev)
    yt = torch.as_tensor(np.asarray(y) if not isinstance(y, Tensor) else y.detach()).long().to(dev)
    if Xt.shape[0] == 0:
        raise ConfigError("cannot train on an empty compact set")
    if Xt.shape[0] != yt.shape[0]:
        raise ConfigError(f"X has {Xt.shape[0]} rows but labels have {yt.shape[0]}")
    st = None
    if soft is not None:
        st = torch.as_tensor(np.asarray(soft, np.float32) if not isinstance(soft, Tensor) else soft.detach()).float().to(dev)
        if st.shape[0] != Xt.shape[0]:
            raise ConfigError(f"X has {Xt.shape[0]} rows but soft labels have {st.shape[0]}")
    r = recipe
    params = init_torch_params(spec, seed, dev, requires_grad=True)
    names = list(params)
    plist = [params[n] for n in names]
    state: list[list[Tensor]] = []
    for t, _, idx in iter_batches(Xt.shape[0], r.batch_size, seed, 0, r.steps):
        it = torch.from_numpy(idx).to(dev)
        loss = _loss(forward(spec, params, Xt[it]), yt[it], st[it] if st is not None else None, r.soft_weight,
                     r.label_smoothing)
        grads = torch.autograd.grad(loss, plist)
        with torch.no_grad():
            _update(r, t, plist, list(grads), state)
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


def evaluate_compact(spec: ModelSpec, X: Any, y: Any, data: Any, cfg: EvalConfig, progress: bool = False, *,
                     soft: Any = None) -> EvalResult:
    """Train ``len(cfg.seeds)`` fresh models on ``(X, y[, soft])`` (one :func:`train_model` run of ``cfg.recipe``
    per seed) and score each on ``data``'s real test set."""
    t0 = time.perf_counter()
    per_seed = []
    seeds = list(cfg.seeds)
    it = seeds
    if progress:
        from edge_sdk.progress import progress_bar

        it = progress_bar(seeds, desc="eval seeds", leave=False)
    for seed in it:
        params = train_model(spec, X, y, seed, cfg.recipe, soft=soft, device=cfg.device)
        scores = predict(spec, params, data.X_test)
        per_seed.append(score_metrics(scores, data.y_test, getattr(data, "rsrp_test", None)))
    keys = list(per_seed[0])
    mean = {k: float(np.mean([p[k] for p in per_seed])) for k in keys}
    std = {k: float(np.std([p[k] for p in per_seed])) for k in keys}
    return EvalResult(per_seed, mean, std, seeds, time.perf_counter() - t0, {**cfg.to_dict(), "runtime": "torch"})


def evaluate_with_graph(payload_path: Any, graph_path: Any, data: Any, cfg: EvalConfig,
                        progress: bool = False) -> EvalResult:
    """The protocol run by the device runtime on the written files: per seed, ``edge_sdk.device.trainer.Trainer``
    trains on ``payload_path`` with ``graph_path`` (the payload's recipe, which must be ``cfg.recipe``;
    onnxruntime, 1 thread) and the standalone inference model is scored on ``data``'s test set — exactly what
    ``edge-sdk device train --seed s --eval TEST.h5`` computes, so a device reproduces each per-seed figure.

    Why not torch: a device and torch agree to ~1e-7 per step, but a pre-activation that lands within float
    rounding of a ReLU kink takes different branches in the two, and SGD amplifies such a difference to
    seed-to-seed spread (measured: 1.2 Top-1 points after 2,000 steps on a 36x payload, docs/device.md).
    Evaluating with the device's own runtime makes the report the number a device gets."""
    from edge_sdk.device.evaluate import inference_session
    from edge_sdk.device.evaluate import predict as ort_predict
    from edge_sdk.device.trainer import Trainer

    t0 = time.perf_counter()
    per_seed = []
    seeds = list(cfg.seeds)
    it: Any = seeds
    if progress:
        from edge_sdk.progress import progress_bar

        it = progress_bar(seeds, desc="eval seeds (onnxruntime)", leave=False)
    for seed in it:
        tr = Trainer(payload_path, graph_path, seed=int(seed))
        if tr.config.recipe != cfg.recipe:
            raise ConfigError(f"the payload's recipe {tr.config.recipe} is not the evaluation recipe {cfg.recipe}")
        st = tr.train()
        scores = ort_predict(inference_session(tr.model_bytes(st.params)), data.X_test)
        per_seed.append(score_metrics(scores, data.y_test, getattr(data, "rsrp_test", None)))
    keys = list(per_seed[0])
    mean = {k: float(np.mean([p[k] for p in per_seed])) for k in keys}
    std = {k: float(np.std([p[k] for p in per_seed])) for k in keys}
    return EvalResult(per_seed, mean, std, seeds, time.perf_counter() - t0, {**cfg.to_dict(), "runtime": "onnxruntime"})

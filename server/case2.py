"""BM-Case2 temporal beam prediction: data splits, recipe selection on validation, and evaluation vs baselines.

API (used by ``tools/case2_eval.py``, which makes the dataset card's BM-Case2 tables)::

    from edge_sdk.server.case2 import Candidate, Recipe, split_by_trajectory, task_arrays, select, train
    tr, val = split_by_trajectory(train_ds, val_share=0.2, seed=0)       # whole trajectories to validation
    a_tr, a_val, a_te = (task_arrays(spec, d) for d in (tr, val, test_ds))  # spec: BeamTaskSpec fitted on tr
    best, table = select(candidates, a_tr, a_val)                        # recipe search on validation only
    fit = train(best.model_spec(spec), a_tr, a_val, best.recipe, seed=1)  # fit.params, fit.epochs, fit.val_top1

Protocol (every number in the card follows it):

* training trajectories are split into train / validation **by trajectory** (windows of one trajectory never sit
  on both sides); the test file is another run (other seed) and is only touched by the final evaluation;
* a candidate = model (kind ``mlp`` or ``gru``, widths) + recipe (Adam, learning rate, weight decay, label
  smoothing, batch, at most ``max_epochs`` with early stopping: ``patience`` epochs without a better validation
  Top-1). :func:`select` trains every candidate once (seed 0) and ranks them by validation Top-1;
* the chosen candidate is retrained with seeds 1, 2, 3; each run keeps the epoch with the best validation Top-1
  and is scored once on the test set (mean and std of the 3 runs reported);
* models start from ``init_params(model_spec, seed)`` (the contract the device uses) and batches follow
  ``epoch_order(N, seed, epoch)``; the loss is cross-entropy on the Top-1 label of the target instant.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from edge_sdk.server.models import forward, init_torch_params

from edge_sdk.beam.dataset import BeamDataset
from edge_sdk.beam.kpis import beam_kpis
from edge_sdk.beam.taskspec import BeamTaskSpec
from edge_sdk.errors import ConfigError, DatasetError
from edge_sdk.modelspec import ModelSpec, epoch_order


@dataclass(frozen=True)
class Recipe:
    """Adam training with early stopping on the validation Top-1."""

    lr: float = 1e-3
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    batch_size: int = 512
    max_epochs: int = 40
    patience: int = 6

    def __post_init__(self) -> None:
        if not (self.lr > 0 and self.batch_size >= 1 and self.max_epochs >= 1 and self.patience >= 1):
            raise ConfigError(f"invalid recipe {self}")


@dataclass(frozen=True)
class Candidate:
    """A model kind + widths + recipe; ``model_spec(task)`` builds the ModelSpec for a task."""

    kind: str
    hidden: tuple[int, ...]
    recipe: Recipe = field(default_factory=Recipe)

    def model_spec(self, task: BeamTaskSpec) -> ModelSpec:
        if self.kind == "gru":
            return ModelSpec(kind="gru", input_dim=task.input_dim, num_classes=task.num_classes,
                             hidden=self.hidden, in_shape=(task.history, task.n_setb))
        return ModelSpec(kind=self.kind, input_dim=task.input_dim, num_classes=task.num_classes, hidden=self.hidden)

    def label(self) -> str:
        r = self.recipe
        return (f"{self.kind}{'-'.join(map(str, self.hidden))} lr={r.lr:g} wd={r.weight_decay:g} "
                f"ls={r.label_smoothing:g}")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "hidden": list(self.hidden), "recipe": asdict(self.recipe)}


@dataclass
class Arrays:
    """Model inputs ``x`` [M, D] float32, labels ``y`` [M] int64, ideal Set A RSRP at the target ``rsrp`` [M, n_tx]."""

    x: np.ndarray
    y: np.ndarray
    rsrp: np.ndarray


@dataclass
class Fit:
    """A trained model: parameters of the best validation epoch, that epoch (1-based), its validation Top-1,
    the per-epoch validation Top-1 and the wall time."""

    params: dict[str, torch.Tensor]
    epochs: int
    val_top1: float
    curve: list[float]
    seconds: float


def split_by_trajectory(ds: BeamDataset, val_share: float = 0.2, seed: int = 0) -> tuple[BeamDataset, BeamDataset]:
    """(train, validation) of a BM-Case2 dataset, whole trajectories to each side (a seeded draw)."""
    if ds.traj_id is None:
        raise DatasetError("a BM-Case2 dataset (traj_id) is needed")
    if not 0.0 < val_share < 1.0:
        raise ConfigError("val_share must be in (0, 1)")
    ids = np.unique(ds.traj_id)
    rng = np.random.Generator(np.random.PCG64([int(seed), 0xCA5E2]))
    val_ids = rng.choice(ids, size=max(1, int(round(val_share * len(ids)))), replace=False)
    is_val = np.isin(ds.traj_id, val_ids)
    return ds.subset(~is_val), ds.subset(is_val)


def task_arrays(spec: BeamTaskSpec, ds: BeamDataset) -> Arrays:
    """The examples of ``ds`` under ``spec`` (inputs, Top-1 labels, target RSRP for the KPIs)."""
    return Arrays(np.ascontiguousarray(spec.inputs(ds), np.float32), np.asarray(spec.labels(ds), np.int64),
                  np.asarray(spec.target_rsrp(ds), np.float32))


@torch.no_grad()
def scores(spec: ModelSpec, params: dict[str, torch.Tensor], x: np.ndarray, batch: int = 8192) -> np.ndarray:
    """Logits float32 [M, n_tx]."""
    out = [forward(spec, params, torch.from_numpy(x[s:s + batch])).numpy() for s in range(0, len(x), batch)]
    return np.concatenate(out) if out else np.zeros((0, spec.num_classes), np.float32)


def _top1(spec: ModelSpec, params: dict[str, torch.Tensor], a: Arrays) -> float:
    return float((scores(spec, params, a.x).argmax(1) == a.y).mean())


def train(mspec: ModelSpec, tr: Arrays, val: Arrays, recipe: Recipe, seed: int) -> Fit:
    """Adam from ``init_params(mspec, seed)`` with early stopping on the validation Top-1 (module docstring)."""
    t0 = time.perf_counter()
    params = init_torch_params(mspec, seed, requires_grad=True)
    opt = torch.optim.Adam(params.values(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    x, y = torch.from_numpy(tr.x), torch.from_numpy(tr.y)
    best, best_ep, curve = -1.0, 0, []
    best_params = {k: v.detach().clone() for k, v in params.items()}
    for ep in range(recipe.max_epochs):
        order = torch.from_numpy(epoch_order(len(x), seed, ep))
        for s in range(0, len(x), recipe.batch_size):
            idx = order[s:s + recipe.batch_size]
            loss = F.cross_entropy(forward(mspec, params, x[idx]), y[idx], label_smoothing=recipe.label_smoothing)
            opt.zero_grad()
            loss.backward()
            opt.step()
        acc = _top1(mspec, params, val)
        curve.append(acc)
        if acc > best:
            best, best_ep = acc, ep + 1
            best_params = {k: v.detach().clone() for k, v in params.items()}
        elif ep + 1 - best_ep >= recipe.patience:
            break
    return Fit(best_params, best_ep, best, curve, time.perf_counter() - t0)


def select(candidates: list[Candidate], task: BeamTaskSpec, tr: Arrays, val: Arrays,
           seed: int = 0) -> tuple[Candidate, list[dict[str, Any]]]:
    """Train each candidate once (``seed``) and rank by validation Top-1; returns the best and the table."""
    if not candidates:
        raise ConfigError("no candidates to select from")
    rows = []
    for c in candidates:
        fit = train(c.model_spec(task), tr, val, c.recipe, seed)
        rows.append({"candidate": c.label(), "spec": c.to_dict(), "val_top1": fit.val_top1, "epochs": fit.epochs,
                     "seconds": round(fit.seconds, 1)})
    order = sorted(range(len(rows)), key=lambda i: -rows[i]["val_top1"])
    return candidates[order[0]], [rows[i] for i in order]


def evaluate(c: Candidate, task: BeamTaskSpec, tr: Arrays, val: Arrays, te: Arrays,
             seeds: tuple[int, ...] = (1, 2, 3)) -> dict[str, Any]:
    """Retrain ``c`` with ``seeds`` and report test KPIs per seed, mean and std (population)."""
    mspec = c.model_spec(task)
    per = []
    for s in seeds:
        fit = train(mspec, tr, val, c.recipe, s)
        k = beam_kpis(scores(mspec, fit.params, te.x), te.rsrp)
        per.append({**k, "seed": s, "epochs": fit.epochs, "val_top1": fit.val_top1})
    keys = [k for k in per[0] if k not in ("seed", "n")]
    return {"candidate": c.to_dict(), "label": c.label(), "params": mspec.num_params(), "per_seed": per,
            "mean": {k: float(np.mean([p[k] for p in per])) for k in keys},
            "std": {k: float(np.std([p[k] for p in per])) for k in keys}, "n_test": int(len(te.y))}


def default_candidates(max_epochs: int = 40) -> list[Candidate]:
    """The recipe grid searched on validation: MLP 256-256 and GRU-128 (skip from the latest step), Adam lr
    1e-3 / 3e-3, weight decay 0 / 1e-4, for each kind (separately ranked by the caller if it wants both)."""
    out = []
    for kind, hidden in (("mlp", (256, 256)), ("gru", (128,))):
        for lr in (1e-3, 3e-3):
            for wd in (0.0, 1e-4):
                out.append(Candidate(kind, hidden, Recipe(lr=lr, weight_decay=wd, max_epochs=max_epochs)))
    return out


def with_recipe(c: Candidate, **kw: Any) -> Candidate:
    """``c`` with recipe fields replaced."""
    return replace(c, recipe=replace(c.recipe, **kw))

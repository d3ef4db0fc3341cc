"""Coreset selection (dataset pruning) applied *before* quantization; compression multiplies
(keep 10 % then 16x quantization = 1/160 of the float32 bytes, i.e. 99.375 % ~ the paper's "99.3 %").

DeepCore-style: one small class per method and a registry, ``get_method(name).select(...)``.

* ``random``  uniform random subset.
* ``el2n``    EL2N (Paul et al. 2021): score = ||softmax(f(x)) - onehot(y)||_2 averaged over ``n_models``
              models trained ``epochs`` epochs from different seeds; keeps the highest-scoring (hardest).
* ``ccs``     Coverage-centric coreset selection (Zheng et al. 2023, Alg. 1): drop the ``hard_cutoff``
              fraction with the highest difficulty score (here EL2N, the paper uses AUM/forgetting/EL2N),
              split the remaining score range into ``n_bins`` equal-width bins and fill the budget bin by bin
              from the smallest bin, each taking ``min(|bin|, remaining / bins_left)`` random samples.

``select`` returns sorted int64 indices into the input set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from edge_sdk.errors import ConfigError
from edge_sdk.modelspec import ModelSpec, TrainRecipe
from edge_sdk.registry import Registry

from .training import logits, train_params


def keep_count(n: int, keep: float) -> int:
    """Number of samples kept for a fraction ``keep`` in (0, 1] (at least 1)."""
    if not 0.0 < keep <= 1.0:
        raise ConfigError(f"--keep must be a fraction in (0, 1], got {keep}")
    return max(1, int(round(keep * n)))


def el2n_scores(spec: ModelSpec, x: np.ndarray, y: np.ndarray, recipe: TrainRecipe, epochs: int = 3,
                n_models: int = 2, seed: int = 0) -> np.ndarray:
    """EL2N difficulty float64 [N] (higher = harder), models trained ``epochs`` passes of ``recipe``."""
    onehot = np.eye(spec.num_classes, dtype=np.float64)[np.asarray(y, np.int64)]
    acc = np.zeros(len(y))
    for m in range(n_models):
        params = train_params(spec, x, y, epochs, seed * 1000 + 17 + m, recipe)
        p = torch.softmax(torch.from_numpy(logits(spec, params, x)).double(), dim=1).numpy()
        acc += np.linalg.norm(p - onehot, axis=1)
    return acc / n_models


class CoresetMethod:
    """Base: pick ``keep_count(N, keep)`` indices; ``scores`` is the difficulty (higher = harder).
    Subclasses register in ``PRUNERS``; their settings are constructor arguments (frozen dataclasses)."""

    name = "base"
    needs_scores = False

    def select(self, n: int, keep: float, seed: int, scores: np.ndarray | None = None) -> np.ndarray:
        raise NotImplementedError


#: coreset pruning methods by name
PRUNERS: Registry[type[CoresetMethod]] = Registry("pruning method")


@PRUNERS.register("random")
class RandomPrune(CoresetMethod):
    name = "random"

    def select(self, n: int, keep: float, seed: int, scores: np.ndarray | None = None) -> np.ndarray:
        m = keep_count(n, keep)
        return np.sort(np.random.default_rng(seed).choice(n, m, replace=False)).astype(np.int64)


@PRUNERS.register("el2n")
class EL2NPrune(CoresetMethod):
    name = "el2n"
    needs_scores = True

    def select(self, n: int, keep: float, seed: int, scores: np.ndarray | None = None) -> np.ndarray:
        s = _check_scores(scores, n)
        m = keep_count(n, keep)
        return np.sort(np.argsort(-s, kind="stable")[:m]).astype(np.int64)


@PRUNERS.register("ccs")
@dataclass(frozen=True)
class CCSPrune(CoresetMethod):
    hard_cutoff: float = 0.1
    n_bins: int = 50
    name = "ccs"
    needs_scores = True

    def select(self, n: int, keep: float, seed: int, scores: np.ndarray | None = None) -> np.ndarray:
        s = _check_scores(scores, n)
        m = keep_count(n, keep)
        if not 0.0 <= self.hard_cutoff < 1.0:
            raise ConfigError(f"hard_cutoff must be in [0, 1), got {self.hard_cutoff}")
        rng = np.random.default_rng(seed)
        order = np.argsort(-s, kind="stable")
        n_cut = min(int(round(self.hard_cutoff * n)), n - m)  # never cut below the budget
        pool = order[n_cut:]
        ps = s[pool]
        lo, hi = float(ps.min()), float(ps.max())
        edges = np.linspace(lo, hi, self.n_bins + 1)
        bin_id = np.clip(np.searchsorted(edges, ps, side="right") - 1, 0, self.n_bins - 1)
        bins = [pool[bin_id == b] for b in range(self.n_bins)]
        bins = [b for b in bins if b.size]
        bins.sort(key=lambda b: b.size)
        chosen: list[np.ndarray] = []
        remaining = m
        for i, b in enumerate(bins):
            take = min(b.size, remaining // (len(bins) - i))
            if i == len(bins) - 1:
                take = min(b.size, remaining)
            if take:
                chosen.append(rng.choice(b, take, replace=False))
                remaining -= take
        return np.sort(np.concatenate(chosen)).astype(np.int64) if chosen else np.zeros(0, np.int64)


def _check_scores(scores: np.ndarray | None, n: int) -> np.ndarray:
    if scores is None:
        raise ConfigError("this pruning method needs difficulty scores (e.g. el2n_scores)")
    s = np.asarray(scores, np.float64).reshape(-1)
    if s.size != n or not np.all(np.isfinite(s)):
        raise ConfigError(f"scores must be {n} finite values, got {s.size}")
    return s


def get_method(name: str, hard_cutoff: float = 0.1) -> CoresetMethod:
    """Instantiate a pruning method by name (``random``, ``el2n``, ``ccs``) with its settings (``hard_cutoff``:
    CCS's share of the hardest samples cut first)."""
    cls = PRUNERS.get(name)
    return cls(hard_cutoff=hard_cutoff) if issubclass(cls, CCSPrune) else cls()

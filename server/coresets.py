"""Which real rows to keep: the simple equal-byte baselines a practitioner tries first (issue #11).

Every selector takes the training rows ``X`` float32 [N, D] with labels ``y`` int [N], a per-class row count
``counts`` int [C] (``counts[c]`` rows of class ``c``; e.g. the class-proportional split of
``edge_sdk.server.budget.allocate_per_class``) and a seed, and returns ``(rows float32 [sum(counts), D],
labels int64 [sum(counts)])`` in class order. Registry ``SELECTORS`` (one function each):

* ``random``: uniformly random real rows of each class (a stratified random subset);
* ``kmeans``: per class, the ``counts[c]`` centroids of k-means (k-means++ seeding, Lloyd iterations; Arthur &
  Vassilvitskii 2007) - averages of real rows, not rows of the data set;
* ``kmedoids``: per class, the real row nearest to each k-means centroid (distinct rows);
* ``herding``: per class, kernel herding in input space (Welling 2009; the "herding" coreset of iCaRL / DeepCore):
  greedily add the row that keeps the running mean of the chosen rows closest to the class mean.

Cost: k-means is O(iterations * N_c * k * D) per class; the beam reference data (12,000 x 8) takes well under
a second for any budget on one core.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from edge_sdk.errors import ConfigError

Selector = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]
SELECTORS: dict[str, Selector] = {}
KMEANS_ITERS = 25


def register_selector(name: str) -> Callable[[Selector], Selector]:
    def deco(fn: Selector) -> Selector:
        if name in SELECTORS:
            raise ConfigError(f"selector {name!r} registered twice")
        SELECTORS[name] = fn
        return fn

    return deco


def _sqdist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum((a * a).sum(1)[:, None] - 2.0 * a @ b.T + (b * b).sum(1)[None, :], 0.0)


def kmeans(X: np.ndarray, k: int, rng: np.random.Generator, iters: int = KMEANS_ITERS) -> np.ndarray:
    """``k`` centroids float32 [k, D] of ``X`` [n, D] (k-means++ seeding, Lloyd; empty clusters keep their centre)."""
    n = X.shape[0]
    if k >= n:
        return X.astype(np.float32).copy()
    Xd = X.astype(np.float64)
    centres = [Xd[int(rng.integers(n))]]
    d2 = ((Xd - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        tot = d2.sum()
        j = int(rng.choice(n, p=d2 / tot)) if tot > 0 else int(rng.integers(n))
        centres.append(Xd[j])
        d2 = np.minimum(d2, ((Xd - Xd[j]) ** 2).sum(1))
    C = np.stack(centres)
    for _ in range(iters):
        a = _sqdist(Xd, C).argmin(1)
        cnt = np.bincount(a, minlength=k)
        new = np.zeros_like(C)
        np.add.at(new, a, Xd)
        keep = cnt > 0
        new[keep] /= cnt[keep, None]
        new[~keep] = C[~keep]
        if np.allclose(new, C):
            C = new
            break
        C = new
    return C.astype(np.float32)


@register_selector("random")
def _random(X: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    return X[rng.permutation(X.shape[0])[:k]]


@register_selector("kmeans")
def _kmeans(X: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    return kmeans(X, k, rng)


@register_selector("kmedoids")
def _kmedoids(X: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    if k >= X.shape[0]:
        return X.copy()
    d = _sqdist(X.astype(np.float64), kmeans(X, k, rng).astype(np.float64))  # [n, k]
    taken = np.zeros(X.shape[0], bool)
    out = []
    for j in np.argsort(d.min(0)):  # centres with a close row first
        col = np.where(taken, np.inf, d[:, j])
        i = int(col.argmin())
        taken[i] = True
        out.append(i)
    return X[np.asarray(out)]


@register_selector("herding")
def _herding(X: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    Xd = X.astype(np.float64)
    mu = Xd.mean(0)
    total = np.zeros_like(mu)
    free = np.ones(X.shape[0], bool)
    out = []
    for t in range(1, min(k, X.shape[0]) + 1):
        err = (((total[None] + Xd) / t - mu) ** 2).sum(1)
        err[~free] = np.inf
        i = int(err.argmin())
        out.append(i)
        free[i] = False
        total += Xd[i]
    return X[np.asarray(out, dtype=np.int64)]


def select(method: str, X: np.ndarray, y: np.ndarray, counts: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of every class by ``method`` (module docstring); ``(rows [M, D], labels [M])`` in class order."""
    if method not in SELECTORS:
        raise ConfigError(f"unknown selection {method!r}; available: {sorted(SELECTORS)}")
    X = np.asarray(X, np.float32)
    y = np.asarray(y, np.int64)
    counts = np.asarray(counts, np.int64)
    rng = np.random.Generator(np.random.PCG64(seed))
    xs, ys = [], []
    for c in np.flatnonzero(counts):
        rows = X[y == c]
        if rows.shape[0] == 0:
            raise ConfigError(f"class {int(c)} has no training rows but {int(counts[c])} were asked for")
        k = int(counts[c])
        sel = SELECTORS[method](rows, k, rng)
        if sel.shape[0] < k:  # fewer real rows than asked: repeat them (the allocation should not ask for this)
            sel = sel[np.resize(np.arange(sel.shape[0]), k)]
        xs.append(sel.astype(np.float32))
        ys.append(np.full(k, c, np.int64))
    if not xs:
        return np.zeros((0, X.shape[1]), np.float32), np.zeros(0, np.int64)
    return np.concatenate(xs), np.concatenate(ys)

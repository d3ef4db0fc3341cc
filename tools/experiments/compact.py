"""Numpy prototypes for the equal-byte baselines and quantizers of issue #11 (phase 1 experiments only; the
product versions live in edge_sdk.codecs / edge_sdk.server once settled).

Selection (which rows): ``select_rows(method, X, y, n, seed)`` with class-proportional counts:
  random   stratified random real rows
  kmeans   per-class k-means centroids (Lloyd, k-means++ init) -- synthetic points, not real rows
  kmedoid  the real row nearest each per-class k-means centroid
  herding  per-class kernel herding of real rows in input space (Welling 2009; greedy mean matching)

Quantizers (how a row is stored), each returns (decoded X [n, D], param bytes):
  float32 / float16
  aff-set  affine min/max over the whole set: lo, hi scalars, codes in [0, 2^b - 1]
  aff-feat affine min/max per feature: lo[D], hi[D]
  aff-feat-mse  per-feature affine with a clipped range (grid search of the squared error)
  sym-feat symmetric per-feature clip (uniform_clip per_feature, v1 kind)
  codebook Lloyd codebook of 2^b levels over all values (v1 kind)
  aff-samp affine min/max per sample (2 scales per sample, float16)
"""
from __future__ import annotations

import math

import numpy as np


def prop_counts(y: np.ndarray, n: int, num_classes: int = 32) -> np.ndarray:
    from edge_sdk.server.budget import allocate_per_class

    counts = np.bincount(y, minlength=num_classes)
    present = np.flatnonzero(counts)
    alloc = np.zeros(num_classes, int)
    alloc[present] = allocate_per_class(n, counts[present].tolist(), "proportional")
    return alloc


def kmeans(X: np.ndarray, k: int, rng: np.random.Generator, iters: int = 30) -> np.ndarray:
    n = X.shape[0]
    if k >= n:
        return X.copy()
    # k-means++ init
    c = [X[rng.integers(n)]]
    d2 = ((X - c[0]) ** 2).sum(1)
    for _ in range(1, k):
        p = d2 / d2.sum() if d2.sum() > 0 else np.full(n, 1 / n)
        c.append(X[rng.choice(n, p=p)])
        d2 = np.minimum(d2, ((X - c[-1]) ** 2).sum(1))
    C = np.stack(c).astype(np.float64)
    for _ in range(iters):
        dist = (X ** 2).sum(1)[:, None] - 2 * X @ C.T + (C ** 2).sum(1)[None]
        a = dist.argmin(1)
        newC = np.zeros_like(C)
        cnt = np.bincount(a, minlength=k)
        np.add.at(newC, a, X)
        empty = cnt == 0
        newC[~empty] /= cnt[~empty, None]
        newC[empty] = C[empty]
        if np.allclose(newC, C):
            break
        C = newC
    return C.astype(np.float32)


def herding(X: np.ndarray, k: int) -> np.ndarray:
    mu = X.mean(0)
    chosen: list[int] = []
    s = np.zeros_like(mu)
    avail = np.ones(len(X), bool)
    for t in range(1, min(k, len(X)) + 1):
        # pick x maximising closeness of the running mean to mu
        cand = (s[None] + X) / t
        err = ((cand - mu) ** 2).sum(1)
        err[~avail] = np.inf
        j = int(err.argmin())
        chosen.append(j)
        avail[j] = False
        s = s + X[j]
    return np.asarray(chosen)


def select_rows(method: str, X: np.ndarray, y: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.Generator(np.random.PCG64(seed))
    alloc = prop_counts(y, n)
    xs, ys = [], []
    for c, k in enumerate(alloc):
        if k == 0:
            continue
        Xc = X[y == c]
        if method == "random":
            sel = Xc[rng.permutation(len(Xc))[:k]]
        elif method == "kmeans":
            sel = kmeans(Xc, k, rng)
        elif method == "kmedoid":
            C = kmeans(Xc, k, rng)
            dist = ((Xc[:, None] - C[None]) ** 2).sum(-1)
            idx = []
            for j in np.argsort(dist.min(0)):  # greedy unique nearest
                order = np.argsort(dist[:, j])
                for i in order:
                    if i not in idx:
                        idx.append(int(i))
                        break
            sel = Xc[np.asarray(idx)]
        elif method == "herding":
            sel = Xc[herding(Xc, k)]
        else:
            raise ValueError(method)
        xs.append(sel)
        ys.append(np.full(len(sel), c))
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys)


def _affine(x, lo, hi, bits):
    L = (1 << bits) - 1
    rng_ = np.where(hi > lo, hi - lo, 1.0)
    codes = np.rint((np.clip(x, lo, hi) - lo) / rng_ * L)
    return (lo + codes * (rng_ / L)).astype(np.float32)


def f16(a):
    return np.asarray(a, np.float16).astype(np.float32)


def quantize(name: str, X: np.ndarray, bits: int) -> tuple[np.ndarray, int]:
    """Decoded values and parameter bytes (params stored float16 where noted)."""
    D = X.shape[1]
    if name == "float32":
        return X.astype(np.float32), 0
    if name == "float16":
        return f16(X), 0
    if name == "aff-set":
        lo, hi = f16(X.min()), f16(X.max())
        return _affine(X, lo, hi, bits), 4
    if name == "aff-feat":
        lo, hi = f16(X.min(0)), f16(X.max(0))
        return _affine(X, lo[None], hi[None], bits), 4 * D
    if name == "aff-feat-mse":
        lo0, hi0 = X.min(0), X.max(0)
        best_lo, best_hi = lo0.copy(), hi0.copy()
        for j in range(D):
            be = np.inf
            for a in np.linspace(0, 0.5, 11):
                for bb in np.linspace(0, 0.5, 11):
                    lo = lo0[j] + a * (hi0[j] - lo0[j]) * 0.5
                    hi = hi0[j] - bb * (hi0[j] - lo0[j]) * 0.5
                    if hi <= lo:
                        continue
                    e = ((_affine(X[:, j], lo, hi, bits) - X[:, j]) ** 2).mean()
                    if e < be:
                        be, best_lo[j], best_hi[j] = e, lo, hi
        lo, hi = f16(best_lo), f16(best_hi)
        return _affine(X, lo[None], hi[None], bits), 4 * D
    if name == "sym-feat":
        from edge_sdk import codecs

        a = np.abs(X).max(0)
        a = np.where(a > 0, a, 1.0)
        c, p = codecs.quantize(X, "uniform_clip", bits, {"alpha": a})
        return codecs.dequantize(c, "uniform_clip", bits, p), 4 * D
    if name == "codebook":
        v = X.reshape(-1)
        L = 1 << bits
        lev = np.quantile(v, (np.arange(L) + 0.5) / L)
        for _ in range(20):
            mids = (lev[1:] + lev[:-1]) / 2
            a = np.searchsorted(mids, v)
            for i in range(L):
                if np.any(a == i):
                    lev[i] = v[a == i].mean()
            lev = np.sort(lev)
        lev = f16(lev)
        mids = (lev[1:] + lev[:-1]) / 2
        return lev[np.searchsorted(mids, X)].astype(np.float32), 2 * L
    if name == "aff-samp":
        lo, hi = f16(X.min(1)), f16(X.max(1))
        return _affine(X, lo[:, None], hi[:, None], bits), 0  # per-sample bytes counted by the caller
    raise ValueError(name)


def per_sample_bytes(name: str, bits: int, D: int, label_bits: int = 5, sorted_labels: bool = False) -> float:
    """Bytes per stored sample (codes row-aligned, labels packed; sorted_labels: labels as class counts)."""
    if name == "float32":
        b = 4 * D
    elif name == "float16":
        b = 2 * D
    else:
        b = math.ceil(D * bits / 8)
        if name == "aff-samp":
            b += 2  # hi is 0 on per-sample-max data, but a generic kind stores lo and hi: count 2 x f16 = 4
            b += 2
    return b + (0 if sorted_labels else label_bits / 8)


def fit_n(budget: int, name: str, bits: int, D: int = 8, sorted_labels: bool = False, num_classes: int = 32) -> int:
    param = {"float32": 0, "float16": 0, "aff-set": 4, "aff-feat": 4 * D, "aff-feat-mse": 4 * D, "sym-feat": 4 * D,
             "codebook": 2 * (1 << bits), "aff-samp": 0}[name]
    fixed = param + (2 * num_classes if sorted_labels else 0)
    return int((budget - fixed) // per_sample_bytes(name, bits, D, sorted_labels=sorted_labels))

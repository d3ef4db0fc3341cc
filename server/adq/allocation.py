"""Bit-width allocation under a global byte budget (ADQ, arXiv 2512.05987, Sec. 4.2).

Every allocator takes sensitivity scores ``S`` float [N] (higher = needs more bits), a byte budget and a
:class:`~edge_sdk.server.adq.cost.ByteCost`, and returns an :class:`Allocation` with ``bits`` int [N]
(one width per sample; 0 = dropped, not stored). Invariant, tested: ``cost.of_bits(bits) <= budget``.

* :func:`allocate_two_groups` — the paper's method: sort by ``S`` descending, split into two equal halves
  (``|D_high| = |D_low|``; the high half gets the extra sample when N is odd), search every pair
  ``b_high > b_low`` from the allowed widths and keep the pair that spends the most bytes without exceeding
  the budget; ``b_low = 0`` (drop the less sensitive half) only when no pair without a drop fits, and
  ``b_high == b_low`` only when no strictly adaptive pair fits (search order in :func:`_search`).
* :func:`allocate_k_groups` — k equal groups with non-increasing widths (exhaustive search).
* :func:`allocate_threshold` — two groups split at a sensitivity threshold (default: the mean of ``S``)
  instead of the median.
* :func:`allocate_cover` — our addition for budgets that force drops: it does *not* keep the hardest samples.
  When every sample fits it is the paper's split. Otherwise it keeps the ``m`` samples of a *coverage order*
  (:func:`coverage_order`: every prefix is class-proportional and, inside each class, spread evenly over the
  sensitivity quantiles) and gives the more sensitive half of the kept samples ``b_high``, the rest ``b_low``
  (``b_low = cover_bits``, ``b_high`` the next allowed width; ``m`` the most that fit). Dropping by sensitivity
  (the paper's ``b_low = 0``) keeps the atypical, near-boundary rows and loses 5-14 Top-1 points on beam data
  (docs/adq-results.md); spreading the kept rows over the quantiles keeps the typical rows *and* the boundary.

Infeasible budgets: when even ``(min width, 0)`` over the equal split exceeds the budget (beam data at
93.75 %: one 2-bit sample of D = 8 values costs 2 B of codes + 2-4 B of scale), every allocator falls back to
keeping the ``m`` most sensitive samples at ``fallback_bits`` (default: the smallest allowed width) and
dropping the rest, with ``m`` the largest count that fits; ``Allocation.mode`` says ``"drop-fallback"``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from edge_sdk.errors import ConfigError
from edge_sdk.registry import Registry

from .cost import ByteCost

DEFAULT_WIDTHS = (2, 3, 4, 5, 6, 7, 8, 16)


@dataclass
class Allocation:
    """Per-sample widths ``bits`` int64 [N] (0 = dropped) and how they were chosen."""

    bits: np.ndarray
    nbytes: int
    budget: int
    mode: str
    widths: tuple[int, ...] = ()
    info: dict = field(default_factory=dict)

    @property
    def kept(self) -> np.ndarray:
        return np.flatnonzero(self.bits > 0)

    def groups(self) -> dict[int, np.ndarray]:
        """{width: sample indices} for every stored width (ascending index order)."""
        return {int(b): np.flatnonzero(self.bits == b) for b in np.unique(self.bits) if b > 0}

    def summary(self) -> dict:
        return {
            "mode": self.mode,
            "widths": list(self.widths),
            "bytes": int(self.nbytes),
            "budget": int(self.budget),
            "kept": int((self.bits > 0).sum()),
            "n": int(self.bits.size),
            "group_sizes": {str(b): int(v.size) for b, v in self.groups().items()},
            "mean_bits_kept": float(self.bits[self.bits > 0].mean()) if (self.bits > 0).any() else 0.0,
            **self.info,
        }


def _check(scores: np.ndarray, budget: int, widths: tuple[int, ...]) -> np.ndarray:
    s = np.asarray(scores, np.float64).reshape(-1)
    if s.size == 0:
        raise ConfigError("cannot allocate bits to an empty sample set")
    if not np.all(np.isfinite(s)):
        raise ConfigError("sensitivity scores contain NaN/inf; check the reference model and data")
    if budget <= 0:
        raise ConfigError(f"budget must be positive, got {budget} bytes")
    if not widths or any(w not in (2, 3, 4, 5, 6, 7, 8, 16, 32) for w in widths):
        raise ConfigError(f"widths must be a non-empty subset of 2..8, 16, 32; got {widths}")
    return s


def _order(s: np.ndarray) -> np.ndarray:
    """Indices by descending sensitivity (stable: ties keep index order)."""
    return np.argsort(-s, kind="stable")


def split_sizes(n: int, k: int) -> list[int]:
    """Sizes of k (near-)equal groups, larger groups first (sum n)."""
    base, rem = divmod(n, k)
    return [base + (1 if i < rem else 0) for i in range(k)]


def _drop_fallback(order: np.ndarray, budget: int, cost: ByteCost, bits: int, mode_info: dict) -> Allocation:
    n = order.size
    lo, hi = 0, n  # largest m with cost(bits, m) <= budget (monotone)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if cost.total([(bits, mid)]) <= budget:
            lo = mid
        else:
            hi = mid - 1
    if lo == 0 and cost.total([]) > budget:
        raise ConfigError(
            f"a budget of {budget} B is below the fixed payload overhead of {cost.total([])} B "
            "(header, task, provenance and graph digest); raise the budget"
        )
    out = np.zeros(n, np.int64)
    out[order[:lo]] = bits
    return Allocation(out, cost.of_bits(out), budget, "drop-fallback", (bits,), dict(mode_info))


def _search(
    sizes: list[int], budget: int, cost: ByteCost, widths: tuple[int, ...], allow_drop: bool,
    strict: bool = True,
) -> tuple[int, ...] | None:
    """Best non-increasing width tuple for groups of ``sizes``.

    Preference order: (1) no dropped group if any such tuple fits (``b_low = 0`` only when it must);
    (2) strictly decreasing widths when ``strict`` and more than one group (the adaptive case; equal widths
    would be uniform quantization); (3) most bytes <= budget; (4) the smallest spread between widths."""
    cands = sorted(set(widths) | ({0} if allow_drop else set()), reverse=True)
    best: tuple | None = None
    best_combo: tuple[int, ...] | None = None
    for combo in itertools.combinations_with_replacement(cands, len(sizes)):
        # combinations_with_replacement over a descending list yields non-increasing tuples
        if combo[0] == 0:
            continue
        nbytes = cost.total(zip(combo, sizes, strict=True))
        if nbytes > budget:
            continue
        no_drop = 0 not in combo
        distinct = len(set(combo)) == len(combo) or len(combo) == 1
        key = (no_drop, distinct or not strict, nbytes, -(combo[0] - combo[-1]))
        if best is None or key > best:
            best, best_combo = key, combo
    return best_combo


def _assign(order: np.ndarray, sizes: list[int], combo: tuple[int, ...]) -> np.ndarray:
    out = np.zeros(order.size, np.int64)
    start = 0
    for size, b in zip(sizes, combo, strict=True):
        out[order[start : start + size]] = b
        start += size
    return out


def _class_balanced_groups(s: np.ndarray, labels: np.ndarray, k: int) -> tuple[np.ndarray, list[int]]:
    """Order and group sizes when the k-way split is made inside every class (each class keeps its share
    of every group). The order lists group 0 (most sensitive) first and, inside a group, interleaves the
    classes by within-class rank fraction, so any prefix (the drop fallback keeps a prefix) is
    class-proportional too."""
    labels = np.asarray(labels).reshape(-1)
    if labels.size != s.size:
        raise ConfigError(f"labels has {labels.size} entries for {s.size} scores")
    gid = np.zeros(s.size, np.int64)
    frac = np.zeros(s.size, np.float64)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[np.argsort(-s[idx], kind="stable")]
        frac[idx] = (np.arange(idx.size) + 0.5) / idx.size
        start = 0
        for g, size in enumerate(split_sizes(idx.size, k)):
            gid[idx[start : start + size]] = g
            start += size
    order = np.lexsort((-s, frac, gid))
    return order, [int((gid == g).sum()) for g in range(k)]


def allocate_k_groups(
    scores: np.ndarray,
    budget: int,
    cost: ByteCost,
    k: int = 2,
    widths: tuple[int, ...] = DEFAULT_WIDTHS,
    allow_drop: bool = True,
    fallback_bits: int | None = None,
    labels: np.ndarray | None = None,
) -> Allocation:
    """k equal groups by descending ``S``; widths non-increasing with sensitivity; never over budget.

    With ``labels`` int [N] the split is made per class (class-balanced variant, our addition: with
    ``b_low = 0`` a global split can drop most of a class)."""
    s = _check(scores, budget, widths)
    if k < 1 or k > s.size:
        raise ConfigError(f"k must be in 1..N={s.size}, got {k}")
    if labels is None:
        order = _order(s)
        sizes = split_sizes(s.size, k)
    else:
        order, sizes = _class_balanced_groups(s, labels, k)
        sizes = [z for z in sizes]
    combo = _search(sizes, budget, cost, tuple(widths), allow_drop)
    info: dict[str, Any] = {"k": k, "class_balanced": labels is not None}
    if combo is None:
        return _drop_fallback(order, budget, cost, fallback_bits or min(widths), info)
    bits = _assign(order, sizes, combo)
    info["group_bits"] = list(combo)
    return Allocation(bits, cost.of_bits(bits), budget, f"{k}-groups", tuple(widths), info)


def allocate_two_groups(
    scores: np.ndarray,
    budget: int,
    cost: ByteCost,
    widths: tuple[int, ...] = DEFAULT_WIDTHS,
    allow_drop: bool = True,
    fallback_bits: int | None = None,
    labels: np.ndarray | None = None,
) -> Allocation:
    """The paper's equal split into (b_high, b_low) under the budget (``labels``: per-class split)."""
    alloc = allocate_k_groups(scores, budget, cost, 2, widths, allow_drop, fallback_bits, labels)
    if alloc.mode == "2-groups":
        alloc.info["b_high"], alloc.info["b_low"] = alloc.info["group_bits"]
    return alloc


def allocate_threshold(
    scores: np.ndarray,
    budget: int,
    cost: ByteCost,
    threshold: float | None = None,
    widths: tuple[int, ...] = DEFAULT_WIDTHS,
    allow_drop: bool = True,
    fallback_bits: int | None = None,
) -> Allocation:
    """Two groups split at ``S > threshold`` (default: mean of S) rather than at the median."""
    s = _check(scores, budget, widths)
    tau = float(s.mean()) if threshold is None else float(threshold)
    order = _order(s)
    n_high = int((s > tau).sum())
    info: dict[str, Any] = {"threshold": tau, "n_high": n_high}
    if n_high in (0, s.size):
        sizes = [s.size]
    else:
        sizes = [n_high, s.size - n_high]
    combo = _search(sizes, budget, cost, tuple(widths), allow_drop)
    if combo is None:
        return _drop_fallback(order, budget, cost, fallback_bits or min(widths), info)
    bits = _assign(order, sizes, combo)
    info["group_bits"] = list(combo)
    return Allocation(bits, cost.of_bits(bits), budget, "threshold", tuple(widths), info)


def coverage_order(scores: np.ndarray, labels: np.ndarray, seed: int = 0, bins: int = 10) -> np.ndarray:
    """Permutation of the N samples whose every prefix is class-proportional and, inside each class, takes equal
    shares of ``bins`` sensitivity quantile bins (random inside a bin, ``seed``). With random ``scores`` it is a
    class-stratified random order. ``scores`` float [N], ``labels`` int [N] -> int64 [N]."""
    s = np.asarray(scores, np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    if labels.size != s.size:
        raise ConfigError(f"labels has {labels.size} entries for {s.size} scores")
    rng = np.random.default_rng(seed)
    key = np.zeros(s.size, np.float64)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[np.argsort(s[idx], kind="stable")]
        in_bin = np.zeros(idx.size, np.float64)  # position inside its quantile bin, as a fraction
        start = 0
        for part in np.array_split(np.arange(idx.size), min(bins, idx.size)):
            in_bin[start + rng.permutation(part.size)] = (np.arange(part.size) + 0.5) / part.size
            start += part.size
        cls_order = idx[np.lexsort((rng.random(idx.size), in_bin))]  # bins interleaved
        key[cls_order] = (np.arange(idx.size) + 0.5) / idx.size  # classes interleaved by their share
    return np.lexsort((rng.random(s.size), key))


def allocate_cover(
    scores: np.ndarray,
    budget: int,
    cost: ByteCost,
    labels: np.ndarray,
    widths: tuple[int, ...] = DEFAULT_WIDTHS,
    cover_bits: int = 3,
    seed: int = 0,
    class_balanced: bool = False,
) -> Allocation:
    """Coverage allocation (module docstring): the paper's equal split (no drop) when every sample fits, else the
    ``m`` first samples of :func:`coverage_order` at ``(b_high, b_low)``, the more sensitive half at ``b_high``.
    ``b_low`` is ``cover_bits`` (or the largest smaller width that stores a sample); ``b_high`` the next allowed
    width above it (none: every kept sample at ``b_low``). ``class_balanced``: the kept set is split per class."""
    s = _check(scores, budget, widths)
    labels = np.asarray(labels).reshape(-1)
    if labels.size != s.size:
        raise ConfigError(f"labels has {labels.size} entries for {s.size} scores")
    full = allocate_k_groups(s, budget, cost, 2, widths, False, None, labels if class_balanced else None)
    if full.mode == "2-groups":  # every sample fits: the paper's split
        full.info["b_high"], full.info["b_low"] = full.info["group_bits"]
        return replace(full, mode="cover/2-groups")
    order = coverage_order(s, labels, seed)
    ws = sorted(w for w in widths if w not in (16, 32)) or sorted(widths)
    lows = [w for w in ws if w <= cover_bits] or [ws[0]]
    for lo_b in sorted(lows, reverse=True):
        above = [w for w in ws if w > lo_b]
        hi_b = above[0] if above else lo_b

        lo, hi = 0, s.size  # largest m that fits (monotone in m)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if cost.total([(hi_b, mid - mid // 2), (lo_b, mid // 2)]) <= budget:
                lo = mid
            else:
                hi = mid - 1
        if lo > 0:
            break
    if lo == 0:
        raise ConfigError(f"a budget of {budget} B stores no sample at {ws[0]} bits "
                          f"(fixed payload overhead {cost.total([])} B); raise the budget")
    kept = order[:lo]
    bits = np.zeros(s.size, np.int64)
    if class_balanced:
        sub, sizes = _class_balanced_groups(s[kept], labels[kept], 2)
        split = kept[sub]
    else:
        split, sizes = kept[_order(s[kept])], split_sizes(lo, 2)
    bits[split[: sizes[0]]] = hi_b
    bits[split[sizes[0]:]] = lo_b
    info = {"cover_bits": cover_bits, "b_high": hi_b, "b_low": lo_b, "kept": int(lo), "class_balanced": class_balanced}
    return Allocation(bits, cost.of_bits(bits), budget, "cover", tuple(widths), info)


def allocate_uniform(
    n: int,
    budget: int,
    cost: ByteCost,
    widths: tuple[int, ...] = DEFAULT_WIDTHS,
    seed: int = 0,
    order: np.ndarray | None = None,
) -> Allocation:
    """Same width for every stored sample: the largest width at which all ``n`` samples fit; if none
    fits, the smallest width with the largest subset that fits (random subset, or the first of ``order``)."""
    if n < 1:
        raise ConfigError("cannot allocate bits to an empty sample set")
    for b in sorted(widths, reverse=True):
        if cost.total([(b, n)]) <= budget:
            bits = np.full(n, b, np.int64)
            return Allocation(bits, cost.of_bits(bits), budget, "uniform", tuple(widths), {"bits": b})
    if order is None:
        order = np.random.default_rng(seed).permutation(n)
    alloc = _drop_fallback(np.asarray(order), budget, cost, min(widths), {"bits": min(widths)})
    return replace(alloc, mode="uniform-subset")


def allocate_fixed_random(
    n: int,
    budget: int,
    cost: ByteCost,
    widths: tuple[int, ...] = DEFAULT_WIDTHS,
    seed: int = 0,
    allow_drop: bool = True,
    labels: np.ndarray | None = None,
) -> Allocation:
    """Baseline "fixed allocation": the same (b_high, b_low) search as ADQ but samples assigned to the
    two halves at random (no sensitivity); ``labels``: random halves inside every class."""
    rand = np.random.default_rng(seed).permutation(n).astype(np.float64)
    alloc = allocate_two_groups(rand, budget, cost, widths, allow_drop, labels=labels)
    return replace(alloc, mode="fixed-random/" + alloc.mode)


class AllocationSettings(Protocol):
    """The fields of ``QuantizeConfig`` an allocator reads."""

    widths: tuple[int, ...]
    allow_drop: bool
    k: int
    threshold: float | None
    cover_bits: int
    seed: int
    class_balanced: bool


#: ADQ bit allocators by name: ``fn(scores [N], budget, cost, settings, labels [N] or None) -> Allocation``
#: (``labels`` is given when ``settings.class_balanced`` or the allocator is in :data:`NEEDS_LABELS`)
ALLOCATORS: Registry[Callable[..., Allocation]] = Registry("ADQ bit allocation")


@ALLOCATORS.register("two")
def _two(s: np.ndarray, budget: int, cost: ByteCost, st: AllocationSettings, labels: np.ndarray | None) -> Allocation:
    return allocate_two_groups(s, budget, cost, tuple(st.widths), st.allow_drop, labels=labels)


@ALLOCATORS.register("k")
def _k(s: np.ndarray, budget: int, cost: ByteCost, st: AllocationSettings, labels: np.ndarray | None) -> Allocation:
    return allocate_k_groups(s, budget, cost, st.k, tuple(st.widths), st.allow_drop, labels=labels)


@ALLOCATORS.register("threshold")
def _threshold(s: np.ndarray, budget: int, cost: ByteCost, st: AllocationSettings,
               labels: np.ndarray | None) -> Allocation:
    return allocate_threshold(s, budget, cost, st.threshold, tuple(st.widths), st.allow_drop)


@ALLOCATORS.register("cover")
def _cover(s: np.ndarray, budget: int, cost: ByteCost, st: AllocationSettings,
           labels: np.ndarray | None) -> Allocation:
    if labels is None:
        raise ConfigError("the cover allocation needs the labels of the candidates")
    return allocate_cover(s, budget, cost, labels, tuple(st.widths), st.cover_bits, st.seed, st.class_balanced)


#: allocators that always need the candidates' labels
NEEDS_LABELS = frozenset({"cover"})

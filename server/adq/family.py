"""ADQ as a method family of the pipeline: (prune) -> score -> allocate bits under a byte budget -> quantize.

Methods (``QuantizeConfig.method``; registry ``METHODS``, one function each):

* ``adq``      sensitivity-sorted allocation (``allocation``: ``two`` = the paper's equal split, ``k`` groups,
               ``threshold``, or ``cover`` = keep a class- and sensitivity-stratified set when samples must be
               dropped; registry ``allocation.ALLOCATORS``);
* ``uniform``  every stored sample at the same width (largest that fits; subset if none fits);
* ``fixed``    the same (b_high, b_low) search as ADQ with random assignment of samples to the halves (with
               ``allocation="cover"``: the same layout as ADQ's cover, kept set and halves at random, class-stratified);
* ``prune``    pruning alone: as many float32 samples as the budget holds, chosen by ``prune`` (default random);
* ``full``     every sample as float32 (the 1x reference; budget ignored).

Pruning (``prune`` + ``keep``) runs first for ``adq``/``uniform``/``fixed``; the byte budget is always relative to
the *full* training set's float32 bytes, so keep 10 % + 16x = 160x ~ 99.375 % overall.

Per-sample kind (``kind``): ``symmetric`` (``symmetric_per_sample``, payload v1 and v2) or ``affine``
(``affine_sample``, v2 only, its ``lo``/``hi`` stored as ``param_encoding``: ``compact`` = q8 lo + c4/q8 hi, ``f2``,
``f4``); ``auto`` (default) = affine when the payload is v2, symmetric for v1. The sensitivity's quantized copy
uses the same kind and stored parameters.

The pipeline (``edge_sdk.server.pipeline``) calls :func:`plan` (cheap once the per-sample scores are memoized:
which rows at which width, and the exact payload size) — several times when the training graph's digest must be
counted — and then :func:`build` once (quantize the rows; a :class:`~edge_sdk.server.payload_io.CompactSet` of one
``symmetric_per_sample`` group ``b{bits}`` per width, largest first, or ``float16``/``float32`` groups).

Shapes: ``TaskData.X_train`` float32 [N, D]; a plan holds candidate training rows ``cand`` int64 [M'] and an
:class:`~.allocation.Allocation` over them (``bits`` int64 [M'], 0 = dropped, not stored).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, ClassVar

import numpy as np
import torch

from edge_sdk.errors import ConfigError
from edge_sdk.modelspec import TrainRecipe
from edge_sdk.payload import GroupLayout, SampleGroup
from edge_sdk.registry import Registry
from edge_sdk.server.payload_io import CompactSet, PayloadCost

from . import allocation as A
from .cost import WidthCost
from .pruning import PRUNERS, el2n_scores, get_method
from .quantize import PARAM_ENCODINGS, SAMPLE_KINDS, AffineParams, affine_quantize, quantize
from .sensitivity import SensitivityConfig, compute_sensitivity

#: ``QuantizeConfig.kind`` values: the per-sample kinds, or ``auto`` (by payload format)
KINDS = ("auto", *SAMPLE_KINDS)


@dataclass(frozen=True)
class QuantizeConfig:
    """Everything that determines an ADQ-family run (recorded in report.json; the budget is separate).
    ``family``: the pipeline family that runs it (``edge_sdk.server.pipeline.FAMILY_MODULES``)."""

    family: ClassVar[str] = "quantize"

    method: str = "adq"
    #: default "cover" (chosen on the validation split, docs/adq.md "Payload v2"); "two" is the paper's split
    allocation: str = "cover"
    k: int = 2
    threshold: float | None = None
    widths: tuple[int, ...] = A.DEFAULT_WIDTHS
    allow_drop: bool = True
    class_balanced: bool = False
    scale_dtype: str = "float32"
    #: per-sample kind: auto (affine for payload v2, symmetric for v1), symmetric, affine (module docstring)
    kind: str = "auto"
    #: affine only: how lo/hi are stored (quantize.PARAM_ENCODINGS)
    param_encoding: str = "compact"
    #: allocation "cover": b_low of the kept samples when samples must be dropped (b_high = next width)
    cover_bits: int = 3
    prune: str | None = None
    keep: float = 1.0
    hard_cutoff: float = 0.1
    el2n_epochs: int = 3
    seed: int = 0
    sensitivity: SensitivityConfig = field(default_factory=SensitivityConfig)

    def __post_init__(self) -> None:
        METHODS.get(self.method)
        A.ALLOCATORS.get(self.allocation)
        if self.prune is not None:
            PRUNERS.get(self.prune)
        if not 0.0 < self.keep <= 1.0:
            raise ConfigError(f"keep must be in (0, 1], got {self.keep}")
        if self.kind not in KINDS:
            raise ConfigError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.param_encoding not in PARAM_ENCODINGS:
            raise ConfigError(f"param_encoding must be one of {PARAM_ENCODINGS}, got {self.param_encoding!r}")
        if not 1 <= self.cover_bits <= 8:
            raise ConfigError(f"cover_bits must be in 1..8, got {self.cover_bits}")

    def resolved(self, payload_format: int) -> QuantizeConfig:
        """This config with ``kind`` fixed for ``payload_format`` (auto: affine for v2, symmetric for v1) and the
        sensitivity's quantized copy set to the same kind and parameter encoding."""
        kind = self.kind if self.kind != "auto" else ("affine" if payload_format == 2 else "symmetric")
        if kind == "affine" and payload_format != 2:
            raise ConfigError("the affine per-sample kind is stored by payload format 2 only; "
                              "pass --payload-format 2 or --kind symmetric")
        sens = replace(self.sensitivity, kind=kind, param_encoding=self.param_encoding)
        return replace(self, kind=kind, sensitivity=sens)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["widths"] = list(self.widths)
        return d

    def provenance_extra(self) -> dict[str, Any]:
        """Fields of the payload provenance besides method and seed (``edge_sdk.payload.make_provenance``)."""
        return {"prune": self.prune, "keep": self.keep} if self.prune is not None else {}

    def ignores_budget(self) -> bool:
        return self.method == "full"


# ----------------------------------------------------------------------------------------- scores (memoized)
#: per-sample scores (EL2N difficulty, sensitivity) of recent training sets, so a sweep over budgets computes them
#: once; keyed on the *content* of the training set and model spec plus every setting the scores depend on
_MEMO: dict[tuple, np.ndarray] = {}
_MEMO_MAX = 16


def data_key(data: Any) -> str:
    """SHA-256 of the training inputs, labels and model spec (what every score depends on)."""
    h = hashlib.sha256()
    for a in (np.ascontiguousarray(data.X_train), np.ascontiguousarray(data.y_train)):
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())
    h.update(json.dumps(data.spec.to_dict(), sort_keys=True).encode())
    return h.hexdigest()


def _memo(key: tuple, fn: Callable[[], np.ndarray]) -> np.ndarray:
    if key not in _MEMO:
        if len(_MEMO) >= _MEMO_MAX:
            _MEMO.pop(next(iter(_MEMO)))
        _MEMO[key] = fn()
    return _MEMO[key]


@dataclass(frozen=True)
class Scores:
    """The per-sample scores a method may ask for, computed on first use and memoized (see ``_MEMO``)."""

    data: Any
    cfg: QuantizeConfig
    recipe: TrainRecipe
    progress: bool = False

    def difficulty(self) -> np.ndarray:
        """EL2N difficulty float64 [N] (higher = harder) for the pruners that need scores."""
        c = self.cfg
        key = ("el2n", data_key(self.data), c.el2n_epochs, c.seed, self.recipe)
        return _memo(key, lambda: el2n_scores(self.data.spec, self.data.X_train, self.data.y_train, self.recipe,
                                              epochs=c.el2n_epochs, seed=c.seed))

    def sensitivity(self) -> np.ndarray:
        """ADQ sensitivity S(d) float64 [N] of a reference model trained with the recipe."""
        c = self.cfg
        key = ("sens", data_key(self.data), c.sensitivity, self.recipe)
        return _memo(key, lambda: compute_sensitivity(self.data.spec, self.data.X_train, self.data.y_train,
                                                      c.sensitivity, self.recipe, progress=self.progress))


# ------------------------------------------------------------------------------------------------ methods
@dataclass(frozen=True)
class Selection:
    """A plan: candidate training rows ``cand`` [M'], the allocation over them, the stored groups' layouts and
    the exact payload size ``nbytes``; ``info`` for the report."""

    cand: np.ndarray
    alloc: A.Allocation
    layouts: list[GroupLayout]
    nbytes: int
    budget: int | None
    info: dict[str, Any]
    cfg: QuantizeConfig | None = None  #: the config with its kind resolved (what build stores)


@dataclass(frozen=True)
class AdqContext:
    """What a method function receives."""

    data: Any
    cfg: QuantizeConfig
    budget: int | None
    cost: WidthCost
    scores: Scores


AdqMethod = Callable[[AdqContext], tuple[np.ndarray, A.Allocation, dict[str, Any]]]
#: the quantize methods by name (``edge-sdk quantize --method``)
METHODS: Registry[AdqMethod] = Registry("quantize method")


def _prune(ctx: AdqContext, keep: float) -> tuple[np.ndarray, dict[str, Any]]:
    cfg, n = ctx.cfg, ctx.data.X_train.shape[0]
    pr = get_method(cfg.prune or "random", hard_cutoff=cfg.hard_cutoff)
    t0 = time.perf_counter()
    scores = ctx.scores.difficulty() if pr.needs_scores else None
    cand = pr.select(n, keep, cfg.seed, scores)
    return cand, {"prune_seconds": time.perf_counter() - t0}


@METHODS.register("full")
def _full(ctx: AdqContext) -> tuple[np.ndarray, A.Allocation, dict[str, Any]]:
    n = ctx.data.X_train.shape[0]
    bits = np.full(n, 32, np.int64)
    nbytes = ctx.cost.of_bits(bits)
    return np.arange(n), A.Allocation(bits, nbytes, nbytes, "full", (32,)), {}


@METHODS.register("prune")
def _prune_only(ctx: AdqContext) -> tuple[np.ndarray, A.Allocation, dict[str, Any]]:
    n = ctx.data.X_train.shape[0]
    budget = _need_budget(ctx)
    fit = A.allocate_uniform(n, budget, ctx.cost, (32,), order=np.arange(n))
    m = int((fit.bits > 0).sum())
    if m == 0:
        raise ConfigError(f"a budget of {budget} B cannot hold one float32 sample "
                          f"({ctx.cost.per_sample_bytes(32):.1f} B)")
    cand, info = _prune(ctx, m / n)
    bits = np.full(cand.size, 32, np.int64)
    return cand, A.Allocation(bits, ctx.cost.of_bits(bits), budget, "prune-only", (32,)), info


def _candidates(ctx: AdqContext) -> tuple[np.ndarray, dict[str, Any]]:
    if ctx.cfg.prune is not None and ctx.cfg.keep < 1.0:
        return _prune(ctx, ctx.cfg.keep)
    return np.arange(ctx.data.X_train.shape[0]), {}


def _labels(ctx: AdqContext, cand: np.ndarray) -> np.ndarray | None:
    need = ctx.cfg.class_balanced or ctx.cfg.allocation in A.NEEDS_LABELS
    return ctx.data.y_train[cand] if need else None


@METHODS.register("uniform")
def _uniform(ctx: AdqContext) -> tuple[np.ndarray, A.Allocation, dict[str, Any]]:
    cand, info = _candidates(ctx)
    return cand, A.allocate_uniform(cand.size, _need_budget(ctx), ctx.cost, tuple(ctx.cfg.widths),
                                    seed=ctx.cfg.seed), info


@METHODS.register("fixed")
def _fixed(ctx: AdqContext) -> tuple[np.ndarray, A.Allocation, dict[str, Any]]:
    cand, info = _candidates(ctx)
    c = ctx.cfg
    if c.allocation == "cover":  # ADQ's cover layout with random scores: a class-stratified random kept set
        rand = np.random.default_rng(c.seed).permutation(cand.size).astype(np.float64)
        alloc = A.allocate_cover(rand, _need_budget(ctx), ctx.cost, ctx.data.y_train[cand], tuple(c.widths),
                                 c.cover_bits, c.seed, c.class_balanced)
        return cand, replace(alloc, mode="fixed-random/" + alloc.mode), info
    return cand, A.allocate_fixed_random(cand.size, _need_budget(ctx), ctx.cost, tuple(c.widths), seed=c.seed,
                                         allow_drop=c.allow_drop, labels=_labels(ctx, cand)), info


@METHODS.register("adq")
def _adq(ctx: AdqContext) -> tuple[np.ndarray, A.Allocation, dict[str, Any]]:
    cand, info = _candidates(ctx)
    t0 = time.perf_counter()
    s = ctx.scores.sensitivity()[cand]  # reference model trained on the full set; scores of the kept samples
    info.update(sensitivity_seconds=time.perf_counter() - t0, sensitivity_mean=float(np.mean(s)),
                sensitivity=ctx.cfg.sensitivity.to_dict())
    allocator = A.ALLOCATORS.get(ctx.cfg.allocation)
    return cand, allocator(s, _need_budget(ctx), ctx.cost, ctx.cfg, _labels(ctx, cand)), info


def _need_budget(ctx: AdqContext) -> int:
    if ctx.budget is None:
        raise ConfigError(f"method {ctx.cfg.method} needs a byte budget (--budget / --compression)")
    return ctx.budget


# --------------------------------------------------------------------------------------------- plan + build
def affine_params(data: Any, cfg: QuantizeConfig) -> AffineParams:
    """Stored lo/hi of every training row (memoized), used by the cost and build; the sensitivity fits the same
    ``AffineParams`` from the same rows (``compute_sensitivity``), so all three see identical ranges."""
    key = ("affine", data_key(data), cfg.param_encoding)
    if key not in _AFFINE:
        if len(_AFFINE) >= _MEMO_MAX:
            _AFFINE.pop(next(iter(_AFFINE)))
        _AFFINE[key] = AffineParams.fit(data.X_train, cfg.param_encoding)
    return _AFFINE[key]


_AFFINE: dict[tuple, AffineParams] = {}


def width_cost(data: Any, cfg: QuantizeConfig, cost: PayloadCost) -> WidthCost:
    """Exact byte accounting of per-width groups for ``data`` with ``cost``'s header."""
    cfg = cfg.resolved(cost.payload_format)
    enc: tuple[tuple[str, str], ...] = (("hi", "c4"), ("lo", "q8"))
    if cfg.kind == "affine":
        enc = tuple(sorted(affine_params(data, cfg).encodings.items()))
    return WidthCost(d=data.X_train.shape[1], num_classes=data.num_classes, scale_dtype=cfg.scale_dtype,
                     kind=cfg.kind, param_encodings=enc, payload=cost)


def plan(data: Any, cfg: QuantizeConfig, budget: int | None, cost: PayloadCost, recipe: TrainRecipe,
         progress: bool = False) -> Selection:
    """Which training rows are stored at which width, within ``budget`` bytes counted by ``cost``."""
    cfg = cfg.resolved(cost.payload_format)
    wc = width_cost(data, cfg, cost)
    ctx = AdqContext(data, cfg, None if cfg.ignores_budget() else budget, wc, Scores(data, cfg, recipe, progress))
    cand, alloc, info = METHODS.get(cfg.method)(ctx)
    if ctx.budget is not None and alloc.nbytes > ctx.budget:
        raise AssertionError("allocation exceeds budget")  # invariant; allocators never do this
    layouts = wc.layouts_of_bits(alloc.bits)
    if not layouts:
        raise ConfigError(f"the budget {budget} B stores no sample with these settings; raise the budget or use "
                          "smaller widths")
    return Selection(cand, alloc, layouts, int(alloc.nbytes), ctx.budget, info, cfg)


def build(data: Any, cfg: QuantizeConfig, sel: Selection) -> CompactSet:
    """Quantize the planned rows: one group per width, largest first (as :class:`WidthCost` counts them)."""
    if sel.cfg is not None:
        cfg = sel.cfg
    elif cfg.kind == "auto":  # a hand-made Selection: the kind its layouts store
        cfg = replace(cfg, kind="affine" if any(g.kind == "affine_sample" for g in sel.layouts) else "symmetric")
    keep = sel.alloc.bits > 0
    idx = sel.cand[keep]
    bits = sel.alloc.bits[keep]
    groups = []
    for b in sorted({int(v) for v in np.unique(bits)}, reverse=True):
        rows = idx[bits == b]
        xb = np.ascontiguousarray(data.X_train[rows], np.float32)
        labels = np.asarray(data.y_train[rows], np.int64)
        if b in (16, 32):
            groups.append(SampleGroup(name=f"b{b}", kind="float16" if b == 16 else "float32", bits=b,
                                      data=xb.astype(np.float16 if b == 16 else np.float32), params={}, labels=labels))
            continue
        if cfg.kind == "affine":
            ap = affine_params(data, cfg)
            lo, hi = ap.rows(rows)
            params, enc = ap.group_params(rows)
            groups.append(SampleGroup(name=f"b{b}", kind="affine_sample", bits=b,
                                      data=affine_quantize(torch.from_numpy(xb), b, lo, hi).numpy(),
                                      params=params, labels=labels, param_encodings=enc))  # type: ignore[arg-type]
            continue
        codes, scale = quantize(torch.from_numpy(xb), b, scale_dtype=cfg.scale_dtype)
        sc = scale.numpy().astype(np.float16 if cfg.scale_dtype == "float16" else np.float32)
        groups.append(SampleGroup(name=f"b{b}", kind="symmetric_per_sample", bits=b, data=codes.numpy(),
                                  params={"scale": sc}, labels=labels))
    n_all = data.X_train.shape[0]
    return CompactSet.from_groups(groups, {**sel.info, "allocation": sel.alloc.summary(),
                                           "stored_samples": int(idx.size),
                                           "stored_fraction_of_train": float(idx.size / n_all)})


class QuantizeFamily:
    """ADQ and its baselines as the pipeline runs them (``edge_sdk.server.pipeline.Family``)."""

    command = "quantize"

    def method_name(self, cfg: QuantizeConfig) -> str:
        return cfg.method

    def ignores_budget(self, cfg: QuantizeConfig) -> bool:
        return cfg.ignores_budget()

    def prepare(self, data: Any, cfg: QuantizeConfig, budget: int | None, cost: PayloadCost, ev: Any,
                progress: bool) -> tuple[QuantizeConfig, dict[str, Any]]:
        return cfg.resolved(cost.payload_format), {}

    def plan(self, data: Any, cfg: QuantizeConfig, budget: int | None, cost: PayloadCost, ev: Any,
             progress: bool) -> Selection:
        return plan(data, cfg, budget, cost, ev.recipe, progress)

    def build(self, data: Any, cfg: QuantizeConfig, sel: Selection, progress: bool) -> CompactSet:
        return build(data, cfg, sel)


#: what ``edge_sdk.server.pipeline.family_of`` returns for a QuantizeConfig
FAMILY = QuantizeFamily()

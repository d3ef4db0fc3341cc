"""ADQ end to end: (prune) -> score -> allocate bits under a byte budget -> quantize -> evaluate.

Methods (``QuantizeConfig.method``):

* ``adq``      sensitivity-sorted allocation (``allocation``: ``two`` = the paper's equal split, ``k`` groups,
               or ``threshold``), :mod:`.allocation`;
* ``uniform``  every stored sample at the same width (largest that fits; subset if none fits);
* ``fixed``    the same (b_high, b_low) search as ADQ with random assignment of samples to the halves;
* ``prune``    pruning alone: as many float32 samples as the budget holds, chosen by ``prune`` (default random);
* ``full``     every sample as float32 (the 1x reference; budget ignored).

Pruning (``prune`` + ``keep``) runs first for ``adq``/``uniform``/``fixed``; the byte budget is always
relative to the *full* training set's float32 bytes, so keep 10 % + 16x = 160x ~ 99.375 % overall.

Shapes: ``TaskData.X_train`` float32 [N, D]; the compact set is ``X`` float32 [M, D] (dequantized, what the
evaluation trains on) with labels ``y`` int64 [M] and widths ``bits`` int64 [M]; ``indices`` int64 [M] are
rows of the training set. The stored form is one payload group per width (:func:`build_groups`).
With ``run(..., graph_path=...)`` the ONNX training graph of those groups is exported too and its digest
(header entry ``[sha256, size]``) is counted in the budget (:mod:`.graph_plan`).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from edge_sdk.server.train_eval import EvalConfig, evaluate_compact

from edge_sdk.errors import ConfigError

from . import allocation as A
from .cost import PayloadCost, parse_budget
from .pruning import PRUNERS, el2n_scores, get_method
from .quantize import dequantize, quantize
from .sensitivity import SensitivityConfig, compute_sensitivity

METHODS = ("adq", "uniform", "fixed", "prune", "full")


@dataclass(frozen=True)
class QuantizeConfig:
    """Everything that determines a quantize run (recorded in report.json)."""

    method: str = "adq"
    budget: str = "16x"
    allocation: str = "two"
    k: int = 2
    threshold: float | None = None
    widths: tuple[int, ...] = A.DEFAULT_WIDTHS
    allow_drop: bool = True
    class_balanced: bool = False
    scale_dtype: str = "float32"
    prune: str | None = None
    keep: float = 1.0
    hard_cutoff: float = 0.1
    el2n_epochs: int = 3
    seed: int = 0
    sensitivity: SensitivityConfig = field(default_factory=SensitivityConfig)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"unknown method {self.method!r}; choose one of {METHODS}")
        if self.allocation not in A.ALLOCATORS:
            raise ConfigError(f"unknown allocation {self.allocation!r}; choose one of {sorted(A.ALLOCATORS)}")
        if self.prune is not None and self.prune not in PRUNERS:
            raise ConfigError(f"unknown pruning method {self.prune!r}; choose one of {sorted(PRUNERS)}")
        if not 0.0 < self.keep <= 1.0:
            raise ConfigError(f"keep must be in (0, 1], got {self.keep}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["widths"] = list(self.widths)
        return d


@dataclass
class CompactSet:
    """The stored set: training-row ``indices`` [M], widths ``bits`` [M], dequantized ``X`` [M, D], ``y``."""

    indices: np.ndarray
    bits: np.ndarray
    X: np.ndarray
    y: np.ndarray
    codes: dict[int, np.ndarray]
    scales: dict[int, np.ndarray]
    nbytes: int
    budget: int
    compression: float
    info: dict[str, Any]
    #: the training graph written with this set (``GraphInfo``: path, sha256, size), None without graph
    graph: Any = None


def provenance(cfg: QuantizeConfig) -> dict[str, Any]:
    """Provenance dict of the payload header (fixed before planning: it is part of the counted bytes)."""
    from edge_sdk._version import __version__

    return {"tool": "edge-sdk quantize", "version": __version__, "method": cfg.method,
            "prune": cfg.prune, "keep": cfg.keep, "seed": cfg.seed}


def payload_cost(data, cfg: QuantizeConfig, graph: dict | None = None) -> PayloadCost:
    """Exact byte accounting for ``data``'s payload (header with ``data.task``, :func:`provenance` and the
    training graph digest ``graph`` = ``{"sha256", "size"}``, None = payload without graph)."""
    return PayloadCost(d=data.X_train.shape[1], num_classes=data.num_classes, scale_dtype=cfg.scale_dtype,
                       task=data.task, provenance=provenance(cfg), graph=graph)


#: small memo of per-dataset scores (EL2N, sensitivity) so a sweep over budgets computes them once;
#: keyed by the identity of the training array and every setting the scores depend on
_MEMO: dict[tuple, np.ndarray] = {}
_MEMO_MAX = 16


def _memo(key: tuple, fn) -> np.ndarray:
    if key not in _MEMO:
        if len(_MEMO) >= _MEMO_MAX:
            _MEMO.pop(next(iter(_MEMO)))
        _MEMO[key] = fn()
    return _MEMO[key]


def _difficulty(data, cfg: QuantizeConfig, recipe: EvalConfig) -> np.ndarray | None:
    method = get_method(cfg.prune or "random")
    if not method.needs_scores:
        return None
    key = ("el2n", id(data.X_train), data.X_train.shape, cfg.el2n_epochs, cfg.seed, recipe.recipe)
    return _memo(key, lambda: el2n_scores(data.spec, data.X_train, data.y_train, recipe.recipe, epochs=cfg.el2n_epochs,
                                          seed=cfg.seed))


def select_and_allocate(data, cfg: QuantizeConfig, recipe: EvalConfig, progress: bool = False,
                        graph: dict | None = None) -> tuple[np.ndarray, A.Allocation, dict]:
    """Pruning + allocation: (training-row indices [M'] that were candidates, Allocation over them, info).
    ``graph``: the digest the payload header will carry (counted in the budget), None for no graph."""
    n, d = data.X_train.shape
    cost = payload_cost(data, cfg, graph)
    budget, comp = parse_budget(cfg.budget, n, d)
    info: dict[str, Any] = {"budget_bytes": budget, "target_compression": comp}
    t0 = time.perf_counter()
    if cfg.method == "full":
        cand = np.arange(n)
        bits = np.full(n, 32, np.int64)
        return cand, A.Allocation(bits, cost.of_bits(bits), cost.of_bits(bits), "full", (32,)), info
    if cfg.method == "prune":
        per = cost.per_sample_bytes(32)
        fit = A.allocate_uniform(n, budget, cost, (32,), order=np.arange(n))
        m = int((fit.bits > 0).sum())
        if m == 0:
            raise ConfigError(f"a budget of {budget} B cannot hold one float32 sample ({per:.1f} B)")
        scores = _difficulty(data, cfg, recipe)
        pr = get_method(cfg.prune or "random")
        if cfg.prune == "ccs":
            pr.hard_cutoff = cfg.hard_cutoff  # type: ignore[attr-defined]
        cand = pr.select(n, m / n, cfg.seed, scores)
        bits = np.full(cand.size, 32, np.int64)
        info["prune_seconds"] = time.perf_counter() - t0
        return cand, A.Allocation(bits, cost.of_bits(bits), budget, "prune-only", (32,)), info
    cand = np.arange(n)
    if cfg.prune is not None and cfg.keep < 1.0:
        scores = _difficulty(data, cfg, recipe)
        pr = get_method(cfg.prune)
        if cfg.prune == "ccs":
            pr.hard_cutoff = cfg.hard_cutoff  # type: ignore[attr-defined]
        cand = pr.select(n, cfg.keep, cfg.seed, scores)
        info["prune_seconds"] = time.perf_counter() - t0
    widths = tuple(cfg.widths)
    labels = data.y_train[cand] if cfg.class_balanced else None
    if cfg.method == "uniform":
        alloc = A.allocate_uniform(cand.size, budget, cost, widths, seed=cfg.seed)
    elif cfg.method == "fixed":
        alloc = A.allocate_fixed_random(cand.size, budget, cost, widths, seed=cfg.seed, allow_drop=cfg.allow_drop,
                                        labels=labels)
    else:
        t1 = time.perf_counter()
        key = ("sens", id(data.X_train), data.X_train.shape, cfg.sensitivity, recipe.recipe)
        s_all = _memo(key, lambda: compute_sensitivity(data.spec, data.X_train, data.y_train, cfg.sensitivity,
                                                       recipe.recipe, progress=progress))
        s = s_all[cand]  # reference model trained on the full set; scores of the kept samples
        info["sensitivity_seconds"] = time.perf_counter() - t1
        info["sensitivity_mean"] = float(np.mean(s))
        info["sensitivity"] = cfg.sensitivity.to_dict()
        if cfg.allocation == "two":
            alloc = A.allocate_two_groups(s, budget, cost, widths, cfg.allow_drop, labels=labels)
        elif cfg.allocation == "k":
            alloc = A.allocate_k_groups(s, budget, cost, cfg.k, widths, cfg.allow_drop, labels=labels)
        else:
            alloc = A.allocate_threshold(s, budget, cost, cfg.threshold, widths, cfg.allow_drop)
    return cand, alloc, info


def materialize(data, cand: np.ndarray, alloc: A.Allocation, cfg: QuantizeConfig, info: dict) -> CompactSet:
    """Quantize each width group and dequantize it (what the device sees after decoding)."""
    keep = alloc.bits > 0
    idx = cand[keep]
    bits = alloc.bits[keep]
    X = np.zeros((idx.size, data.X_train.shape[1]), np.float32)
    codes: dict[int, np.ndarray] = {}
    scales: dict[int, np.ndarray] = {}
    for b in np.unique(bits):
        rows = np.flatnonzero(bits == b)
        xb = torch.from_numpy(np.ascontiguousarray(data.X_train[idx[rows]]))
        if b in (16, 32):
            X[rows] = xb.numpy().astype(np.float16 if b == 16 else np.float32).astype(np.float32)
            codes[int(b)] = xb.numpy().astype(np.float16 if b == 16 else np.float32)
            continue
        c, s = quantize(xb, int(b), scale_dtype=cfg.scale_dtype)
        X[rows] = dequantize(c, int(b), s).numpy()
        codes[int(b)], scales[int(b)] = c.numpy(), s.numpy()
    n, d = data.X_train.shape
    comp = 1.0 - alloc.nbytes / (n * d * 4)
    return CompactSet(idx, bits, X, data.y_train[idx], codes, scales, alloc.nbytes, alloc.budget, comp,
                      {**info, "allocation": alloc.summary()})


def run(data, cfg: QuantizeConfig, recipe: EvalConfig, progress: bool = False,
        graph_path=None, evaluate: bool = True) -> tuple[CompactSet, Any]:
    """Build the compact set and evaluate it with the shared protocol; returns (CompactSet, EvalResult).

    With ``graph_path`` the ONNX training graph of the stored groups is written there and its digest is
    counted in the budget (:func:`.graph_plan.plan_with_graph`); ``cs.graph`` is its ``GraphInfo``. If the
    exporter does not support the model (e.g. ``convnet``), a warning is issued, the set is planned without
    graph and ``cs.info["graph_note"]`` says why (as ``distill`` does)."""
    t0 = time.perf_counter()
    graph = None
    note = None
    if graph_path is not None:
        from .graph_plan import GraphExportError, plan_with_graph

        try:
            gp = plan_with_graph(data, cfg, recipe, graph_path, progress=progress)
        except GraphExportError as exc:
            note = str(exc)
            warnings.warn(note, stacklevel=2)
        else:
            cand, alloc, info, graph = gp.cand, gp.alloc, {**gp.info, "graph_seconds": gp.seconds}, gp.graph
    if graph is None:
        cand, alloc, info = select_and_allocate(data, cfg, recipe, progress)
        if note is not None:
            info["graph_note"] = note
    if alloc.nbytes > alloc.budget and cfg.method != "full":
        raise AssertionError("allocation exceeds budget")  # invariant; allocators never do this
    cs = materialize(data, cand, alloc, cfg, info)
    cs.graph = graph
    cs.info["build_seconds"] = time.perf_counter() - t0
    if cs.X.shape[0] == 0:
        raise ConfigError(
            f"the budget {cs.budget} B stores no sample with these settings; raise the budget or use smaller widths"
        )
    if not evaluate:  # the caller evaluates the written payload
        return cs, None
    res = evaluate_compact(data.spec, cs.X, cs.y, data, recipe, progress=progress)
    return cs, res


def build_groups(cs: CompactSet, scale_dtype: str = "float32") -> list:
    """Payload v1 sample groups, one per width (``b{bits}``); dropped samples are not stored."""
    from edge_sdk.payload import SampleGroup

    groups = []
    for b in sorted(cs.codes, reverse=True):
        rows = np.flatnonzero(cs.bits == b)
        meta: dict = {}
        if b in (16, 32):
            groups.append(SampleGroup(name=f"b{b}", kind="float16" if b == 16 else "float32", bits=b,
                                      data=cs.codes[b], params={}, labels=cs.y[rows], meta=meta))
        else:
            sc = cs.scales[b].astype(np.float16 if scale_dtype == "float16" else np.float32)
            groups.append(SampleGroup(name=f"b{b}", kind="symmetric_per_sample", bits=b, data=cs.codes[b],
                                      params={"scale": sc}, labels=cs.y[rows], meta=meta))
    return groups


def write_compact_payload(path, cs: CompactSet, data, cfg: QuantizeConfig):
    """Write ``cs`` as payload v1 (atomic, ``edge_sdk.payload.write_payload``), naming ``cs.graph`` (if any) in
    the header; checks that the file size equals the planned size (which the allocator kept within the
    budget). Returns ``PayloadInfo``."""
    from edge_sdk.payload import write_payload

    groups = build_groups(cs, cfg.scale_dtype)
    digest = cs.graph.digest() if cs.graph is not None else None
    info = write_payload(path, groups, num_classes=data.num_classes, task=data.task, provenance=provenance(cfg),
                         graph=digest)
    if info.size != cs.nbytes:
        raise ConfigError(f"payload is {info.size} B but {cs.nbytes} B were planned (accounting mismatch)")
    if cfg.method != "full" and info.size > cs.budget:  # invariant: the allocators plan within the budget
        raise ConfigError(f"payload is {info.size} B, over the {cs.budget} B budget (accounting bug)")
    return info

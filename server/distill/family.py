"""Distillation as a method family of the pipeline (``edge_sdk.server.pipeline``): prepare -> plan -> build, and
:func:`distill`, which runs one method (its function from the registries, its context, the run).

* :func:`prepare` resolves what needs search before planning: ``search_bits`` (``--bits auto``) scores every
  allowed width of the quantizer with a short proxy run (distillation with ``iterations / 5``, one seed,
  ``steps / 3`` evaluation updates) and keeps the best — returns the config with ``bits`` set;
* :func:`plan` is the operating point (cheap; called again when the training graph's digest changes the size);
* :func:`build` runs the method once at that point (:func:`distill`).

Imports go one way, no cycle: ``family`` -> ``loop`` (the host loop) -> ``base`` (configs, registries,
``Matcher``, ``Context``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from edge_sdk.errors import ConfigError
from edge_sdk.payload import GroupLayout
from edge_sdk.server.budget import OperatingPoint, search_sweet_spot
from edge_sdk.server.datasets import TaskData
from edge_sdk.server.distill.base import (
    BASELINES,
    MATCHERS,
    RAW,
    Context,
    DistillConfig,
    DistillResult,
    MethodFn,
    choose_point,
    default_cost,
    resolve_method,
    resolve_select,
    split_method,
    split_validation,
)
from edge_sdk.server.distill.loop import host_method
from edge_sdk.server.payload_io import CompactSet, PayloadCost
from edge_sdk.server.train_eval import EvalConfig, evaluate_compact

#: bit widths the sweet-spot search tries per quantizer
AUTO_BITS = {"uniform": (2, 3, 4, 8), "apot": (3, 5), "codebook": (1, 2, 3, 4)}


def method_fn(name: str) -> MethodFn:
    """The function that runs method ``name`` (a baseline, or a host in one of its storage modes)."""
    mode, host = split_method(resolve_method(name))
    if host is None:
        return BASELINES.get(mode)
    return host_method(MATCHERS.get(host), mode)


def distill(data: TaskData, config: DistillConfig, budget: int | None = None, *, cost: PayloadCost | None = None,
            point: OperatingPoint | None = None, progress: bool = False) -> DistillResult:
    """Run the method named ``config.method`` on ``data`` (see module docstring). The operating point is
    ``point`` when given (the pipeline plans it), else :func:`choose_point` under ``budget`` with ``cost``
    (default: :func:`default_cost`). Nothing passed in is modified."""
    method = resolve_method(config.method)
    cfg = replace(config, method=method)
    torch.manual_seed(cfg.seed)
    if point is None:
        point = choose_point(data, cfg, budget, cost if cost is not None else default_cost(data, cfg))
    dev = torch.device(cfg.device)
    classes = np.flatnonzero(np.bincount(data.y_train, minlength=data.num_classes))
    val = None
    if resolve_select(cfg.select, method) == "val":
        data, val = split_validation(data, cfg.val_frac, cfg.seed)
    ctx = Context(data, cfg, point, dev, torch.from_numpy(data.X_train).to(dev),
                  torch.from_numpy(data.y_train).to(dev), classes, val=val, progress=progress)
    t0 = time.perf_counter()
    compact, losses, info = method_fn(method)(ctx)
    info = {**info, "class_alloc": ctx.class_alloc, "init": ctx.init, "select": "val" if val is not None else "none",
            "samples_per_class": ctx.syn_counts.tolist()}
    secs = time.perf_counter() - t0
    lay = compact.layouts()[0]
    if (lay.kind, lay.bits, compact.n) != (point.kind, point.bits, point.n):
        raise AssertionError(f"{method} produced {lay.kind}/{lay.bits}/{compact.n}, planned {point}")
    return DistillResult(compact.with_info(**info), point, losses, secs, cfg.to_dict(), info)


@dataclass(frozen=True)
class DistillPlan:
    """The operating point, the layouts of the groups it stores and their exact payload size."""

    point: OperatingPoint
    layouts: list[GroupLayout]
    nbytes: int


def prepare(data: TaskData, cfg: DistillConfig, budget: int | None, cost: PayloadCost, ev: EvalConfig,
            progress: bool = False) -> tuple[DistillConfig, dict[str, Any]]:
    """``cfg`` with every search resolved, and a log for the report (``bits_search``)."""
    if not cfg.search_bits:
        return cfg, {}
    if cfg.quantizer in RAW:
        raise ConfigError("--bits auto needs a quantizer (uniform, apot, codebook)")
    cands = []
    for b in AUTO_BITS[cfg.quantizer]:
        try:
            cands.append(choose_point(data, replace(cfg, bits=b, search_bits=False), budget, cost))
        except ConfigError:
            continue
    proxy_ev = replace(ev, seeds=(ev.seeds[0],), recipe=replace(ev.recipe, steps=max(50, ev.recipe.steps // 3)))
    log: list[dict[str, Any]] = []

    def proxy(pt: OperatingPoint) -> float:
        c = replace(cfg, bits=pt.bits, search_bits=False, iterations=max(10, cfg.iterations // 5))
        r = distill(data, c, budget, cost=cost)
        m = evaluate_compact(data.spec, r.compact.X, r.compact.y, data, proxy_ev, soft=r.compact.soft).mean["top1"]
        log.append({"bits": pt.bits, "ipc": pt.ipc, "proxy_top1": m})
        return m

    best, _ = search_sweet_spot(cands, proxy)
    return replace(cfg, bits=best.bits, search_bits=False), {"bits_search": log}


def plan(data: TaskData, cfg: DistillConfig, budget: int | None, cost: PayloadCost) -> DistillPlan:
    point = choose_point(data, cfg, budget, cost)
    return DistillPlan(point, point.storage.layouts(point.n, data.dim, data.num_classes), point.bytes)


def build(data: TaskData, cfg: DistillConfig, p: DistillPlan, progress: bool = False) -> CompactSet:
    res = distill(data, cfg, point=p.point, progress=progress)
    return res.compact.with_info(operating_point=p.point.to_dict(), distill_seconds=res.seconds,
                                 losses_first_last=res.losses[:1] + res.losses[-1:])


class DistillFamily:
    """Distillation as the pipeline runs it (``edge_sdk.server.pipeline.Family``): DD hosts, QuADD, PTQ and the
    baselines; method names are canonicalised (``quadd`` -> ``quadd-mtt``) before anything else."""

    command = "distill"

    def method_name(self, cfg: DistillConfig) -> str:
        return resolve_method(cfg.method)

    def ignores_budget(self, cfg: DistillConfig) -> bool:
        return resolve_method(cfg.method) == "full"

    def prepare(self, data: TaskData, cfg: DistillConfig, budget: int | None, cost: PayloadCost, ev: EvalConfig,
                progress: bool) -> tuple[DistillConfig, dict[str, Any]]:
        return prepare(data, replace(cfg, method=resolve_method(cfg.method)), budget, cost, ev, progress)

    def plan(self, data: TaskData, cfg: DistillConfig, budget: int | None, cost: PayloadCost, ev: EvalConfig,
             progress: bool) -> DistillPlan:
        return plan(data, cfg, budget, cost)

    def build(self, data: TaskData, cfg: DistillConfig, p: DistillPlan, progress: bool) -> CompactSet:
        return build(data, cfg, p, progress)


#: what ``edge_sdk.server.pipeline.family_of`` returns for a DistillConfig
FAMILY = DistillFamily()

"""Distillation as a method family of the pipeline (``edge_sdk.server.pipeline``): prepare -> plan -> build.

* :func:`prepare` resolves what needs search before planning: ``search_bits`` (``--bits auto``) scores every
  allowed width of the quantizer with a short proxy run (distillation with ``iterations / 5``, one seed,
  ``steps / 3`` evaluation updates) and keeps the best — returns the config with ``bits`` set;
* :func:`plan` is the operating point (cheap; called again when the training graph's digest changes the size);
* :func:`build` runs the method once at that point.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from edge_sdk.errors import ConfigError
from edge_sdk.payload import GroupLayout
from edge_sdk.server.budget import OperatingPoint, search_sweet_spot
from edge_sdk.server.datasets import TaskData
from edge_sdk.server.distill.base import RAW, DistillConfig, choose_point, resolve_method
from edge_sdk.server.distill.runner import distill
from edge_sdk.server.payload_io import CompactSet, PayloadCost
from edge_sdk.server.train_eval import EvalConfig, evaluate_compact

#: bit widths the sweet-spot search tries per quantizer
AUTO_BITS = {"uniform": (2, 3, 4, 8), "apot": (3, 5), "codebook": (1, 2, 3, 4)}


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

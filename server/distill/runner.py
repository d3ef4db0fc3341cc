"""Run one distillation method: resolve its function from the registries, build its context, run it.

Kept apart from :mod:`.base` (configs, registries, ``Matcher``, ``Context``) and :mod:`.loop` (the host loop) so
that neither imports its caller: ``runner`` -> ``loop`` -> ``base``, no cycle.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import torch

from edge_sdk.server.budget import OperatingPoint
from edge_sdk.server.datasets import TaskData
from edge_sdk.server.distill.base import (
    BASELINES,
    MATCHERS,
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
from edge_sdk.server.payload_io import PayloadCost


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

"""edge_sdk.server.distill: dataset distillation under a byte budget (DM, DC, MTT, QuADD, PTQ, baselines).

The family's API (the product's entry point is :func:`edge_sdk.server.pipeline.run`)::

    from edge_sdk.server.distill import distill, choose_point, DistillConfig, DistillResult, method_names
    res = distill(task_data, DistillConfig(method="quadd-dm", quantizer="uniform", bits=2), budget=16384)

Method names and the budget rule are documented in :mod:`edge_sdk.server.distill.base`; each host (a
``Matcher``) and each baseline lives in its own file (``dm.py``, ``dc.py``, ``mtt.py``, ``kip.py``, ``baselines.py``,
``coreset_methods.py``) and registers itself in ``MATCHERS`` / ``BASELINES``; the registries import a file the
first time a run uses one of its names (where each lives: ``edge_sdk.catalog``).
"""

from edge_sdk.server.distill.base import (
    BASELINES,
    MATCHERS,
    DistillConfig,
    DistillResult,
    Matcher,
    choose_point,
    method_names,
    resolve_method,
)
from edge_sdk.server.distill.family import distill

__all__ = ["BASELINES", "MATCHERS", "DistillConfig", "DistillResult", "Matcher", "choose_point", "distill",
           "method_names", "resolve_method"]

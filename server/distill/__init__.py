"""edge_sdk.server.distill: dataset distillation under a byte budget (DM, DC, MTT, QuADD, PTQ, baselines).

One API for every method::

    from edge_sdk.server.distill import distill, DistillConfig, DistillResult, METHODS, register
    res = distill(task_data, DistillConfig(method="quadd-dm", quantizer="uniform", bits=2), budget=16384)

Method names and the budget rule are documented in :mod:`edge_sdk.server.distill.base`; each method lives in
its own file (``dm.py``, ``dc.py``, ``mtt.py``, ``baselines.py``) and registers itself with ``register`` /
``loop.register_host``.
"""

from edge_sdk.server.distill import baselines, dc, dm, mtt  # noqa: F401  (register the methods)
from edge_sdk.server.distill.base import (
    METHODS,
    DistillConfig,
    DistillResult,
    choose_point,
    distill,
    register,
    resolve_method,
)

__all__ = ["METHODS", "DistillConfig", "DistillResult", "choose_point", "distill", "register", "resolve_method"]

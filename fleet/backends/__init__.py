"""Backends that run the fleet's real work (training, KPIs) behind one small interface.

``inline`` (in this process, deterministic; tests), ``process`` (default: a local process pool), ``ray``
(clusters). A backend is one file here that subclasses :class:`~edge_sdk.fleet.backends.base.Backend` and
registers itself with ``@register("name")``; :func:`make_backend` finds it by name. Results never depend on the
backend (tests/fleet/test_backends.py).
"""

from __future__ import annotations

import importlib
from typing import Any

from edge_sdk.errors import ConfigError
from edge_sdk.fleet.backends.base import BACKENDS, Backend, register

#: backend name -> module that registers it (imported on demand: ray is an optional dependency)
MODULES = {"inline": "edge_sdk.fleet.backends.inline", "process": "edge_sdk.fleet.backends.process",
           "ray": "edge_sdk.fleet.backends.ray"}

__all__ = ["BACKENDS", "Backend", "MODULES", "make_backend", "register"]


def make_backend(name: str, **options: Any) -> Backend:
    if name not in MODULES:
        raise ConfigError(f"unknown backend {name!r}; choose one of {', '.join(MODULES)}")
    importlib.import_module(MODULES[name])
    return BACKENDS[name](**options)

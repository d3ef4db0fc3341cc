"""edge_sdk.fleet: simulate a release pushed to a fleet of devices (torch-free; imports core and device only).

A scenario (:mod:`edge_sdk.fleet.scenario`) says which devices, on which links (:mod:`edge_sdk.fleet.links`), get
which release; the discrete-event engine (:mod:`edge_sdk.fleet.engine`) runs every device's fetch on a virtual
clock; real onnxruntime training and real KPIs on each device's local data run on a backend
(:mod:`edge_sdk.fleet.backends`: inline, process, ray). See docs/fleet.md. Attributes load lazily.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "load_scenario": "edge_sdk.fleet.scenario",
    "Scenario": "edge_sdk.fleet.scenario",
    "simulate": "edge_sdk.fleet.simulate",
    "LinkModel": "edge_sdk.fleet.links",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'edge_sdk.fleet' has no attribute {name!r}")
    return getattr(importlib.import_module(mod), name)

"""edge_sdk.device: the device runtime (numpy + onnxruntime only; never torch, never edge_sdk.server).

``Trainer``/``TrainConfig`` (edge_sdk.device.trainer), ``evaluate_beam`` (edge_sdk.device.evaluate),
``mlp_inference_model`` (edge_sdk.device.evaluate); see docs/device.md. Attributes load lazily.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Trainer": "edge_sdk.device.trainer",
    "TrainConfig": "edge_sdk.device.trainer",
    "evaluate_beam": "edge_sdk.device.evaluate",
    "mlp_inference_model": "edge_sdk.device.evaluate",
    "load_train_graph": "edge_sdk.device.graph",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'edge_sdk.device' has no attribute {name!r}")
    return getattr(importlib.import_module(mod), name)

"""edge_sdk.serve: the release server (``edge-sdk serve``) on Starlette + uvicorn (the ``serve`` extra).

Torch-free; imports the core (``edge_sdk.release``) only, never ``edge_sdk.server`` or ``edge_sdk.device``.
``create_app``/``ServeConfig`` (edge_sdk.serve.app), ``serve``/``start_in_thread`` (edge_sdk.serve.server),
token files (edge_sdk.serve.auth, stdlib only). See docs/transfer.md, "HTTP API". Attributes load lazily, so
``edge_sdk.serve.auth`` works without the extra installed.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ServeConfig": "edge_sdk.serve.app",
    "create_app": "edge_sdk.serve.app",
    "serve": "edge_sdk.serve.server",
    "start_in_thread": "edge_sdk.serve.server",
    "RunningServer": "edge_sdk.serve.server",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'edge_sdk.serve' has no attribute {name!r}")
    return getattr(importlib.import_module(mod), name)

"""edge_sdk.server: the torch side (data generation, distillation, quantization, ONNX export).

Importing this package requires the ``server`` extra (``pip install -e '.[server]'``).
"""

try:
    import torch  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "edge_sdk.server needs torch: install the server extra, e.g. `pip install -e '.[server]' in a checkout (docs/install.md)`"
    ) from exc

"""edge_sdk.server: the torch side (data generation, distillation, quantization, ONNX export).

Importing this package requires the ``server`` extra (``pip install -e '.[server]'``). The package checks that
torch is installed but does not import it: modules that need torch import it themselves, so light modules (the
parent of a sharded generation, :mod:`edge_sdk.server.datagen.shards`) start without torch's ~1 s import.
"""

import importlib.util

if importlib.util.find_spec("torch") is None:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "edge_sdk.server needs torch: install the server extra, e.g. `pip install -e '.[server]' in a checkout (docs/install.md)`"
    )

"""edge-sdk with the format-v1 step graph (one ``run()`` per optimizer step): the state before issue #15."""

from peer_edge_sdk import OPTIMIZERS, UNSUPPORTED_WHY, Trainer  # noqa: F401

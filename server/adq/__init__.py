"""edge_sdk.server.adq: adaptive dataset quantization (ADQ, arXiv 2512.05987) and its baselines.

Per-sample symmetric quantization (``quantize``), gradient sensitivity S(d) with ``torch.func``
(``sensitivity``), byte-exact budget accounting (``cost``), bit allocation (``allocation``), coreset pruning
(``pruning``), and the family the pipeline runs (``family``: ``QuantizeConfig``, the ``METHODS`` registry,
``plan``/``build``). The product's entry point is ``edge_sdk.server.pipeline.run``. Documentation: docs/adq.md;
results: docs/adq-results.md.
"""

from edge_sdk.server.adq.family import METHODS, QuantizeConfig, build, plan

__all__ = ["METHODS", "QuantizeConfig", "build", "plan"]

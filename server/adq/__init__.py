"""edge_sdk.server.adq: adaptive dataset quantization (ADQ, arXiv 2512.05987) and its baselines.

Per-sample symmetric quantization (``quantize``), gradient sensitivity S(d) with ``torch.func``
(``sensitivity``), byte-exact budget accounting (``cost``), bit allocation (``allocation``), coreset pruning
(``pruning``), the end-to-end pipeline and payload groups (``pipeline``) and the ``edge-sdk quantize`` body
(``run_cli``). Documentation: docs/adq.md; results: docs/adq-results.md.
"""

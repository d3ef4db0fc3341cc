"""The equal-byte selection baselines as distillation methods: ``kmeans``, ``kmedoids``, ``herding``.

Each picks ``ctx.syn_counts`` rows per present class with the selector of the same name in
:mod:`edge_sdk.server.coresets` (per-class k-means centroids, the real rows nearest to them, kernel herding) and
stores them with the configured quantizer fitted to the chosen rows (no learning, like ``random`` in
``baselines.py``), so ``edge-sdk distill --method kmeans --quantizer codebook --bits 4 --compression 180x``
gives the baseline a practitioner tries first at exactly the bytes of any other method. No loss; ``losses`` is
empty.
"""

from __future__ import annotations

import numpy as np

from edge_sdk.server.coresets import select
from edge_sdk.server.distill.base import BASELINES, Context
from edge_sdk.server.distill.baselines import _store


def _selection_method(name: str):
    def fn(ctx: Context):
        counts = np.zeros(ctx.data.num_classes, np.int64)
        counts[ctx.classes] = ctx.syn_counts
        X, y = select(name, ctx.data.X_train, ctx.data.y_train, counts, ctx.cfg.seed)
        return _store(ctx, X, y), [], {"host": "none", "selection": name}

    fn.__name__ = f"select_{name}"
    return fn


for _name in ("kmeans", "kmedoids", "herding"):
    BASELINES.add(_name, _selection_method(_name))

"""Baselines at the same bytes: ``full`` (the whole training set) and ``random`` (random real subset).

``full``: every training sample, stored with the configured quantizer (``float32`` = the 1x reference,
``uniform`` 8 bit = "full data 8-bit"); the threshold is fitted to the data (MSE-optimal grid search).
``random``: ``ctx.syn_counts`` uniformly random real samples per present class (seeded; ``ipc`` each unless
``class_alloc="proportional"``), stored with the
configured quantizer (fitted, no learning). Neither has a loss; ``losses`` is empty.
"""

from __future__ import annotations

import numpy as np
import torch

from edge_sdk.server.distill.base import BASELINES, RAW, Context
from edge_sdk.server.payload_io import CompactSet, compact_float, compact_from_quantizer
from edge_sdk.server.torch_quant import make_quantizer


def _store(ctx: Context, X: np.ndarray, y: np.ndarray) -> CompactSet:
    if ctx.point.quantizer in RAW:
        return compact_float(X, y, ctx.point.kind)
    q = make_quantizer(ctx.point.quantizer, ctx.point.bits, torch.from_numpy(X), per_feature=ctx.point.per_feature)
    return compact_from_quantizer(X, y, q)


@BASELINES.register("full")
def full(ctx: Context):
    return _store(ctx, ctx.data.X_train, ctx.data.y_train), [], {"host": "none"}


@BASELINES.register("random")
def random_subset(ctx: Context):
    rng = np.random.Generator(np.random.PCG64(ctx.cfg.seed))
    picks = []
    repl = False
    for c, k in zip(ctx.classes, ctx.syn_counts.tolist(), strict=True):
        idx = np.flatnonzero(ctx.data.y_train == c)
        repl = repl or len(idx) < k
        picks.append(rng.choice(idx, size=k, replace=len(idx) < k))
    sel = np.concatenate(picks)
    return _store(ctx, ctx.data.X_train[sel], ctx.data.y_train[sel]), [], {"host": "none", "with_replacement": repl}

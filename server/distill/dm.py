"""Distribution matching (DM; Zhao & Bilen, "Dataset Condensation with Distribution Matching", WACV 2023, Eq. 4).

Per iteration a fresh randomly initialised network ``psi`` (``init_params(spec, seed')``) embeds a batch
of real samples per class and the (quantized) synthetic samples; the loss is
``sum_c || mean_{x in T_c} psi(x) - mean_{s in S_c} psi(s) ||^2`` with ``psi`` the penultimate features.
All classes are handled in one batched forward (no per-class or per-sample Python loop).
Host ``dm`` (methods ``dm``, ``quadd-dm``, ``ptq-dm``).
"""

from __future__ import annotations

import torch

from edge_sdk.server.distill.base import MATCHERS, Matcher
from edge_sdk.server.models import features


@MATCHERS.register("dm")
class DMMatcher(Matcher):
    name = "dm"
    balanced_only = True

    def loss(self, Sq: torch.Tensor, it: int) -> torch.Tensor:
        ctx = self.ctx
        spec = ctx.data.spec
        params = ctx.random_params(it + 1)
        xr, _ = ctx.sample_real(ctx.cfg.batch_real)  # [C', k, D]
        c, k, d = xr.shape
        with torch.no_grad():
            er = features(spec, params, xr.reshape(c * k, d)).reshape(c, k, -1).mean(1)
        es = features(spec, params, Sq).reshape(c, ctx.point.ipc, -1).mean(1)
        return ((er - es) ** 2).sum()

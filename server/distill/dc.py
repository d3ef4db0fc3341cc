"""Gradient matching (DC; Zhao, Mopuri & Bilen, "Dataset Condensation with Gradient Matching", ICLR 2021,
Eq. 8-10).

Per iteration: for every present class ``c`` the gradient of the cross-entropy loss w.r.t. the network
parameters on a real batch of class ``c`` and on the (quantized) synthetic samples of class ``c`` are
matched with DC's layer-wise distance ``sum_layers sum_rows (1 - cos(g_real_row, g_syn_row))`` (weights
reshaped to ``[out, -1]``; biases are skipped, as in the reference code). Per-class gradients are computed
for all classes at once with ``torch.func.vmap(torch.func.grad(...))`` over a class axis.
The network is re-drawn from ``init_params`` every ``dc_model_every`` iterations and, after each
matching step, trained ``dc_net_steps`` SGD steps (lr 0.01) on the current synthetic set (DC's inner loop).
Host ``dc`` (methods ``dc``, ``quadd-dc``, ``ptq-dc``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.func import grad, vmap

from edge_sdk.server.distill.base import MATCHERS, Context, Matcher
from edge_sdk.server.models import forward

NET_LR = 0.01


def _match_distance(gr: dict[str, torch.Tensor], gs: dict[str, torch.Tensor]) -> torch.Tensor:
    total = 0.0
    for name, a in gr.items():
        if a.dim() <= 2:  # [C', n] bias or GroupNorm affine: skipped like DC's distance_wb
            continue
        b = gs[name]
        a2 = a.reshape(a.shape[0], a.shape[1], -1)
        b2 = b.reshape(b.shape[0], b.shape[1], -1)
        cos = (a2 * b2).sum(-1) / (a2.norm(dim=-1) * b2.norm(dim=-1) + 1e-6)
        total = total + (1 - cos).sum()
    return total  # type: ignore[return-value]


@MATCHERS.register("dc")
class DCMatcher(Matcher):
    name = "dc"
    balanced_only = True

    def __init__(self, ctx: Context, S0: torch.Tensor) -> None:
        super().__init__(ctx, S0)
        self.params: dict[str, torch.Tensor] = {}
        spec = ctx.data.spec

        def ce(params, x, y):
            return F.cross_entropy(forward(spec, params, x), y)

        self._pcgrad = vmap(grad(ce), in_dims=(None, 0, 0))

    def loss(self, Sq: torch.Tensor, it: int) -> torch.Tensor:
        ctx, cfg = self.ctx, self.ctx.cfg
        spec = ctx.data.spec
        if it % cfg.dc_model_every == 0:
            self.params = ctx.random_params(it + 1)
        xr, yr = ctx.sample_real(cfg.batch_real)
        c = xr.shape[0]
        ys = ctx.syn_labels().reshape(c, -1)
        with torch.no_grad():
            gr = self._pcgrad(self.params, xr, yr)
        gs = self._pcgrad(self.params, Sq.reshape(c, ctx.point.ipc, -1), ys)
        loss = _match_distance(gr, gs)
        # inner loop: train the network on the synthetic set (detached)
        p = {k: v.detach().requires_grad_(True) for k, v in self.params.items()}
        xs, yl = Sq.detach(), ctx.syn_labels()
        for _ in range(cfg.dc_net_steps):
            g = torch.autograd.grad(F.cross_entropy(forward(spec, p, xs), yl), list(p.values()))
            p = {k: (v - NET_LR * gi).detach().requires_grad_(True) for (k, v), gi in zip(p.items(), g, strict=True)}
        self.params = {k: v.detach() for k, v in p.items()}
        return loss

"""Trajectory matching (MTT; Cazenavette et al., "Dataset Distillation by Matching Training Trajectories",
CVPR 2022, Eq. 2; soft labels as in DATM, Guo et al. ICLR 2024).

1. Experts: ``mtt_experts`` networks start from ``init_params(spec, seed_e)`` and train on the real data
   with SGD (lr ``mtt_expert_lr``, batch ``mtt_expert_batch``, batches in ``epoch_order``) for
   ``mtt_expert_epochs`` epochs; the flat parameter vector is recorded at every epoch boundary.
2. Each iteration picks an expert and a start epoch ``t < mtt_max_start``, starts a student at
   ``theta*_t`` and takes ``mtt_syn_steps`` differentiable SGD steps on mini-batches (``mtt_syn_batch``)
   of the (quantized) synthetic set with a **learnable step size** ``lr_syn = exp(log_lr)`` (initialised to
   the expert lr, optimised with Adam at ``mtt_lr_lr``). Loss:
   ``||theta_N - theta*_{t+M}||^2 / ||theta*_t - theta*_{t+M}||^2`` with ``M = mtt_expert_span`` epochs.
3. Optional soft labels (``soft_labels=True``): learnable logits ``[N, C]`` initialised from the last
   expert's logits on the initial synthetic samples; the student's loss uses ``softmax(logits)`` targets.
   They are stored in the payload (role ``soft_labels``) and counted in the budget.
Host ``mtt`` (methods ``mtt``, ``quadd-mtt``, ``ptq-mtt``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from edge_sdk.errors import ConfigError
from edge_sdk.modelspec import epoch_order
from edge_sdk.server.distill.base import MATCHERS, Context, Matcher
from edge_sdk.server.models import forward, init_torch_params


def _unflatten(flat: torch.Tensor, shapes: list[tuple[str, tuple[int, ...]]]) -> dict[str, torch.Tensor]:
    sizes = [int(np.prod(s)) for _, s in shapes]
    return {n: t.view(s) for (n, s), t in zip(shapes, torch.split(flat, sizes), strict=True)}


def train_experts(ctx: Context) -> list[torch.Tensor]:
    """Expert trajectories: list over experts of [epochs + 1, P] flat parameter snapshots."""
    cfg, spec = ctx.cfg, ctx.data.spec
    n = ctx.X.shape[0]
    trajs = []
    for e in range(cfg.mtt_experts):
        seed = cfg.seed * 7919 + 1000 + e
        p = init_torch_params(spec, seed, ctx.device, requires_grad=True)
        opt = torch.optim.SGD(list(p.values()), lr=cfg.mtt_expert_lr, momentum=0.0)
        snaps = [torch.cat([v.detach().reshape(-1) for v in p.values()])]
        for ep in range(cfg.mtt_expert_epochs):
            order = torch.from_numpy(epoch_order(n, seed, ep)).to(ctx.device)
            for s in range(0, n, cfg.mtt_expert_batch):
                idx = order[s : s + cfg.mtt_expert_batch]
                loss = F.cross_entropy(forward(spec, p, ctx.X[idx]), ctx.y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            snaps.append(torch.cat([v.detach().reshape(-1) for v in p.values()]))
        trajs.append(torch.stack(snaps))
    return trajs


@MATCHERS.register("mtt")
class MTTMatcher(Matcher):
    name = "mtt"

    def __init__(self, ctx: Context, S0: torch.Tensor) -> None:
        super().__init__(ctx, S0)
        cfg = ctx.cfg
        if cfg.mtt_max_start + cfg.mtt_expert_span > cfg.mtt_expert_epochs:
            raise ConfigError("mtt_max_start + mtt_expert_span must be <= mtt_expert_epochs")
        self.shapes = ctx.data.spec.param_shapes()
        self.trajs = train_experts(ctx)
        self.log_lr = torch.nn.Parameter(torch.tensor(math.log(cfg.mtt_expert_lr), device=ctx.device))
        self.rng = np.random.Generator(np.random.PCG64(cfg.seed + 17))
        self.y = ctx.syn_labels()
        self.logits: torch.nn.Parameter | None = None
        if cfg.soft_labels:
            last = _unflatten(self.trajs[-1][-1], self.shapes)
            with torch.no_grad():
                self.logits = torch.nn.Parameter(forward(ctx.data.spec, last, S0).clone())

    def loss(self, Sq: torch.Tensor, it: int) -> torch.Tensor:
        ctx, cfg = self.ctx, self.ctx.cfg
        spec = ctx.data.spec
        traj = self.trajs[int(self.rng.integers(len(self.trajs)))]
        t = int(self.rng.integers(0, cfg.mtt_max_start + 1))
        start, target = traj[t], traj[t + cfg.mtt_expert_span]
        theta = start.clone().requires_grad_(True)
        lr = self.log_lr.exp()
        n = Sq.shape[0]
        bs = min(n, cfg.mtt_syn_batch)
        targets = torch.softmax(self.logits, 1) if self.logits is not None else self.y
        perm = torch.from_numpy(self.rng.permutation(n)).to(ctx.device)
        pos = 0
        for _ in range(cfg.mtt_syn_steps):
            if pos + bs > n:
                perm = torch.from_numpy(self.rng.permutation(n)).to(ctx.device)
                pos = 0
            idx = perm[pos : pos + bs]
            pos += bs
            out = forward(spec, _unflatten(theta, self.shapes), Sq[idx])
            ce = F.cross_entropy(out, targets[idx])
            g = torch.autograd.grad(ce, theta, create_graph=True)[0]
            theta = theta - lr * g
        return ((theta - target) ** 2).sum() / ((start - target) ** 2).sum().clamp(min=1e-12)

    def param_groups(self) -> list[dict[str, Any]]:
        groups = [{"params": [self.log_lr], "lr": self.ctx.cfg.mtt_lr_lr}]
        if self.logits is not None:
            groups.append({"params": [self.logits], "lr": self.ctx.cfg.lr_data})
        return groups

    def soft(self) -> torch.Tensor | None:
        return self.logits

    def info(self) -> dict[str, Any]:
        return {"host": "mtt", "learned_lr": float(self.log_lr.detach().exp()), "experts": len(self.trajs)}


"""Kernel inducing points (KIP; Nguyen, Chen & Lee, "Dataset Meta-Learning from Kernel Ridge-Regression",
ICLR 2021, Eq. 2) with the neural tangent kernel of the product's MLP.

Why this host (issue #11, measured in tools/experiments/exp_b_kip.py and exp_b_mtt.py on the beam data): the
device trains a fresh MLP on the payload to near-convergence (thousands of Adam steps), and a wide network
trained that long behaves like kernel ridge regression with its NTK (Jacot et al. 2018; Lee et al. 2019). KIP
optimises the synthetic rows so that KRR *on the decoded rows* predicts held real rows, i.e. it matches the
whole training run rather than a short trajectory segment (MTT) - on the beam data MTT's held-out accuracy falls
as soon as matching starts, KIP's rises and stays up (docs/distillation.md).

Per iteration: a batch of real rows ``X_t`` [m, D] with targets ``Y_t`` [m, C] (the class probabilities of a
teacher MLP trained on the fit part, or one-hot labels), the (quantized) synthetic rows ``S`` [n, D] with their
fixed hard labels ``Y_s`` (one-hot, [n, C]); loss ``|| Y_t - K(X_t, S) (K(S, S) + lambda I)^-1 Y_s ||^2 / m`` with
``lambda = kip_reg * mean(diag K(S, S))``. When ``n > kip_support`` each iteration uses a random subset of
``kip_support`` synthetic rows (stochastic KIP), so the cost is ``O(kip_support^3)`` whatever the budget.

NTK of ``mlp`` (ReLU, weights and biases ~ U(+-1/sqrt(fan_in)), i.e. variance ``1/(3 fan_in)``), by the
arc-cosine recursion (Cho & Saul 2009): ``Sigma^1(x, x') = (x.x' + 1) / (3 d)``, and per hidden layer
``Sigma^{l+1} = E[relu(u) relu(v)] / 3 + 1/(3 h)``, ``Theta^{l+1} = Sigma^{l+1} + Theta^l E[relu'(u) relu'(v)] / 3``,
``E[relu relu] = sqrt(s11 s22) (sin t + (pi - t) cos t) / (2 pi)``, ``E[relu' relu'] = (pi - t) / (2 pi)``.
Registered as ``kip``, ``quadd-kip``, ``ptq-kip`` (``MATCHERS``); its settings are :class:`KIPSettings`
(``KIPMatcher.settings``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from edge_sdk.server.distill.base import MATCHERS, Context, Matcher
from edge_sdk.server.models import forward


def _relu_moments(k12: torch.Tensor, k11: torch.Tensor, k22: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    norm = torch.sqrt(k11[:, None] * k22[None, :]).clamp(min=1e-12)
    cos = (k12 / norm).clamp(-1 + 1e-6, 1 - 1e-6)
    t = torch.acos(cos)
    return norm * (torch.sin(t) + (math.pi - t) * cos) / (2 * math.pi), (math.pi - t) / (2 * math.pi)


def mlp_ntk(X1: torch.Tensor, X2: torch.Tensor, hidden: tuple[int, ...]) -> torch.Tensor:
    """NTK ``[n1, n2]`` of the MLP with hidden widths ``hidden`` between rows of ``X1`` and ``X2`` (module docstring)."""
    d = X1.shape[1]
    s12 = (X1 @ X2.T + 1.0) / (3 * d)
    s11 = ((X1 * X1).sum(1) + 1.0) / (3 * d)
    s22 = ((X2 * X2).sum(1) + 1.0) / (3 * d)
    theta = s12
    for h in hidden:
        e, ed = _relu_moments(s12, s11, s22)
        theta = e / 3 + 1.0 / (3 * h) + theta * ed / 3
        s12 = e / 3 + 1.0 / (3 * h)
        s11 = s11 / 6 + 1.0 / (3 * h)  # E[relu(u)^2] = s / 2
        s22 = s22 / 6 + 1.0 / (3 * h)
    return theta


@dataclass(frozen=True)
class KIPSettings:
    """KIP's own settings: ``target`` "teacher" (class probabilities of a teacher MLP) or "labels" (one-hot);
    ``reg`` = lambda / mean(diag K(S, S)); ``support``: synthetic rows per iteration; ``target_batch``: real rows
    per iteration; the teacher's Adam + cosine recipe: ``teacher_lr``, ``teacher_steps``. Defaults: the phase-1
    setting of tools/experiments/exp_b_kip.py (reg 1e-2, 1024 target rows, support 512, teacher Adam 1e-2 x 6000)."""

    target: str = "teacher"
    reg: float = 1e-2
    support: int = 512
    target_batch: int = 1024
    teacher_lr: float = 1e-2
    teacher_steps: int = 6000


def train_teacher(ctx: Context, settings: KIPSettings) -> dict[str, torch.Tensor]:
    """A teacher MLP on the fit part (the task's model, Adam + cosine for ``settings.teacher_steps`` updates)."""
    from edge_sdk.modelspec import TrainRecipe
    from edge_sdk.server.train_eval import train_model

    recipe = TrainRecipe(optimizer="adam", lr=settings.teacher_lr, schedule="cosine",
                         steps=settings.teacher_steps, batch_size=128, weight_decay=0.0)
    return train_model(ctx.data.spec, ctx.X, ctx.y, ctx.cfg.seed + 7, recipe, device=str(ctx.device))


@MATCHERS.register("kip")
class KIPMatcher(Matcher):
    name = "kip"
    settings = KIPSettings()

    def __init__(self, ctx: Context, S0: torch.Tensor) -> None:
        if ctx.data.spec.kind != "mlp":
            from edge_sdk.errors import ConfigError

            raise ConfigError("KIP uses the MLP's closed-form NTK; the task's model is not an MLP (use DM/DC/MTT)")
        super().__init__(ctx, S0)
        self.rng = np.random.Generator(np.random.PCG64(ctx.cfg.seed + 31))
        C = ctx.data.num_classes
        self.Ys = F.one_hot(ctx.syn_labels(), C).float()
        self.hidden = tuple(ctx.data.spec.hidden)
        if self.settings.target == "teacher":
            teacher = train_teacher(ctx, self.settings)
            with torch.no_grad():
                self.targets = torch.softmax(forward(ctx.data.spec, teacher, ctx.X), 1)
        else:
            self.targets = F.one_hot(ctx.y, C).float()

    def loss(self, Sq: torch.Tensor, it: int) -> torch.Tensor:
        cfg = self.settings
        n = Sq.shape[0]
        Ys = self.Ys
        if n > cfg.support:
            sel = torch.from_numpy(self.rng.permutation(n)[: cfg.support]).to(Sq.device)
            Sq, Ys = Sq[sel], Ys[sel]
        idx = torch.from_numpy(self.rng.integers(0, self.ctx.X.shape[0], cfg.target_batch)).to(Sq.device)
        Kss = mlp_ntk(Sq, Sq, self.hidden)
        Kts = mlp_ntk(self.ctx.X[idx], Sq, self.hidden)
        lam = cfg.reg * Kss.diagonal().mean()
        alpha = torch.linalg.solve(Kss + lam * torch.eye(Sq.shape[0], device=Sq.device), Ys)
        return ((Kts @ alpha - self.targets[idx]) ** 2).sum(1).mean()

    def info(self) -> dict[str, Any]:
        cfg = self.settings
        return {"host": "kip", "target": cfg.target, "reg": cfg.reg, "support": cfg.support}

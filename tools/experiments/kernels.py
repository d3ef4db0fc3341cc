"""NTK of the beam MLP (ReLU, fan-in uniform init: weight variance 1/(3 fan_in), bias variance 1/(3 fan_in)),
closed form (arc-cosine recursion; Jacot et al. 2018, Cho & Saul 2009), for kernel-inducing-point distillation
(KIP, Nguyen et al. ICLR 2021). Differentiable in both arguments."""
from __future__ import annotations

import math

import torch


def _relu_moments(k12, k11, k22):
    norm = torch.sqrt(k11[:, None] * k22[None, :]).clamp(min=1e-12)
    cos = (k12 / norm).clamp(-1 + 1e-6, 1 - 1e-6)
    th = torch.acos(cos)
    e = norm * (torch.sin(th) + (math.pi - th) * cos) / (2 * math.pi)
    ed = (math.pi - th) / (2 * math.pi)
    return e, ed


def ntk(X1: torch.Tensor, X2: torch.Tensor, hidden=(128, 128), nngp: bool = False) -> torch.Tensor:
    d = X1.shape[1]
    s12 = (X1 @ X2.T + 1.0) / (3 * d)
    s11 = ((X1 * X1).sum(1) + 1.0) / (3 * d)
    s22 = ((X2 * X2).sum(1) + 1.0) / (3 * d)
    th = s12
    for h in list(hidden):
        e, ed = _relu_moments(s12, s11, s22)
        # next pre-activations (fan_in = h): weight var 1/(3h) summed over h units, bias var 1/(3h)
        n12 = e / 3 + 1.0 / (3 * h)
        n11 = s11 / (2 * 3) + 1.0 / (3 * h)  # E[relu(u)^2] = s/2
        n22 = s22 / (2 * 3) + 1.0 / (3 * h)
        th = n12 + th * ed / 3
        s12, s11, s22 = n12, n11, n22
    return s12 if nngp else th

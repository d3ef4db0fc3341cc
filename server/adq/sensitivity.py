"""Quantization sensitivity of each sample (ADQ, arXiv 2512.05987, Sec. 4.2):

    S(d) = 1 - cos(g(x_d), g(Q_b(x_d))),   g(x) = d loss(f_theta(x), y) / d theta

with ``f_theta`` a *frozen* reference model, ``Q_b`` the per-sample quantizer ADQ stores the samples with at ``b``
bits (quantize + dequantize): ``kind="symmetric"`` :func:`~edge_sdk.server.adq.quantize.fake_quantize`, or
``kind="affine"`` the affine per-sample grid with the *stored* (compactly encoded) ``lo``/``hi``
(:class:`~edge_sdk.server.adq.quantize.AffineParams`, fitted on the whole set as ``family.build`` does), and ``theta`` all model
parameters. Per-sample gradients are computed batched with ``torch.func.vmap(torch.func.grad(...))`` over
chunks of ``batch_size`` samples; :func:`sensitivity_loop` is the one-sample-at-a-time reference (used by
the tests for equality and by ``tools/bench_sensitivity.py`` for the speed ratio).

Options (reported in the output): ``ref_epochs`` — training state of the reference model (0 = random init,
k = k passes of the shared evaluation recipe over the full-precision training set); ``bits`` — the width
of the quantized copy (default 2: the lowest width ADQ assigns, where the ranking matters most);
``scale_dtype``. Zero gradients (a perfectly fitted sample) give cos = 0 by the eps guard, i.e. S = 1 only if
the quantized copy's gradient is non-zero; S is clipped to [0, 2].
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from edge_sdk.errors import ConfigError
from edge_sdk.modelspec import ModelSpec, TrainRecipe

from .quantize import (
    PARAM_ENCODINGS,
    SAMPLE_KINDS,
    AffineParams,
    check_affine_bits,
    check_bits,
    fake_quantize,
)
from .training import as_module, train_params

EPS = 1e-12


@dataclass(frozen=True)
class SensitivityConfig:
    """How S(d) is computed."""

    ref_epochs: int = 5
    bits: int = 2
    scale_dtype: str = "float32"
    batch_size: int = 256
    seed: int = 0
    #: the quantizer of the copy: "symmetric" (payload v1's kind) or "affine" (v2's affine_sample)
    kind: str = "symmetric"
    #: affine only: how lo/hi are stored (quantize.PARAM_ENCODINGS)
    param_encoding: str = "compact"

    def __post_init__(self) -> None:
        if self.kind not in SAMPLE_KINDS:
            raise ConfigError(f"sensitivity kind must be one of {sorted(SAMPLE_KINDS)}, got {self.kind!r}")
        if self.param_encoding not in PARAM_ENCODINGS:
            raise ConfigError(f"param_encoding must be one of {PARAM_ENCODINGS}, got {self.param_encoding!r}")
        (check_affine_bits if self.kind == "affine" else check_bits)(self.bits)
        if self.ref_epochs < 0 or self.batch_size < 1:
            raise ConfigError("ref_epochs must be >= 0 and batch_size >= 1")

    def to_dict(self) -> dict:
        return asdict(self)


def _loss_fn(model: nn.Module):
    def loss(params: dict, buffers: dict, xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        out = functional_call(model, (params, buffers), (xi.unsqueeze(0),))
        return nn.functional.cross_entropy(out, yi.unsqueeze(0))

    return loss


def per_sample_grads(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Flattened per-sample parameter gradients float32 [B, P] via ``vmap(grad(loss))``."""
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}
    g = vmap(grad(_loss_fn(model)), in_dims=(None, None, 0, 0))(params, buffers, x, y)
    return torch.cat([v.reshape(x.shape[0], -1) for v in g.values()], dim=1)


def _cos_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    num = (a * b).sum(dim=1)
    den = a.norm(dim=1) * b.norm(dim=1)
    return torch.clamp(1.0 - num / torch.clamp(den, min=EPS), 0.0, 2.0)


def sensitivity_scores(
    model: nn.Module, x: np.ndarray, y: np.ndarray, bits: int = 2, scale_dtype: str = "float32",
    batch_size: int = 256, progress: bool = False, affine: AffineParams | None = None,
) -> np.ndarray:
    """S(d) float64 [N] for ``x`` float32 [N, D], ``y`` int [N] (batched vmap); ``affine``: the quantized copy uses
    the affine per-sample grid with these stored ranges (one per row of ``x``) instead of the symmetric one."""
    xt = torch.as_tensor(np.asarray(x, np.float32))
    yt = torch.as_tensor(np.asarray(y, np.int64))
    out = []
    starts = range(0, xt.shape[0], batch_size)
    if progress:
        from edge_sdk.progress import progress_bar

        starts = progress_bar(starts, desc="sensitivity", unit="batch", leave=False)
    model.eval()
    for s in starts:
        xb, yb = xt[s : s + batch_size], yt[s : s + batch_size]
        g0 = per_sample_grads(model, xb, yb)
        xq = (fake_quantize(xb, bits, scale_dtype) if affine is None
              else affine.fake_quantize(xb, np.arange(s, s + xb.shape[0]), bits))
        g1 = per_sample_grads(model, xq, yb)
        out.append(_cos_distance(g0, g1))
    return torch.cat(out).double().numpy() if out else np.zeros(0)


def sensitivity_loop(model: nn.Module, x: np.ndarray, y: np.ndarray, bits: int = 2,
                     scale_dtype: str = "float32") -> np.ndarray:
    """Reference implementation: one sample at a time with ``torch.autograd.grad`` (slow)."""
    xt = torch.as_tensor(np.asarray(x, np.float32))
    yt = torch.as_tensor(np.asarray(y, np.int64))
    xq = fake_quantize(xt, bits, scale_dtype)
    params = {k: v.detach().clone().requires_grad_(True) for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}
    out = np.zeros(xt.shape[0])
    model.eval()
    for i in range(xt.shape[0]):
        gs = []
        for xi in (xt[i : i + 1], xq[i : i + 1]):
            logits = functional_call(model, (params, buffers), (xi,))
            loss = nn.functional.cross_entropy(logits, yt[i : i + 1])
            grads = torch.autograd.grad(loss, list(params.values()))
            gs.append(torch.cat([g.reshape(-1) for g in grads]))
        out[i] = float(_cos_distance(gs[0][None], gs[1][None])[0])
    return out


def reference_model(spec: ModelSpec, x: np.ndarray, y: np.ndarray, cfg: SensitivityConfig,
                    recipe: TrainRecipe) -> nn.Module:
    """The frozen reference model: ``cfg.ref_epochs`` passes of the shared recipe (0 = ``init_params``)."""
    return as_module(spec, train_params(spec, x, y, cfg.ref_epochs, cfg.seed, recipe))


def compute_sensitivity(spec: ModelSpec, x: np.ndarray, y: np.ndarray, cfg: SensitivityConfig,
                        recipe: TrainRecipe, progress: bool = False) -> np.ndarray:
    """Train (or init) the reference model, then S(d) for every sample: float64 [N]."""
    model = reference_model(spec, x, y, cfg, recipe)
    affine = AffineParams.fit(x, cfg.param_encoding) if cfg.kind == "affine" else None
    return sensitivity_scores(model, x, y, cfg.bits, cfg.scale_dtype, cfg.batch_size, progress, affine)

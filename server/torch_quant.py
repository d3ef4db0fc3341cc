"""Differentiable quantizers for quantization-aware dataset distillation (QuADD, arXiv 2603.02411).

Every quantizer is an ``nn.Module`` whose forward maps float32 ``x [N, D]`` to the dequantized values
``x_hat [N, D]`` with **exactly** the formulas of :mod:`edge_sdk.codecs` (tests compare bit for bit with
``codecs.dequantize(*codecs.quantize(x, kind, bits, q.export_params()))``):

* forward: hard rounding to the nearest level;
* backward (straight-through estimator): ``d x_hat / d x = 1`` inside the clipping range
  ``[-alpha, alpha]`` (codebook: ``[min level, max level]``) and ``0`` outside; the quantizer parameters
  (``alpha`` / levels) receive the gradient of the dequantized value (LSQ/PACT-style for ``alpha``: via the
  ``alpha * round(...) / Q`` product; codebook: each level gets the gradients of the values it represents).

Registry (``make_quantizer(name, bits, x_init, per_feature=False)``):

=============  ======================  =========================================================
name           payload kind            parameters
=============  ======================  =========================================================
``uniform``    ``uniform_clip``        learned ``alpha`` ([1], or [D] with ``per_feature``), grid
                                       ``alpha * {0, +-1/Q, ..., +-1}``, ``Q = 2**(b-1) - 1``, b in 2..8
``apot``       ``codebook``            learned ``alpha``; levels ``alpha * {+-m, m in M}`` with ``M`` the
                                       unsigned APoT set of Li et al. (ICLR 2020, Eq. 5) with group size
                                       ``k = 2`` and ``n = (b - 1) / 2`` terms: b - 1 must be a multiple of
                                       the group size, i.e. b in {3, 5, 7}. ``+0`` and ``-0`` both occur
                                       (one code is redundant: the sign takes one of the b bits).
``codebook``   ``codebook``            2**b free levels (b in 1..8), initialised at the quantiles
                                       ``(i + 0.5) / 2**b`` of ``x_init`` and refined by 10 Lloyd steps
``affine_set`` ``affine_set``          learned ``lo``, ``hi`` ([1]), min/max grid of ``2**b - 1`` steps,
                                       b in 1..8, initialised at min / max of ``x_init``
``affine_feature`` ``affine_feature``  the same with ``lo``, ``hi`` per feature ([D])
``affine_sample``  ``affine_sample``   ``lo``, ``hi`` = min / max of each row of the *input* (not learned;
                                       the gradient flows through min / max), b in 1..8
=============  ======================  =========================================================

``q.export_params()`` returns the float32 numpy params for the payload (``{"alpha"}`` or ``{"levels"}``),
``q.kind`` the codecs kind, ``q.encode(x)`` the uint8 codes (via :func:`edge_sdk.codecs.quantize`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn

from edge_sdk import codecs
from edge_sdk.errors import ConfigError
from edge_sdk.registry import Registry

#: differentiable quantizers by name (``--quantizer``); each class has ``kind`` (the payload kind it writes)
QUANTIZERS: Registry[type[TorchQuantizer]] = Registry("quantizer")
APOT_GROUP = 2


def mse_search(amax: Tensor, err: Callable[[Tensor], Tensor], steps: int = 40) -> Tensor:
    """Initial clipping threshold: the ``r * amax`` (r on a grid of ``steps`` values in (0, 1]) with the
    smallest quantization squared error ``err(alpha)`` (elementwise over features when ``amax`` is [D])."""
    best_a = amax.clone()
    best_e = err(amax)
    for r in torch.linspace(1.0 / steps, 1.0, steps, device=amax.device)[:-1]:
        a = amax * r
        e = err(a)
        better = e < best_e
        best_a = torch.where(better, a, best_a)
        best_e = torch.where(better, e, best_e)
    return best_a.float()


def ste_clip(x: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
    """``clamp(x, lo, hi)``: identity gradient inside, zero outside (``torch.clamp`` semantics)."""
    return torch.maximum(torch.minimum(x, hi), lo)


def ste_round(x: Tensor) -> Tensor:
    """Round half to even (``torch.round`` == ``numpy.rint``) forward, identity backward."""
    return x + (torch.round(x) - x).detach()


class TorchQuantizer(nn.Module):
    """Base of a differentiable quantizer: ``kind`` is the payload kind it writes; :meth:`supported_bits` the
    widths it accepts (default: every width ``edge_sdk.codecs`` allows for ``kind``)."""

    kind: str = ""

    @classmethod
    def supported_bits(cls) -> tuple[int, ...]:
        return tuple(codecs.ALLOWED_BITS[cls.kind])

    def __init__(self, bits: int) -> None:
        super().__init__()
        self.bits = int(bits)

    def export_params(self) -> dict[str, np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def encode(self, x: Tensor | np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """uint8 codes ``[N, D]`` and params for ``x`` (``codecs.quantize`` with the learned params)."""
        xn = x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x, np.float32)
        return codecs.quantize(xn.astype(np.float32), self.kind, self.bits, self.export_params())


@QUANTIZERS.register("uniform")
class UniformClipQuantizer(TorchQuantizer):
    """``uniform_clip``: ``x_hat = alpha * round(clip(x, -alpha, alpha) / alpha * Q) / Q``.

    ``alpha`` is a learned parameter (initialised to ``max |x_init|`` per group or per feature).
    """

    kind = "uniform_clip"

    def __init__(self, bits: int, x_init: Tensor, per_feature: bool = False) -> None:
        super().__init__(bits)
        codecs.check_kind_bits(self.kind, bits)
        self.q = codecs.q_max(bits)
        x0 = x_init.detach().float()
        amax = x0.abs().amax(0) if per_feature else x0.abs().amax().reshape(1)
        amax = torch.clamp(amax, min=1e-3)

        def mse(a: Tensor) -> Tensor:  # per feature (or total) squared error of the grid with threshold a
            xh = a * (torch.round(torch.clamp(x0, -a, a) / a * self.q) / self.q)
            e = (xh - x0) ** 2
            return e.sum(0) if per_feature else e.sum().reshape(1)

        self.alpha = nn.Parameter(mse_search(amax, mse))

    def _alpha(self) -> Tensor:
        # keep alpha strictly positive without changing its value when it already is
        return torch.clamp(self.alpha, min=1e-6)

    def forward(self, x: Tensor) -> Tensor:
        a = self._alpha()
        xc = ste_clip(x, -a, a)
        r = ste_round(xc / a * self.q)
        # codecs.dequantize: alpha * ((u - Q) / Q) with u - Q == r
        return a * (r / self.q)

    def export_params(self) -> dict[str, np.ndarray]:
        return {"alpha": self._alpha().detach().cpu().numpy().astype(np.float32).reshape(-1)}


class _LevelsQuantizer(TorchQuantizer):
    """Nearest-level quantizer over a level tensor; the nearest-level rule is codecs' (sorted midpoints,
    ties to the lower level)."""

    kind = "codebook"

    def levels(self) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        lv = self.levels()
        srt, _ = torch.sort(lv)
        mids = (srt[1:] + srt[:-1]) / 2
        idx = torch.searchsorted(mids.detach().contiguous(), x.detach().contiguous(), right=False)
        val = srt[idx]  # gradient to the levels
        xc = ste_clip(x, srt[0].detach(), srt[-1].detach())
        return val + (xc - xc.detach())  # gradient 1 to x inside [min, max], 0 outside

    def export_params(self) -> dict[str, np.ndarray]:
        return {"levels": self.levels().detach().cpu().numpy().astype(np.float32).reshape(-1)}


@QUANTIZERS.register("codebook")
class CodebookQuantizer(_LevelsQuantizer):
    """Fully learned codebook of ``2**bits`` levels (any b in 1..8)."""

    def __init__(self, bits: int, x_init: Tensor, per_feature: bool = False, lloyd_steps: int = 10) -> None:
        super().__init__(bits)
        codecs.check_kind_bits("codebook", bits)
        if per_feature:
            raise ConfigError("the codebook quantizer has one codebook per group; per_feature is not supported")
        v = x_init.detach().float().reshape(-1)
        k = 1 << bits
        qs = ((torch.arange(k, dtype=torch.float64) + 0.5) / k).to(v.device)
        lv = torch.quantile(v.double()[: 1 << 20], qs).float()
        for _ in range(lloyd_steps):  # Lloyd-Max refinement (k-means in 1-D)
            srt, _ = torch.sort(lv)
            idx = torch.searchsorted((srt[1:] + srt[:-1]) / 2, v)
            sums = torch.zeros(k, device=v.device).index_add_(0, idx, v)
            cnt = torch.zeros(k, device=v.device).index_add_(0, idx, torch.ones_like(v))
            lv = torch.where(cnt > 0, sums / cnt.clamp(min=1), srt)
        self.lv = nn.Parameter(lv)

    def levels(self) -> Tensor:
        return self.lv


class _AffineQuantizer(TorchQuantizer):
    """Affine (min/max) grid: ``x_hat = lo + round((clip(x, lo, hi) - lo) / s) * s``, ``s = (hi - lo) / L``,
    ``L = 2**bits - 1`` (:mod:`edge_sdk.codecs`, the same float32 operations in the same order). Straight-through:
    gradient 1 to ``x`` inside ``[lo, hi]``, 0 outside; ``lo``/``hi`` get the gradient of the dequantized values."""

    granularity = "set"

    def __init__(self, bits: int, x_init: Tensor, per_feature: bool = False) -> None:
        super().__init__(bits)
        codecs.check_kind_bits(self.kind, bits)
        self.levels_count = (1 << bits) - 1
        if self.granularity != "sample":
            x0 = x_init.detach().float()
            if self.granularity == "feature":
                lo, hi = x0.amin(0), x0.amax(0)
            else:
                lo, hi = x0.amin().reshape(1), x0.amax().reshape(1)
            self.lo = nn.Parameter(lo.clone())
            self.hi = nn.Parameter(hi.clone())
        self._last: dict[str, np.ndarray] = {}

    def _range(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.granularity == "sample":
            return x.amin(1, keepdim=True), x.amax(1, keepdim=True)
        lo = self.lo.reshape(1, -1)
        hi = torch.maximum(self.hi.reshape(1, -1), lo)  # keep hi >= lo (a no-op while it holds)
        return lo, hi

    def forward(self, x: Tensor) -> Tensor:
        lo, hi = self._range(x)
        s = (hi - lo) / float(self.levels_count)
        safe = torch.where(s > 0, s, torch.ones_like(s))
        r = ste_round((ste_clip(x, lo.detach(), hi.detach()) - lo) / safe)
        r = torch.where(s > 0, r, torch.zeros_like(r))
        if self.granularity == "sample":
            self._last = {"lo": lo.detach().cpu().numpy().reshape(-1), "hi": hi.detach().cpu().numpy().reshape(-1)}
        return lo + r * s

    def export_params(self) -> dict[str, np.ndarray]:
        if self.granularity == "sample":
            return {k: v.astype(np.float32) for k, v in self._last.items()}
        lo, hi = self._range(torch.zeros(1, 1))
        return {"lo": lo.detach().cpu().numpy().astype(np.float32).reshape(-1),
                "hi": hi.detach().cpu().numpy().astype(np.float32).reshape(-1)}

    def encode(self, x: Tensor | np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        xn = x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x, np.float32)
        xn = xn.astype(np.float32)
        if self.granularity == "sample":
            return codecs.quantize(xn, self.kind, self.bits, codecs.affine_params_for(xn, self.kind))
        return codecs.quantize(xn, self.kind, self.bits, self.export_params())


@QUANTIZERS.register("affine_set")
class AffineSetQuantizer(_AffineQuantizer):
    kind = "affine_set"
    granularity = "set"


@QUANTIZERS.register("affine_feature")
class AffineFeatureQuantizer(_AffineQuantizer):
    kind = "affine_feature"
    granularity = "feature"


@QUANTIZERS.register("affine_sample")
class AffineSampleQuantizer(_AffineQuantizer):
    kind = "affine_sample"
    granularity = "sample"


def apot_magnitudes(bits: int, k: int = APOT_GROUP) -> np.ndarray:
    """Normalised unsigned APoT set (max 1) for ``bits - 1`` magnitude bits, ``n = (bits-1)/k`` terms.

    Li et al., "Additive Powers-of-Two Quantization", ICLR 2020, Eq. 5:
    ``p_i in {0, 2^-i, 2^-(i+n), ..., 2^-(i+(2^k-2)n)}``, value = gamma * sum_i p_i, gamma = 1 / max.
    """
    mb = bits - 1
    if mb < k or mb % k:
        raise ConfigError(
            f"APoT needs bits - 1 to be a positive multiple of the group size {k} (bits in 3, 5, 7); got {bits}"
        )
    n = mb // k
    sets = [[0.0] + [2.0 ** (-(i + j * n)) for j in range((1 << k) - 1)] for i in range(n)]
    vals = np.array([0.0])
    for s in sets:
        vals = (vals[:, None] + np.array(s)[None, :]).reshape(-1)
    return (vals / vals.max()).astype(np.float32)


@QUANTIZERS.register("apot")
class APoTQuantizer(_LevelsQuantizer):
    """APoT levels with one learned clipping threshold ``alpha``; exported as a materialised codebook."""

    base: Tensor  # the normalised signed level set (a buffer)

    @classmethod
    def supported_bits(cls) -> tuple[int, ...]:
        return tuple(b for b in range(2, 9) if (b - 1) % APOT_GROUP == 0 and b - 1 >= APOT_GROUP)

    def __init__(self, bits: int, x_init: Tensor, per_feature: bool = False) -> None:
        super().__init__(bits)
        codecs.check_kind_bits("codebook", bits)
        if per_feature:
            raise ConfigError("the APoT quantizer has one threshold per group; per_feature is not supported")
        m = torch.from_numpy(apot_magnitudes(bits)).to(x_init.device)
        self.register_buffer("base", torch.cat([-m, m]))
        x0 = x_init.detach().float()
        amax = torch.clamp(x0.abs().amax(), min=1e-3).reshape(1)
        srt = torch.sort(self.base).values
        mids = (srt[1:] + srt[:-1]) / 2

        def mse(a: Tensor) -> Tensor:
            idx = torch.searchsorted(mids * a, x0.contiguous())
            return ((srt[idx] * a - x0) ** 2).sum().reshape(1)

        self.alpha = nn.Parameter(mse_search(amax, mse))

    def levels(self) -> Tensor:
        return torch.clamp(self.alpha, min=1e-6) * self.base


def make_quantizer(name: str, bits: int, x_init: Tensor, per_feature: bool = False) -> TorchQuantizer:
    """Build the registered quantizer ``name`` for ``bits``, initialised from ``x_init`` [N, D]."""
    return QUANTIZERS.get(name)(bits, x_init, per_feature=per_feature)  # type: ignore[call-arg]


def quantizer_kind(name: str) -> str:
    """Payload kind written for quantizer ``name``."""
    return str(QUANTIZERS.get(name).kind)


def allowed_bits(name: str) -> tuple[int, ...]:
    """Bit widths quantizer ``name`` supports."""
    return QUANTIZERS.get(name).supported_bits()



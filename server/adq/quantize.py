"""Torch per-sample linear symmetric quantization (ADQ, arXiv 2512.05987, Eq. 3-6).

Reproduces ``edge_sdk.codecs`` kind ``symmetric_per_sample`` bit for bit:

* ``Q = 2**(b-1) - 1`` (b in 2..8), scale ``s_i = max_j |x_ij| / Q`` (float32 division);
* signed level ``q = round_half_even(x / s_i)`` clipped to ``[-Q, Q]``, stored as offset-binary code
  ``u = q + Q`` in ``[0, 2Q]`` (uint8);
* dequantize ``x_hat = s_i * (u - Q)``.

Denominator: the paper's summary writes ``s_d = (m_d + eps) / (2**b - 1)``; with integers in ``[-Q, Q]``
that would use only half of the code range. We divide by ``Q`` so the largest magnitude maps exactly onto the
largest code (same choice as ``edge_sdk.codecs``). All-zero samples get scale 0 and code ``Q`` (value 0).

Scale storage: the scale is one float per sample (``scale_dtype`` ``float32``: 4 bytes, ``float16``: 2 bytes)
and is counted in the byte budget (see :mod:`edge_sdk.server.adq.cost`). With ``float16`` the scale is
rounded to half precision *before* coding, so the codes are computed against the scale that is stored.

Shapes: ``x`` float32 ``[N, D]``; codes uint8 ``[N, D]``; scale float32 ``[N]``.

Affine per-sample kind (payload v2 only; ``edge_sdk.codecs`` kind ``affine_sample``, reproduced bit for bit):
``L = 2**b - 1`` steps between the sample's ``lo`` and ``hi``, ``step = (hi - lo) / L`` (two float32 operations),
``u = round_half_even((clip(x, lo, hi) - lo) / step)`` in ``[0, L]`` (every code valid), ``x_hat = lo + u * step``.
Beam inputs normalised by their per-sample maximum are one-signed (``x <= 0``, max exactly 0), where the
symmetric grid uses only ``Q + 1`` of its ``2Q + 1`` levels; the affine grid uses all ``2**b``. Its parameters are
stored compactly (:class:`AffineParams`, payload v2 encodings): ``lo`` on one 8-bit grid of the whole training
set (``q8``, rounded *down* so nothing is clipped), ``hi`` as one float32 when it is the same for every row
(``c4``: 0 on per-sample-max beam rows) else on an 8-bit grid rounded *up*; or both float16 (``f2``, rounded
outward) or float32 (``f4``). The grid is fitted once on the whole candidate set, so a row's stored ``lo``/``hi``
do not depend on which group it lands in, and the sensitivity's quantized copy is exactly what is stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from edge_sdk.codecs import q_max
from edge_sdk.errors import ConfigError
from edge_sdk.payload import Q8Param

SCALE_DTYPES = {"float32": 4, "float16": 2}
#: per-sample quantizer kinds ADQ stores (``QuantizeConfig.kind``): the payload kind and the formats that hold it
SAMPLE_KINDS = {"symmetric": "symmetric_per_sample", "affine": "affine_sample"}
#: how an affine kind stores ``lo``/``hi`` (``QuantizeConfig.param_encoding``); ``compact`` = q8 lo + c4/q8 hi
PARAM_ENCODINGS = ("compact", "f2", "f4")


def check_bits(bits: int) -> None:
    if not 2 <= int(bits) <= 8:
        raise ConfigError(f"symmetric_per_sample supports 2..8 bits, got {bits}; use 0 to drop a sample")


def check_scale_dtype(scale_dtype: str) -> None:
    if scale_dtype not in SCALE_DTYPES:
        raise ConfigError(f"scale_dtype must be one of {sorted(SCALE_DTYPES)}, got {scale_dtype!r}")


def compute_scale(x: torch.Tensor, bits: int, scale_dtype: str = "float32") -> torch.Tensor:
    """Per-sample scale ``max|x_i| / Q`` as float32 [N], rounded through ``scale_dtype`` if float16."""
    check_bits(bits)
    check_scale_dtype(scale_dtype)
    x = x.to(torch.float32)
    m = x.abs().amax(dim=1) if x.shape[1] else torch.zeros(x.shape[0], dtype=torch.float32)
    scale = m / float(q_max(bits))
    if scale_dtype == "float16":
        scale = scale.to(torch.float16).to(torch.float32)
    return scale


def quantize(
    x: torch.Tensor, bits: int, scale: torch.Tensor | None = None, scale_dtype: str = "float32"
) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` float32 [N, D] -> (codes uint8 [N, D], scale float32 [N]); identical to ``codecs.quantize``."""
    check_bits(bits)
    if x.ndim != 2:
        raise ConfigError(f"x must be 2-D [N, D], got shape {tuple(x.shape)}")
    x = x.to(torch.float32)
    q = q_max(bits)
    if scale is None:
        scale = compute_scale(x, bits, scale_dtype)
    scale = scale.to(torch.float32).reshape(-1)
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))[:, None]
    codes = torch.clamp(torch.round(x / safe), -q, q) + q
    codes[scale <= 0] = q
    return codes.to(torch.uint8), scale


def dequantize(codes: torch.Tensor, bits: int, scale: torch.Tensor) -> torch.Tensor:
    """Codes uint8 [N, D] + scale [N] -> float32 [N, D] (``x_hat = s (u - Q)``); runs on the fly in training."""
    check_bits(bits)
    q = q_max(bits)
    return scale.to(torch.float32).reshape(-1, 1) * (codes.to(torch.float32) - q)


def fake_quantize(x: torch.Tensor, bits: int, scale_dtype: str = "float32") -> torch.Tensor:
    """Quantize then dequantize (float32 [N, D]); used for the sensitivity's quantized copy."""
    codes, scale = quantize(x, bits, scale_dtype=scale_dtype)
    return dequantize(codes, bits, scale)


def quantize_np(x: np.ndarray, bits: int, scale_dtype: str = "float32") -> tuple[np.ndarray, np.ndarray]:
    """Numpy convenience wrapper: (codes uint8 [N, D], scale float32 [N])."""
    codes, scale = quantize(torch.from_numpy(np.ascontiguousarray(x, np.float32)), bits, scale_dtype=scale_dtype)
    return codes.numpy(), scale.numpy()


def dequantize_mixed(x: np.ndarray, bits: np.ndarray, scale_dtype: str = "float32") -> np.ndarray:
    """Dequantized copy of ``x`` [N, D] where row i uses ``bits[i]`` (0 = dropped row left as zeros,
    32 = raw float32, 16 = float16). Returns float32 [N, D]."""
    x = np.asarray(x, np.float32)
    bits = np.asarray(bits).reshape(-1)
    if bits.shape[0] != x.shape[0]:
        raise ConfigError(f"bits has {bits.shape[0]} entries for {x.shape[0]} samples")
    out = np.zeros_like(x)
    for b in np.unique(bits):
        idx = np.flatnonzero(bits == b)
        if b == 0:
            continue
        if b == 32:
            out[idx] = x[idx]
        elif b == 16:
            out[idx] = x[idx].astype(np.float16).astype(np.float32)
        else:
            codes, scale = quantize_np(x[idx], int(b), scale_dtype)
            out[idx] = dequantize(torch.from_numpy(codes), int(b), torch.from_numpy(scale)).numpy()
    return out


class QuantizedStore:
    """Mixed-width quantized samples kept as codes, dequantized on the fly per batch (paper Sec. 4.1).

    ``add(bits, codes uint8 [n, D], scale float32 [n])`` appends a group (``bits`` in 2..8; or 16/32 with
    ``codes`` the raw float values and ``scale=None``); ``batch(idx int [B]) -> float32 [B, D]`` decodes
    only the requested rows (memory: 1 byte per value + 4 per sample instead of 4 per value).
    """

    def __init__(self, d: int) -> None:
        self.d = int(d)
        self._groups: list[tuple[int, torch.Tensor, torch.Tensor | None]] = []
        self._owner = torch.zeros(0, dtype=torch.int64)  # group of each global row
        self._local = torch.zeros(0, dtype=torch.int64)  # row inside its group

    def __len__(self) -> int:
        return int(self._owner.numel())

    def add(self, bits: int, codes: torch.Tensor | np.ndarray, scale: torch.Tensor | np.ndarray | None) -> None:
        c = torch.as_tensor(codes)
        if c.ndim != 2 or c.shape[1] != self.d:
            raise ConfigError(f"group codes must be [n, {self.d}], got {tuple(c.shape)}")
        if bits in (16, 32):
            s = None
        else:
            check_bits(bits)
            if c.dtype != torch.uint8:
                raise ConfigError(f"quantized codes must be uint8, got {c.dtype}")
            s = torch.as_tensor(scale, dtype=torch.float32).reshape(-1)
            if s.numel() != c.shape[0]:
                raise ConfigError(f"{c.shape[0]} samples but {s.numel()} scales")
        g = len(self._groups)
        self._groups.append((int(bits), c, s))
        self._owner = torch.cat([self._owner, torch.full((c.shape[0],), g, dtype=torch.int64)])
        self._local = torch.cat([self._local, torch.arange(c.shape[0], dtype=torch.int64)])

    def batch(self, idx: torch.Tensor | np.ndarray) -> torch.Tensor:
        idx = torch.as_tensor(idx, dtype=torch.int64).reshape(-1)
        out = torch.empty((idx.numel(), self.d), dtype=torch.float32)
        owner, local = self._owner[idx], self._local[idx]
        for g, (bits, c, s) in enumerate(self._groups):
            sel = torch.nonzero(owner == g).reshape(-1)
            if sel.numel() == 0:
                continue
            rows = local[sel]
            if s is None:
                out[sel] = c[rows].to(torch.float32)
            else:
                out[sel] = dequantize(c[rows], bits, s[rows])
        return out


# ------------------------------------------------------------------------------------------ affine per sample
def check_affine_bits(bits: int) -> None:
    if not 1 <= int(bits) <= 8:
        raise ConfigError(f"affine_sample supports 1..8 bits, got {bits}; use 0 to drop a sample")


def affine_quantize(x: torch.Tensor, bits: int, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """``x`` float32 [N, D], per-sample ``lo``/``hi`` float32 [N] (``lo <= hi``) -> codes uint8 [N, D];
    identical to ``codecs.quantize(x, "affine_sample", bits, {"lo": lo, "hi": hi})``."""
    check_affine_bits(bits)
    if x.ndim != 2:
        raise ConfigError(f"x must be 2-D [N, D], got shape {tuple(x.shape)}")
    x = x.to(torch.float32)
    lo_b = lo.to(torch.float32).reshape(-1, 1)
    hi_b = hi.to(torch.float32).reshape(-1, 1)
    step = (hi_b - lo_b) / float((1 << bits) - 1)
    safe = torch.where(step > 0, step, torch.ones_like(step))
    u = torch.round((torch.minimum(torch.maximum(x, lo_b), hi_b) - lo_b) / safe)
    u = torch.where(step > 0, u, torch.zeros_like(u))
    return torch.clamp(u, 0, (1 << bits) - 1).to(torch.uint8)


def affine_dequantize(codes: torch.Tensor, bits: int, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Codes uint8 [N, D] -> float32 [N, D]: ``lo + u * ((hi - lo) / L)`` (the codecs' float32 operations)."""
    check_affine_bits(bits)
    lo_b = lo.to(torch.float32).reshape(-1, 1)
    step = (hi.to(torch.float32).reshape(-1, 1) - lo_b) / float((1 << bits) - 1)
    return lo_b + codes.to(torch.float32) * step


def _outward_f16(v: np.ndarray, down: bool) -> np.ndarray:
    """float16 copy of ``v`` rounded toward -inf (``down``) or +inf, as float16."""
    h = v.astype(np.float16)
    wrong = h.astype(np.float32) > v if down else h.astype(np.float32) < v
    return np.where(wrong, np.nextafter(h, np.float16(-np.inf if down else np.inf)), h).astype(np.float16)


@dataclass(frozen=True)
class AffineParams:
    """Stored ``lo``/``hi`` float32 [N] of every candidate row (module docstring) and how they are encoded.

    ``lo``/``hi`` are the values a device decodes (``stored <= min`` and ``>= max`` of each row, so nothing is
    clipped); ``encodings`` is ``{"lo": "q8"|"f2"|"f4", "hi": "c4"|"q8"|"f2"|"f4"}``; ``q8`` holds the fitted
    grids (one per parameter, shared by every group). Build with :meth:`fit`; :meth:`group_params` gives the
    ``SampleGroup`` params of some rows."""

    lo: np.ndarray
    hi: np.ndarray
    encodings: dict[str, str]
    q8: dict[str, Q8Param] = field(default_factory=dict)

    @classmethod
    def fit(cls, x: np.ndarray, encoding: str = "compact") -> AffineParams:
        if encoding not in PARAM_ENCODINGS:
            raise ConfigError(f"param_encoding must be one of {PARAM_ENCODINGS}, got {encoding!r}")
        x = np.asarray(x, np.float32)
        if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
            raise ConfigError(f"affine parameters need a non-empty [N, D] array, got shape {x.shape}")
        lo, hi = x.min(axis=1), x.max(axis=1)
        if encoding == "f4":
            return cls(lo, hi, {"lo": "f4", "hi": "f4"})
        if encoding == "f2":
            lo16, hi16 = _outward_f16(lo, True), _outward_f16(hi, False)
            if not (np.isfinite(lo16).all() and np.isfinite(hi16).all()):
                raise ConfigError("sample ranges exceed float16; use param_encoding 'f4' or 'compact'")
            return cls(lo16.astype(np.float32), hi16.astype(np.float32), {"lo": "f2", "hi": "f2"})
        q_lo = Q8Param.fit(lo, "down")
        q8 = {"lo": q_lo}
        if np.all(hi == hi[0]):
            hi_s, enc_hi = hi, "c4"
        else:
            q8["hi"] = Q8Param.fit(hi, "up")
            hi_s, enc_hi = q8["hi"].values(), "q8"
        return cls(q_lo.values(), np.asarray(hi_s, np.float32), {"lo": "q8", "hi": enc_hi}, q8)

    def rows(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Stored (lo, hi) float32 [len(idx)] of rows ``idx``."""
        i = np.asarray(idx, np.int64)
        return torch.from_numpy(self.lo[i].copy()), torch.from_numpy(self.hi[i].copy())

    def group_params(self, idx: np.ndarray) -> tuple[dict[str, object], dict[str, str]]:
        """(params, encodings) of a ``SampleGroup`` storing rows ``idx`` (q8 codes of those rows on the shared grid)."""
        i = np.asarray(idx, np.int64)
        params: dict[str, object] = {}
        for name in ("lo", "hi"):
            enc = self.encodings[name]
            vals = (self.lo if name == "lo" else self.hi)[i]
            if enc == "q8":
                q = self.q8[name]
                params[name] = Q8Param(q.base, q.step, q.codes[i])
            elif enc == "f2":
                params[name] = vals.astype(np.float16)
            else:
                params[name] = vals.astype(np.float32)
        return params, dict(self.encodings)

    def fake_quantize(self, x: torch.Tensor, idx: np.ndarray, bits: int) -> torch.Tensor:
        """Rows ``idx`` of the candidate set, ``x`` = their values [len(idx), D], quantized then dequantized."""
        lo, hi = self.rows(idx)
        return affine_dequantize(affine_quantize(x, bits, lo, hi), bits, lo, hi)

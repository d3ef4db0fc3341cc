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
"""

from __future__ import annotations

import numpy as np
import torch

from edge_sdk.codecs import q_max
from edge_sdk.errors import ConfigError

SCALE_DTYPES = {"float32": 4, "float16": 2}


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

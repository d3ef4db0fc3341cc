"""Numpy quantizer codecs: the value <-> code mapping of every quantizer kind of payload format v1.

This module is the single definition of what a code *means*. The server's differentiable quantizers
(torch), the payload reader and the ONNX dequantize-and-train graph all reproduce exactly these formulas,
and tests compare them against this module.

Shapes: ``x`` is float32 ``[N, D]`` (N samples, D values each); ``codes`` is uint8 ``[N, D]`` holding
unsigned codes in ``[0, 2**bits)``.

Kinds (``QuantizerKind``):

``none``      bits = 0: no values stored (e.g. samples dropped by ADQ with b_low = 0).
``float16``   raw IEEE half, bits = 16 (values section, no codes).
``float32``   raw IEEE single, bits = 32 (values section, no codes).
``symmetric_per_sample``  ADQ (arXiv 2512.05987, Eq. 3-6): per-sample scale ``s_i = max_j |x_ij| / Q`` with
              ``Q = 2**(bits-1) - 1``; signed integer ``q = round(x / s_i)`` in ``[-Q, Q]`` stored as the
              offset-binary code ``u = q + Q``. Dequantize: ``x_hat = s_i * (u - Q)``. bits in 2..8.
              The paper's summary writes the denominator as ``2**b - 1``; we use ``Q`` so that the largest
              magnitude maps exactly onto the largest code (documented choice). Param: ``scale`` [N].
``uniform_clip``  QuADD uniform symmetric grid ``alpha * {0, +-1/Q, ..., +-1}`` with a clipping threshold
              ``alpha`` per group ([1]) or per feature ([D]): ``u = round(clip(x, -alpha, alpha) / alpha * Q) + Q``,
              ``x_hat = alpha * (u - Q) / Q``. bits in 2..8. Param: ``alpha`` [1] or [D].
``codebook``  non-uniform levels (learned codebook, or APoT levels materialised): ``x_hat = levels[u]``,
              quantize = nearest level. bits in 1..8. Param: ``levels`` [2**bits] (any order).
``affine_set`` / ``affine_feature`` / ``affine_sample``  asymmetric (min/max) uniform grid with ``L = 2**bits - 1``
              steps between ``lo`` and ``hi``: ``u = round((clip(x, lo, hi) - lo) / step)``, ``step = (hi - lo) / L``,
              ``x_hat = lo + u * step``; bits in 1..8, every code ``0..L`` is valid. Params ``lo``, ``hi`` of shape
              [1] (one range for the whole group), [D] (one per feature) or [N] (one per sample), ``lo <= hi``.
              Unlike the symmetric grids no level is wasted on one-signed data (beam inputs normalised by their
              per-sample maximum are all <= 0). Payload format v2 only.

Code ranges (:func:`code_max`): the symmetric grids use codes ``0..2Q`` only; code ``2**bits - 1`` lies
outside the grid and is invalid (``u - Q = Q + 1`` would decode beyond ``alpha`` / ``max |x|``). A codebook
uses every code ``0..2**bits - 1``. Parameter rules (:func:`param_problem`): every parameter is finite;
``scale >= 0`` (0 for an all-zero sample) and ``scale * Q`` finite in float32; ``alpha > 0``.

Exact float32 arithmetic of :func:`dequantize` (docs/payload-format.md, "Dequantization"; every step is one
IEEE-754 binary32 operation rounded to nearest-even, parameters stored as float16 are widened exactly first):
symmetric ``x_hat = scale_i * (u - Q)``; uniform_clip ``x_hat = alpha_j * ((u - Q) / Q)`` (the quotient is
rounded to float32 before the product); codebook ``x_hat = levels[u]``; affine ``s = (hi - lo) / L`` (two
operations: the difference, then the quotient), ``x_hat = lo + (u * s)``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

QUANTIZER_KINDS = ("none", "float16", "float32", "symmetric_per_sample", "uniform_clip", "codebook",
                   "affine_set", "affine_feature", "affine_sample")
#: the affine (min/max) kinds and the axis their ``lo``/``hi`` run over
AFFINE_KINDS = {"affine_set": "set", "affine_feature": "feature", "affine_sample": "sample"}
RAW_KINDS = {"float16": 16, "float32": 32}
#: the quantizer parameters each kind carries, in the order the training graph takes them as inputs
#: (``g{k}.<name>``, docs/onnx-graph.md); kinds not listed carry none
PARAM_NAMES: dict[str, tuple[str, ...]] = {
    "symmetric_per_sample": ("scale",), "uniform_clip": ("alpha",), "codebook": ("levels",),
    **{kind: ("hi", "lo") for kind in AFFINE_KINDS},
}
#: allowed bit widths per kind
ALLOWED_BITS: dict[str, tuple[int, ...]] = {
    "none": (0,),
    "float16": (16,),
    "float32": (32,),
    "symmetric_per_sample": tuple(range(2, 9)),
    "uniform_clip": tuple(range(2, 9)),
    "codebook": tuple(range(1, 9)),
    "affine_set": tuple(range(1, 9)),
    "affine_feature": tuple(range(1, 9)),
    "affine_sample": tuple(range(1, 9)),
}


class CodecError(ValueError):
    """Bad arguments to a codec (unknown kind, unsupported width, wrong parameter shape)."""


def q_max(bits: int) -> int:
    """Largest signed level ``Q = 2**(bits-1) - 1`` of the symmetric grids (bits >= 2)."""
    return (1 << (bits - 1)) - 1


def code_max(kind: str, bits: int) -> int:
    """Largest valid code of a quantized kind: ``2Q = 2**bits - 2`` for the symmetric grids, ``2**bits - 1``
    for codebook (every code names a level)."""
    check_kind_bits(kind, bits)
    if kind in ("symmetric_per_sample", "uniform_clip"):
        return 2 * q_max(bits)
    if kind == "codebook" or kind in AFFINE_KINDS:
        return (1 << bits) - 1
    raise CodecError(f"kind {kind!r} stores no codes")


def param_problem(kind: str, bits: int, params: Mapping[str, np.ndarray]) -> str | None:
    """What is wrong with the (correctly shaped) parameters of ``kind``, or None: every value finite,
    ``scale >= 0`` with ``scale * Q`` finite in float32 (so every decoded value is finite), ``alpha > 0``.
    Only min and max are computed (NaN propagates into both), so the check allocates nothing per value."""
    for name, v in params.items():
        a = np.asarray(v)
        if a.size == 0:
            continue
        lo, hi = np.float32(a.min()), np.float32(a.max())
        if not (np.isfinite(lo) and np.isfinite(hi)):
            return f"parameter {name!r} holds NaN or inf"
        if name == "scale":
            if lo < 0:
                return "parameter 'scale' must be >= 0"
            with np.errstate(over="ignore"):
                if not np.isfinite(hi * np.float32(q_max(bits))):
                    return f"parameter 'scale' is so large that scale * {q_max(bits)} overflows float32"
        if name == "alpha" and lo <= 0:
            return "parameter 'alpha' must be > 0"
    if kind in AFFINE_KINDS and "lo" in params and "hi" in params:
        lo_a = np.asarray(params["lo"], np.float32).reshape(-1)
        hi_a = np.asarray(params["hi"], np.float32).reshape(-1)
        if lo_a.size and hi_a.size:
            if lo_a.shape != hi_a.shape and 1 not in (lo_a.size, hi_a.size):
                return "parameters 'lo' and 'hi' have different shapes"
            if np.any(hi_a < lo_a):
                return "parameter 'hi' must be >= 'lo'"
            with np.errstate(over="ignore"):
                if not np.all(np.isfinite(hi_a - lo_a)):
                    return "hi - lo overflows float32"
    return None


def check_kind_bits(kind: str, bits: int) -> None:
    if kind not in ALLOWED_BITS:
        raise CodecError(f"unknown quantizer kind {kind!r}; expected one of {QUANTIZER_KINDS}")
    if bits not in ALLOWED_BITS[kind]:
        raise CodecError(
            f"quantizer {kind!r} does not support {bits} bits; allowed: {list(ALLOWED_BITS[kind])}"
        )


def param_shapes(kind: str, bits: int, n: int, d: int, per_feature: bool = False) -> dict[str, tuple[int, ...]]:
    """Shapes of the parameter arrays a group of ``n`` x ``d`` values needs for ``kind``."""
    check_kind_bits(kind, bits)
    if kind == "symmetric_per_sample":
        return {"scale": (n,)}
    if kind == "uniform_clip":
        return {"alpha": (d,) if per_feature else (1,)}
    if kind == "codebook":
        return {"levels": (1 << bits,)}
    if kind in AFFINE_KINDS:
        shape = {"set": (1,), "feature": (d,), "sample": (n,)}[AFFINE_KINDS[kind]]
        return {"lo": shape, "hi": shape}
    return {}


def affine_step(lo: np.ndarray, hi: np.ndarray, bits: int) -> np.ndarray:
    """``(hi - lo) / L`` with ``L = 2**bits - 1``: two float32 operations, rounded to nearest-even."""
    d = np.subtract(np.asarray(hi, np.float32), np.asarray(lo, np.float32), dtype=np.float32)
    return np.divide(d, np.float32((1 << bits) - 1), dtype=np.float32)


def affine_params_for(x: np.ndarray, kind: str) -> dict[str, np.ndarray]:
    """Min/max parameters of ``x`` [N, D] for an affine kind (the default range: nothing is clipped)."""
    x = np.asarray(x, np.float32)
    if x.size == 0:
        shape = param_shapes(kind, 1, x.shape[0], x.shape[1])["lo"]
        return {"lo": np.zeros(shape, np.float32), "hi": np.zeros(shape, np.float32)}
    axis = {"set": None, "feature": 0, "sample": 1}[AFFINE_KINDS[kind]]
    lo = np.asarray(x.min(axis=axis), np.float32).reshape(-1)
    hi = np.asarray(x.max(axis=axis), np.float32).reshape(-1)
    return {"lo": lo, "hi": hi}


def _affine_broadcast(p: np.ndarray, kind: str) -> np.ndarray:
    p = np.asarray(p, np.float32).reshape(-1)
    return p.reshape(-1, 1) if AFFINE_KINDS[kind] == "sample" else p.reshape(1, -1)


def quantize(x: np.ndarray, kind: str, bits: int, params: Mapping[str, np.ndarray] | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Quantize ``x`` [N, D] -> (codes uint8 [N, D], params).

    ``params`` supplies fixed parameters (``alpha`` for uniform_clip, ``levels`` for codebook); for
    ``symmetric_per_sample`` the scales are computed from ``x``. Raw kinds return the values cast to their
    dtype in place of codes.
    """
    check_kind_bits(kind, bits)
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise CodecError(f"x must be 2-D [N, D], got shape {x.shape}")
    params = dict(params or {})
    if kind == "none":
        return np.zeros((x.shape[0], 0), np.uint8), {}
    if kind in RAW_KINDS:
        return x.astype(np.float16 if kind == "float16" else np.float32), {}
    if kind == "symmetric_per_sample":
        q = q_max(bits)
        m = np.abs(x).max(axis=1) if x.shape[1] else np.zeros(x.shape[0], np.float32)
        scale = params.get("scale")
        if scale is None:
            scale = (m / q).astype(np.float32)
        scale = np.asarray(scale, np.float32).reshape(-1)
        safe = np.where(scale > 0, scale, 1.0)[:, None]
        codes = np.clip(np.rint(x / safe), -q, q) + q
        codes[scale <= 0] = q
        return codes.astype(np.uint8), {"scale": scale}
    if kind == "uniform_clip":
        q = q_max(bits)
        if "alpha" not in params:
            raise CodecError("uniform_clip needs params['alpha'] (shape [1] or [D])")
        alpha = np.asarray(params["alpha"], np.float32).reshape(-1)
        if alpha.shape[0] not in (1, x.shape[1]):
            raise CodecError(f"alpha must have 1 or D={x.shape[1]} entries, got {alpha.shape[0]}")
        if np.any(~np.isfinite(alpha)) or np.any(alpha <= 0):
            raise CodecError("alpha must be finite and > 0")
        codes = np.rint(np.clip(x, -alpha, alpha) / alpha * q) + q
        return codes.astype(np.uint8), {"alpha": alpha}
    if kind in AFFINE_KINDS:
        if "lo" not in params or "hi" not in params:
            params = {**affine_params_for(x, kind), **params}
        want = param_shapes(kind, bits, x.shape[0], x.shape[1])["lo"]
        lo_p = np.asarray(params["lo"], np.float32).reshape(-1)
        hi_p = np.asarray(params["hi"], np.float32).reshape(-1)
        if lo_p.shape != want or hi_p.shape != want:
            raise CodecError(f"{kind} needs lo and hi of shape {want}, got {lo_p.shape} and {hi_p.shape}")
        problem = param_problem(kind, bits, {"lo": lo_p, "hi": hi_p})
        if problem:
            raise CodecError(problem)
        lo_b, hi_b = _affine_broadcast(lo_p, kind), _affine_broadcast(hi_p, kind)
        step = affine_step(lo_b, hi_b, bits)
        safe = np.where(step > 0, step, np.float32(1))
        top = (1 << bits) - 1
        with np.errstate(invalid="ignore"):
            u = np.rint(np.subtract(np.clip(x, lo_b, hi_b), lo_b, dtype=np.float32) / safe)
        codes = np.clip(np.where(step > 0, u, 0), 0, top)
        return codes.astype(np.uint8), {"lo": lo_p, "hi": hi_p}
    # codebook
    if "levels" not in params:
        raise CodecError("codebook needs params['levels'] (shape [2**bits])")
    levels = np.asarray(params["levels"], np.float32).reshape(-1)
    if levels.shape[0] != 1 << bits:
        raise CodecError(f"codebook with {bits} bits needs {1 << bits} levels, got {levels.shape[0]}")
    order = np.argsort(levels, kind="stable")
    sorted_levels = levels[order]
    mids = (sorted_levels[1:] + sorted_levels[:-1]) / 2
    idx = np.searchsorted(mids, x, side="left")
    return order[idx].astype(np.uint8), {"levels": levels}


def dequantize(codes: np.ndarray, kind: str, bits: int, params: Mapping[str, np.ndarray],
               out: np.ndarray | None = None) -> np.ndarray:
    """Codes uint8 [N, D] (or raw values for raw kinds) -> float32 [N, D] with the formulas above.

    ``out``: a float32 [N, D] array to write into (no temporaries of the output's size are made).
    For symmetric_per_sample, ``params["scale"]`` holds the N scales of exactly these rows.
    """
    check_kind_bits(kind, bits)
    c = np.asarray(codes)
    if kind == "none":
        return np.zeros((c.shape[0], 0), np.float32)
    if out is None:
        out = np.empty(c.shape, np.float32)
    elif out.shape != c.shape or out.dtype != np.float32:
        raise CodecError(f"out must be float32 {c.shape}, got {out.dtype} {out.shape}")
    if kind in RAW_KINDS:
        out[...] = c
        return out
    if kind == "codebook":
        levels = np.asarray(params["levels"], np.float32).reshape(-1)
        np.take(levels, c, out=out)
        return out
    if kind in AFFINE_KINDS:
        lo_b = _affine_broadcast(params["lo"], kind)
        step = affine_step(lo_b, _affine_broadcast(params["hi"], kind), bits)
        out[...] = c  # u: exact in float32
        np.multiply(out, step, out=out)
        np.add(lo_b, out, out=out)
        return out
    q = np.float32(q_max(bits))
    np.subtract(c, q, out=out, dtype=np.float32)  # u - Q: exact in float32
    if kind == "symmetric_per_sample":
        scale = np.asarray(params["scale"], np.float32).reshape(-1, 1)
        np.multiply(scale, out, out=out)
        return out
    alpha = np.asarray(params["alpha"], np.float32).reshape(1, -1)  # uniform_clip
    np.divide(out, q, out=out)
    np.multiply(alpha, out, out=out)
    return out


def label_bits(num_classes: int) -> int:
    """Bits per hard label: ceil(log2 C) (0 when C == 1)."""
    if num_classes < 1:
        raise CodecError(f"num_classes must be >= 1, got {num_classes}")
    return int(num_classes - 1).bit_length()

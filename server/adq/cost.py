"""Byte accounting of a quantized sample set (what the ADQ budget constrains).

A stored set is a list of groups, one per bit width (payload v1 ``role="samples"`` groups):

* ``b`` in 2..8 (kind ``symmetric_per_sample``): ``n * ceil(D*b/8)`` code bytes (rows byte-aligned, see
  ``edge_sdk.bitpack.row_bytes``) + ``n * scale_bytes`` (one scale per sample, 4 B float32 or 2 B float16);
* ``b`` in 1..8 with ``kind="affine"`` (payload v2 kind ``affine_sample``): the same code bytes + the per-sample
  ``lo``/``hi`` in their v2 encodings (``q8``: 1 B per row + 8 B per group; ``c4``: 4 B per group; ``f2``: 2 B
  per row; ``f4``: 4 B per row);
* ``b = 16`` / ``b = 32`` (kinds ``float16`` / ``float32``): ``n * D * b/8`` bytes, no scale;
* every stored sample carries a hard label: ``ceil(n * ceil(log2 C) / 8)`` bytes per group (one stream);
* ``b = 0``: the sample is dropped, i.e. *not stored at all* (no group, no label): 0 bytes.

:class:`ByteCost` counts these data bytes only (a closed form, used for quick estimates and tests);
:class:`WidthCost` — what the pipeline uses — counts the *whole file* with ``edge_sdk.payload.payload_size``
(header, task dict, provenance, group table, alignment, digest included), so a budget is a bound on the
bytes actually written. Budgets are :class:`edge_sdk.units.Budget` values; ratios are defined against
``full_float32_bytes = N_full * D * 4`` (the features of the full, unpruned training set as float32, labels not
counted — ``TaskData.full_float32_bytes``): ``16x`` = ``93.75%`` = a 2-bit average per value, ``8x`` = 87.5 % =
4-bit, ``4x`` = 75 % = 8-bit, ``2x`` = 50 % = 16-bit. (The paper quotes ratios of 8-bit images, where 93.75 % would
be 0.5 bit per pixel; against float32 the same percentage is 2 bits per value. We use float32 because the
beam features are float32, and say so in every table.)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from edge_sdk import codecs
from edge_sdk.codecs import label_bits
from edge_sdk.errors import ConfigError
from edge_sdk.payload import GroupLayout
from edge_sdk.server.payload_io import PayloadCost

from .quantize import SAMPLE_KINDS, SCALE_DTYPES, check_scale_dtype

#: bit widths a sample may get (0 = dropped; 16/32 = raw float; 1 with the affine kind only)
VALID_BITS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 16, 32)
#: bytes per row / per group of each v2 parameter encoding
_PER_ROW = {"f4": 4, "f2": 2, "q8": 1, "c4": 0}
_PER_GROUP = {"f4": 0, "f2": 0, "q8": 8, "c4": 4}


def kind_for_bits(bits: int, kind: str = "symmetric") -> str:
    """Payload quantizer kind of a group of ``bits``-wide samples (``kind``: ADQ's per-sample kind, SAMPLE_KINDS)."""
    if kind not in SAMPLE_KINDS:
        raise ConfigError(f"kind must be one of {sorted(SAMPLE_KINDS)}, got {kind!r}")
    if bits == 0:
        return "none"
    if bits == 16:
        return "float16"
    if bits == 32:
        return "float32"
    if 2 <= bits <= 8 or (bits == 1 and kind == "affine"):
        return SAMPLE_KINDS[kind]
    raise ConfigError(f"unsupported bit width {bits} for the {kind} kind; use one of {VALID_BITS} "
                      "(1 bit: affine only)")


@dataclass(frozen=True)
class ByteCost:
    """Bytes of ``n`` samples of ``d`` values at a bit width (formula in the module docstring)."""

    d: int
    num_classes: int
    scale_dtype: str = "float32"
    #: per-sample kind (SAMPLE_KINDS); affine: ``param_encodings`` {"lo": ..., "hi": ...} (v2 encodings)
    kind: str = "symmetric"
    param_encodings: tuple[tuple[str, str], ...] = (("hi", "c4"), ("lo", "q8"))

    def __post_init__(self) -> None:
        check_scale_dtype(self.scale_dtype)
        if self.d < 1:
            raise ConfigError(f"d must be >= 1, got {self.d}")
        kind_for_bits(0, self.kind)
        if self.kind == "affine" and ({k for k, _ in self.param_encodings} != {"lo", "hi"}
                                      or any(e not in _PER_ROW for _, e in self.param_encodings)):
            raise ConfigError(f"affine param_encodings must map lo and hi to {sorted(_PER_ROW)}, "
                              f"got {self.param_encodings}")

    @property
    def scale_bytes(self) -> int:
        """Parameter bytes per stored row (symmetric: the scale; affine: lo + hi in their encodings)."""
        if self.kind == "affine":
            return sum(_PER_ROW[e] for _, e in self.param_encodings)
        return SCALE_DTYPES[self.scale_dtype]

    @property
    def group_param_bytes(self) -> int:
        """Parameter bytes per stored group (affine q8 grids' base + step, c4 constants)."""
        return sum(_PER_GROUP[e] for _, e in self.param_encodings) if self.kind == "affine" else 0

    def group_bytes(self, bits: int, n: int) -> int:
        """Bytes of one group of ``n`` samples at ``bits``."""
        kind = kind_for_bits(int(bits), self.kind)
        if n <= 0 or kind == "none":
            return 0
        lab = math.ceil(n * label_bits(self.num_classes) / 8)
        if kind in ("float16", "float32"):
            return n * self.d * (bits // 8) + lab
        return n * (math.ceil(self.d * bits / 8) + self.scale_bytes) + self.group_param_bytes + lab

    def per_sample_bytes(self, bits: int) -> float:
        """Marginal bytes of one more sample at ``bits`` (label bits counted fractionally)."""
        if bits == 0:
            return 0.0
        lab = label_bits(self.num_classes) / 8
        if bits in (16, 32):
            return self.d * bits / 8 + lab
        return math.ceil(self.d * bits / 8) + self.scale_bytes + lab

    def total(self, groups: Iterable[tuple[int, int]]) -> int:
        """Bytes of ``[(bits, n), ...]``."""
        return int(sum(self.group_bytes(b, n) for b, n in groups))

    def of_bits(self, bits: np.ndarray) -> int:
        """Bytes of a per-sample allocation ``bits`` int [N] (one group per distinct width)."""
        vals, counts = np.unique(np.asarray(bits, np.int64), return_counts=True)
        return self.total(zip(vals.tolist(), counts.tolist(), strict=True))


@dataclass(frozen=True)
class WidthCost(ByteCost):
    """Exact accounting of a per-width allocation: ``total`` is the size of the payload file that stores the
    groups ``[(bits, n), ...]`` (one ``b{bits}`` group per width, :meth:`layouts`) with ``payload``'s header
    (task, provenance, training-graph digest — :class:`edge_sdk.server.payload_io.PayloadCost`).
    ``group_bytes`` stays the additive per-group estimate (used only to seed searches; every decision is
    checked with ``total``)."""

    payload: PayloadCost | None = None

    def layouts(self, groups: Iterable[tuple[int, int]]) -> list[GroupLayout]:
        """``GroupLayout`` per stored width, named ``b{bits}``, largest width first (as the writer orders them)."""
        out = []
        merged: dict[int, int] = {}
        for b, n in groups:
            if int(b) > 0 and int(n) > 0:
                merged[int(b)] = merged.get(int(b), 0) + int(n)
        for b in sorted(merged, reverse=True):
            kind = kind_for_bits(b, self.kind)
            shapes = codecs.param_shapes(kind, b, merged[b], self.d)
            if kind in codecs.AFFINE_KINDS:
                dtypes = dict(self.param_encodings)
            else:
                dtypes = {"scale": "f2" if self.scale_dtype == "float16" else "f4"} if "scale" in shapes else {}
            out.append(GroupLayout(name=f"b{b}", role="samples", kind=kind, bits=b, n=merged[b], d=self.d,
                                   param_shapes=shapes, param_dtypes=dtypes))
        return out

    def layouts_of_bits(self, bits: np.ndarray) -> list[GroupLayout]:
        """Layouts of a per-sample allocation ``bits`` int [M] (b = 0 is not stored)."""
        b = np.asarray(bits, np.int64)
        vals, counts = np.unique(b[b > 0], return_counts=True)
        return self.layouts(zip(vals.tolist(), counts.tolist(), strict=True))

    def total(self, groups: Iterable[tuple[int, int]]) -> int:
        if self.payload is None:
            return super().total(groups)
        return self.payload.size(self.layouts(groups))

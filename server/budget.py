"""Byte budgets: parsing, the (samples-per-class, bits) planner, sweet-spot search, rate-distortion curve.

API::

    from edge_sdk.server.budget import parse_budget, parse_compression, budget_from_compression, \
        OperatingPoint, plan, search_sweet_spot, write_rd_curve
    parse_budget("16KiB") -> 16384      parse_budget("16kB") -> 16000     parse_budget("3000") -> 3000
    parse_compression("36x") -> 36.0    budget_from_compression(full_bytes, 36.0) -> floor(full_bytes / 36)
    pts = plan(budget, options=[("uniform", 2), ("codebook", 3), ("float32", 32)], n_classes_present=32,
               d=8, num_classes=32, task=task, provenance=prov)      # largest IPC per option that fits
    best, scores = search_sweet_spot(pts, proxy_fn)                    # proxy_fn(point) -> score (higher better)

Counting: a point's ``bytes`` is ``edge_sdk.payload.payload_size`` of exactly the groups
:func:`edge_sdk.server.payload_io.write_compact` writes (codes, labels, codebooks / thresholds, soft labels,
header, task spec, provenance). The provenance and task dicts must therefore be fixed *before* planning
and passed unchanged to the writer; the writer re-checks the size against the budget.

IPC (images/samples per class) applies to every class present in the training set, so
``n = ipc * n_classes_present``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from edge_sdk import codecs
from edge_sdk.errors import ConfigError
from edge_sdk.units import parse_bytes

MAX_IPC = 1 << 20


def parse_budget(text: str | int) -> int:
    """``"16KiB"`` -> 16384, ``"16kB"`` -> 16000, ``"1.5MiB"``, ``"2048"``/``"2048B"`` -> bytes (int, >0).

    IEC units KiB/MiB/GiB, SI units kB/MB/GB; ambiguous spellings (``16k``, ``16KB``) are refused
    (``edge_sdk.units.parse_bytes``).
    """
    return parse_bytes(text, "budget")


def parse_compression(text: str | float) -> float:
    """``"36x"`` / ``"36"`` / ``36`` -> 36.0 (ratio full-float32 bytes / payload bytes, >= 1)."""
    s = str(text).strip().lower().removesuffix("x")
    try:
        r = float(s)
    except ValueError:
        raise ConfigError(f"cannot parse compression {text!r}: use e.g. 36x") from None
    if not math.isfinite(r) or r < 1:
        raise ConfigError(f"compression ratio must be >= 1, got {text!r}")
    return r


def budget_from_compression(full_float32_bytes: int, ratio: float) -> int:
    """Largest byte budget with ``full_float32_bytes / budget >= ratio``."""
    b = int(math.floor(full_float32_bytes / ratio))
    if b < 1:
        raise ConfigError(f"compression {ratio}x of {full_float32_bytes} bytes leaves no budget")
    return b


@dataclass(frozen=True)
class OperatingPoint:
    """One way to spend the budget: ``ipc`` samples per present class stored with ``quantizer`` at ``bits``.

    ``quantizer`` is a :mod:`torch_quant` name (``uniform``, ``apot``, ``codebook``) or a raw kind
    (``float32``, ``float16``); ``kind`` is the payload kind; ``bytes`` the exact payload size.
    """

    ipc: int
    n: int
    quantizer: str
    kind: str
    bits: int
    per_feature: bool
    soft: bool
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def option_kind(quantizer: str) -> str:
    if quantizer in codecs.RAW_KINDS:
        return quantizer
    from edge_sdk.server.torch_quant import quantizer_kind

    return quantizer_kind(quantizer)


def _size_fn(kind, bits, d, num_classes, task, provenance, per_feature, soft, soft_kind, soft_bits, graph=None):
    from edge_sdk.server.payload_io import planned_size

    def f(n: int) -> int:
        return planned_size(kind, bits, n, d, num_classes=num_classes, task=task, provenance=provenance,
                            per_feature=per_feature and kind == "uniform_clip", soft=soft, soft_kind=soft_kind,
                            soft_bits=soft_bits, graph=graph)

    return f


def max_ipc(budget: int, size_of_n: Callable[[int], int], n_classes_present: int, cap: int = MAX_IPC) -> int:
    """Largest ``ipc`` with ``size_of_n(ipc * n_classes_present) <= budget`` (0 if none); binary search."""
    if size_of_n(n_classes_present) > budget:
        return 0
    lo, hi = 1, 2
    while hi <= cap and size_of_n(hi * n_classes_present) <= budget:
        lo, hi = hi, hi * 2
    hi = min(hi, cap + 1)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if size_of_n(mid * n_classes_present) <= budget:
            lo = mid
        else:
            hi = mid
    return lo


def plan(budget: int, *, options: Iterable[tuple[str, int]], n_classes_present: int, d: int, num_classes: int,
         task: dict[str, Any], provenance: dict[str, Any], per_feature: bool = False, soft: bool = False,
         soft_kind: str = "uniform_clip", soft_bits: int = 8, max_ipc_cap: int = MAX_IPC,
         graph: dict[str, Any] | None = None) -> list[OperatingPoint]:
    """For each ``(quantizer, bits)`` option the operating point with the most samples that fits ``budget``.

    Options that cannot fit even one sample per class are left out. Sorted by bits, then quantizer.
    """
    if budget < 1:
        raise ConfigError("budget must be >= 1 byte")
    pts = []
    for quantizer, bits in options:
        kind = option_kind(quantizer)
        codecs.check_kind_bits(kind, bits)
        f = _size_fn(kind, bits, d, num_classes, task, provenance, per_feature, soft, soft_kind, soft_bits, graph)
        ipc = max_ipc(budget, f, n_classes_present, max_ipc_cap)
        if ipc < 1:
            continue
        n = ipc * n_classes_present
        pts.append(OperatingPoint(ipc, n, quantizer, kind, bits, per_feature and kind == "uniform_clip", soft, f(n)))
    return sorted(pts, key=lambda p: (p.bits, p.quantizer))


def allocate_per_class(n: int, class_counts: Sequence[int], mode: str = "balanced") -> list[int]:
    """Split ``n`` synthetic samples over the present classes (``class_counts`` = real samples per class).

    ``balanced``: ``n / C`` each (``n`` must be a multiple of ``C``) -- the usual IPC layout.
    ``proportional``: largest-remainder (Hamilton) apportionment of ``n`` by class frequency with at least one
    sample per class, so the synthetic set keeps the real class prior (the beam classes are imbalanced and
    the test set shares the training prior). The byte size depends on ``n`` only, so both fit the same budget.
    """
    c = len(class_counts)
    if c < 1 or n < c:
        raise ConfigError(f"cannot split {n} samples over {c} classes with at least one each")
    if any(int(k) < 1 for k in class_counts):
        raise ConfigError("class_counts must all be >= 1 (present classes only)")
    if mode == "balanced":
        if n % c:
            raise ConfigError(f"balanced allocation needs n ({n}) to be a multiple of the class count ({c})")
        return [n // c] * c
    if mode != "proportional":
        raise ConfigError(f"unknown class allocation {mode!r}; use 'balanced' or 'proportional'")
    tot = float(sum(int(k) for k in class_counts))
    rest = n - c  # one per class first, the rest by frequency
    quota = [rest * int(k) / tot for k in class_counts]
    alloc = [1 + math.floor(q) for q in quota]
    left = n - sum(alloc)
    order = sorted(range(c), key=lambda i: (-(quota[i] - math.floor(quota[i])), i))
    for i in order[:left]:
        alloc[i] += 1
    return alloc


def search_sweet_spot(points: Sequence[OperatingPoint], proxy: Callable[[OperatingPoint], float]) -> tuple[OperatingPoint, list[float]]:
    """Score every point with a short proxy run (``proxy(point)``, higher is better); return the best."""
    if not points:
        raise ConfigError("no operating point fits the budget; raise the budget or lower the bit width")
    scores = [float(proxy(p)) for p in points]
    return points[max(range(len(points)), key=lambda i: scores[i])], scores


def write_rd_curve(rows: Sequence[dict[str, Any]], parquet_path: str | os.PathLike, png_path: str | os.PathLike,
                   kpi: str = "top1") -> None:
    """Rate-distortion curve: ``rows`` of ``{method, bits, payload_bytes, <kpi>_mean, <kpi>_std, ...}``.

    Writes a Parquet table (all columns) and a PNG (KPI vs payload bytes, log x, one line per
    method/bit width). Both atomically (temp file + os.replace).
    """
    import tempfile

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not rows:
        raise ConfigError("no rows for the rate-distortion curve")
    cols = sorted({k for r in rows for k in r})
    table = pa.table({c: [r.get(c) for r in rows] for c in cols})
    for path, writer in ((parquet_path, "pq"), (png_path, "png")):
        path = os.fspath(path)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", suffix=os.path.splitext(path)[1])
        os.close(fd)
        try:
            if writer == "pq":
                pq.write_table(table, tmp)
            else:
                fig, ax = plt.subplots(figsize=(7, 4.5))
                series: dict[str, list] = {}
                for r in rows:
                    q = f" {r['quantizer']}" if r.get("quantizer") else ""
                    series.setdefault(f"{r['method']}{q} b={r['bits']}", []).append(r)
                for name, rs in sorted(series.items()):
                    rs = sorted(rs, key=lambda r: r["payload_bytes"])
                    ax.errorbar([r["payload_bytes"] for r in rs], [r[f"{kpi}_mean"] for r in rs],
                                yerr=[r[f"{kpi}_std"] for r in rs], marker="o", capsize=2, label=name)
                ax.set_xscale("log")
                ax.set_xlabel("payload bytes (file size)")
                ax.set_ylabel(f"{kpi} (mean ± std over seeds)")
                ax.grid(True, alpha=0.3)
                ax.legend(fontsize=6, ncol=2)
                fig.tight_layout()
                fig.savefig(tmp, dpi=120, format="png")
                plt.close(fig)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

"""Planning a payload under a byte budget: the (samples-per-class, bits) planner, sweet-spot search,
class allocation, rate-distortion curve, and the fixed point of planning and graph export (the training graph's
digest is part of the payload, so of the budget). The budget itself is :class:`edge_sdk.units.Budget` (parsed
once).

API::

    from edge_sdk.server.budget import OperatingPoint, plan, max_ipc, allocate_per_class, search_sweet_spot, \
        write_rd_curve
    cost = PayloadCost(num_classes=32, task=task, provenance=prov, graph=digest)      # edge_sdk.server.payload_io
    pts = plan(budget_bytes, options=[("uniform", Storage("uniform_clip", 2)), ("codebook", Storage("codebook", 3))],
               n_classes_present=32, d=8, cost=cost)      # the largest IPC per option that fits
    best, scores = search_sweet_spot(pts, proxy_fn)        # proxy_fn(point) -> score (higher better)

Counting: a point's ``bytes`` is the exact size of the payload :func:`edge_sdk.server.payload_io.write_compact`
writes for it (codes, labels, codebooks / thresholds, soft labels, header, task spec with the training recipe,
provenance, graph digest): ``cost.size(storage.layouts(n, d, C))``. The cost (header) must therefore be fixed
*before* planning and passed unchanged to the writer; the writer re-checks the size against the budget.

IPC (images/samples per class) applies to every class present in the training set, so
``n = ipc * n_classes_present``.

Planning with the graph (:func:`plan_with_graph`, used by ``edge_sdk.server.pipeline.run``). The payload header
names its training graph by ``[sha256 hex, size]`` (docs/payload-format.md). The sha256 is always 64 hex
characters, but the decimal digit count of ``size`` changes the header length, so the exact payload size depends on
the graph. The graph in turn depends on the group layout (which groups are stored: name, kind, bits, d, role —
:func:`edge_sdk.graphmeta.graph_groups_from`; not the sample counts, the batch dimension is
dynamic), and for some methods (ADQ) that layout is only known after planning. Fixed point:

1. plan with a placeholder digest ``{"sha256": "0" * 64, "size": PLACEHOLDER_SIZE}`` (the right shape);
2. export the graph for that plan's groups -> real digest ``D``;
3. plan again with ``D``; if the groups give the same graph, the plan was made with exactly the digest the header
   will carry: done. Otherwise export the graph of the new layout and repeat (one export per layout).

Usually round 2 confirms round 1 (a one-digit header change moves the budget by one byte). If the layouts keep
changing for ``max_rounds`` rounds (a budget on the edge between two layouts) a ConfigError says so; the caller
may change the budget by a few bytes or drop the graph. Candidate graphs are written next to the final path as
hidden files; the chosen one is committed with :func:`edge_sdk.atomic.commit_file`, the others are removed.

The planner knows nothing about the method: it takes a ``plan_fn(digest) -> plan`` (any object with a
``layouts`` attribute, a list of ``GroupLayout``) and an ``export_fn(layouts, path) -> GraphInfo``.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from edge_sdk import codecs
from edge_sdk.atomic import commit_file
from edge_sdk.errors import ConfigError, EdgeSdkError
from edge_sdk.server.payload_io import PayloadCost, Storage

MAX_IPC = 1 << 20


@dataclass(frozen=True)
class OperatingPoint:
    """One way to spend the budget: ``ipc`` samples per present class (``n`` in all) stored as ``storage``.

    ``quantizer`` is a :mod:`torch_quant` name (``uniform``, ``apot``, ``codebook``) or a raw kind
    (``float32``, ``float16``); ``storage.kind`` is the payload kind; ``bytes`` the exact payload size.
    """

    ipc: int
    n: int
    quantizer: str
    storage: Storage
    bytes: int

    @property
    def kind(self) -> str:
        return self.storage.kind

    @property
    def bits(self) -> int:
        return self.storage.bits

    @property
    def per_feature(self) -> bool:
        return self.storage.per_feature

    @property
    def soft(self) -> bool:
        return self.storage.soft is not None

    def to_dict(self) -> dict[str, Any]:
        return {"ipc": self.ipc, "n": self.n, "quantizer": self.quantizer, "kind": self.kind, "bits": self.bits,
                "per_feature": self.per_feature, "soft": self.soft, "bytes": self.bytes}


def option_kind(quantizer: str) -> str:
    """Payload kind written for a quantizer name or raw kind."""
    if quantizer in codecs.RAW_KINDS:
        return quantizer
    from edge_sdk.server.torch_quant import quantizer_kind

    return quantizer_kind(quantizer)


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


def plan(budget: int, *, options: Iterable[tuple[str, Storage]], n_classes_present: int, d: int, cost: PayloadCost,
         max_ipc_cap: int = MAX_IPC) -> list[OperatingPoint]:
    """For each ``(quantizer, storage)`` option the operating point with the most samples that fits ``budget``.

    Options that cannot fit even one sample per class are left out. Sorted by bits, then quantizer.
    """
    if budget < 1:
        raise ConfigError("budget must be >= 1 byte")
    pts = []
    for quantizer, storage in options:

        def size(n: int, storage: Storage = storage) -> int:
            return cost.size(storage.layouts(n, d, cost.num_classes))

        ipc = max_ipc(budget, size, n_classes_present, max_ipc_cap)
        if ipc < 1:
            continue
        n = ipc * n_classes_present
        pts.append(OperatingPoint(ipc, n, quantizer, storage, size(n)))
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
    method/bit width). Both atomically (``edge_sdk.atomic.atomic_path``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pyarrow as pa
    import pyarrow.parquet as pq

    from edge_sdk.atomic import atomic_path

    if not rows:
        raise ConfigError("no rows for the rate-distortion curve")
    cols = sorted({k for r in rows for k in r})
    table = pa.table({c: [r.get(c) for r in rows] for c in cols})
    with atomic_path(parquet_path, make_parents=True) as tmp:
        pq.write_table(table, tmp)
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
    try:
        with atomic_path(png_path, make_parents=True) as tmp:
            fig.savefig(tmp, dpi=120, format="png")
    finally:
        plt.close(fig)


# --- planning with the training graph (module docstring, last part) ---
#: graph size assumed by the first round (4 digits: the beam MLP graphs measure ~6-10 kB)
PLACEHOLDER_SIZE = 8192
PLACEHOLDER_SHA = "0" * 64
MAX_ROUNDS = 4


class GraphExportError(ConfigError):
    """The exporter cannot build a training graph for this model/layout (e.g. a ``convnet`` ModelSpec)."""


class HasLayouts(Protocol):
    @property
    def layouts(self) -> list[Any]: ...


P = TypeVar("P", bound=HasLayouts)


def placeholder_digest(size: int = PLACEHOLDER_SIZE) -> dict[str, Any]:
    """A digest of the shape the header will carry (64 hex chars, ``size`` with the guessed digit count)."""
    return {"sha256": PLACEHOLDER_SHA, "size": int(size)}


def graph_key(layouts: list[Any]) -> tuple:
    """What the training graph depends on: the :class:`GraphGroup` tuple (name, kind, bits, d, role)."""
    from edge_sdk.graphmeta import graph_groups_from

    return tuple(graph_groups_from(layouts))


@dataclass
class GraphPlan(Generic[P]):
    """The final ``plan`` (made with the written graph's digest), the graph (``GraphInfo``) and the round log."""

    plan: P
    graph: Any
    rounds: int
    log: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def plan_with_graph(plan_fn: Callable[[dict[str, Any]], P], export_fn: Callable[[list[Any], Path], Any],
                    out_path: str | os.PathLike[str], *, max_rounds: int = MAX_ROUNDS) -> GraphPlan[P]:
    """Fixed point of planning and graph export (module docstring); writes the graph to ``out_path``.

    ``export_fn`` raising an :class:`EdgeSdkError` becomes a :class:`GraphExportError`; a plan with no stored
    group, or layouts that do not settle in ``max_rounds``, a ConfigError."""
    if max_rounds < 2:
        raise ConfigError(f"max_rounds must be >= 2 (one round to export, one to confirm), got {max_rounds}")
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    digest = placeholder_digest()
    exported: dict[tuple, Any] = {}
    log: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    chosen = None
    try:
        for rnd in range(1, max_rounds + 1):
            plan = plan_fn(digest)
            if not plan.layouts:
                raise ConfigError("the plan stores no sample group (payload and graph digest counted); raise the "
                                  "budget or use smaller widths")
            key = graph_key(plan.layouts)
            if key not in exported:
                tmp = out.with_name(f".{out.name}.{len(exported)}.candidate")
                try:
                    exported[key] = export_fn(plan.layouts, tmp)
                except EdgeSdkError as exc:
                    raise GraphExportError(f"graph export not supported for this payload/model: {exc}") from exc
            g = exported[key]
            log.append({"round": rnd, "planned_with_size": int(digest["size"]),
                        "groups": [f"{lay.name}:{lay.kind}:{lay.bits}" for lay in plan.layouts],
                        "graph_size": int(g.size)})
            if g.digest() == digest:
                chosen = g
                break
            digest = g.digest()
        if chosen is None:
            raise ConfigError(
                f"payload and graph planning did not settle in {max_rounds} rounds (the stored groups change with "
                f"the graph digest: {[r['groups'] for r in log]}); change the budget by a few bytes or pass --no-graph")
        commit_file(chosen.path, out)
        final = replace(chosen, path=out)
    finally:
        for g in exported.values():
            if Path(g.path).exists() and Path(g.path) != out:
                Path(g.path).unlink()
    return GraphPlan(plan, final, len(log), log, time.perf_counter() - t0)

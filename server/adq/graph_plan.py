"""Plan an ADQ payload together with its ONNX training graph (the graph's digest is part of the budget).

The payload header names its training graph by ``[sha256 hex, size]`` (docs/contracts.md, payload ``o``).
The sha256 is always 64 hex characters, but the decimal digit count of ``size`` changes the header length,
so the exact payload size depends on the graph. The graph in turn depends on the group layout (which bit
widths are stored, hence which ``b{bits}`` groups, in which order; not on the sample counts, the batch
dimension is dynamic), and for ADQ that layout is only known after allocation. Fixed-point scheme:

1. allocate with a placeholder digest ``{"sha256": "0" * 64, "size": PLACEHOLDER_SIZE}`` (the right shape);
2. export the graph for the stored groups of that allocation -> real digest ``D``;
3. re-allocate with ``D``; if the stored groups give the same graph (same :class:`GraphGroup` tuple), the
   planned size was computed with exactly the digest the header will carry: done. Otherwise export the graph
   of the new layout and repeat (graphs are cached per layout, so a layout is exported at most once).

Usually round 2 confirms round 1's layout (a one-digit header change moves the budget by one byte). If the
layouts keep changing for ``max_rounds`` rounds (a budget on the edge between two layouts), a
:class:`edge_sdk.errors.ConfigError` says so; the caller may change the budget by a few bytes or drop the graph.
Candidate graphs are written next to the final path as hidden temp files; the chosen one is moved into place
with ``edge_sdk.atomic.commit_file`` (fsync + rename + directory fsync) and the others are removed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edge_sdk.atomic import commit_file
from edge_sdk.errors import ConfigError, EdgeSdkError

#: graph size assumed by the first allocation round (4 digits: the beam MLP graphs measure ~6-9 kB)
PLACEHOLDER_SIZE = 8192
PLACEHOLDER_SHA = "0" * 64
MAX_ROUNDS = 4


class GraphExportError(ConfigError):
    """The exporter cannot build a training graph for this model/layout (e.g. a ``convnet`` ModelSpec)."""


def placeholder_digest(size: int = PLACEHOLDER_SIZE) -> dict[str, Any]:
    """A digest of the shape the header will carry (64 hex chars, ``size`` with the guessed digit count)."""
    return {"sha256": PLACEHOLDER_SHA, "size": int(size)}


def stored_layouts(cost: Any, bits: np.ndarray) -> list:
    """``GroupLayout``s of the groups a per-sample allocation ``bits`` int [M] stores (b = 0 is not stored),
    in the writer's order (largest width first), via ``PayloadCost.layouts``."""
    b = np.asarray(bits, np.int64)
    vals, counts = np.unique(b[b > 0], return_counts=True)
    return cost.layouts(zip(vals.tolist(), counts.tolist(), strict=True))


def graph_key(layouts: list) -> tuple:
    """What the training graph depends on: the :class:`GraphGroup` tuple (name, kind, bits, d, role)."""
    from edge_sdk.server.onnx_export.layout import graph_groups_from

    return graph_groups_from(layouts)


@dataclass
class GraphPlan:
    """Result of :func:`plan_with_graph`: pruning candidates ``cand`` [M'], ``alloc`` over them, ``info``,
    the written graph (``GraphInfo``: path, sha256, size) and the per-round log."""

    cand: np.ndarray
    alloc: Any
    info: dict[str, Any]
    graph: Any
    rounds: int
    log: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def plan_with_graph(data: Any, cfg: Any, recipe: Any, out_path: str | os.PathLike[str], *, progress: bool = False,
                    max_rounds: int = MAX_ROUNDS, exporter: Callable[..., Any] | None = None) -> GraphPlan:
    """Allocate under the budget with the graph's digest counted, and write the graph to ``out_path``.

    ``data``: ``TaskData`` (``spec`` is the model the graph trains); ``cfg``: ``QuantizeConfig``; ``recipe``:
    ``EvalConfig`` (for the scores; the graph is exported for ``recipe.recipe.optimizer``). ``exporter`` defaults to
    ``edge_sdk.server.onnx_export.export.write_graph_for_payload`` (same signature; injectable for tests).
    Raises :class:`GraphExportError` if the exporter rejects the model/layout, ``ConfigError`` if the
    allocation stores nothing or the layout does not settle in ``max_rounds``."""
    from .pipeline import payload_cost, select_and_allocate

    if exporter is None:
        from edge_sdk.server.onnx_export.export import write_graph_for_payload as exporter
    if max_rounds < 2:
        raise ConfigError(f"max_rounds must be >= 2 (one round to export, one to confirm), got {max_rounds}")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    digest = placeholder_digest()
    exported: dict[tuple, Any] = {}
    log: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    chosen = None
    spent: dict[str, float] = {}  # timings summed over rounds (later rounds hit the score memo)
    try:
        for rnd in range(1, max_rounds + 1):
            cand, alloc, info = select_and_allocate(data, cfg, recipe, progress, graph=digest)
            for k, v in info.items():
                if k.endswith("_seconds"):
                    spent[k] = spent.get(k, 0.0) + float(v)
            lays = stored_layouts(payload_cost(data, cfg, digest), alloc.bits)
            if not lays:
                raise ConfigError(f"the budget {alloc.budget} B stores no sample with these settings (payload and "
                                  "graph digest counted); raise the budget or use smaller widths")
            key = graph_key(lays)
            widths = [int(g.bits) for g in lays]
            if key not in exported:
                tmp = out_path.with_name(f".{out_path.name}.{len(exported)}.candidate")
                try:
                    exported[key] = exporter(lays, data.spec, optimizer=recipe.recipe.optimizer, out_path=tmp)
                except EdgeSdkError as exc:
                    raise GraphExportError(f"graph export not supported for this payload/model: {exc}") from exc
            g = exported[key]
            log.append({"round": rnd, "planned_with_size": int(digest["size"]), "widths": widths,
                        "planned_bytes": int(alloc.nbytes), "graph_size": int(g.size)})
            if g.digest() == digest:
                chosen = g
                break
            digest = g.digest()
        if chosen is None:
            raise ConfigError(
                f"payload and graph planning did not settle in {max_rounds} rounds (the stored widths change "
                f"with the graph digest: {[r['widths'] for r in log]}); change the budget by a few bytes or "
                "pass --no-graph")
        commit_file(chosen.path, out_path)
        final = replace(chosen, path=out_path)
    finally:
        for g in exported.values():
            if Path(g.path).exists():
                Path(g.path).unlink()
    info = {**info, **spent, "graph_rounds": log}
    return GraphPlan(cand, alloc, info, final, len(log), log, time.perf_counter() - t0)

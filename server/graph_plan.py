"""Plan a payload together with its ONNX training graph (the graph's digest is part of the budget).

The payload header names its training graph by ``[sha256 hex, size]`` (docs/payload-format.md). The sha256 is
always 64 hex characters, but the decimal digit count of ``size`` changes the header length, so the exact payload
size depends on the graph. The graph in turn depends on the group layout (which groups are stored: name, kind,
bits, d, role — :func:`edge_sdk.server.onnx_export.layout.graph_groups_from`; not the sample counts, the batch
dimension is dynamic), and for some methods (ADQ) that layout is only known after planning. Fixed point:

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

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from edge_sdk.atomic import commit_file
from edge_sdk.errors import ConfigError, EdgeSdkError

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
    from edge_sdk.server.onnx_export.layout import graph_groups_from

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

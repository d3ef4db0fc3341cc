"""Export the dequantize-and-train step (and an MLP inference graph) to plain ONNX.

Path (docs/onnx-graph.md): pure step function (:mod:`.step`) -> ``make_fx(tracing_mode="symbolic")`` aten graph
-> ``torch.onnx.export(dynamo=True, opset_version=18)`` with a dynamic batch dimension per group -> post-check
(default-domain ops only, opset <= 18, no local functions), IR version lowered to 8 so that onnxruntime >= 1.17
loads it, self-description stored in ``metadata_props[META_KEY]``, atomic write. The exporter's notices that do
not concern these graphs are silenced (:class:`_ExporterNoise`: "torchvision is not installed. Skipping
torchvision::..." — four lines per export, our graphs use no torchvision op).

The graph holds no weights: parameters, optimizer state and hyper-parameters are inputs; the only initializers
are the small int index tables of the unpacking (D entries per group).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_sdk.atomic import atomic_write_bytes
from edge_sdk.errors import ConfigError
from edge_sdk.graphmeta import (
    HYPER_NAMES,
    META_KEY,
    GraphGroup,
    TrainGraphSpec,
    default_variant,
    graph_groups_from,
)
from edge_sdk.modelspec import ModelSpec

OPSET = 18
IR_VERSION = 8  # opset 18 needs IR >= 8; onnxruntime 1.17 reads IR <= 9
DEFAULT_DOMAINS = ("", "ai.onnx")


@dataclass(frozen=True)
class GraphInfo:
    """A written graph: ``path``, ``sha256`` (hex of the file bytes), ``size`` (bytes)."""

    path: Path
    sha256: str
    size: int

    def digest(self) -> dict[str, Any]:
        """The ``graph=`` argument of ``edge_sdk.payload.write_payload``."""
        return {"sha256": self.sha256, "size": self.size}


def _atomic_write(path: Path, data: bytes) -> None:
    atomic_write_bytes(path, data, make_parents=True)


def _example_sizes(spec: TrainGraphSpec) -> dict[int, int]:
    """Distinct example batch sizes per graph group (>= 2, so the exporter keeps every batch dim symbolic and
    never merges two groups' dims); soft-label groups sum to the samples total."""
    sizes: dict[int, int] = {}
    used: set[int] = set()
    nxt = 11
    for k, g in spec.graph_groups():
        if g.role == "samples":
            sizes[k] = nxt
            used.add(nxt)
            nxt += 2
    total = sum(sizes.values())
    soft = [k for k, g in spec.graph_groups() if g.role == "soft_labels"]
    cand = 2
    for i, k in enumerate(soft):
        if i == len(soft) - 1:
            sizes[k] = total - sum(sizes[j] for j in soft[:-1])
        else:
            while cand in used:
                cand += 1
            sizes[k] = cand
            used.add(cand)
            cand += 1
    if soft and (sizes[soft[-1]] < 2 or sizes[soft[-1]] in used - {sizes[soft[-1]]}):
        raise ConfigError("too many soft-label groups for one training graph")
    return sizes


def example_inputs(spec: TrainGraphSpec, seed: int = 0) -> list[Any]:
    """Random example inputs (torch tensors) in graph input order."""
    import torch

    from edge_sdk.server.onnx_export.step import EXAMPLE_HYPER, example_group_inputs

    rng = np.random.default_rng(seed)
    sizes = _example_sizes(spec)
    out: list[Any] = []
    n_total = 0
    for k, g in spec.graph_groups():
        b = sizes[k]
        if g.role == "samples":
            n_total += b
        out.extend(example_group_inputs(rng, g, b))
    out.append(torch.tensor(rng.integers(0, spec.model.num_classes, n_total), dtype=torch.int64))
    if spec.has_soft:
        out.append(torch.tensor(0.5, dtype=torch.float32))
    if spec.label_smoothing:
        out.append(torch.tensor(0.1, dtype=torch.float32))
    out.extend(torch.tensor(EXAMPLE_HYPER[h], dtype=torch.float32) for h in HYPER_NAMES[spec.optimizer])
    shapes = dict(spec.model.param_shapes())
    for n in spec.param_names():
        out.append(torch.tensor(rng.standard_normal(shapes[n]) * 0.1, dtype=torch.float32))
    for n in spec.state_names():
        out.append(torch.zeros(shapes[n.rsplit(".", 1)[0]], dtype=torch.float32))
    return out


def _dynamic_shapes(spec: TrainGraphSpec) -> tuple[Any, ...]:
    from torch.export import Dim

    dyn: list[Any] = []
    for _, g in spec.graph_groups():
        dyn.append({0: Dim.AUTO})
        dyn.extend({0: Dim.AUTO} if g.per_row_params else None for _ in g.param_names())
    dyn.append({0: Dim.AUTO})  # labels
    n_rest = len(spec.input_names()) - len(dyn)
    dyn.extend([None] * n_rest)
    return tuple(dyn)


def all_nodes(graph: Any) -> list[Any]:
    """Every node of ``graph`` and of its subgraphs (Loop/If/Scan bodies), depth first."""
    out: list[Any] = []
    for n in graph.node:
        out.append(n)
        for a in n.attribute:
            if a.type == 5:  # GRAPH
                out.extend(all_nodes(a.g))
            elif a.type == 10:  # GRAPHS
                for g in a.graphs:
                    out.extend(all_nodes(g))
    return out


def check_graph(model: Any, max_opset: int = OPSET) -> None:
    """Raise ConfigError unless every node (subgraphs included) is a default-domain op and the opset is
    <= ``max_opset``."""
    for imp in model.opset_import:
        if imp.domain in DEFAULT_DOMAINS and imp.version > max_opset:
            raise ConfigError(f"graph uses opset {imp.version} > {max_opset}")
    if len(model.functions):
        raise ConfigError("graph contains local functions; inline them before shipping")
    bad = sorted({f"{n.domain}::{n.op_type}" for n in all_nodes(model.graph) if n.domain not in DEFAULT_DOMAINS})
    if bad:
        raise ConfigError(f"graph uses non-default-domain ops: {bad}")


def _name_batch_dims(graph: Any) -> None:
    """Readable names for the exporter's symbolic dims: ``B_<input>`` after the first input that has it
    (e.g. ``B_g0`` for group 0's rows, ``B_labels`` for the batch total)."""
    names: dict[str, str] = {}
    for v in [*graph.input, *graph.output]:
        for d in v.type.tensor_type.shape.dim:
            if d.dim_param:
                if d.dim_param not in names:
                    names[d.dim_param] = "B_" + v.name.split(".")[0]
                d.dim_param = names[d.dim_param]


def _shorten_names(graph: Any, prefix: str = "t") -> None:
    """Rename intermediate tensors to short hex ids (``<prefix><n>``) and drop node names (optional in ONNX): the
    exporter's descriptive names are a large share of a small graph's bytes. Graph inputs/outputs keep their
    names."""
    keep = {v.name for v in graph.input} | {v.name for v in graph.output}
    mapping: dict[str, str] = {}

    def new(name: str) -> str:
        if not name or name in keep:
            return name
        if name not in mapping:
            mapping[name] = f"{prefix}{len(mapping):x}"
        return mapping[name]

    for init in graph.initializer:
        init.name = new(init.name)
    for node in graph.node:
        if any(a.type in (5, 10) for a in node.attribute):  # GRAPH / GRAPHS attributes: leave subgraphs alone
            raise ConfigError(f"unexpected subgraph in {node.op_type}; cannot shorten names")
        node.name = ""
        for i, n in enumerate(node.input):
            node.input[i] = new(n)
        for i, n in enumerate(node.output):
            node.output[i] = new(n)


def _clean(onnx_program: Any) -> Any:
    """The exported program as an ``onnx.ModelProto``: local functions inlined, opset imports pinned to the
    default domain at OPSET, exporter stack traces / intermediate shapes / doc strings dropped (~80% of the
    bytes, no effect on execution)."""
    import onnx

    with tempfile.TemporaryDirectory() as td:
        p = os.path.join(td, "g.onnx")
        onnx_program.save(p)
        model = onnx.load(p)
    if len(model.functions):
        from onnx import inliner

        model = inliner.inline_local_functions(model)
    # keep only the default opset import, pinned to OPSET
    keep = [imp for imp in model.opset_import if imp.domain in DEFAULT_DOMAINS]
    del model.opset_import[:]
    model.opset_import.extend(keep)
    for node in model.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    del model.graph.value_info[:]
    for v in [*model.graph.input, *model.graph.output, *model.graph.initializer]:
        del v.metadata_props[:]
        v.doc_string = ""
    return model


def _finalize_model(model: Any, meta: dict[str, str] | None, *, name_dims: bool = True) -> bytes:
    """IR version, producer, readable batch-dim names, short tensor names, metadata; then checked."""
    import onnx

    model.ir_version = IR_VERSION
    model.producer_name = "edge-sdk"
    if name_dims:
        _name_batch_dims(model.graph)
        _shorten_names(model.graph)
    del model.metadata_props[:]
    for k, v in (meta or {}).items():
        model.metadata_props.add(key=k, value=v)
    check_graph(model)
    onnx.checker.check_model(model)
    return model.SerializeToString()


class _ExporterNoise(logging.Filter):
    """Drops the ONNX exporter's "torchvision is not installed. Skipping torchvision::<op>" warnings (its op
    registry probes torchvision's ops at every export; these graphs use none). Everything else passes."""

    LOGGER = "torch.onnx._internal.exporter._registration"

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("torchvision is not installed")

    @classmethod
    def install(cls) -> None:
        log = logging.getLogger(cls.LOGGER)
        if not any(isinstance(f, cls) for f in log.filters):
            log.addFilter(cls())


def _to_model(fn: Any, args: Sequence[Any], input_names: list[str], output_names: list[str],
              dynamic_shapes: tuple[Any, ...], fold_limit: int | None = None) -> Any:
    """Trace ``fn`` with ``make_fx`` (symbolic shapes) and export it (dynamo, OPSET) -> cleaned ModelProto.
    ``fold_limit``: fold only constants of at most that many elements (the exporter's optimizer folds every
    constant expression, which would store a table the graph can compute in a few ops as data)."""
    import torch
    from torch.fx.experimental.proxy_tensor import make_fx

    gm = make_fx(fn, tracing_mode="symbolic")(*args)
    _ExporterNoise.install()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prog = torch.onnx.export(
            gm,
            tuple(args),
            dynamo=True,
            opset_version=OPSET,
            input_names=input_names,
            output_names=output_names,
            dynamic_shapes=dynamic_shapes,
            verbose=False,
            optimize=fold_limit is None,
        )
    if prog is None:  # pragma: no cover - torch.onnx.export returns a program with dynamo=True
        raise ConfigError("torch.onnx.export returned no program")
    if fold_limit is not None:
        import onnxscript.optimizer

        prog.model = onnxscript.optimizer.optimize(prog.model, input_size_limit=fold_limit,
                                                   output_size_limit=fold_limit)
    return _clean(prog)


def _export(fn: Any, args: Sequence[Any], input_names: list[str], output_names: list[str],
            dynamic_shapes: tuple[Any, ...], meta: dict[str, str] | None) -> bytes:
    return _finalize_model(_to_model(fn, args, input_names, output_names, dynamic_shapes), meta)


def training_graph_bytes(spec: TrainGraphSpec) -> bytes:
    """Serialized training graph for ``spec`` (its ``variant``: ``step`` or ``epoch``)."""
    if spec.variant == "epoch":
        from edge_sdk.server.onnx_export.epoch import epoch_graph_model

        return _finalize_model(epoch_graph_model(spec, _to_model, _shorten_names), {META_KEY: spec.meta_json()},
                               name_dims=False)
    from edge_sdk.server.onnx_export.step import make_step

    return _export(make_step(spec), example_inputs(spec), spec.input_names(), spec.output_names(),
                   _dynamic_shapes(spec), {META_KEY: spec.meta_json()})


def export_training_graph(
    model_spec: ModelSpec,
    groups: Any,
    optimizer: str,
    path: str | os.PathLike[str],
    *,
    debug_features: bool = False,
    variant: str | None = None,
    label_smoothing: bool = False,
) -> GraphInfo:
    """Export the training graph for ``model_spec`` consuming ``groups`` (payload layouts, a read payload, or
    :class:`GraphGroup`s) with ``optimizer`` (``sgd``|``adam``) to ``path`` (atomic). ``variant``: ``epoch``
    (K steps per run, decode once per run; the default for an MLP) or ``step`` (format v1: one step per run; the
    default for the other kinds, and for device runtimes older than the epoch format). ``label_smoothing``: the
    graph takes the recipe's label-smoothing epsilon as an input (needed by recipes with ``label_smoothing > 0``;
    without it the graph keeps the bytes of edge-sdk 0.2). Returns its digest."""
    spec = TrainGraphSpec(model=model_spec, groups=graph_groups_from(groups), optimizer=optimizer,
                          debug_features=debug_features, variant=variant or default_variant(model_spec),
                          label_smoothing=label_smoothing)
    data = training_graph_bytes(spec)
    path = Path(path)
    _atomic_write(path, data)
    return GraphInfo(path=path, sha256=hashlib.sha256(data).hexdigest(), size=len(data))


def write_graph_for_payload(
    payload_layout_or_groups: Any,
    model_spec: ModelSpec,
    optimizer: str = "adam",
    out_path: str | os.PathLike[str] = "graph.onnx",
    variant: str | None = None,
    label_smoothing: bool = False,
) -> GraphInfo:
    """The one call distill/quantize make: write the graph that trains on a payload with these groups (and the
    recipe's label smoothing when ``label_smoothing``).

    Pass its ``GraphInfo.digest()`` as ``graph=`` to ``write_payload`` so the payload names its graph."""
    return export_training_graph(model_spec, payload_layout_or_groups, optimizer, out_path, variant=variant,
                                 label_smoothing=label_smoothing)


def export_inference_graph(
    model_spec: ModelSpec,
    path: str | os.PathLike[str],
    params: dict[str, np.ndarray] | None = None,
) -> GraphInfo:
    """Inference graph (kinds mlp and gru) ``features`` float32 [B, D] -> ``logits`` [B, C]. With ``params`` the
    weights are initializers; without, they are graph inputs named like the ModelSpec parameters."""
    import torch

    from edge_sdk.graphmeta import GRAPH_KINDS
    from edge_sdk.server.onnx_export.step import model_forward

    if model_spec.kind not in GRAPH_KINDS:
        raise ConfigError(f"export_inference_graph supports ModelSpec kinds {GRAPH_KINDS} only")
    mlp_forward = model_forward(model_spec)
    names = [n for n, _ in model_spec.param_shapes()]
    shapes = dict(model_spec.param_shapes())
    x = torch.zeros((7, model_spec.input_dim), dtype=torch.float32)
    if params is None:
        ps = [torch.zeros(shapes[n], dtype=torch.float32) for n in names]

        def fn(x: Any, *ps: Any) -> Any:
            return mlp_forward(x, list(ps))

        args: list[Any] = [x, *ps]
        in_names = ["features", *names]
    else:
        consts = [np.asarray(params[n], np.float32) for n in names]

        def fn(x: Any) -> Any:  # type: ignore[misc]
            return mlp_forward(x, [torch.tensor(c) for c in consts])

        args = [x]
        in_names = ["features"]
    from torch.export import Dim

    dyn = tuple([{0: Dim.AUTO}] + [None] * (len(args) - 1))
    data = _export(fn, args, in_names, ["logits"], dyn, {"edge_sdk.model": model_spec_json(model_spec)})
    path = Path(path)
    _atomic_write(path, data)
    return GraphInfo(path=path, sha256=hashlib.sha256(data).hexdigest(), size=len(data))


def model_spec_json(spec: ModelSpec) -> str:
    import json

    return json.dumps(spec.to_dict(), sort_keys=True, separators=(",", ":"))


__all__ = [
    "GraphGroup",
    "GraphInfo",
    "TrainGraphSpec",
    "all_nodes",
    "check_graph",
    "example_inputs",
    "export_inference_graph",
    "export_training_graph",
    "training_graph_bytes",
    "write_graph_for_payload",
]

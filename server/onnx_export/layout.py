"""What a training graph consumes: the per-group input layout and the graph's self-description.

A training graph is built for a fixed list of payload groups (:class:`GraphGroup`), a
:class:`edge_sdk.modelspec.ModelSpec` and an optimizer. Everything else (batch size per group, hyper-parameter
values, parameter values) is a graph *input*, so one graph serves every batch composition.

Graph input names (all float32 unless noted; ``B_k`` = rows of group k in this step, dynamic, may be 0):

* per quantized group k: ``g{k}.packed`` uint8 ``[B_k, row_bytes]`` (row-aligned packing of docs/contracts.md)
  and its quantizer params: ``g{k}.scale`` ``[B_k]`` (symmetric_per_sample), ``g{k}.alpha`` ``[1]`` or ``[D]``
  (uniform_clip), ``g{k}.levels`` ``[2**bits]`` (codebook), ``g{k}.hi`` and ``g{k}.lo`` ``[1]`` (affine_set),
  ``[D]`` (affine_feature) or ``[B_k]`` (affine_sample);
* per raw group k (float16/float32): ``g{k}.values`` float32 ``[B_k, D]``;
* ``labels`` int64 ``[B]`` with ``B = sum of B_k`` over role ``samples`` groups (rows in group order);
* ``soft_weight`` ``[]`` (only when the graph has ``soft_labels`` groups): loss mix weight lambda;
* hyper-parameters ``[]``: SGD ``lr, momentum, weight_decay``; Adam ``lr, beta1, beta2, eps, weight_decay,
  step`` (the 1-based step count t used for bias correction);
* model parameters by their ModelSpec names (``fc0.weight`` ...), then optimizer state
  (``<param>.momentum`` for SGD; ``<param>.exp_avg``, ``<param>.exp_avg_sq`` for Adam).

Outputs: ``loss`` ``[]``, ``new.<param>`` for every parameter, ``new.<state>`` for every state tensor
(and ``features`` float32 ``[B, D]``, the dequantized batch, when exported with ``debug_features=True``).

That is the ``step`` variant (format version 1): one optimizer step per ``run()``. The ``epoch`` variant
(format version 2, the default since it is several times faster; docs/onnx-graph.md) takes several steps per
``run()``: its group inputs hold ``M_k`` rows (any rows of the payload, typically a whole epoch's), decoded
once per run; ``labels`` ``[M]`` are the labels of those rows; ``batches`` int64 ``[K, B]`` lists, per step,
the rows (positions in the concatenation of the samples groups' rows) of that step's batch; ``lr`` and
``step`` are ``[K]`` (one value per step), the other hyper-parameters ``[]``; the parameters travel as one
flat vector ``theta`` ``[P]`` (every parameter, C order, in ModelSpec order) and the optimizer state as
``theta.<suffix>`` ``[P]``. Outputs: ``losses`` ``[K]``, ``new.theta``, ``new.theta.<suffix>`` (and
``features`` ``[M, D]`` with ``debug_features``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from edge_sdk.codecs import ALLOWED_BITS, PARAM_NAMES, RAW_KINDS, q_max
from edge_sdk.errors import ConfigError
from edge_sdk.graphmeta import PER_STEP_HYPER, THETA
from edge_sdk.modelspec import ModelSpec

GRAPH_FORMAT = "edge-sdk-train-graph"
#: format version per variant: "step" (one step per run, per-tensor parameters) is version 1, "epoch" (K steps
#: per run, flat parameters, decode once per run) is version 2 (edge_sdk.graphmeta reads both)
VARIANT_VERSIONS: dict[str, int] = {"step": 1, "epoch": 2}
VARIANTS = tuple(VARIANT_VERSIONS)
DEFAULT_VARIANT = "epoch"
#: model kinds the epoch variant's hand-written backward covers; the others (gru) export the step variant only
EPOCH_KINDS = ("mlp",)
GRAPH_VERSION = max(VARIANT_VERSIONS.values())  # the newest format this exporter writes
#: metadata_props key holding the JSON self-description of a training graph
META_KEY = "edge_sdk.train_graph"
OPTIMIZERS = ("sgd", "adam")
#: model kinds whose training step exports to plain ONNX (gru: the BM-Case2 temporal model, unrolled over K)
GRAPH_KINDS = ("mlp", "gru")
ROLES = ("samples", "soft_labels")
HYPER_NAMES: dict[str, tuple[str, ...]] = {
    "sgd": ("lr", "momentum", "weight_decay"),
    "adam": ("lr", "beta1", "beta2", "eps", "weight_decay", "step"),
}
STATE_SUFFIXES: dict[str, tuple[str, ...]] = {"sgd": ("momentum",), "adam": ("exp_avg", "exp_avg_sq")}


@dataclass(frozen=True)
class GraphGroup:
    """One payload group as the graph sees it.

    ``kind``/``bits`` as in :mod:`edge_sdk.codecs`; ``d`` values per row; ``per_feature`` selects the
    ``alpha`` shape ``[D]`` (else ``[1]``) for ``uniform_clip``. Kind ``none`` (bits 0) has no graph input.
    """

    name: str
    kind: str
    bits: int
    d: int
    role: str = "samples"
    per_feature: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ALLOWED_BITS or self.bits not in ALLOWED_BITS[self.kind]:
            raise ConfigError(f"group {self.name!r}: unsupported quantizer {self.kind!r} with {self.bits} bits")
        if self.role not in ROLES:
            raise ConfigError(f"group {self.name!r}: role must be one of {ROLES}, got {self.role!r}")
        if self.d < 1 and self.kind != "none":
            raise ConfigError(f"group {self.name!r}: d must be >= 1")

    @property
    def in_graph(self) -> bool:
        return self.kind != "none"

    @property
    def raw(self) -> bool:
        return self.kind in RAW_KINDS

    @property
    def row_bytes(self) -> int:
        return (self.d * self.bits + 7) // 8

    @property
    def q(self) -> int:
        return q_max(self.bits) if self.kind in ("symmetric_per_sample", "uniform_clip") else 0

    def param_names(self) -> tuple[str, ...]:
        return PARAM_NAMES.get(self.kind, ())

    @property
    def per_row_params(self) -> bool:
        """The params have one value per row of the batch (fed sliced with the rows)."""
        return self.kind in ("symmetric_per_sample", "affine_sample")


def default_variant(model: ModelSpec) -> str:
    """The fastest graph variant ``model``'s kind has: ``epoch`` for an MLP, ``step`` for the others."""
    return DEFAULT_VARIANT if model.kind in EPOCH_KINDS else "step"


@dataclass(frozen=True)
class TrainGraphSpec:
    """Everything that fixes the structure of a training graph."""

    model: ModelSpec
    groups: tuple[GraphGroup, ...]
    optimizer: str = "adam"
    debug_features: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    variant: str = "step"

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ConfigError(f"graph variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.model.kind not in GRAPH_KINDS:
            raise ConfigError(
                f"only ModelSpec kinds {GRAPH_KINDS} have an exportable training step (convnet backward needs "
                "conv/pool backward rules the ONNX exporter lacks; see docs/onnx-graph.md)"
            )
        if self.variant == "epoch" and self.model.kind not in EPOCH_KINDS:
            raise ConfigError(f"the epoch graph variant covers ModelSpec kinds {EPOCH_KINDS} (its backward is "
                              f"written by hand); export kind {self.model.kind!r} with variant 'step'")
        samples = self.sample_groups()
        if not samples:
            raise ConfigError("a training graph needs at least one 'samples' group with bits > 0")
        for g in samples:
            if g.d != self.model.input_dim:
                raise ConfigError(
                    f"group {g.name!r} has d={g.d} values per sample but the model expects "
                    f"input_dim={self.model.input_dim}"
                )
        for g in self.soft_groups():
            if g.d != self.model.num_classes:
                raise ConfigError(
                    f"soft-label group {g.name!r} has d={g.d}, expected num_classes={self.model.num_classes}"
                )

    def graph_groups(self) -> list[tuple[int, GraphGroup]]:
        """(index k, group) of the groups that have graph inputs (kind != none), in payload order."""
        return [(k, g) for k, g in enumerate(self.groups) if g.in_graph]

    def sample_groups(self) -> list[GraphGroup]:
        return [g for g in self.groups if g.in_graph and g.role == "samples"]

    def soft_groups(self) -> list[GraphGroup]:
        return [g for g in self.groups if g.in_graph and g.role == "soft_labels"]

    @property
    def has_soft(self) -> bool:
        return bool(self.soft_groups())

    def group_input_names(self) -> list[str]:
        names: list[str] = []
        for k, g in self.graph_groups():
            names.append(f"g{k}.values" if g.raw else f"g{k}.packed")
            names.extend(f"g{k}.{p}" for p in g.param_names())
        return names

    def param_names(self) -> list[str]:
        return [n for n, _ in self.model.param_shapes()]

    def state_names(self) -> list[str]:
        return [f"{p}.{s}" for p in self.param_names() for s in STATE_SUFFIXES[self.optimizer]]

    def theta_size(self) -> int:
        """P: number of floats in the flat parameter vector (= ModelSpec.num_params())."""
        return self.model.num_params()

    def flat_state_names(self) -> list[str]:
        """Epoch variant: the optimizer state vectors, ``theta.<suffix>`` ``[P]``."""
        return [f"{THETA}.{s}" for s in STATE_SUFFIXES[self.optimizer]]

    def input_names(self) -> list[str]:
        if self.variant == "epoch":
            names = self.group_input_names() + ["labels", "batches"]
            if self.has_soft:
                names.append("soft_weight")
            return names + list(HYPER_NAMES[self.optimizer]) + [THETA] + self.flat_state_names()
        names = self.group_input_names() + ["labels"]
        if self.has_soft:
            names.append("soft_weight")
        return names + list(HYPER_NAMES[self.optimizer]) + self.param_names() + self.state_names()

    def output_names(self) -> list[str]:
        if self.variant == "epoch":
            out = ["losses", f"new.{THETA}"] + [f"new.{n}" for n in self.flat_state_names()]
        else:
            out = ["loss"] + [f"new.{n}" for n in self.param_names()] + [f"new.{n}" for n in self.state_names()]
        return out + (["features"] if self.debug_features else [])

    def to_meta(self) -> dict[str, Any]:
        """The JSON stored in the graph's metadata_props under :data:`META_KEY`."""
        meta: dict[str, Any] = {
            "format": GRAPH_FORMAT,
            "version": VARIANT_VERSIONS[self.variant],
            "model": self.model.to_dict(),
            "optimizer": self.optimizer,
            "groups": [asdict(g) for g in self.groups],
            "inputs": self.input_names(),
            "outputs": self.output_names(),
            "hyper": list(HYPER_NAMES[self.optimizer]),
            "state_suffixes": list(STATE_SUFFIXES[self.optimizer]),
            **({"extra": self.extra} if self.extra else {}),
        }
        if self.variant == "epoch":  # version 1 graphs keep their exact metadata (and bytes)
            meta.update(variant="epoch", theta_size=self.theta_size(), per_step_hyper=list(PER_STEP_HYPER))
        return meta

    def meta_json(self) -> str:
        return json.dumps(self.to_meta(), sort_keys=True, separators=(",", ":"))


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def graph_group_from(obj: Any) -> GraphGroup:
    """Build a :class:`GraphGroup` from a payload ``GroupLayout``, ``SampleGroup``, ``GroupView``, a dict or
    a GraphGroup. ``per_feature`` is read from the ``alpha`` parameter shape (``[D]`` with D > 1)."""
    if isinstance(obj, GraphGroup):
        return obj
    if hasattr(obj, "layout") and callable(obj.layout):
        obj = obj.layout()
    kind = str(_get(obj, "kind"))
    bits = int(_get(obj, "bits"))
    d = _get(obj, "d")
    per_feature = bool(_get(obj, "per_feature", False))
    shapes = _get(obj, "param_shapes")
    if shapes is None and hasattr(obj, "params") and callable(obj.params):
        shapes = {k: tuple(v.shape) for k, v in obj.params().items()}
    if shapes and "alpha" in shapes:
        a = tuple(shapes["alpha"])
        per_feature = bool(a and int(a[0]) > 1) or (bool(a) and d is not None and int(a[0]) == int(d) > 1)
    if d is None:
        raise ConfigError(f"group {_get(obj, 'name')!r}: cannot tell its row width d")
    return GraphGroup(
        name=str(_get(obj, "name", "")),
        kind=kind,
        bits=bits,
        d=int(d),
        role=str(_get(obj, "role", "samples") or "samples"),
        per_feature=per_feature,
    )


def graph_groups_from(groups: Any) -> tuple[GraphGroup, ...]:
    """Groups of a read payload (``.groups``), or an iterable of group-like objects."""
    if hasattr(groups, "groups") and not isinstance(groups, Mapping):
        groups = groups.groups
    if not isinstance(groups, Iterable):
        raise ConfigError("groups must be a payload, or a list of GroupLayout / SampleGroup / GraphGroup")
    return tuple(graph_group_from(g) for g in groups)


#: hyper-parameter values of the example inputs the exporters trace with (any valid value; they are graph inputs)
EXAMPLE_HYPER = {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.0, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
                 "step": 1.0}


def example_group_inputs(rng: Any, g: GraphGroup, rows: int) -> list[Any]:
    """Random example tensors for one group's graph inputs, in input order: ``g{k}.values`` [rows, d] float32 or
    ``g{k}.packed`` [rows, row_bytes] uint8, then the kind's parameters (scale [rows]; alpha [d or 1]; levels
    [2^bits]; affine hi, lo [1 | d | rows] with hi > lo). Shared by the step and epoch exporters (their traced
    graphs depend on the draws' shapes, and on this exact draw order for reproducible fixtures).
    ``rng``: a ``numpy.random.Generator``."""
    import torch

    out = []
    if g.raw:
        out.append(torch.tensor(rng.standard_normal((rows, g.d)), dtype=torch.float32))
    else:
        out.append(torch.tensor(rng.integers(0, 256, (rows, g.row_bytes)), dtype=torch.uint8))
    if g.kind == "symmetric_per_sample":
        out.append(torch.tensor(rng.uniform(0.1, 1, rows), dtype=torch.float32))
    elif g.kind == "uniform_clip":
        out.append(torch.tensor(rng.uniform(0.5, 2, g.d if g.per_feature else 1), dtype=torch.float32))
    elif g.kind == "codebook":
        out.append(torch.tensor(rng.standard_normal(1 << g.bits), dtype=torch.float32))
    elif g.param_names() == ("hi", "lo"):  # affine kinds
        m = {"affine_set": 1, "affine_feature": g.d, "affine_sample": rows}[g.kind]
        lo = rng.uniform(-2, 0, m)
        out.append(torch.tensor(lo + rng.uniform(0.5, 2, m), dtype=torch.float32))  # hi
        out.append(torch.tensor(lo, dtype=torch.float32))
    return out

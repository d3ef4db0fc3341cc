"""The training graph's layout and self-description: one definition for the server that exports the graph
(:class:`TrainGraphSpec`) and the device that reads it (:class:`GraphMeta`).

Layout (what a training graph consumes). A training graph is built for a fixed list of payload groups
(:class:`GraphGroup`), a :class:`edge_sdk.modelspec.ModelSpec` and an optimizer. Everything else (batch size per
group, hyper-parameter values, parameter values) is a graph *input*, so one graph serves every batch composition.

Graph input names (all float32 unless noted; ``B_k`` = rows of group k in this step, dynamic, may be 0):

* per quantized group k: ``g{k}.packed`` uint8 ``[B_k, row_bytes]`` (row-aligned packing of docs/contracts.md)
  and its quantizer params: ``g{k}.scale`` ``[B_k]`` (symmetric_per_sample), ``g{k}.alpha`` ``[1]`` or ``[D]``
  (uniform_clip), ``g{k}.levels`` ``[2**bits]`` (codebook), ``g{k}.hi`` and ``g{k}.lo`` ``[1]`` (affine_set),
  ``[D]`` (affine_feature) or ``[B_k]`` (affine_sample);
* per raw group k (float16/float32): ``g{k}.values`` float32 ``[B_k, D]``;
* ``labels`` int64 ``[B]`` with ``B = sum of B_k`` over role ``samples`` groups (rows in group order);
* ``soft_weight`` ``[]`` (only when the graph has ``soft_labels`` groups): loss mix weight lambda;
* ``label_smoothing`` ``[]`` (only in graphs exported with label smoothing, meta key ``"label_smoothing": true``):
  epsilon of the hard-label target ``(1 - eps) onehot(y) + eps / C`` (edge_sdk.modelspec; 0 = plain CE);
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

Self-description (``metadata_props["edge_sdk.train_graph"]``): the server writes :meth:`TrainGraphSpec.to_meta`,
the device reads it before it trusts anything else in the graph (docs/onnx-graph.md, "Self-description"). JSON
object, version 1 (the ``step`` variant: one optimizer step per run)::

    {"format": "edge-sdk-train-graph", "version": 1, "model": ModelSpec dict, "optimizer": "sgd" | "adam",
     "groups": [{"name", "kind", "bits", "d", "role", "per_feature"}, ...],   # one per payload group, in order
     "inputs": [...], "outputs": [...], "hyper": [...], "state_suffixes": [...], "extra": {...} (optional),
     "label_smoothing": true (optional; absent = false, so graphs without it keep their exact bytes)}

Version 2 (the ``epoch`` variant: K steps per run, flat parameter vector ``theta``) has the same keys plus
``"variant": "epoch"``, ``"theta_size": P`` (= the model's parameter count) and ``"per_step_hyper": ["lr",
"step"]`` (the hyper-parameters given once per step, ``[K]``), and its own naming rules (inputs ``labels``,
``batches``, ``theta``, ``theta.<suffix>``; outputs ``losses``, ``new.theta``, ``new.theta.<suffix>``).

:meth:`GraphMeta.from_json` checks the types and bounds of every field and that ``inputs``, ``outputs``, ``hyper``
and ``state_suffixes`` are exactly what the naming rules (:meth:`GraphMeta.expected_inputs`, ...) give for the
model, groups and optimizer, so the device can rely on them; the device then compares the graph's real inputs and
their shapes with these (``edge_sdk.device.graph``). Every failure is a :class:`~edge_sdk.errors.SchemaError`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from edge_sdk import codecs
from edge_sdk.codecs import ALLOWED_BITS, PARAM_NAMES, RAW_KINDS, q_max
from edge_sdk.errors import ConfigError, SchemaError
from edge_sdk.modelspec import ModelSpec
from edge_sdk.schema import as_bool, as_int, as_list, as_str, check_keys, expect_dict, get_str

#: metadata_props key holding the JSON self-description of a training graph
META_KEY = "edge_sdk.train_graph"
GRAPH_FORMAT = "edge-sdk-train-graph"
#: format version per variant: "step" (one step per run, per-tensor parameters) is version 1, "epoch" (K steps
#: per run in an ONNX Loop, flat parameter vector, rows decoded once per run) is version 2
VARIANT_VERSIONS: dict[str, int] = {"step": 1, "epoch": 2}
VARIANTS = tuple(VARIANT_VERSIONS)
#: format version -> graph variant (what the device reads)
VERSION_VARIANT = {v: k for k, v in VARIANT_VERSIONS.items()}
SUPPORTED_VERSIONS = tuple(sorted(VERSION_VARIANT))
GRAPH_VERSION = max(SUPPORTED_VERSIONS)  # the newest format the exporter writes
DEFAULT_VARIANT = "epoch"
#: model kinds the epoch variant's hand-written backward covers; the others (gru) export the step variant only
EPOCH_KINDS = ("mlp",)
#: model kinds whose training step exports to plain ONNX (gru: the BM-Case2 temporal model, unrolled over K)
GRAPH_KINDS = ("mlp", "gru")
THETA = "theta"
PER_STEP_HYPER = ("lr", "step")
V2_KEYS = ("variant", "theta_size", "per_step_hyper")
OPTIMIZERS = ("sgd", "adam")
ROLES = ("samples", "soft_labels")
HYPER_NAMES: dict[str, tuple[str, ...]] = {
    "sgd": ("lr", "momentum", "weight_decay"),
    "adam": ("lr", "beta1", "beta2", "eps", "weight_decay", "step"),
}
STATE_SUFFIXES: dict[str, tuple[str, ...]] = {"sgd": ("momentum",), "adam": ("exp_avg", "exp_avg_sq")}
MAX_META_BYTES = 1 << 20  #: the JSON text; a v1 description of 4096 groups is ~0.5 MB
MAX_GROUPS = 4096  #: as the payload's MAX_GROUPS
MAX_NAMES = 1 << 16
META_KEYS = ("format", "version", "model", "optimizer", "groups", "inputs", "outputs", "hyper", "state_suffixes")
#: optional keys of the self-description
META_OPTIONAL_KEYS = ("extra", "label_smoothing")


# ------------------------------------------------------------------ the layout (the server exports it)

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
    #: the graph takes a ``label_smoothing`` scalar input (edge_sdk.modelspec's label-smoothed hard target)
    label_smoothing: bool = False

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
            names = self.group_input_names() + ["labels", "batches"] + self.loss_input_names()
            return names + list(HYPER_NAMES[self.optimizer]) + [THETA] + self.flat_state_names()
        names = self.group_input_names() + ["labels"] + self.loss_input_names()
        return names + list(HYPER_NAMES[self.optimizer]) + self.param_names() + self.state_names()

    def loss_input_names(self) -> list[str]:
        """The loss's scalar inputs, in order: ``soft_weight`` (soft-label groups), ``label_smoothing``."""
        return (["soft_weight"] if self.has_soft else []) + (["label_smoothing"] if self.label_smoothing else [])

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
            **({"label_smoothing": True} if self.label_smoothing else {}),
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


# ------------------------------------------------ the self-description (the device reads it)

@dataclass(frozen=True)
class GraphGroupMeta:
    """One payload group as the graph consumes it (kind ``none`` has no graph input)."""

    name: str
    kind: str
    bits: int
    d: int
    role: str
    per_feature: bool

    def input_names(self, k: int) -> list[str]:
        if self.kind == "none":
            return []
        data = f"g{k}.values" if self.kind in codecs.RAW_KINDS else f"g{k}.packed"
        return [data, *(f"g{k}.{p}" for p in codecs.PARAM_NAMES.get(self.kind, ()))]


@dataclass(frozen=True)
class GraphMeta:
    """A validated v1 self-description (see the module docstring)."""

    version: int
    model: ModelSpec
    optimizer: str
    groups: tuple[GraphGroupMeta, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    extra: dict[str, Any]
    label_smoothing: bool = False

    @property
    def variant(self) -> str:
        return VERSION_VARIANT[self.version]

    # ------------------------------------------------------------------------------- naming rules
    @property
    def has_soft(self) -> bool:
        return any(g.role == "soft_labels" and g.kind != "none" for g in self.groups)

    @property
    def param_names(self) -> list[str]:
        return [n for n, _ in self.model.param_shapes()]

    @property
    def state_names(self) -> list[str]:
        return [f"{p}.{s}" for p in self.param_names for s in STATE_SUFFIXES[self.optimizer]]

    @property
    def flat_state_names(self) -> list[str]:
        """Version 2: the optimizer state vectors ``theta.<suffix>``."""
        return [f"{THETA}.{s}" for s in STATE_SUFFIXES[self.optimizer]]

    @property
    def loss_input_names(self) -> list[str]:
        """The loss's scalar inputs, in order: ``soft_weight`` (soft-label groups), ``label_smoothing``."""
        return (["soft_weight"] if self.has_soft else []) + (["label_smoothing"] if self.label_smoothing else [])

    def expected_inputs(self) -> list[str]:
        names = [n for k, g in enumerate(self.groups) for n in g.input_names(k)] + ["labels"]
        if self.variant == "epoch":
            names.append("batches")
        names += self.loss_input_names + list(HYPER_NAMES[self.optimizer])
        if self.variant == "epoch":
            return names + [THETA] + self.flat_state_names
        return names + self.param_names + self.state_names

    def expected_outputs(self) -> list[str]:
        if self.variant == "epoch":
            return ["losses", f"new.{THETA}"] + [f"new.{n}" for n in self.flat_state_names]
        return ["loss"] + [f"new.{n}" for n in self.param_names + self.state_names]

    # ------------------------------------------------------------------------------------ parsing
    @classmethod
    def from_json(cls, raw: str | bytes, where: str = "graph metadata") -> GraphMeta:
        """Parse and validate the JSON text stored under :data:`META_KEY`."""
        if len(raw) > MAX_META_BYTES:
            raise SchemaError(f"{where} is {len(raw)} bytes, more than {MAX_META_BYTES}")
        try:
            obj = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise SchemaError(f"{where} is not JSON ({str(exc)[:80]}); export the graph again") from None
        return cls.from_dict(obj, where)

    @classmethod
    def from_dict(cls, d: Any, where: str = "graph metadata") -> GraphMeta:
        m = expect_dict(d, where)
        version = m.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version not in SUPPORTED_VERSIONS:
            raise SchemaError(f"{where}.version {version!r} is not supported (this runtime reads "
                              f"{list(SUPPORTED_VERSIONS)}); upgrade edge-sdk or export the graph again")
        check_keys(m, where, META_KEYS + (V2_KEYS if version == 2 else ()), META_OPTIONAL_KEYS)
        if m["format"] != GRAPH_FORMAT:
            raise SchemaError(f"{where}.format is {m['format']!r}, not {GRAPH_FORMAT!r}: not an edge-sdk training graph")
        model = ModelSpec.from_dict(m["model"], f"{where}.model")
        if version == 2:
            if m["variant"] != VERSION_VARIANT[2]:
                raise SchemaError(f"{where}.variant is {m['variant']!r}; a version 2 graph is an 'epoch' graph")
            if as_int(m["theta_size"], f"{where}.theta_size", 1, 1 << 40) != model.num_params():
                raise SchemaError(f"{where}.theta_size {m['theta_size']} is not the model's parameter count "
                                  f"{model.num_params()}; export the graph again")
            if m["per_step_hyper"] != list(PER_STEP_HYPER):
                raise SchemaError(f"{where}.per_step_hyper must be {list(PER_STEP_HYPER)}")
        optimizer = get_str(m, "optimizer", where, OPTIMIZERS)
        groups = []
        for i, g in enumerate(as_list(m["groups"], f"{where}.groups", MAX_GROUPS)):
            w = f"{where}.groups[{i}]"
            gd = expect_dict(g, w)
            check_keys(gd, w, ("name", "kind", "bits", "d", "role", "per_feature"))
            kind = as_str(gd["kind"], f"{w}.kind", codecs.QUANTIZER_KINDS)
            bits = as_int(gd["bits"], f"{w}.bits", 0, 32)
            if bits not in codecs.ALLOWED_BITS[kind]:
                raise SchemaError(f"{w}: kind {kind!r} does not allow {bits} bits ({list(codecs.ALLOWED_BITS[kind])})")
            groups.append(GraphGroupMeta(as_str(gd["name"], f"{w}.name"), kind, bits,
                                         as_int(gd["d"], f"{w}.d", 0, 1 << 24), as_str(gd["role"], f"{w}.role", ROLES),
                                         as_bool(gd["per_feature"], f"{w}.per_feature")))
        lists = {k: tuple(as_str(v, f"{where}.{k}[{i}]") for i, v in enumerate(as_list(m[k], f"{where}.{k}", MAX_NAMES)))
                 for k in ("inputs", "outputs", "hyper", "state_suffixes")}
        extra = expect_dict(m.get("extra", {}), f"{where}.extra")
        smoothing = as_bool(m.get("label_smoothing", False), f"{where}.label_smoothing")
        meta = cls(version, model, optimizer, tuple(groups), lists["inputs"], lists["outputs"], extra, smoothing)
        expected = {"inputs": meta.expected_inputs(), "outputs": meta.expected_outputs(),
                    "hyper": list(HYPER_NAMES[optimizer]), "state_suffixes": list(STATE_SUFFIXES[optimizer])}
        for key, want in expected.items():
            if list(lists[key]) != want:
                raise SchemaError(f"{where}.{key} does not follow the naming rules for this model, groups and "
                                  f"optimizer (first difference at {_first_diff(list(lists[key]), want)}); the graph "
                                  "is corrupted or hand-edited: export it again")
        return meta


def _first_diff(a: list[str], b: list[str]) -> str:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return f"[{i}]: {x!r} != {y!r}"
    return f"length {len(a)} != {len(b)}"

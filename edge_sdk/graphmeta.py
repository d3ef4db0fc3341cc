"""The training graph's self-description (``metadata_props["edge_sdk.train_graph"]``): typed schema and naming.

The server writes it (``edge_sdk.server.onnx_export.layout.TrainGraphSpec.to_meta``), the device reads it before
it trusts anything else in the graph (docs/onnx-graph.md, "Self-description"). JSON object, version 1 (the
``step`` variant: one optimizer step per run)::

    {"format": "edge-sdk-train-graph", "version": 1, "model": ModelSpec dict, "optimizer": "sgd" | "adam",
     "groups": [{"name", "kind", "bits", "d", "role", "per_feature"}, ...],   # one per payload group, in order
     "inputs": [...], "outputs": [...], "hyper": [...], "state_suffixes": [...], "extra": {...} (optional)}

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
from dataclasses import dataclass
from typing import Any

from edge_sdk import codecs
from edge_sdk.errors import SchemaError
from edge_sdk.modelspec import ModelSpec
from edge_sdk.schema import as_bool, as_int, as_list, as_str, check_keys, expect_dict, get_str

META_KEY = "edge_sdk.train_graph"
GRAPH_FORMAT = "edge-sdk-train-graph"
SUPPORTED_VERSIONS = (1, 2)
#: format version -> graph variant: 1 = "step" (one step per run, per-tensor parameters), 2 = "epoch" (K steps per
#: run in an ONNX Loop, flat parameter vector, rows decoded once per run)
VERSION_VARIANT = {1: "step", 2: "epoch"}
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

    def expected_inputs(self) -> list[str]:
        names = [n for k, g in enumerate(self.groups) for n in g.input_names(k)] + ["labels"]
        if self.variant == "epoch":
            names.append("batches")
        if self.has_soft:
            names.append("soft_weight")
        names += list(HYPER_NAMES[self.optimizer])
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
        check_keys(m, where, META_KEYS + (V2_KEYS if version == 2 else ()), ("extra",))
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
        meta = cls(version, model, optimizer, tuple(groups), lists["inputs"], lists["outputs"], extra)
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

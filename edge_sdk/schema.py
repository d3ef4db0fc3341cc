"""Typed field checks for the JSON the device reads beside the payload structure, and the device's memory bounds.

Everything a device consumes is validated before anything is allocated or trained (docs/device.md, "What the
device validates"): the payload structure by :mod:`edge_sdk.payload`, and the JSON inside it and beside it by the
schemas built on these helpers: the task spec (:class:`TaskSpec`), the beam task
(:class:`edge_sdk.beam.taskspec.BeamTaskSpec`), the model (:class:`edge_sdk.modelspec.ModelSpec`), the training
recipe, the graph metadata (:mod:`edge_sdk.graphmeta`) and the checkpoint header (``edge_sdk.device.checkpoint``).
Each helper checks one field strictly (``True`` is not an int, ``"32"`` is not a number) and raises
:class:`~edge_sdk.errors.SchemaError` naming the field by its path, e.g. ``task.train.batch_size``.

Memory bounds (:class:`TrainLimits`): a model is refused before its parameters are drawn when the estimated
training memory (:func:`train_memory`) is above ``max_train_memory``; the error says by how much and names the
override (``edge-sdk device train --max-train-memory 8GiB``).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edge_sdk.errors import ResourceLimitError, SchemaError

if TYPE_CHECKING:
    from edge_sdk.modelspec import ModelSpec

_MISSING: Any = object()


def expect_dict(v: Any, where: str) -> dict[str, Any]:
    """``v`` as a JSON object with string keys, else SchemaError."""
    if not isinstance(v, Mapping) or not all(isinstance(k, str) for k in v):
        raise SchemaError(f"{where} must be a JSON object, got {type(v).__name__}")
    return dict(v)


def check_keys(d: Mapping[str, Any], where: str, required: Collection[str] = (),
               optional: Collection[str] = ()) -> None:
    """Every ``required`` key present, nothing outside ``required`` + ``optional``."""
    missing = sorted(set(required) - set(d))
    unknown = sorted(set(d) - set(required) - set(optional))
    if missing:
        raise SchemaError(f"{where} lacks the key(s) {missing}")
    if unknown:
        raise SchemaError(f"{where} has unknown key(s) {unknown}; known: {sorted({*required, *optional})}")


def _get(d: Mapping[str, Any], key: str, where: str, default: Any) -> Any:
    if key in d:
        return d[key]
    if default is _MISSING:
        raise SchemaError(f"{where} lacks the key {key!r}")
    return default


def as_int(v: Any, where: str, lo: int | None = None, hi: int | None = None) -> int:
    """``v`` as an int in ``[lo, hi]`` (bools and floats refused)."""
    if not isinstance(v, int) or isinstance(v, bool):
        raise SchemaError(f"{where} must be an integer, got {v!r} ({type(v).__name__})")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise SchemaError(f"{where} must be in [{lo if lo is not None else '-inf'}, "
                          f"{hi if hi is not None else 'inf'}], got {v}")
    return v


def as_float(v: Any, where: str, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
             hi_open: bool = False) -> float:
    """``v`` (int or float, not bool) as a finite float in the range (open ends where asked)."""
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        raise SchemaError(f"{where} must be a number, got {v!r} ({type(v).__name__})")
    f = float(v)
    if not math.isfinite(f):
        raise SchemaError(f"{where} must be finite, got {v!r}")
    if lo is not None and (f < lo or (lo_open and f == lo)):
        raise SchemaError(f"{where} must be {'>' if lo_open else '>='} {lo}, got {v!r}")
    if hi is not None and (f > hi or (hi_open and f == hi)):
        raise SchemaError(f"{where} must be {'<' if hi_open else '<='} {hi}, got {v!r}")
    return f


def as_str(v: Any, where: str, choices: Collection[str] | None = None, max_len: int = 256) -> str:
    if not isinstance(v, str):
        raise SchemaError(f"{where} must be a string, got {v!r} ({type(v).__name__})")
    if choices is not None and v not in choices:
        raise SchemaError(f"{where} must be one of {sorted(choices)}, got {v!r}")
    if len(v) > max_len:
        raise SchemaError(f"{where} is longer than {max_len} characters")
    return v


def as_bool(v: Any, where: str) -> bool:
    if not isinstance(v, bool):
        raise SchemaError(f"{where} must be true or false, got {v!r} ({type(v).__name__})")
    return v


def as_list(v: Any, where: str, max_len: int) -> list[Any]:
    if not isinstance(v, (list, tuple)):
        raise SchemaError(f"{where} must be a list, got {type(v).__name__}")
    if len(v) > max_len:
        raise SchemaError(f"{where} has {len(v)} entries, at most {max_len} allowed")
    return list(v)


def get_int(d: Mapping[str, Any], key: str, where: str, lo: int | None = None, hi: int | None = None,
            default: Any = _MISSING) -> int:
    v = _get(d, key, where, default)
    return v if v is default and default is not _MISSING else as_int(v, f"{where}.{key}", lo, hi)


def get_float(d: Mapping[str, Any], key: str, where: str, lo: float | None = None, hi: float | None = None,
              default: Any = _MISSING, **kw: bool) -> float:
    v = _get(d, key, where, default)
    return v if v is default and default is not _MISSING else as_float(v, f"{where}.{key}", lo, hi, **kw)


def get_str(d: Mapping[str, Any], key: str, where: str, choices: Collection[str] | None = None,
            default: Any = _MISSING) -> str:
    v = _get(d, key, where, default)
    return v if v is default and default is not _MISSING else as_str(v, f"{where}.{key}", choices)


# ----------------------------------------------------------------------------------------- task spec
#: the payload's ``task`` keys per task kind
TASK_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {  # kind -> (required, optional)
    "beam": (("kind",), ("beam", "model", "train")),
    "image": (("kind", "dataset", "shape", "normalization"), ("model", "train")),
}
MAX_IMAGE_DIM = 1 << 14


@dataclass(frozen=True)
class TaskSpec:
    """The payload's ``task`` object, validated as an envelope: ``kind`` (a key of :data:`TASK_KEYS`);
    ``beam`` (a :class:`~edge_sdk.beam.taskspec.BeamTaskSpec` dict; optional, evaluation needs it) for kind
    "beam"; ``dataset``, ``shape``
    ([C, H, W]) and ``normalization`` ({"mean", "std"}) for kind "image"; optional ``model`` (a
    :class:`~edge_sdk.modelspec.ModelSpec` dict) and ``train`` (the training recipe). The sub-objects are
    parsed by their own classes (strict, bounded); this class checks the envelope and the image fields."""

    kind: str
    beam: dict[str, Any] | None
    model: dict[str, Any] | None
    train: dict[str, Any] | None

    @classmethod
    def from_dict(cls, task: Any, where: str = "task") -> TaskSpec:
        t = expect_dict(task, where)
        kind = as_str(_get(t, "kind", where, _MISSING), f"{where}.kind", TASK_KEYS)
        required, optional = TASK_KEYS[kind]
        check_keys(t, where, required, optional)
        if kind == "image":
            as_str(t["dataset"], f"{where}.dataset")
            for i, v in enumerate(as_list(t["shape"], f"{where}.shape", 3)):
                as_int(v, f"{where}.shape[{i}]", 1, MAX_IMAGE_DIM)
            norm = expect_dict(t["normalization"], f"{where}.normalization")
            check_keys(norm, f"{where}.normalization", ("mean", "std"))
            get_float(norm, "mean", f"{where}.normalization")
            get_float(norm, "std", f"{where}.normalization", 0.0, lo_open=True)
        beam = expect_dict(t["beam"], f"{where}.beam") if t.get("beam") is not None else None
        model = expect_dict(t["model"], f"{where}.model") if t.get("model") is not None else None
        train = expect_dict(t["train"], f"{where}.train") if t.get("train") is not None else None
        return cls(kind, beam, model, train)


# ------------------------------------------------------------------------------------------ memory
DEFAULT_MAX_TRAIN_MEMORY = 1 << 30  #: 1 GiB: an edge device's training budget unless the user raises it
_FLOAT = 4  # bytes per float32


@dataclass(frozen=True)
class TrainMemory:
    """Estimated peak memory of on-device training, bytes. ``params``: trainable parameters (count);
    ``param_bytes``: parameters, gradients and optimizer state as fed to and returned by the training graph plus
    the checkpoint copy; ``activation_bytes``: forward activations and their gradients for one batch."""

    params: int
    param_bytes: int
    activation_bytes: int

    @property
    def total(self) -> int:
        return self.param_bytes + self.activation_bytes


def train_memory(model: ModelSpec, batch_size: int, optimizer: str) -> TrainMemory:
    """Estimate for one training process (float32 everywhere).

    Parameters: per step the graph takes params + optimizer state in and returns new params + new state, with a
    gradient per parameter inside, and the checkpoint writer holds one more copy of params + state:
    ``4 * P * (4 + 3 s)`` bytes with ``s`` = state tensors per parameter (SGD 1, Adam 2).
    Activations: every layer's output is kept for the backward pass and gets a gradient of the same size, times
    2 for pre- and post-activation: ``4 * 4 * batch * A`` bytes, ``A`` = :meth:`ModelSpec.activations_per_sample`.
    """
    s = {"sgd": 1, "adam": 2}.get(optimizer, 2)
    p = model.num_params()
    return TrainMemory(p, _FLOAT * p * (4 + 3 * s), _FLOAT * 4 * int(batch_size) * model.activations_per_sample())


def _fmt(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if n < 1024 or unit == "EiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} EiB"  # pragma: no cover


@dataclass(frozen=True)
class TrainLimits:
    """Bounds a device applies before training: ``max_train_memory`` bytes of :func:`train_memory`."""

    max_train_memory: int = DEFAULT_MAX_TRAIN_MEMORY

    def check(self, model: ModelSpec, batch_size: int, optimizer: str) -> TrainMemory:
        """Raise :class:`ResourceLimitError` when the estimate exceeds the bound; return the estimate."""
        est = train_memory(model, batch_size, optimizer)
        if est.total > self.max_train_memory:
            raise ResourceLimitError(
                f"training this model needs about {_fmt(est.total)} ({est.params:,} parameters: "
                f"{_fmt(est.param_bytes)} with gradients and {optimizer} state; activations of a batch of "
                f"{batch_size}: {_fmt(est.activation_bytes)}), above this device's bound of "
                f"{_fmt(self.max_train_memory)}; on a device that has the memory pass --max-train-memory "
                f"(e.g. {_fmt(1 << max(30, est.total.bit_length())).replace(' ', '').replace('.0', '')})"
            )
        return est


def cap_address_space(extra_bytes: int) -> bool:
    """Cap this process's address space (``RLIMIT_AS``) at its current size plus ``extra_bytes``, so that an
    allocation past the bound fails with ``MemoryError`` instead of exhausting the machine: for the short-lived
    processes that read untrusted input (the HDF5 check child of ``edge_sdk.beam.h5reader.probe_beam_h5``, the
    fuzzers). Never raises a limit that is already lower. False where the platform has no ``RLIMIT_AS`` or no
    ``/proc/self/status`` (nothing is capped then)."""
    try:
        import resource

        with open("/proc/self/status") as fh:
            vm = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:"))
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        cap = vm + extra_bytes
        if hard != resource.RLIM_INFINITY:
            cap = min(cap, hard)
        if soft == resource.RLIM_INFINITY or cap < soft:
            resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
        return True
    except (ImportError, OSError, StopIteration, ValueError):
        return False

"""The training recipe: how a model is trained on a payload, on the server and on the device alike.

One definition for both sides. The server evaluates every compact set with a :class:`TrainRecipe`
(``edge_sdk.server.train_eval``), writes ``recipe.to_payload()`` into the payload's ``task["train"]``, and
exports the ONNX training graph for ``recipe.optimizer``; the device reads it back with
:meth:`TrainRecipe.from_dict` and follows it exactly by default (``edge_sdk.device.trainer``), so ``edge-sdk
device train`` with no flags repeats the server's seed-0 run.

A run of a recipe with seed ``s`` on ``N`` samples (both sides, :func:`iter_batches`):

* parameters start from ``edge_sdk.modelspec.init_params(model, s)``;
* update ``t = 0 .. steps-1`` is in epoch ``e = t // B`` with ``B = ceil(N / batch_size)`` batches per epoch,
  and uses the samples ``epoch_order(N, s, e)[(t mod B) * batch_size : ... + batch_size]`` (the last batch of an
  epoch may be smaller); the run stops after exactly ``steps`` updates, possibly inside an epoch;
* learning rate of update ``t`` (:meth:`TrainRecipe.lr_at`): ``constant``: ``lr``; ``cosine``:
  ``lr * 0.5 * (1 + cos(pi * t / steps))``; ``step``: ``lr * gamma ** (t // decay_every)``;
* loss: mean over the batch of ``(1 - soft_weight) * CE(z, y) + soft_weight * CE(z, softmax(s))`` when the
  payload carries soft-label rows ``s`` (logits), plain ``CE(z, y)`` otherwise;
* ``sgd``: ``torch.optim.SGD`` semantics (dampening 0, no Nesterov, L2 weight decay added to the gradient):
  ``g = grad + wd * p; buf = momentum * buf + g`` (``buf`` starts at 0, so the first step has ``buf = g``);
  ``p -= lr_t * buf``;
* ``adam``: ``torch.optim.Adam`` semantics (Kingma & Ba 2015, Alg. 1; L2 weight decay added to the gradient,
  no AMSGrad): ``m = b1 m + (1-b1) g``; ``v = b2 v + (1-b2) g^2``; ``p -= lr_t / (1 - b1^k) * m /
  (sqrt(v) / sqrt(1 - b2^k) + eps)`` with ``k = t + 1``.

Forms (``RECIPE_VERSION`` 1):

* full (:meth:`TrainRecipe.to_dict`, reports)::

    {"version": 1, "optimizer": "sgd", "lr": 0.05, "schedule": "constant", "steps": 2000, "batch_size": 128,
     "momentum": 0.9, "weight_decay": 0.0005, "beta1": 0.9, "beta2": 0.999, "eps": 1e-08,
     "decay_every": 1000, "gamma": 0.1, "soft_weight": 1.0}

* stored (:meth:`TrainRecipe.to_payload`, the payload header's ``task["train"]``, where every byte counts against
  the budget): ``version`` plus only the fields that differ from the version-1 defaults above, e.g.
  ``{"version": 1, "steps": 3000}``; the defaults of a version never change.

:meth:`TrainRecipe.from_dict` reads both (a missing key is its version-1 default; unknown keys, wrong types and
out-of-range values (:data:`RECIPE_BOUNDS`) are a :class:`~edge_sdk.errors.SchemaError` naming the field, e.g.
``task.train.batch_size``), and the unversioned form that edge-sdk 0.1.0 servers wrote (keys ``LEGACY_V0_KEYS``
only, same meaning), so their payloads still train.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np

from edge_sdk.errors import ConfigError, SchemaError
from edge_sdk.modelspec import epoch_order
from edge_sdk.schema import as_float, as_int, as_str, check_keys, expect_dict

RECIPE_VERSION = 1
OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "cosine", "step")
#: bounds checked before anything is allocated or trained (a device reads these from the network)
MAX_STEPS = 100_000_000
MAX_BATCH = 1 << 20

#: The one table of the recipe's value rules (the device, the payload readers of every version and the server all
#: check a recipe through :class:`TrainRecipe`): ints ``(lo, hi)``; floats ``(lo, hi, lo_open, hi_open)`` with
#: ``None`` = unbounded (still finite); strings: the allowed values. Generous for real recipes; they stop a crafted
#: payload from training forever or allocating a batch the device cannot hold (the memory bound itself is
#: ``edge_sdk.schema.TrainLimits``). A learning rate or ``gamma`` that makes training diverge is a run-time
#: ``DeviceError`` ("loss became ..."), not a schema error.
RECIPE_BOUNDS: dict[str, tuple[Any, ...]] = {
    "optimizer": OPTIMIZERS, "schedule": SCHEDULES,
    "steps": (1, MAX_STEPS), "batch_size": (1, MAX_BATCH), "decay_every": (1, MAX_STEPS),
    "lr": (0.0, None, True, False), "gamma": (0.0, None, True, False), "momentum": (0.0, 1.0, False, True),
    "beta1": (0.0, 1.0, False, True), "beta2": (0.0, 1.0, False, True), "eps": (0.0, 1.0, True, False),
    "weight_decay": (0.0, None, False, False), "soft_weight": (0.0, 1.0, False, False),
}

_INT_FIELDS = ("steps", "batch_size", "decay_every")
#: keys of the unversioned recipe written by edge-sdk 0.1.0 servers (read as version 1 with these fields)
LEGACY_V0_KEYS = ("optimizer", "lr", "momentum", "weight_decay", "batch_size", "schedule", "steps")
_STR_FIELDS = ("optimizer", "schedule")


def check_field(name: str, value: Any, where: str) -> Any:
    """``value`` of recipe field ``name`` checked against :data:`RECIPE_BOUNDS` with the strict
    :mod:`edge_sdk.schema` helpers (``True`` is not an int, ``"32"`` not a number); returns it as a plain
    Python value. :class:`~edge_sdk.errors.SchemaError` (a ConfigError) naming ``where`` otherwise."""
    bounds = RECIPE_BOUNDS[name]
    if name in _STR_FIELDS:
        return as_str(value, where, bounds)
    if isinstance(value, np.integer):
        value = int(value)
    elif isinstance(value, np.floating):
        value = float(value)
    if name in _INT_FIELDS:
        return as_int(value, where, *bounds)
    lo, hi, lo_open, hi_open = bounds
    return as_float(value, where, lo, hi, lo_open=lo_open, hi_open=hi_open)


@dataclass(frozen=True)
class TrainRecipe:
    """How to train (every field is documented in the module docstring; units: ``lr`` per update,
    ``steps``/``decay_every`` in optimizer updates, ``batch_size`` in samples; value rules:
    :data:`RECIPE_BOUNDS`).

    The defaults are the server's evaluation recipe (SGD + momentum, constant lr, 2,000 updates of 128)."""

    optimizer: str = "sgd"
    lr: float = 0.05
    schedule: str = "constant"
    steps: int = 2000
    batch_size: int = 128
    momentum: float = 0.9
    weight_decay: float = 5e-4
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    decay_every: int = 1000
    gamma: float = 0.1
    soft_weight: float = 1.0

    def __post_init__(self) -> None:
        for f in fields(self):
            check_field(f.name, getattr(self, f.name), f"recipe.{f.name}")

    @classmethod
    def defaults(cls, optimizer: str = "sgd") -> TrainRecipe:
        """The default recipe of an optimizer: ``sgd`` = the server's evaluation recipe; ``adam``: lr 1e-3,
        no weight decay, otherwise the same."""
        if optimizer == "adam":
            return cls(optimizer="adam", lr=1e-3, weight_decay=0.0)
        return cls(optimizer=optimizer)

    # ------------------------------------------------------------------------------- stored form
    def to_dict(self) -> dict[str, Any]:
        """``task["train"]`` form: ``{"version": 1, <every field>}`` (plain JSON types)."""
        d: dict[str, Any] = {"version": RECIPE_VERSION}
        for k, v in asdict(self).items():
            d[k] = v if isinstance(v, str) else (int(v) if k in _INT_FIELDS else float(v))
        return d

    def to_payload(self) -> dict[str, Any]:
        """The stored form: ``version`` + the fields that differ from the version-1 defaults (module docstring)."""
        default = TrainRecipe().to_dict()
        return {k: v for k, v in self.to_dict().items() if k == "version" or v != default[k]}

    @classmethod
    def from_dict(cls, d: Any, where: str = "task.train") -> TrainRecipe:
        """Parse the stored form (module docstring); a typed :class:`~edge_sdk.errors.SchemaError` naming the
        field (``where.<key>``, e.g. ``task.train.batch_size``) for anything else."""
        d = expect_dict(d, where)
        if "version" not in d:
            return cls._from_v0(d, where)
        if d["version"] != RECIPE_VERSION or isinstance(d["version"], bool):
            raise SchemaError(f"{where}.version {d['version']!r} is not supported; this edge-sdk reads training "
                              f"recipe version {RECIPE_VERSION}")
        check_keys(d, where, ("version",), [f.name for f in fields(cls)])
        return cls(**{k: check_field(k, v, f"{where}.{k}") for k, v in d.items() if k != "version"})

    @classmethod
    def _from_v0(cls, d: Mapping[str, Any], where: str) -> TrainRecipe:
        """The unversioned recipe of edge-sdk 0.1.0 servers (``EvalConfig.device_recipe()``: optimizer, lr,
        momentum, weight_decay, batch_size, schedule, steps — the same meaning as version 1)."""
        unknown = sorted(set(d) - set(LEGACY_V0_KEYS))
        if unknown:
            raise SchemaError(f"{where} has no 'version' and key(s) {unknown} that the unversioned (0.1.0) form "
                              f"never had (it has {list(LEGACY_V0_KEYS)}); re-export the payload")
        return cls(**{k: check_field(k, v, f"{where}.{k}") for k, v in d.items()})

    def with_overrides(self, **overrides: Any) -> TrainRecipe:
        """A copy with the non-None ``overrides`` applied (validated); unknown names are a ConfigError."""
        names = {f.name for f in fields(self)}
        bad = sorted(set(overrides) - names)
        if bad:
            raise ConfigError(f"unknown recipe fields {bad}; known: {sorted(names)}")
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    # ---------------------------------------------------------------------------------- schedule
    def steps_per_epoch(self, n: int) -> int:
        """Updates per epoch on ``n`` samples: ``ceil(n / batch_size)``."""
        if n < 1:
            raise ConfigError("cannot train on an empty set")
        return -(-int(n) // self.batch_size)

    def for_epochs(self, epochs: int, n: int) -> TrainRecipe:
        """The same recipe run for ``epochs`` whole epochs over ``n`` samples."""
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ConfigError(f"epochs must be an integer >= 1, got {epochs!r}")
        return replace(self, steps=epochs * self.steps_per_epoch(n))

    def epochs(self, n: int) -> int:
        """Epochs started by a full run on ``n`` samples (the last one may be partial)."""
        return -(-self.steps // self.steps_per_epoch(n))

    def lr_at(self, t: int) -> float:
        """Learning rate of update ``t`` (0-based) of ``steps``."""
        if self.schedule == "cosine":
            return self.lr * 0.5 * (1.0 + math.cos(math.pi * t / self.steps))
        if self.schedule == "step":
            return self.lr * self.gamma ** (t // self.decay_every)
        return self.lr


def iter_batches(n: int, batch_size: int, seed: int, start: int, stop: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """``(t, epoch, indices int64 [<= batch_size])`` of updates ``start <= t < stop`` of a run with ``seed`` on
    ``n`` samples (batch rule in the module docstring). Any ``start`` works, so a run resumes mid-epoch."""
    if n < 1:
        raise ConfigError("cannot train on an empty set")
    per_epoch = -(-n // batch_size)
    order: np.ndarray | None = None
    order_epoch = -1
    for t in range(start, stop):
        epoch, b = divmod(t, per_epoch)
        if epoch != order_epoch:
            order, order_epoch = epoch_order(n, seed, epoch), epoch
        assert order is not None
        yield t, epoch, order[b * batch_size : (b + 1) * batch_size]

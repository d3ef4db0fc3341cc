"""What a payload trains and how, shared by the server (torch) and the device (ONNX): the model specification with
its seeded initialisation and batch order (:class:`ModelSpec`, :func:`init_params`, :func:`epoch_order`) and the
training recipe (:class:`TrainRecipe`, :func:`iter_batches`) — ``task["model"]`` and ``task["train"]`` of the
payload.

The device never receives weights: it rebuilds the initial parameters from ``(ModelSpec, seed)`` with
:func:`init_params`, and the server's torch evaluation starts from the very same arrays, so a model trained
on the device and one trained on the server from the same payload, seed and batch order agree.

Initialisation scheme (documented, stable across versions; part of the contract):

* generator: ``numpy.random.Generator(numpy.random.PCG64(seed))``;
* parameters are drawn in the order of :meth:`ModelSpec.param_shapes` (layer by layer, weight then bias);
* every weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) in float32 (the bound of
  ``torch.nn.Linear``/``Conv2d`` default init; fan_in = in_features, or in_channels * k * k); the GRU cell of
  kind ``gru`` uses fan_in = hidden size H for all four of its tensors (``torch.nn.GRU``'s init);
* normalisation affine parameters (ConvNet GroupNorm): weight = 1, bias = 0 (drawn nothing);
* kind ``gru`` with ``skip_classes`` (the "last measurement + correction" start): ``skip.weight[c_i, i] =
  skip_gain`` for feature i of the latest step and class ``c_i = skip_classes[i]``, 0 elsewhere,
  ``head.weight = 0``, ``head.bias = 0`` for the classes in ``skip_classes`` and ``-skip_gain`` for the others
  (drawn nothing). With inputs <= 0 relative to their maximum (per-sample-max normalisation) or in (0, 1]
  (relative linear power) the untrained model ranks the measured beams exactly like the latest measurement
  (sample-and-hold of the best measured beam) and training learns the correction.

Batch order: :func:`epoch_order` gives the sample permutation of epoch ``e`` for a run seed.

The training recipe (:class:`TrainRecipe`): how a model is trained on a payload, on the server
and on the device alike.

One definition for both sides. The server evaluates every compact set with a :class:`TrainRecipe`
(``edge_sdk.server.train_eval``), writes ``recipe.to_payload()`` into the payload's ``task["train"]``, and
exports the ONNX training graph for ``recipe.optimizer``; the device reads it back with
:meth:`TrainRecipe.from_dict` and follows it exactly by default (``edge_sdk.device.trainer``), so ``edge-sdk
device train`` with no flags repeats the server's seed-0 run.

A run of a recipe with seed ``s`` on ``N`` samples (both sides, :func:`iter_batches`):

* parameters start from :func:`init_params` ``(model, s)``;
* update ``t = 0 .. steps-1`` is in epoch ``e = t // B`` with ``B = ceil(N / batch_size)`` batches per epoch,
  and uses the samples ``epoch_order(N, s, e)[(t mod B) * batch_size : ... + batch_size]`` (the last batch of an
  epoch may be smaller); the run stops after exactly ``steps`` updates, possibly inside an epoch;
* learning rate of update ``t`` (:meth:`TrainRecipe.lr_at`): ``constant``: ``lr``; ``cosine``:
  ``lr * 0.5 * (1 + cos(pi * t / steps))``; ``step``: ``lr * gamma ** (t // decay_every)``;
* loss: mean over the batch of ``(1 - soft_weight) * CE(z, t_y) + soft_weight * CE(z, softmax(s))`` when the
  payload carries soft-label rows ``s`` (logits), plain ``CE(z, t_y)`` otherwise, where ``CE(z, t) = -sum_c t_c
  log softmax(z)_c`` and the hard-label target is label-smoothed (Szegedy et al. 2016, Sec. 7):
  ``t_y = (1 - label_smoothing) * onehot(y) + label_smoothing / C`` (``C`` classes; ``label_smoothing = 0``,
  the default, is plain cross-entropy; ``torch.nn.functional.cross_entropy(..., label_smoothing=...)`` semantics);
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
     "decay_every": 1000, "gamma": 0.1, "soft_weight": 1.0, "label_smoothing": 0.0}

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
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np

from edge_sdk.errors import ConfigError, SchemaError
from edge_sdk.schema import as_float, as_int, as_str, check_keys, expect_dict

#: structural bounds of a model spec (a schema check; the memory a model needs is bounded separately by
#: :class:`edge_sdk.schema.TrainLimits`, which a big device can raise)
MAX_INPUT_DIM = 1 << 24
MAX_CLASSES = 1 << 16
MAX_LAYERS = 64
MAX_WIDTH = 1 << 16
MAX_CONV_WIDTH = 4096
MAX_CONV_DEPTH = 16
MAX_IMAGE_SIDE = 1 << 14
MAX_HISTORY = 1024  # gru: history steps K
MAX_SKIP_GAIN = 1e3
MODEL_KEYS = ("kind", "input_dim", "num_classes", "hidden", "in_shape", "width", "depth", "skip_classes", "skip_gain")
KINDS = ("mlp", "convnet", "gru")


@dataclass(frozen=True)
class ModelSpec:
    """What model the device trains.

    kind ``mlp``: input [B, input_dim] -> Linear/ReLU x len(hidden) -> Linear -> logits [B, num_classes].
    kind ``convnet``: input [B, C, H, W] -> ``depth`` x (Conv3x3(width) -> GroupNorm(width groups, i.e.
    instance norm) -> ReLU -> AvgPool2) -> Linear -> logits (the DD-standard ConvNet, no BatchNorm).
    kind ``gru`` (temporal, BM-Case2): input [B, K * F] = K history steps of F features, oldest first
    (``in_shape = (K, F)``, ``input_dim = K * F``) -> a GRU cell with ``hidden = (H,)`` run over the K steps from
    h_0 = 0 (torch.nn.GRU equations, gate order r, z, n:
    ``r = sigma(W_ir x + b_ir + W_hr h + b_hr)``, ``z = sigma(W_iz x + b_iz + W_hz h + b_hz)``,
    ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``, ``h' = (1 - z) * n + z * h``) ->
    ``logits = head(h_K) + skip(x_K)``: a linear head on the last state plus a linear skip (no bias) from the
    latest step's input, so "hold the last measurement" is one linear map away. ``skip_classes`` (one Set A class
    per feature of a step) and ``skip_gain`` > 0 make the model *start* there (see the init scheme).
    Bounds (``MAX_*`` above): input_dim <= 2^24, 2 <= num_classes <= 2^16, <= 64 hidden layers of <= 2^16 units;
    convnet width <= 4096, 1 <= depth <= 16 with H and W >= 2^depth; gru K <= 1024, H <= 2^16,
    0 < skip_gain <= 1000.
    """

    kind: str = "mlp"
    input_dim: int = 8
    num_classes: int = 32
    hidden: tuple[int, ...] = (128, 128)
    # convnet: (C, H, W); gru: (K, F)
    in_shape: tuple[int, ...] = field(default=())
    width: int = 64
    depth: int = 3
    # gru only: residual start (init scheme)
    skip_classes: tuple[int, ...] = ()
    skip_gain: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"unknown model kind {self.kind!r}; use one of {KINDS}")
        if not 2 <= self.num_classes <= MAX_CLASSES:
            raise ConfigError(f"num_classes must be in [2, {MAX_CLASSES}], got {self.num_classes}")
        if self.kind == "mlp":
            if self.input_dim < 1 or any(h < 1 for h in self.hidden):
                raise ConfigError("mlp needs input_dim >= 1 and positive hidden widths")
            if self.input_dim > MAX_INPUT_DIM or len(self.hidden) > MAX_LAYERS or any(h > MAX_WIDTH for h in self.hidden):
                raise ConfigError(f"mlp bounds: input_dim <= {MAX_INPUT_DIM}, <= {MAX_LAYERS} hidden layers of "
                                  f"<= {MAX_WIDTH} units")
        if self.kind == "convnet":
            if len(self.in_shape) != 3:
                raise ConfigError("convnet needs in_shape = (C, H, W)")
            c, h, w = self.in_shape
            if not (1 <= c <= MAX_CONV_WIDTH and 1 <= h <= MAX_IMAGE_SIDE and 1 <= w <= MAX_IMAGE_SIDE):
                raise ConfigError(f"convnet in_shape {self.in_shape} outside [1, {MAX_CONV_WIDTH}] x "
                                  f"[1, {MAX_IMAGE_SIDE}]^2")
            if not (1 <= self.width <= MAX_CONV_WIDTH and 1 <= self.depth <= MAX_CONV_DEPTH):
                raise ConfigError(f"convnet needs 1 <= width <= {MAX_CONV_WIDTH} and 1 <= depth <= {MAX_CONV_DEPTH}")
            if min(h, w) >> self.depth < 1:
                raise ConfigError(f"convnet depth {self.depth} pools a {h}x{w} image below 1x1; use depth <= "
                                  f"{min(h, w).bit_length() - 1}")
        if self.kind == "gru":
            self._check_gru()
        elif self.skip_classes or self.skip_gain:
            raise ConfigError("skip_classes / skip_gain are for kind 'gru' only")

    def _check_gru(self) -> None:
        if len(self.in_shape) != 2:
            raise ConfigError("gru needs in_shape = (K history steps, F features per step)")
        k, f = self.in_shape
        if not (1 <= k <= MAX_HISTORY and 1 <= f <= MAX_INPUT_DIM):
            raise ConfigError(f"gru needs 1 <= K <= {MAX_HISTORY} and 1 <= F <= {MAX_INPUT_DIM}, got {self.in_shape}")
        if self.input_dim != k * f:
            raise ConfigError(f"gru needs input_dim = K * F = {k * f}, got {self.input_dim}")
        if len(self.hidden) != 1 or not 1 <= self.hidden[0] <= MAX_WIDTH:
            raise ConfigError(f"gru needs hidden = (H,) with the GRU state size 1 <= H <= {MAX_WIDTH}")
        if self.skip_classes:
            if len(self.skip_classes) != f or not all(0 <= c < self.num_classes for c in self.skip_classes):
                raise ConfigError(f"skip_classes needs one class in [0, {self.num_classes}) per feature ({f})")
            if not (math.isfinite(self.skip_gain) and 0.0 < self.skip_gain <= MAX_SKIP_GAIN):
                raise ConfigError(f"skip_gain must be in (0, {MAX_SKIP_GAIN:g}] when skip_classes is set")
        elif self.skip_gain:
            raise ConfigError("skip_gain needs skip_classes")

    def param_shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        """Ordered (name, shape) of every trainable parameter."""
        out: list[tuple[str, tuple[int, ...]]] = []
        if self.kind == "mlp":
            dims = [self.input_dim, *self.hidden, self.num_classes]
            for i in range(len(dims) - 1):
                out.append((f"fc{i}.weight", (dims[i + 1], dims[i])))
                out.append((f"fc{i}.bias", (dims[i + 1],)))
            return out
        if self.kind == "gru":
            (n_h,), n_f, n_c = self.hidden, self.in_shape[1], self.num_classes
            return [("gru.weight_ih", (3 * n_h, n_f)), ("gru.weight_hh", (3 * n_h, n_h)),
                    ("gru.bias_ih", (3 * n_h,)), ("gru.bias_hh", (3 * n_h,)),
                    ("head.weight", (n_c, n_h)), ("head.bias", (n_c,)), ("skip.weight", (n_c, n_f))]
        c, h, w = self.in_shape
        for i in range(self.depth):
            out.append((f"conv{i}.weight", (self.width, c, 3, 3)))
            out.append((f"conv{i}.bias", (self.width,)))
            out.append((f"norm{i}.weight", (self.width,)))
            out.append((f"norm{i}.bias", (self.width,)))
            c, h, w = self.width, h // 2, w // 2
        out.append(("fc.weight", (self.num_classes, c * h * w)))
        out.append(("fc.bias", (self.num_classes,)))
        return out

    def num_params(self) -> int:
        return sum(math.prod(s) for _, s in self.param_shapes())

    def activations_per_sample(self) -> int:
        """Values one sample produces through the network (input, every layer's output, logits): the unit of
        :func:`edge_sdk.schema.train_memory`'s activation estimate."""
        if self.kind == "mlp":
            return self.input_dim + sum(self.hidden) + self.num_classes
        if self.kind == "gru":  # per step: 3H gate inputs, 3H hidden gates, r/z/n, h
            k, (n_h,) = self.in_shape[0], self.hidden
            return self.input_dim + k * 10 * n_h + 2 * self.num_classes
        c, h, w = self.in_shape
        total = c * h * w
        for _ in range(self.depth):
            total += 3 * self.width * h * w  # conv, norm, relu at full resolution
            h, w = h // 2, w // 2
            total += self.width * h * w  # pooled
        return total + self.num_classes

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        d["in_shape"] = list(self.in_shape)
        if self.kind == "gru":
            d["skip_classes"] = list(self.skip_classes)
        else:  # keep the mlp/convnet dict exactly as before (stored in payloads)
            del d["skip_classes"], d["skip_gain"]
        return d

    @classmethod
    def from_dict(cls, d: Any, where: str = "model") -> ModelSpec:
        """Strict inverse of :meth:`to_dict`: known keys only, ints that are ints, the bounds above
        (:class:`~edge_sdk.errors.SchemaError` naming the field, e.g. ``task.model.hidden[1]``)."""
        from edge_sdk.schema import as_int, as_list, check_keys, expect_dict, get_float, get_int, get_str

        m = expect_dict(d, where)
        check_keys(m, where, ("kind", "num_classes"), MODEL_KEYS)
        kind = get_str(m, "kind", where, KINDS)
        hidden = tuple(as_int(h, f"{where}.hidden[{i}]", 1, MAX_WIDTH)
                       for i, h in enumerate(as_list(m.get("hidden", []), f"{where}.hidden", MAX_LAYERS)))
        side = MAX_INPUT_DIM if kind == "gru" else MAX_IMAGE_SIDE
        in_shape = tuple(as_int(v, f"{where}.in_shape[{i}]", 1, side)
                         for i, v in enumerate(as_list(m.get("in_shape", []), f"{where}.in_shape", 3)))
        skip_classes = tuple(as_int(c, f"{where}.skip_classes[{i}]", 0, MAX_CLASSES - 1) for i, c in
                             enumerate(as_list(m.get("skip_classes", []), f"{where}.skip_classes", MAX_INPUT_DIM)))
        try:
            return cls(
                kind=kind,
                input_dim=get_int(m, "input_dim", where, 0, MAX_INPUT_DIM, default=0),
                num_classes=get_int(m, "num_classes", where, 2, MAX_CLASSES),
                hidden=hidden,
                in_shape=in_shape,
                width=get_int(m, "width", where, 1, MAX_CONV_WIDTH, default=64),
                depth=get_int(m, "depth", where, 1, MAX_CONV_DEPTH, default=3),
                skip_classes=skip_classes,
                skip_gain=get_float(m, "skip_gain", where, 0.0, MAX_SKIP_GAIN, default=0.0),
            )
        except SchemaError:
            raise
        except ConfigError as exc:
            raise SchemaError(f"{where}: {exc}") from None


def _fan_in(name: str, shape: tuple[int, ...], shapes: dict[str, tuple[int, ...]]) -> int:
    if name.startswith("gru."):
        return int(shapes["gru.weight_hh"][1])  # torch.nn.GRU: U(-1/sqrt(H), 1/sqrt(H)) for every tensor
    wshape = shapes[name.rsplit(".", 1)[0] + ".weight"]
    return int(np.prod(wshape[1:]))


def init_params(spec: ModelSpec, seed: int) -> dict[str, np.ndarray]:
    """Initial parameters for ``spec`` from ``seed`` (scheme in the module docstring). float32 arrays."""
    rng = np.random.Generator(np.random.PCG64(int(seed)))
    shapes = dict(spec.param_shapes())
    out: dict[str, np.ndarray] = {}
    residual = spec.kind == "gru" and bool(spec.skip_classes)
    for name, shape in spec.param_shapes():
        if name.startswith("norm"):
            out[name] = (np.ones if name.endswith("weight") else np.zeros)(shape, np.float32)
            continue
        if residual and name in ("head.weight", "head.bias", "skip.weight"):
            out[name] = _residual_init(spec, name, shape)
            continue
        bound = 1.0 / np.sqrt(_fan_in(name, shape, shapes))
        out[name] = rng.uniform(-bound, bound, size=shape).astype(np.float32)
    return out


def _residual_init(spec: ModelSpec, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """The deterministic "start at sample-and-hold" tensors of kind gru (module docstring)."""
    out = np.zeros(shape, np.float32)
    cls = list(spec.skip_classes)
    if name == "skip.weight":
        out[cls, np.arange(shape[1])] = spec.skip_gain
    elif name == "head.bias":  # classes without a skip input start below every measured one
        out[:] = -spec.skip_gain
        out[cls] = 0.0
    return out


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """Permutation of ``range(n)`` used in epoch ``epoch`` of a run with ``seed`` (int64 [n])."""
    rng = np.random.Generator(np.random.PCG64([int(seed), int(epoch), 0x5EED]))
    return rng.permutation(n)


# ------------------------------------------------------------------ the training recipe (module docstring)

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
    "label_smoothing": (0.0, 1.0, False, True),
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
    #: epsilon of the label-smoothed hard target (module docstring); a recipe with ``label_smoothing > 0`` needs
    #: edge-sdk >= 0.3.0 on the device (older runtimes refuse the payload: unknown recipe key / v2 flag bit)
    label_smoothing: float = 0.0

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

"""Model specification and seeded initialisation shared by the server (torch) and the device (ONNX).

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
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edge_sdk.errors import ConfigError, SchemaError

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

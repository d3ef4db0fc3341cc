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
  (drawn nothing). With inputs <= 0 relative to their maximum (per-sample-max normalisation, in units of about
  8 dB) the untrained model ranks the measured beams exactly like the latest measurement (sample-and-hold of
  the best measured beam) and training learns the correction.

Batch order: :func:`epoch_order` gives the sample permutation of epoch ``e`` for a run seed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edge_sdk.errors import ConfigError


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
        if self.num_classes < 2:
            raise ConfigError("num_classes must be >= 2")
        if self.kind == "mlp" and (self.input_dim < 1 or any(h < 1 for h in self.hidden)):
            raise ConfigError("mlp needs input_dim >= 1 and positive hidden widths")
        if self.kind == "convnet" and len(self.in_shape) != 3:
            raise ConfigError("convnet needs in_shape = (C, H, W)")
        if self.kind == "gru":
            if len(self.in_shape) != 2 or min(self.in_shape) < 1:
                raise ConfigError("gru needs in_shape = (K history steps, F features per step), both >= 1")
            if self.input_dim != self.in_shape[0] * self.in_shape[1]:
                raise ConfigError(f"gru needs input_dim = K * F = {self.in_shape[0] * self.in_shape[1]}, "
                                  f"got {self.input_dim}")
            if len(self.hidden) != 1 or self.hidden[0] < 1:
                raise ConfigError("gru needs hidden = (H,) with the GRU state size H >= 1")
            if self.skip_classes:
                if len(self.skip_classes) != self.in_shape[1] or not all(
                        0 <= c < self.num_classes for c in self.skip_classes):
                    raise ConfigError(f"skip_classes needs one class in [0, {self.num_classes}) per feature "
                                      f"({self.in_shape[1]})")
                if not (math.isfinite(self.skip_gain) and 0.0 < self.skip_gain <= 1e3):
                    raise ConfigError("skip_gain must be in (0, 1000] when skip_classes is set")
        if self.kind != "gru" and (self.skip_classes or self.skip_gain):
            raise ConfigError("skip_classes / skip_gain are for kind 'gru' only")

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
        return int(sum(int(np.prod(s)) for _, s in self.param_shapes()))

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
    def from_dict(cls, d: dict[str, Any]) -> ModelSpec:
        try:
            return cls(
                kind=str(d["kind"]),
                input_dim=int(d.get("input_dim", 0)),
                num_classes=int(d["num_classes"]),
                hidden=tuple(int(h) for h in d.get("hidden", ())),
                in_shape=tuple(int(v) for v in d.get("in_shape", ())),
                width=int(d.get("width", 64)),
                depth=int(d.get("depth", 3)),
                skip_classes=tuple(int(c) for c in d.get("skip_classes", ())),
                skip_gain=float(d.get("skip_gain", 0.0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"invalid model spec {d!r}: {exc}") from exc


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
        if residual and name == "head.weight":
            out[name] = np.zeros(shape, np.float32)
            continue
        if residual and name == "head.bias":  # classes without a skip input start below every measured one
            b = np.full(shape, -spec.skip_gain, np.float32)
            b[list(spec.skip_classes)] = 0.0
            out[name] = b
            continue
        if residual and name == "skip.weight":
            w = np.zeros(shape, np.float32)
            w[list(spec.skip_classes), np.arange(shape[1])] = spec.skip_gain
            out[name] = w
            continue
        bound = 1.0 / np.sqrt(_fan_in(name, shape, shapes))
        out[name] = rng.uniform(-bound, bound, size=shape).astype(np.float32)
    return out


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """Permutation of ``range(n)`` used in epoch ``epoch`` of a run with ``seed`` (int64 [n])."""
    rng = np.random.Generator(np.random.PCG64([int(seed), int(epoch), 0x5EED]))
    return rng.permutation(n)

"""Torch models built from an :class:`edge_sdk.modelspec.ModelSpec`, written functionally.

API (used by distillation, the evaluation protocol and ADQ)::

    from edge_sdk.server.models import forward, features, init_torch_params, SpecModel
    params = init_torch_params(spec, seed, device="cpu")   # {name: float32 tensor}, == init_params(spec, seed)
    logits = forward(spec, params, x)                       # x [B, D] (flat) or [B, C, H, W]
    emb = features(spec, params, x)                         # penultimate activations [B, F] (DM embedding)
    m = SpecModel(spec, seed)                               # nn.Module; state_dict names == spec.param_shapes()
    torch.func.functional_call(m, params, (x,))             # same as forward(spec, params, x)

Architectures (exactly what ``ModelSpec`` documents, so the device's ONNX graph computes the same thing):

* ``mlp``: ``[B, input_dim] -> (Linear -> ReLU) x len(hidden) -> Linear -> logits [B, num_classes]``;
  parameters ``fc{i}.weight [out, in]``, ``fc{i}.bias [out]``.
* ``gru`` (temporal, BM-Case2): ``[B, K * F]`` -> reshape ``[B, K, F]`` -> GRU cell over the K steps from
  ``h_0 = 0`` (torch.nn.GRU equations, gates r, z, n; parameters ``gru.weight_ih [3H, F]``, ``gru.weight_hh
  [3H, H]``, ``gru.bias_ih``, ``gru.bias_hh [3H]``) -> ``logits = head(h_K) + skip(x_K)`` (``head.weight [C,
  H]``, ``head.bias [C]``, ``skip.weight [C, F]``, no bias). Written out step by step (no ``torch.nn.GRU``) so
  that the ONNX training graph computes exactly this.
* ``convnet`` (the DD-standard ConvNet of DC/DM/MTT, Zhao et al. 2021): ``depth`` x (Conv3x3 (padding 1,
  ``width`` channels) -> GroupNorm(groups = width, i.e. instance norm, affine, eps 1e-5) -> ReLU ->
  AvgPool 2x2) -> flatten (C, H, W order) -> Linear. No BatchNorm, so the forward pass of a sample never
  depends on the rest of its batch. Inputs may be passed flat ``[B, C*H*W]``; they are reshaped to
  ``spec.in_shape``.

The forward is a pure function of ``(spec, params, x)`` — no module state — so ``torch.func`` transforms
(``grad``, ``vmap``, ``functional_call``) and unrolled inner loops (gradient matching, trajectory
matching) differentiate through it.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edge_sdk.modelspec import ModelSpec, init_params

GN_EPS = 1e-5


def init_torch_params(
    spec: ModelSpec, seed: int, device: str | torch.device = "cpu", requires_grad: bool = False
) -> dict[str, Tensor]:
    """``init_params(spec, seed)`` as float32 tensors on ``device`` (ordered like ``spec.param_shapes()``)."""
    out = {}
    for name, arr in init_params(spec, seed).items():
        t = torch.from_numpy(arr).to(device)
        out[name] = t.requires_grad_(requires_grad)
    return out


def _as_input(spec: ModelSpec, x: Tensor) -> Tensor:
    if spec.kind == "convnet" and x.dim() == 2:
        return x.reshape(x.shape[0], *spec.in_shape)
    return x


def gru_state(spec: ModelSpec, params: Mapping[str, Tensor], x: Tensor) -> Tensor:
    """Last GRU state ``h_K`` ``[B, H]`` of kind ``gru`` for inputs ``x`` ``[B, K * F]`` (module docstring)."""
    k, f = spec.in_shape
    xs = x.reshape(x.shape[0], k, f)
    h = x.new_zeros(x.shape[0], spec.hidden[0])
    w_ih, w_hh, b_ih, b_hh = (params[f"gru.{n}"] for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
    for t in range(k):
        i_r, i_z, i_n = F.linear(xs[:, t], w_ih, b_ih).chunk(3, dim=1)
        h_r, h_z, h_n = F.linear(h, w_hh, b_hh).chunk(3, dim=1)
        r = torch.sigmoid(i_r + h_r)
        z = torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        h = (1.0 - z) * n + z * h
    return h


def features(spec: ModelSpec, params: Mapping[str, Tensor], x: Tensor) -> Tensor:
    """Penultimate activations ``[B, F]`` (input of the last Linear layer; ``gru``: the last state h_K)."""
    if spec.kind == "gru":
        return gru_state(spec, params, x)
    h = _as_input(spec, x)
    if spec.kind == "mlp":
        for i in range(len(spec.hidden)):
            h = F.relu(F.linear(h, params[f"fc{i}.weight"], params[f"fc{i}.bias"]))
        return h
    for i in range(spec.depth):
        h = F.conv2d(h, params[f"conv{i}.weight"], params[f"conv{i}.bias"], padding=1)
        h = F.group_norm(h, spec.width, params[f"norm{i}.weight"], params[f"norm{i}.bias"], eps=GN_EPS)
        h = F.avg_pool2d(F.relu(h), 2)
    return h.flatten(1)


def head_names(spec: ModelSpec) -> tuple[str, str]:
    """Names of the last layer's (weight, bias)."""
    if spec.kind == "mlp":
        i = len(spec.hidden)
        return f"fc{i}.weight", f"fc{i}.bias"
    if spec.kind == "gru":
        return "head.weight", "head.bias"
    return "fc.weight", "fc.bias"


def forward(spec: ModelSpec, params: Mapping[str, Tensor], x: Tensor) -> Tensor:
    """Logits ``[B, num_classes]`` for inputs ``x``."""
    w, b = head_names(spec)
    out = F.linear(features(spec, params, x), params[w], params[b])
    if spec.kind == "gru":  # + skip(x_K): the latest step's input, linearly
        out = out + F.linear(x[:, -spec.in_shape[1]:], params["skip.weight"])
    return out


class SpecModel(nn.Module):
    """``nn.Module`` view of :func:`forward` whose ``state_dict`` names equal ``spec.param_shapes()``."""

    def __init__(self, spec: ModelSpec, seed: int = 0) -> None:
        super().__init__()
        self.spec = spec
        init = init_params(spec, seed)
        groups: dict[str, dict[str, Tensor]] = {}
        for name, arr in init.items():
            mod, leaf = name.rsplit(".", 1)
            groups.setdefault(mod, {})[leaf] = torch.from_numpy(arr)
        for mod, leaves in groups.items():
            sub = nn.Module()
            for leaf, t in leaves.items():
                sub.register_parameter(leaf, nn.Parameter(t.clone()))
            self.add_module(mod, sub)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        return forward(self.spec, dict(self.named_parameters()), x)

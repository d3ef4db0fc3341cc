"""The pure training-step function that becomes the ONNX training graph.

``make_step(spec)`` returns ``step(*inputs) -> (loss, *new_params, *new_state[, features])`` with the inputs in
the order of :meth:`TrainGraphSpec.input_names`. It is written so that the exported graph has none of the
exporter's known silent bugs (docs/onnx-graph.md):

* unpacking works on int32 with floor-division and modulo (never a shift on uint8, bug 4);
* the loss is written as ``-(log_softmax(z) * onehot-by-gather)`` mean, not ``F.cross_entropy`` (bug 1);
* no BatchNorm (bug 2);
* every hyper-parameter is an input, nothing foldable is a constant (bug 3).

Unpacking (docs/contracts.md bit order): value j of a row occupies stream bits ``[j*b, (j+1)*b)``, LSB first, and
stream bit k is bit ``k mod 8`` of byte ``k // 8``. With ``o = j*b mod 8`` and ``lo = j*b // 8`` the value is
``((byte[lo] + 256 * byte[min(lo+1, R-1)]) // 2**o) mod 2**b`` (``o + b <= 15``, so two bytes always suffice;
the exporter lowers the integer division to float Div + Floor/Cast, exact because every operand is < 2**16).

Dequantization reproduces :func:`edge_sdk.codecs.dequantize` (ADQ arXiv 2512.05987 Eq. 3-6 for
symmetric_per_sample; QuADD uniform grid for uniform_clip; level lookup for codebook; min/max grids for the
affine kinds).

The epoch variant (:mod:`.epoch`) uses :func:`mlp_loss_and_grads` instead of autograd: the MLP's backward
written out (three matmuls per layer, a ReLU mask, ``softmax - target`` at the logits), which exports to a
third as many ONNX nodes as the traced autograd graph and none of its slow ``Where``/scatter kernels.

Example inputs (:func:`example_group_inputs`, :data:`EXAMPLE_HYPER`): the random tensors both exporters (step and
epoch variant) trace with.

Optimizers reproduce ``torch.optim.SGD`` (momentum, dampening 0, L2 weight decay added to the gradient) and
``torch.optim.Adam`` (Kingma & Ba 2015, Alg. 1, with L2 weight decay added to the gradient, ``amsgrad=False``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from edge_sdk.codecs import AFFINE_KINDS
from edge_sdk.graphmeta import HYPER_NAMES, GraphGroup, TrainGraphSpec
from edge_sdk.modelspec import ModelSpec


def unpack_codes(packed: torch.Tensor, g: GraphGroup) -> torch.Tensor:
    """uint8 ``[B, row_bytes]`` -> int32 codes ``[B, D]`` (see module docstring)."""
    r = g.row_bytes
    lo = torch.tensor([(j * g.bits) // 8 for j in range(g.d)], dtype=torch.int64)
    hi = torch.tensor([min((j * g.bits) // 8 + 1, r - 1) for j in range(g.d)], dtype=torch.int64)
    div = torch.tensor([1 << ((j * g.bits) % 8) for j in range(g.d)], dtype=torch.int32)
    p = packed.to(torch.int32)
    comb = torch.index_select(p, 1, lo) + torch.index_select(p, 1, hi) * 256
    return torch.remainder(torch.div(comb, div, rounding_mode="floor"), 1 << g.bits)


def dequantize_group(g: GraphGroup, data: torch.Tensor, params: list[torch.Tensor]) -> torch.Tensor:
    """Graph inputs of one group -> float32 ``[B, D]`` (formulas of :mod:`edge_sdk.codecs`)."""
    if g.raw:
        return data
    codes = unpack_codes(data, g)
    if g.kind == "codebook":
        (levels,) = params
        flat = torch.index_select(levels, 0, codes.reshape(-1).to(torch.int64))
        return flat.reshape(data.shape[0], g.d)
    if g.kind in AFFINE_KINDS:  # x_hat = lo + u * ((hi - lo) / L), four float32 operations in this order
        hi, lo = params
        shape = (-1, 1) if g.kind == "affine_sample" else (1, -1)
        step = (hi - lo) / float((1 << g.bits) - 1)
        return lo.reshape(shape) + codes.to(torch.float32) * step.reshape(shape)
    c = codes.to(torch.float32) - float(g.q)
    if g.kind == "symmetric_per_sample":
        (scale,) = params
        return scale.reshape(-1, 1) * c
    (alpha,) = params  # uniform_clip
    return alpha.reshape(1, -1) * (c / float(g.q))


def mlp_forward(x: torch.Tensor, params: list[torch.Tensor]) -> torch.Tensor:
    """Linear/ReLU stack; ``params`` = [W0, b0, W1, b1, ...] with W ``[out, in]``. Returns logits ``[B, C]``."""
    n = len(params) // 2
    h = x
    for i in range(n):
        h = h @ params[2 * i].t() + params[2 * i + 1]
        if i < n - 1:
            h = torch.relu(h)
    return h


def model_forward(spec: ModelSpec) -> Callable[[torch.Tensor, list[torch.Tensor]], torch.Tensor]:
    """``f(x, params) -> logits`` for ``spec`` with ``params`` in ``spec.param_shapes()`` order: ``mlp`` is
    :func:`mlp_forward`; ``gru`` is :func:`edge_sdk.server.models.forward` (the GRU unrolled over the K history
    steps: MatMul, Sigmoid, Tanh, Mul, Add only)."""
    if spec.kind == "mlp":
        return mlp_forward
    from edge_sdk.server.models import forward

    names = [n for n, _ in spec.param_shapes()]

    def f(x: torch.Tensor, params: list[torch.Tensor]) -> torch.Tensor:
        return forward(spec, dict(zip(names, params, strict=True)), x)

    return f


def loss_fn(
    logits: torch.Tensor, labels: torch.Tensor, soft: torch.Tensor | None, soft_weight: torch.Tensor | None,
    label_smoothing: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean over the batch of ``(1-lam) * CE(z, t_y) + lam * sum_c -softmax(s)_c log softmax(z)_c`` where ``s`` are
    the soft-label rows as *logits* (the payload convention of server/payload_io.py, MTT learned soft labels),
    lam = soft_weight and ``CE(z, t_y) = (1-eps) * -log softmax(z)_y + eps * mean_c -log softmax(z)_c`` with eps =
    label_smoothing (edge_sdk.modelspec; plain CE without it); hard CE only when no soft labels. Written with
    log_softmax + gather (bug 1)."""
    logp = torch.log_softmax(logits, dim=1)
    hard = -logp.gather(1, labels.reshape(-1, 1)).reshape(-1)
    if label_smoothing is not None:
        hard = (1.0 - label_smoothing) * hard - label_smoothing * logp.mean(dim=1)
    if soft is None or soft_weight is None:
        return hard.mean()
    soft_ce = -(torch.softmax(soft, dim=1) * logp).sum(dim=1)
    return ((1.0 - soft_weight) * hard + soft_weight * soft_ce).mean()


def mlp_loss_and_grads(
    x: torch.Tensor,
    labels: torch.Tensor,
    soft: torch.Tensor | None,
    soft_weight: torch.Tensor | None,
    params: list[torch.Tensor],
    num_classes: int,
    label_smoothing: torch.Tensor | None = None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Loss of :func:`loss_fn` on :func:`mlp_forward` and its gradients w.r.t. ``params``, by hand.

    x ``[B, D]``, labels int64 ``[B]``, soft ``[B, C]`` logits or None, params ``[W0, b0, W1, b1, ...]`` with
    W ``[out, in]``. With target ``t = (1-lam) t_y + lam softmax(s)`` (``t = t_y`` without soft labels), where
    ``t_y = (1-eps) onehot(y) + eps / C`` (``onehot(y)`` without label smoothing; every row of t sums to 1) the loss is ``-sum(t * log_softmax(z)) / B`` and
    ``dL/dz = (softmax(z) - t) / B``; then per layer (from the last) ``dW = dh^T h_in``, ``db = sum_rows dh``,
    ``dh_in = (dh W) * [h_in > 0]`` (ReLU'). Returns
    ``(loss, [dW0, db0, dW1, db1, ...])``."""
    n = len(params) // 2
    hs = [x]  # hs[i] = input of layer i; the logits last
    h = x
    for i in range(n):
        h = torch.addmm(params[2 * i + 1], h, params[2 * i].t())
        if i < n - 1:
            h = torch.relu(h)
        hs.append(h)
    batch = h.shape[0]
    logp = torch.log_softmax(h, dim=1)
    target = (labels.reshape(-1, 1) == torch.arange(num_classes).reshape(1, -1)).to(torch.float32)
    if label_smoothing is not None:
        target = (1.0 - label_smoothing) * target + label_smoothing / num_classes
    if soft is not None and soft_weight is not None:
        target = (1.0 - soft_weight) * target + soft_weight * torch.softmax(soft, dim=1)
    loss = -(logp * target).sum() / batch
    dh = (torch.exp(logp) - target) / batch
    ones = torch.ones(batch, dtype=torch.float32)
    grads: list[torch.Tensor] = [dh] * len(params)
    for i in reversed(range(n)):
        grads[2 * i] = dh.t() @ hs[i]
        grads[2 * i + 1] = ones @ dh  # column sums as a matmul: onnxruntime's ReduceSum over rows is slower
        if i > 0:
            # ReLU' as a 0/1 float mask: Greater + Cast runs faster than Sign or Where in onnxruntime's CPU
            # kernels (per-op times: tools/profile_device_step.py)
            dh = (dh @ params[2 * i]) * (hs[i] > 0).to(torch.float32)
    return loss, grads


def make_step(spec: TrainGraphSpec) -> Callable[..., tuple[torch.Tensor, ...]]:
    """The pure step function for ``spec`` (inputs/outputs: :mod:`edge_sdk.graphmeta`)."""
    ggroups = spec.graph_groups()
    n_params = len(spec.param_names())
    hyper = HYPER_NAMES[spec.optimizer]
    n_state = len(spec.state_names())
    fwd = model_forward(spec.model)

    def step(*inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        pos = 0
        xs: list[torch.Tensor] = []
        ts: list[torch.Tensor] = []
        for _, g in ggroups:
            data = inputs[pos]
            np_ = len(g.param_names())
            gp = list(inputs[pos + 1 : pos + 1 + np_])
            pos += 1 + np_
            (xs if g.role == "samples" else ts).append(dequantize_group(g, data, gp))
        labels = inputs[pos]
        pos += 1
        soft_weight = label_smoothing = None
        if spec.has_soft:
            soft_weight = inputs[pos]
            pos += 1
        if spec.label_smoothing:
            label_smoothing = inputs[pos]
            pos += 1
        hp = dict(zip(hyper, inputs[pos : pos + len(hyper)], strict=True))
        pos += len(hyper)
        params = list(inputs[pos : pos + n_params])
        pos += n_params
        state = list(inputs[pos : pos + n_state])
        x = xs[0] if len(xs) == 1 else torch.cat(xs, dim=0)
        soft = None if not ts else (ts[0] if len(ts) == 1 else torch.cat(ts, dim=0))

        def objective(*ps: torch.Tensor) -> torch.Tensor:
            return loss_fn(fwd(x, list(ps)), labels, soft, soft_weight, label_smoothing)

        grads, loss = torch.func.grad_and_value(objective, argnums=tuple(range(n_params)))(*params)
        new_p, new_s = optimizer_update(spec.optimizer, params, list(grads), state, hp)
        out = (loss, *new_p, *new_s)
        return (*out, x) if spec.debug_features else out

    return step


def optimizer_update(
    optimizer: str,
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    state: list[torch.Tensor],
    hp: dict[str, torch.Tensor],
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """One optimizer step, out of place. State layout: SGD [buf_0, buf_1, ...]; Adam [m_0, v_0, m_1, v_1, ...]."""
    new_p: list[torch.Tensor] = []
    new_s: list[torch.Tensor] = []
    if optimizer == "sgd":
        for p, g, buf in zip(params, grads, state, strict=True):
            g = g + hp["weight_decay"] * p
            buf = hp["momentum"] * buf + g
            new_p.append(p - hp["lr"] * buf)
            new_s.append(buf)
        return new_p, new_s
    b1, b2, t = hp["beta1"], hp["beta2"], hp["step"]
    bc1 = 1.0 - torch.pow(b1, t)
    bc2 = 1.0 - torch.pow(b2, t)
    step_size = hp["lr"] / bc1
    bc2_sqrt = torch.sqrt(bc2)
    for i, (p, g) in enumerate(zip(params, grads, strict=True)):
        m, v = state[2 * i], state[2 * i + 1]
        g = g + hp["weight_decay"] * p
        m = b1 * m + (1.0 - b1) * g
        v = b2 * v + (1.0 - b2) * g * g
        denom = torch.sqrt(v) / bc2_sqrt + hp["eps"]
        new_p.append(p - step_size * (m / denom))
        new_s.extend([m, v])
    return new_p, new_s


#: hyper-parameter values of the example inputs the exporters trace with (any valid value; they are graph inputs)
EXAMPLE_HYPER = {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.0, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
                 "step": 1.0}


def example_group_inputs(rng: Any, g: GraphGroup, rows: int) -> list[Any]:
    """Random example tensors for one group's graph inputs, in input order: ``g{k}.values`` [rows, d] float32 or
    ``g{k}.packed`` [rows, row_bytes] uint8, then the kind's parameters (scale [rows]; alpha [d or 1]; levels
    [2^bits]; affine hi, lo [1 | d | rows] with hi > lo). Shared by the step and epoch exporters (their traced
    graphs depend on the draws' shapes, and on this exact draw order for reproducible fixtures).
    ``rng``: a ``numpy.random.Generator``."""
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

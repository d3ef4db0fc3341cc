"""The ``epoch`` variant of the training graph: decode the fed rows once, then K optimizer steps in one ``run()``.

Why (docs/onnx-graph.md, measured with onnxruntime profiling by ``tools/profile_device_step.py``): in the
``step`` variant most of a step's time is not matmul — the traced autograd graph has ~150 small nodes (per
tensor Adam updates, a slow ``Where`` for the ReLU backward, scatter/gather for the loss backward), each with a
kernel launch, and the rows are unpacked again at every step. This variant keeps the same contract (the graph
unpacks and dequantizes the payload rows itself; every hyper-parameter is an input) and removes the rest:

* the rows fed to one ``run()`` (typically a whole epoch) are unpacked and dequantized **once**, into
  ``X`` ``[M, D]`` (and the soft targets ``S`` ``[M, C]``);
* an ONNX ``Loop`` takes ``K`` optimizer steps: step ``i`` gathers the rows ``batches[i]`` of ``X``;
* the step body is the MLP's backward written out (:func:`.step.mlp_loss_and_grads`: 3 matmuls per layer, no
  autograd tape) and **one** fused optimizer update on the flat parameter vector ``theta`` ``[P]`` (the same
  :func:`.step.optimizer_update` formulas, applied once to ``P`` floats instead of once per tensor).

Construction: the decode part and the step body are two pure torch functions, each traced with ``make_fx`` and
exported with the dynamo exporter exactly like the step variant; :func:`compose` then wraps the body into the
``Loop`` with ``onnx.helper`` (the exporter cannot emit a loop over a training step). Input/output names:
:mod:`.layout`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from edge_sdk.codecs import AFFINE_KINDS
from edge_sdk.graphmeta import (
    HYPER_NAMES,
    PER_STEP_HYPER,
    STATE_SUFFIXES,
    THETA,
    GraphGroup,
    TrainGraphSpec,
)

#: internal tensor names of the composed graph (none is a graph input or output name)
DECODED_X = "x.decoded"
DECODED_SOFT = "soft.decoded"
#: body-function input names (before composition) for the data it reads from the outer graph
BODY_X, BODY_SOFT, BODY_ROWS = "X", "S", "rows"


def byte_code_table(bits: int) -> list[list[int]]:
    """``[256][8 // bits]``: the codes held by each byte value (value i at bits ``[i*bits, (i+1)*bits)``, LSB
    first, docs/contracts.md). For widths dividing 8 a row's packed bytes are its codes' containers."""
    per, mask = 8 // bits, (1 << bits) - 1
    return [[(v >> (i * bits)) & mask for i in range(per)] for v in range(256)]


def decode_rows(g: GraphGroup, data: Any, params: list[Any]) -> Any:
    """Graph inputs of one group (all its rows at once) -> float32 ``[M, D]``, the formulas of
    :func:`edge_sdk.codecs.dequantize` (and of the step variant's :func:`.step.dequantize_group`), shaped for
    onnxruntime's fast kernels, since here every row of the run is decoded in one go:

    * widths 1, 2, 4, 8: each packed byte indexes a ``[256, 8/b]`` table of dequantized values (the table is
      built from the group's levels / the affine grid), so decoding is one row-block ``Gather`` per byte and a
      reshape — no per-value unpacking arithmetic;
    * widths 3, 5, 6, 7: the step variant's two-byte rule on the transposed ``[R, M]`` bytes, so the byte
      gathers copy whole rows (``Gather`` along columns copies one element per call and is ~8x slower), and
      ``x mod 2**b`` written as ``floor(x / 2**o) - floor(x / 2**(o+b)) * 2**b`` (onnxruntime's float ``Mod`` is
      a libm call per value); all exact in float32 since every operand is < 2**16.
    """
    import torch

    if g.raw:
        return data
    rows = data.shape[0]
    q = float(g.q)
    if 8 % g.bits == 0:
        per = 8 // g.bits
        # [256, per] codes of every byte value, computed in the graph (a Range and 4 ops) rather than stored:
        # a stored table would add 2-16 KB to a ~7 KB graph
        byte = torch.arange(256, dtype=torch.float32).reshape(256, 1)
        shift = torch.tensor([float(1 << (i * g.bits)) for i in range(per)], dtype=torch.float32)
        table = (torch.floor(byte / shift) - torch.floor(byte / (shift * float(1 << g.bits))) * float(1 << g.bits)
                 ).to(torch.int64)
        if g.kind == "codebook":
            (levels,) = params
            tab = torch.index_select(levels, 0, table.reshape(-1)).reshape(256, per)
        elif g.kind in AFFINE_KINDS:
            tab = table.to(torch.float32)  # u; lo + u * step below, per row or per feature
        elif g.kind == "symmetric_per_sample":
            tab = table.to(torch.float32) - q  # u - Q, exact
        else:  # uniform_clip: (u - Q) / Q, the same float32 division as the codec
            tab = (table.to(torch.float32) - q) / q
        vals = torch.index_select(tab, 0, data.to(torch.int64).reshape(-1))  # [M * R, per]
        x = vals.reshape(rows, g.row_bytes * per)[:, : g.d]
        if g.kind == "symmetric_per_sample":
            (scale,) = params
            return scale.reshape(-1, 1) * x
        if g.kind == "uniform_clip":
            (alpha,) = params
            return alpha.reshape(1, -1) * x
        if g.kind in AFFINE_KINDS:
            return _affine(g, x, params, (-1, 1) if g.kind == "affine_sample" else (1, -1))
        return x
    r = g.row_bytes
    lo = torch.tensor([(j * g.bits) // 8 for j in range(g.d)], dtype=torch.int64)
    hi = torch.tensor([min((j * g.bits) // 8 + 1, r - 1) for j in range(g.d)], dtype=torch.int64)
    div_lo = torch.tensor([[float(1 << ((j * g.bits) % 8))] for j in range(g.d)], dtype=torch.float32)
    div_hi = div_lo * float(1 << g.bits)
    pt = data.to(torch.int32).t()  # [R, M]
    comb = (torch.index_select(pt, 0, lo) + torch.index_select(pt, 0, hi) * 256).to(torch.float32)  # [D, M]
    codes = torch.floor(comb / div_lo) - torch.floor(comb / div_hi) * float(1 << g.bits)  # exact integers
    if g.kind == "codebook":
        (levels,) = params
        vt = torch.index_select(levels, 0, codes.to(torch.int64).reshape(-1)).reshape(g.d, rows)
    elif g.kind in AFFINE_KINDS:  # transposed: rows are columns here
        vt = _affine(g, codes, params, (1, -1) if g.kind == "affine_sample" else (-1, 1))
    elif g.kind == "symmetric_per_sample":
        (scale,) = params
        vt = scale.reshape(1, -1) * (codes - q)
    else:
        (alpha,) = params
        vt = alpha.reshape(-1, 1) * ((codes - q) / q)
    return vt.t()


def _affine(g: GraphGroup, u: Any, params: list[Any], shape: tuple[int, int]) -> Any:
    """``lo + u * ((hi - lo) / L)``, ``L = 2**bits - 1``: the float32 operations of
    :func:`edge_sdk.codecs.dequantize` in its order (and of :func:`.step.dequantize_group`); ``shape`` broadcasts
    lo/hi over ``u``'s rows or columns."""
    hi, lo = params
    step = (hi - lo) / float((1 << g.bits) - 1)
    return lo.reshape(shape) + u * step.reshape(shape)


def make_decode(spec: TrainGraphSpec) -> Callable[..., tuple[Any, ...]]:
    """``decode(*group_inputs) -> (X[, S])``: every samples group dequantized (:func:`decode_rows`) and
    concatenated in payload order (``X`` ``[M, D]``), soft-label groups likewise (``S`` ``[M, C]``). Inputs:
    ``spec.group_input_names()``."""
    import torch

    ggroups = spec.graph_groups()

    def decode(*inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        pos = 0
        xs: list[torch.Tensor] = []
        ts: list[torch.Tensor] = []
        for _, g in ggroups:
            np_ = len(g.param_names())
            (xs if g.role == "samples" else ts).append(
                decode_rows(g, inputs[pos], list(inputs[pos + 1: pos + 1 + np_])))
            pos += 1 + np_
        x = xs[0] if len(xs) == 1 else torch.cat(xs, dim=0)
        if not ts:
            return (x,)
        return x, (ts[0] if len(ts) == 1 else torch.cat(ts, dim=0))

    return decode


def body_input_names(spec: TrainGraphSpec) -> list[str]:
    """Inputs of the step body: ``X, labels[, S, soft_weight][, label_smoothing], rows, *hyper (scalars), theta,
    *state``."""
    names = [BODY_X, "labels"] + ([BODY_SOFT, "soft_weight"] if spec.has_soft else [])
    names += (["label_smoothing"] if spec.label_smoothing else []) + [BODY_ROWS]
    return names + list(HYPER_NAMES[spec.optimizer]) + [THETA] + spec.flat_state_names()


def body_output_names(spec: TrainGraphSpec) -> list[str]:
    return ["loss", f"new.{THETA}"] + [f"new.{n}" for n in spec.flat_state_names()]


def make_body(spec: TrainGraphSpec) -> Callable[..., tuple[Any, ...]]:
    """One optimizer step on the rows ``rows`` ``[B]`` of the decoded ``X``: returns
    ``(loss, new_theta, *new_state)`` (inputs: :func:`body_input_names`)."""
    import torch

    from edge_sdk.server.onnx_export.step import mlp_loss_and_grads, optimizer_update

    shapes = [s for _, s in spec.model.param_shapes()]
    offsets = np.cumsum([0] + [int(np.prod(s)) for s in shapes]).tolist()
    hyper = HYPER_NAMES[spec.optimizer]
    n_state = len(STATE_SUFFIXES[spec.optimizer])
    num_classes = spec.model.num_classes

    def body(*inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x_all, labels_all = inputs[0], inputs[1]
        pos = 2
        soft = soft_weight = label_smoothing = None
        if spec.has_soft:
            soft_all, soft_weight = inputs[2], inputs[3]
            pos = 4
        if spec.label_smoothing:
            label_smoothing = inputs[pos]
            pos += 1
        rows = inputs[pos]
        hp = dict(zip(hyper, inputs[pos + 1: pos + 1 + len(hyper)], strict=True))
        pos += 1 + len(hyper)
        theta = inputs[pos]
        state = list(inputs[pos + 1: pos + 1 + n_state])
        x = torch.index_select(x_all, 0, rows)
        labels = torch.index_select(labels_all, 0, rows)
        if spec.has_soft:
            soft = torch.index_select(soft_all, 0, rows)
        params = [theta[offsets[i]: offsets[i + 1]].reshape(s) for i, s in enumerate(shapes)]
        loss, grads = mlp_loss_and_grads(x, labels, soft, soft_weight, params, num_classes, label_smoothing)
        flat_grad = torch.cat([g.reshape(-1) for g in grads])
        # state layout of optimizer_update: SGD [buf]; Adam [m, v] -- for the one flat "parameter" theta
        new_p, new_s = optimizer_update(spec.optimizer, [theta], [flat_grad], state, hp)
        return (loss, new_p[0], *new_s)

    return body


def _static_dims(spec: TrainGraphSpec) -> set[int]:
    """Every fixed dimension of the graph's inputs (widths, classes, table sizes, P)."""
    dims = {1, spec.model.input_dim, spec.model.num_classes, spec.theta_size(), *spec.model.hidden}
    for _, g in spec.graph_groups():
        dims |= {g.d, g.row_bytes, 1 << g.bits}
    return dims


def _free_sizes(count: int, taken: set[int]) -> list[int]:
    """``count`` distinct example row counts that equal no fixed dimension. make_fx's symbolic tracing gives
    equal example sizes one symbol ("duck sizing"): a row count equal to, say, num_classes would be read back
    from the fixed dimension and the exported graph would divide by a constant instead of the batch size."""
    out: list[int] = []
    n = 11
    while len(out) < count:
        if n not in taken:
            out.append(n)
        n += 2
    return out


def _decode_examples(spec: TrainGraphSpec, seed: int = 0) -> list[Any]:
    """Example group inputs with a distinct free row count per group."""
    from edge_sdk.server.onnx_export.step import example_group_inputs

    rng = np.random.default_rng(seed)
    ggroups = spec.graph_groups()
    sizes = _free_sizes(len(ggroups), _static_dims(spec))
    out: list[Any] = []
    for (_, g), b in zip(ggroups, sizes, strict=True):
        out.extend(example_group_inputs(rng, g, b))
    return out


def _body_examples(spec: TrainGraphSpec, seed: int = 0) -> list[Any]:
    import torch

    from edge_sdk.server.onnx_export.step import EXAMPLE_HYPER

    rng = np.random.default_rng(seed)
    m, b = _free_sizes(2, _static_dims(spec))  # M rows decoded, B rows per step: distinct and free
    out: list[Any] = [torch.tensor(rng.standard_normal((m, spec.model.input_dim)), dtype=torch.float32),
                      torch.tensor(rng.integers(0, spec.model.num_classes, m), dtype=torch.int64)]
    if spec.has_soft:
        out += [torch.tensor(rng.standard_normal((m, spec.model.num_classes)), dtype=torch.float32),
                torch.tensor(0.5, dtype=torch.float32)]
    if spec.label_smoothing:
        out.append(torch.tensor(0.1, dtype=torch.float32))
    out.append(torch.tensor(rng.integers(0, m, b), dtype=torch.int64))
    out.extend(torch.tensor(EXAMPLE_HYPER[h], dtype=torch.float32) for h in HYPER_NAMES[spec.optimizer])
    p = spec.theta_size()
    out.append(torch.tensor(rng.standard_normal(p) * 0.1, dtype=torch.float32))
    out.extend(torch.zeros(p, dtype=torch.float32) for _ in spec.flat_state_names())
    return out


def epoch_graph_model(spec: TrainGraphSpec, _to_model: Callable[..., Any], _shorten_names: Callable[..., Any]) -> Any:
    """The composed epoch-variant ``onnx.ModelProto`` (not yet finalized: no metadata, not checked).
    ``_to_model`` / ``_shorten_names``: the exporter's tracing and renaming steps (``edge_sdk.server.onnx_export.
    export`` passes its own, so this module does not import its caller)."""
    from torch.export import Dim

    dec_args = _decode_examples(spec)
    dec_dyn: list[Any] = []
    for _, g in spec.graph_groups():
        dec_dyn.append({0: Dim.AUTO})
        dec_dyn.extend({0: Dim.AUTO} if g.per_row_params else None for _ in g.param_names())
    dec_out = [BODY_X] + ([BODY_SOFT] if spec.has_soft else [])
    decode = _to_model(make_decode(spec), dec_args, spec.group_input_names(), dec_out, tuple(dec_dyn),
                       fold_limit=64)
    body_args = _body_examples(spec)
    names = body_input_names(spec)
    body_dyn = tuple({0: Dim.AUTO} if n in (BODY_X, "labels", BODY_SOFT, BODY_ROWS) else None for n in names)
    body = _to_model(make_body(spec), body_args, names, body_output_names(spec), body_dyn)
    _shorten_names(decode.graph, prefix="d")
    _shorten_names(body.graph, prefix="s")
    return compose(spec, decode, body)


def _value_info(name: str, elem: int, shape: list[Any]) -> Any:
    from onnx import helper

    return helper.make_tensor_value_info(name, elem, shape)


def compose(spec: TrainGraphSpec, decode: Any, body: Any) -> Any:
    """Main graph = decode nodes + ``Loop(K)`` whose body gathers step i's rows and hyper-parameters and runs the
    step body. ``decode``/``body``: exported models with distinct internal names (see :func:`epoch_graph_model`)."""
    import onnx
    from onnx import TensorProto, helper

    f32, i64, u8 = TensorProto.FLOAT, TensorProto.INT64, TensorProto.UINT8
    p = spec.theta_size()
    d = spec.model.input_dim
    hyper = HYPER_NAMES[spec.optimizer]
    states = spec.flat_state_names()

    # --- decode part: its outputs X[, S] become DECODED_X[, DECODED_SOFT]
    ren_dec = {BODY_X: DECODED_X, BODY_SOFT: DECODED_SOFT}
    # The decode model's inputs are the group inputs, in order. When decoding is the identity (float32/float16
    # storage), torch.export names the input after the output it equals ("X_orig"): give it its layout name.
    dec_in = [vi.name for vi in decode.graph.input]
    want_in = spec.group_input_names()
    if len(dec_in) != len(want_in):
        raise AssertionError(f"decode graph inputs {dec_in} do not match the layout's {want_in}")
    ren_dec.update({have: want for have, want in zip(dec_in, want_in, strict=True) if have != want})
    nodes: list[Any] = []
    for nd in decode.graph.node:
        nd = _copy(nd)
        nd.output[:] = [ren_dec.get(o, o) for o in nd.output]
        nd.input[:] = [ren_dec.get(i, i) for i in nd.input]
        nodes.append(nd)
    inits = [_copy(t) for t in decode.graph.initializer] + [_copy(t) for t in body.graph.initializer]

    # --- loop body: prelude gathers step i's rows and per-step hyper-parameters
    per_step = [h for h in hyper if h in PER_STEP_HYPER]
    ren_body: dict[str, str] = {BODY_X: DECODED_X, BODY_SOFT: DECODED_SOFT, BODY_ROWS: "step.rows", THETA: "c.theta",
                                "loss": "o.loss", f"new.{THETA}": "o.theta"}
    ren_body.update({h: f"step.{h}" for h in per_step})
    ren_body.update({s: f"c.{s}" for s in states})
    ren_body.update({f"new.{s}": f"o.{s}" for s in states})
    prelude = [helper.make_node("Gather", ["batches", "iter"], ["step.rows"], axis=0)]
    prelude += [helper.make_node("Gather", [h, "iter"], [f"step.{h}"], axis=0) for h in per_step]
    prelude.append(helper.make_node("Identity", ["cond.in"], ["cond.out"]))
    body_nodes = []
    for nd in body.graph.node:
        nd = _copy(nd)
        nd.input[:] = [ren_body.get(i, i) for i in nd.input]
        nd.output[:] = [ren_body.get(o, o) for o in nd.output]
        body_nodes.append(nd)
    body_graph = helper.make_graph(
        prelude + body_nodes, "train_step",
        [_value_info("iter", i64, []), _value_info("cond.in", TensorProto.BOOL, []),
         _value_info("c.theta", f32, [p])] + [_value_info(f"c.{s}", f32, [p]) for s in states],
        [_value_info("cond.out", TensorProto.BOOL, []), _value_info("o.theta", f32, [p])]
        + [_value_info(f"o.{s}", f32, [p]) for s in states] + [_value_info("o.loss", f32, [])])

    # --- main graph: K = rows of `batches`, then the Loop
    inits.append(helper.make_tensor("loop.cond", TensorProto.BOOL, [], [True]))
    inits.append(helper.make_tensor("loop.axis0", i64, [1], [0]))
    nodes.append(helper.make_node("Shape", ["batches"], ["loop.k1"], start=0, end=1))
    nodes.append(helper.make_node("Squeeze", ["loop.k1", "loop.axis0"], ["loop.k"]))
    nodes.append(helper.make_node(
        "Loop", ["loop.k", "loop.cond", THETA, *states],
        [f"new.{THETA}", *(f"new.{s}" for s in states), "losses"], body=body_graph))
    outputs = [_value_info("losses", f32, ["K"]), _value_info(f"new.{THETA}", f32, [p])]
    outputs += [_value_info(f"new.{s}", f32, [p]) for s in states]
    if spec.debug_features:
        nodes.append(helper.make_node("Identity", [DECODED_X], ["features"]))
        outputs.append(_value_info("features", f32, ["M", d]))

    inputs = []
    for k, g in spec.graph_groups():
        rows = f"M_g{k}"
        if g.raw:
            inputs.append(_value_info(f"g{k}.values", f32, [rows, g.d]))
        else:
            inputs.append(_value_info(f"g{k}.packed", u8, [rows, g.row_bytes]))
        for pn in g.param_names():
            shapes: dict[str, list[Any]] = {"scale": [rows], "alpha": [g.d if g.per_feature else 1],
                                            "levels": [1 << g.bits], "hi": _affine_shape(g, rows),
                                            "lo": _affine_shape(g, rows)}
            shape = shapes[pn]
            inputs.append(_value_info(f"g{k}.{pn}", f32, shape))
    inputs.append(_value_info("labels", i64, ["M"]))
    inputs.append(_value_info("batches", i64, ["K", "B"]))
    inputs += [_value_info(n, f32, []) for n in spec.loss_input_names()]
    inputs += [_value_info(h, f32, ["K"] if h in PER_STEP_HYPER else []) for h in hyper]
    inputs += [_value_info(THETA, f32, [p])] + [_value_info(s, f32, [p]) for s in states]
    assert [v.name for v in inputs] == spec.input_names(), "epoch graph inputs out of sync with layout"
    assert [v.name for v in outputs] == spec.output_names(), "epoch graph outputs out of sync with layout"
    graph = helper.make_graph(nodes, "edge_sdk_train_epoch", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=list(decode.opset_import))
    return onnx.ModelProto.FromString(model.SerializeToString())


def _affine_shape(g: GraphGroup, rows: str) -> list[Any]:
    shapes: dict[str, list[Any]] = {"affine_set": [1], "affine_feature": [g.d], "affine_sample": [rows]}
    return shapes.get(g.kind, [])


def _copy(proto: Any) -> Any:
    new = type(proto)()
    new.CopyFrom(proto)
    return new

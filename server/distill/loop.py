"""The optimisation loop every DD host shares, in three storage modes (plain float / QuADD / PTQ).

A host (DM, DC, MTT) supplies a *matcher* built by ``factory(ctx, S0)``; the matcher exposes
``loss(Sq, it) -> scalar`` (the host's matching loss for the synthetic values the model sees),
``param_groups() -> list[dict]`` (extra learnables, e.g. MTT's step size), ``soft() -> Tensor | None``
(soft-label logits [N, C]) and ``info() -> dict``.

QuADD objective (arXiv 2603.02411): ``min_{S, q} L_host(T, Q_q(S))`` -- the synthetic set ``S`` [N, D]
and the quantizer parameters ``q`` are optimised jointly with Adam; ``Q`` is the straight-through
quantizer of :mod:`edge_sdk.server.torch_quant`. PTQ: ``min_S L_host(T, S)``, then ``Q`` is fitted to the
final ``S`` (MSE-optimal threshold / Lloyd codebook) and applied once.

Checkpoint selection (``select="val"``, resolved in ``base.resolve_select``): ``ctx.val`` holds real samples
kept out of the distillation; at iterations ``0, val_every, ...`` and at the end the decoded set is scored
(:func:`val_top1`) and the best checkpoint (S, quantizer state, soft labels) is what gets stored;
``info["val_top1"]`` = ``[[iteration, top1], ...]``, ``info["selected_iteration"]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from edge_sdk.server.distill.base import METHODS, RAW, Context, init_synthetic
from edge_sdk.server.payload_io import CompactSet, compact_float, compact_from_quantizer
from edge_sdk.server.torch_quant import make_quantizer

MODES = ("plain", "quadd", "ptq")


PROBES = 6


def probe_loss(ctx: Context, matcher: Any, Sq: torch.Tensor, n: int = PROBES) -> float:
    """Mean host loss of ``Sq`` over ``n`` *fixed* probe draws (networks, real batches, expert windows).

    The per-iteration losses use fresh random draws and are noisy; the probe re-uses the same draws
    before and after optimisation (RNG states are saved and restored), so ``probe_final < probe_init``
    is a meaningful "the loss decreased" check."""
    g_state = ctx.gen.get_state()
    rng = getattr(matcher, "rng", None)
    rng_state = rng.bit_generator.state if rng is not None else None
    params = getattr(matcher, "params", None)
    ctx.gen.manual_seed(ctx.cfg.seed + 99991)
    if rng is not None:
        rng.bit_generator.state = type(rng.bit_generator)(ctx.cfg.seed + 99991).state
    every = max(1, getattr(ctx.cfg, "dc_model_every", 1))
    tot = 0.0
    for j in range(n):
        tot += float(matcher.loss(Sq, every * (100_000 + j)).detach())
    ctx.gen.set_state(g_state)
    if rng is not None:
        rng.bit_generator.state = rng_state
    if params is not None:
        matcher.params = params
    return tot / n


def constrain(ctx: Context, S: torch.Tensor) -> torch.Tensor:
    """Keep synthetic samples on the real input manifold (differentiable).

    ``TaskData.extra["input_constraint"] == "max_zero"`` (beam inputs with per-sample-max normalisation,
    where every real sample has its largest entry exactly 0): ``S - max_j S_ij``."""
    if ctx.data.extra.get("input_constraint") == "max_zero":
        return S - S.amax(1, keepdim=True)
    return S


def val_top1(ctx: Context, X: torch.Tensor, y: torch.Tensor, soft: torch.Tensor | None) -> float:
    """Held-out Top-1 of a model trained on (``X`` [N, D], labels ``y`` [N], soft logits [N, C] or None) with the
    default evaluation recipe (:func:`edge_sdk.server.train_eval.train_model`), mean over seeds ``cfg.seed + i``,
    ``i < cfg.val_seeds`` -- ``select="val"``."""
    from edge_sdk.server.train_eval import predict, train_model

    from edge_sdk.recipe import TrainRecipe

    Xv, yv = ctx.val  # type: ignore[misc]
    acc = []
    for i in range(max(1, ctx.cfg.val_seeds)):
        params = train_model(ctx.data.spec, X.detach(), y.detach(), ctx.cfg.seed + i, TrainRecipe(),
                             soft=soft.detach() if soft is not None else None, device=str(ctx.device))
        acc.append(float((predict(ctx.data.spec, params, Xv).argmax(1) == yv).mean()))
    return sum(acc) / len(acc)


def run_dd(ctx: Context, factory: Callable[[Context, torch.Tensor], Any], mode: str) -> tuple[CompactSet, list[float], dict]:
    """Optimise a synthetic set with the matcher from ``factory`` in storage ``mode``."""
    cfg = ctx.cfg
    S = torch.nn.Parameter(init_synthetic(ctx))
    y_syn = ctx.syn_labels()
    q = None
    if mode == "quadd":
        q = make_quantizer(cfg.quantizer, ctx.point.bits, S.detach(), per_feature=ctx.point.per_feature).to(ctx.device)
    matcher = factory(ctx, S.detach().clone())
    groups = [{"params": [S], "lr": cfg.lr_data}]
    if q is not None:
        groups.append({"params": list(q.parameters()), "lr": cfg.lr_quant})
    groups += matcher.param_groups()
    opt = torch.optim.Adam(groups)
    losses: list[float] = []
    probe_init = probe_loss(ctx, matcher, q(constrain(ctx, S)) if q is not None else constrain(ctx, S))
    it_range = range(cfg.iterations)
    if getattr(ctx, "progress", False):
        from edge_sdk.progress import progress_bar

        it_range = progress_bar(it_range, desc=f"{cfg.method}", leave=False)
    best: tuple[float, int, dict] | None = None  # (val top1, iteration, state) -- select="val"
    val_log: list[tuple[int, float]] = []

    def checkpoint(it: int) -> None:
        nonlocal best
        with torch.no_grad():
            Sc = constrain(ctx, S.detach())
            qq = q if q is not None else (make_quantizer(cfg.quantizer, ctx.point.bits, Sc, per_feature=ctx.point.per_feature)
                                          if mode == "ptq" and ctx.point.quantizer not in RAW else None)
            Xd = qq(Sc) if qq is not None else Sc
            soft = matcher.soft()
        score = val_top1(ctx, Xd, y_syn, soft)
        val_log.append((it, score))
        if best is None or score > best[0]:
            state = {"S": S.detach().clone(), "q": {k: v.clone() for k, v in q.state_dict().items()} if q is not None else None,
                     "soft": soft.detach().clone() if soft is not None else None}
            best = (score, it, state)

    for it in it_range:
        if ctx.val is not None and it % max(1, cfg.val_every) == 0:
            checkpoint(it)
        Sc = constrain(ctx, S)
        Sq = q(Sc) if q is not None else Sc
        loss = matcher.loss(Sq, it)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    probe_final = probe_loss(ctx, matcher, q(constrain(ctx, S)) if q is not None else constrain(ctx, S))
    if ctx.val is not None:
        checkpoint(cfg.iterations)
        _, _, st = best  # type: ignore[misc]
        with torch.no_grad():
            S.copy_(st["S"])
            if q is not None:
                q.load_state_dict(st["q"])
            if st["soft"] is not None:
                matcher.soft().copy_(st["soft"])
    soft = matcher.soft()
    soft_np = soft.detach().cpu().numpy() if soft is not None else None
    Sf = constrain(ctx, S.detach())
    y_np = y_syn.cpu().numpy()
    if mode == "plain" or ctx.point.quantizer in RAW:
        cs = compact_float(Sf.cpu().numpy(), y_np, ctx.point.kind, soft=soft_np, soft_bits=cfg.soft_bits)
    else:
        if q is None:  # PTQ: fit the quantizer to the final float set
            q = make_quantizer(cfg.quantizer, ctx.point.bits, Sf, per_feature=ctx.point.per_feature)
        cs = compact_from_quantizer(Sf.cpu(), y_np, q.cpu(), soft=soft_np, soft_bits=cfg.soft_bits)
    info = matcher.info()
    info.update(mode=mode, probe_loss_init=probe_init, probe_loss_final=probe_final)
    if ctx.val is not None:
        info.update(val_top1=[[i, v] for i, v in val_log], selected_iteration=best[1])  # type: ignore[index]
    return cs, losses, info


def register_host(host: str, factory: Callable[[Context, torch.Tensor], Any]) -> None:
    """Register ``host`` (plain), ``quadd-<host>`` and ``ptq-<host>`` for a matcher factory."""

    def make(mode: str):
        def fn(ctx: Context):
            if mode == "plain" and ctx.point.quantizer not in RAW:
                from edge_sdk.errors import ConfigError

                raise ConfigError(
                    f"method {host!r} stores float32/float16; use quadd-{host} or ptq-{host} with quantizer "
                    f"{ctx.point.quantizer!r}"
                )
            return run_dd(ctx, factory, mode)

        fn.__name__ = f"{mode}_{host}"
        return fn

    for mode, name in (("plain", host), ("quadd", f"quadd-{host}"), ("ptq", f"ptq-{host}")):
        if name in METHODS:
            raise RuntimeError(f"method {name} registered twice")
        METHODS[name] = make(mode)

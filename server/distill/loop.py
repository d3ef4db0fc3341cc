"""The optimisation loop every DD host shares, in three storage modes (plain float / QuADD / PTQ).

A host (DM, DC, MTT) is a :class:`edge_sdk.server.distill.base.Matcher` subclass built as ``cls(ctx, S0)``: its
``loss(Sq, it) -> scalar`` is the matching loss for the synthetic values the model sees, ``param_groups()`` adds
extra learnables (e.g. MTT's step size), ``soft()`` gives soft-label logits [N, C] or None, ``info()`` a dict.
:func:`host_method` turns a host and a storage mode into the method function the registry resolves.

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

from typing import Any

import torch

from edge_sdk.errors import ConfigError
from edge_sdk.server.distill.base import RAW, Context, Matcher, MethodFn, init_synthetic
from edge_sdk.server.payload_io import CompactSet, SoftStorage, compact_float, compact_from_quantizer
from edge_sdk.server.torch_quant import make_quantizer

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
    from edge_sdk.recipe import TrainRecipe
    from edge_sdk.server.train_eval import predict, train_model

    Xv, yv = ctx.val  # type: ignore[misc]
    acc = []
    for i in range(max(1, ctx.cfg.val_seeds)):
        params = train_model(ctx.data.spec, X.detach(), y.detach(), ctx.cfg.seed + i, TrainRecipe(),
                             soft=soft.detach() if soft is not None else None, device=str(ctx.device))
        acc.append(float((predict(ctx.data.spec, params, Xv).argmax(1) == yv).mean()))
    return sum(acc) / len(acc)


def run_dd(ctx: Context, host: type[Matcher], mode: str) -> tuple[CompactSet, list[float], dict]:
    """Optimise a synthetic set with the matching loss of ``host`` in storage ``mode``."""
    cfg = ctx.cfg
    S = torch.nn.Parameter(init_synthetic(ctx))
    S_init = constrain(ctx, S.detach().clone())
    y_syn = ctx.syn_labels()
    q = None
    if mode == "quadd":
        q = make_quantizer(cfg.quantizer, ctx.point.bits, S.detach(), per_feature=ctx.point.per_feature).to(ctx.device)
    matcher = host(ctx, S.detach().clone())
    groups = [{"params": [S], "lr": cfg.lr_data}]
    if q is not None:
        groups.append({"params": list(q.parameters()), "lr": cfg.lr_quant})
    groups += matcher.param_groups()
    opt = torch.optim.Adam(groups)
    losses: list[float] = []
    probe_init = probe_loss(ctx, matcher, q(constrain(ctx, S)) if q is not None else constrain(ctx, S))
    it_range: Any = range(cfg.iterations)
    if ctx.progress:
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
            learned = matcher.soft()
            if st["soft"] is not None and learned is not None:
                learned.copy_(st["soft"])
    soft = matcher.soft()
    soft_np = soft.detach().cpu().numpy() if soft is not None else None
    Sf = constrain(ctx, S.detach())
    y_np = y_syn.cpu().numpy()
    soft_storage = ctx.point.storage.soft or SoftStorage()
    if mode == "plain" or ctx.point.quantizer in RAW:
        cs = compact_float(Sf.cpu().numpy(), y_np, ctx.point.kind, soft=soft_np, soft_storage=soft_storage)
    else:
        if q is None:  # PTQ: fit the quantizer to the final float set
            q = make_quantizer(cfg.quantizer, ctx.point.bits, Sf, per_feature=ctx.point.per_feature)
        cs = compact_from_quantizer(Sf.cpu(), y_np, q.cpu(), soft=soft_np, soft_storage=soft_storage)
    info = matcher.info()
    info.update(mode=mode, probe_loss_init=probe_init, probe_loss_final=probe_final,
                **movement(ctx, S_init.cpu(), Sf.cpu(), q))
    if ctx.val is not None:
        info.update(val_top1=[[i, v] for i, v in val_log], selected_iteration=best[1])  # type: ignore[index]
    return cs, losses, info


def host_method(host: type[Matcher], mode: str) -> MethodFn:
    """The method function of ``host`` in storage ``mode`` (``plain``: float32/float16 only)."""

    def fn(ctx: Context) -> tuple[CompactSet, list[float], dict]:
        if mode == "plain" and ctx.point.quantizer not in RAW:
            raise ConfigError(
                f"method {host.name!r} stores float32/float16; use quadd-{host.name} or ptq-{host.name} with "
                f"quantizer {ctx.point.quantizer!r}"
            )
        return run_dd(ctx, host, mode)

    fn.__name__ = f"{mode}_{host.name}"
    return fn


def movement(ctx: Context, S_init: torch.Tensor, S_final: torch.Tensor, q: Any) -> dict[str, float]:
    """How far distillation moved the stored rows from their initialisation (issue #11: a set that was never
    distilled must not be reported as distilled).

    ``rows_changed_frac``: share of rows whose *stored* values (decoded through the final quantizer, or the float
    values) differ from those of the initial row; ``move_rms``: RMS over rows of ``||S_final - S_init||`` in input
    units; ``move_rms_nn``: the same over the median nearest-neighbour distance between real training rows (a
    sample of at most 2,000), i.e. 1.0 = the rows moved by about one typical gap between real rows."""
    with torch.no_grad():
        a = q(S_init) if q is not None else S_init
        b = q(S_final) if q is not None else S_final
        changed = float((a != b).any(1).float().mean()) if a.shape[0] else 0.0
        rms = float(((S_final - S_init) ** 2).sum(1).mean().sqrt()) if a.shape[0] else 0.0
        X = ctx.X[torch.randperm(ctx.X.shape[0], generator=ctx.gen)[:2000].to(ctx.X.device)]
        d = torch.cdist(X, X)
        d.fill_diagonal_(float("inf"))
        nn = float(d.min(1).values.median()) if X.shape[0] > 1 else 0.0
    return {"rows_changed_frac": changed, "move_rms": rms, "move_rms_nn": rms / nn if nn > 0 else 0.0}

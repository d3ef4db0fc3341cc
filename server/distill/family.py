"""Distillation as a method family of the pipeline (``edge_sdk.server.pipeline``): prepare -> plan -> build, and
:func:`distill`, which runs one method (its function from the registries, its context, the run).

* :func:`prepare` resolves what needs search before planning: ``search_bits`` (``--bits auto``) scores every
  allowed width of the quantizer with a short proxy run (distillation with ``iterations / 5``, one seed,
  ``steps / 3`` evaluation updates) and keeps the best — returns the config with ``bits`` set;
* :func:`plan` is the operating point (cheap; called again when the training graph's digest changes the size);
* :func:`build` runs the method once at that point (:func:`distill`).

The host loop (:func:`run_dd`, :func:`host_method`): the optimisation loop every DD host shares, in three storage
modes (plain float / QuADD / PTQ).

A host (DM, DC, MTT, KIP) is a :class:`edge_sdk.server.distill.base.Matcher` subclass built as ``cls(ctx, S0)``: its
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

Imports go one way, no cycle: ``family`` -> ``base`` (configs, registries, ``Matcher``, ``Context``); the hosts
import ``base`` only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from edge_sdk.errors import ConfigError
from edge_sdk.payload import GroupLayout
from edge_sdk.server.budget import OperatingPoint, search_sweet_spot
from edge_sdk.server.datasets import TaskData
from edge_sdk.server.distill.base import (
    BASELINES,
    MATCHERS,
    RAW,
    Context,
    DistillConfig,
    DistillResult,
    Matcher,
    MethodFn,
    choose_point,
    default_cost,
    init_synthetic,
    resolve_method,
    resolve_select,
    split_method,
    split_validation,
)
from edge_sdk.server.payload_io import (
    CompactSet,
    PayloadCost,
    SoftStorage,
    compact_float,
    compact_from_quantizer,
)
from edge_sdk.server.torch_quant import make_quantizer
from edge_sdk.server.train_eval import EvalConfig, evaluate_compact

#: bit widths the sweet-spot search tries per quantizer
AUTO_BITS = {"uniform": (2, 3, 4, 8), "apot": (3, 5), "codebook": (1, 2, 3, 4)}


# ------------------------------------------------------------------ the host loop (module docstring)

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
    from edge_sdk.modelspec import TrainRecipe
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


# ------------------------------------------------------------------ running one method


def method_fn(name: str) -> MethodFn:
    """The function that runs method ``name`` (a baseline, or a host in one of its storage modes)."""
    mode, host = split_method(resolve_method(name))
    if host is None:
        return BASELINES.get(mode)
    return host_method(MATCHERS.get(host), mode)


def distill(data: TaskData, config: DistillConfig, budget: int | None = None, *, cost: PayloadCost | None = None,
            point: OperatingPoint | None = None, progress: bool = False) -> DistillResult:
    """Run the method named ``config.method`` on ``data`` (see module docstring). The operating point is
    ``point`` when given (the pipeline plans it), else :func:`choose_point` under ``budget`` with ``cost``
    (default: :func:`default_cost`). Nothing passed in is modified."""
    method = resolve_method(config.method)
    cfg = replace(config, method=method)
    torch.manual_seed(cfg.seed)
    if point is None:
        point = choose_point(data, cfg, budget, cost if cost is not None else default_cost(data, cfg))
    dev = torch.device(cfg.device)
    classes = np.flatnonzero(np.bincount(data.y_train, minlength=data.num_classes))
    val = None
    if resolve_select(cfg.select, method) == "val":
        data, val = split_validation(data, cfg.val_frac, cfg.seed)
    ctx = Context(data, cfg, point, dev, torch.from_numpy(data.X_train).to(dev),
                  torch.from_numpy(data.y_train).to(dev), classes, val=val, progress=progress)
    t0 = time.perf_counter()
    compact, losses, info = method_fn(method)(ctx)
    if cfg.labels == "teacher":
        compact, info = _teacher_labels(data, cfg, compact, info)
    info = {**info, "class_alloc": ctx.class_alloc, "init": ctx.init, "select": "val" if val is not None else "none",
            "samples_per_class": ctx.syn_counts.tolist()}
    secs = time.perf_counter() - t0
    lay = compact.layouts()[0]
    if (lay.kind, lay.bits, compact.n) != (point.kind, point.bits, point.n):
        raise AssertionError(f"{method} produced {lay.kind}/{lay.bits}/{compact.n}, planned {point}")
    return DistillResult(compact.with_info(**info), point, losses, secs, cfg.to_dict(), info)


def _teacher_labels(data: TaskData, cfg: DistillConfig, compact: CompactSet,
                    info: dict[str, Any]) -> tuple[CompactSet, dict[str, Any]]:
    """``labels="teacher"``: relabel ``compact`` with an ensemble trained on ``data`` (server/teacher.py, imported
    only here: a run with the data's own labels does not load it)."""
    from edge_sdk.server.teacher import TEACHER_RECIPE, TeacherConfig, relabel, train_teacher

    tcfg = TeacherConfig(members=cfg.teacher_members, recipe=TEACHER_RECIPE.with_overrides(steps=cfg.teacher_steps),
                         seed=cfg.seed, device=cfg.device)
    teacher = train_teacher(data, tcfg)
    out = relabel(compact, teacher)
    return out, {**info, "labels": "teacher", "teacher": teacher.info,
                 "teacher_relabelled_frac": out.info["teacher_relabelled_frac"]}


@dataclass(frozen=True)
class DistillPlan:
    """The operating point, the layouts of the groups it stores and their exact payload size."""

    point: OperatingPoint
    layouts: list[GroupLayout]
    nbytes: int


def prepare(data: TaskData, cfg: DistillConfig, budget: int | None, cost: PayloadCost, ev: EvalConfig,
            progress: bool = False) -> tuple[DistillConfig, dict[str, Any]]:
    """``cfg`` with every search resolved, and a log for the report (``bits_search``)."""
    if not cfg.search_bits:
        return cfg, {}
    if cfg.quantizer in RAW:
        raise ConfigError("--bits auto needs a quantizer (uniform, apot, codebook)")
    cands = []
    for b in AUTO_BITS[cfg.quantizer]:
        try:
            cands.append(choose_point(data, replace(cfg, bits=b, search_bits=False), budget, cost))
        except ConfigError:
            continue
    proxy_ev = replace(ev, seeds=(ev.seeds[0],), recipe=replace(ev.recipe, steps=max(50, ev.recipe.steps // 3)))
    log: list[dict[str, Any]] = []

    def proxy(pt: OperatingPoint) -> float:
        c = replace(cfg, bits=pt.bits, search_bits=False, iterations=max(10, cfg.iterations // 5))
        r = distill(data, c, budget, cost=cost)
        m = evaluate_compact(data.spec, r.compact.X, r.compact.y, data, proxy_ev, soft=r.compact.soft).mean["top1"]
        log.append({"bits": pt.bits, "ipc": pt.ipc, "proxy_top1": m})
        return m

    best, _ = search_sweet_spot(cands, proxy)
    return replace(cfg, bits=best.bits, search_bits=False), {"bits_search": log}


def plan(data: TaskData, cfg: DistillConfig, budget: int | None, cost: PayloadCost) -> DistillPlan:
    point = choose_point(data, cfg, budget, cost)
    return DistillPlan(point, point.storage.layouts(point.n, data.dim, data.num_classes), point.bytes)


def build(data: TaskData, cfg: DistillConfig, p: DistillPlan, progress: bool = False) -> CompactSet:
    res = distill(data, cfg, point=p.point, progress=progress)
    return res.compact.with_info(operating_point=p.point.to_dict(), distill_seconds=res.seconds,
                                 losses_first_last=res.losses[:1] + res.losses[-1:])


class DistillFamily:
    """Distillation as the pipeline runs it (``edge_sdk.server.pipeline.Family``): DD hosts, QuADD, PTQ and the
    baselines; method names are canonicalised (``quadd`` -> ``quadd-mtt``) before anything else."""

    command = "distill"

    def method_name(self, cfg: DistillConfig) -> str:
        return resolve_method(cfg.method)

    def ignores_budget(self, cfg: DistillConfig) -> bool:
        return resolve_method(cfg.method) == "full"

    def prepare(self, data: TaskData, cfg: DistillConfig, budget: int | None, cost: PayloadCost, ev: EvalConfig,
                progress: bool) -> tuple[DistillConfig, dict[str, Any]]:
        return prepare(data, replace(cfg, method=resolve_method(cfg.method)), budget, cost, ev, progress)

    def plan(self, data: TaskData, cfg: DistillConfig, budget: int | None, cost: PayloadCost, ev: EvalConfig,
             progress: bool) -> DistillPlan:
        return plan(data, cfg, budget, cost)

    def build(self, data: TaskData, cfg: DistillConfig, p: DistillPlan, progress: bool) -> CompactSet:
        return build(data, cfg, p, progress)


#: what ``edge_sdk.server.pipeline.family_of`` returns for a DistillConfig
FAMILY = DistillFamily()

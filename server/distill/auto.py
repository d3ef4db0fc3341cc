"""``--method auto``: choose method x quantizer x bits x row count and the training recipe on a validation split
of the training data, under the exact byte budget, in bounded time (issue #11).

API::

    from edge_sdk.server.distill.auto import AutoConfig, search_auto
    choice = search_auto(data, budget_bytes, AutoConfig(payload_format=2))
    choice.method, choice.quantizer, choice.bits, choice.recipe     # what run_distill then builds and ships
    choice.table                                                    # one row per candidate (report.json)

Procedure (every score is a validation Top-1; the test set is not read):

1. ``protocol.split_train_val`` carves the stratified validation split out of the training set;
2. **screen**: every selection baseline of ``selections`` (``random``, ``kmeans``) x every quantizer option of the
   payload format (:func:`quantizer_options`) at the largest row count that fits ``budget`` (exact planned size,
   ``choose_point``), built from the fit part and trained once with :data:`SCREEN_RECIPE` (seed 0);
3. **distill**: with an MLP task and ``kip=True``, ``quadd-kip`` stored like the best k-means candidate, scored the
   same way (its iterations are capped by ``kip_iterations`` to bound the time);
   with ``teacher=True`` every candidate set is also scored with **teacher labels** (``edge_sdk.server.teacher``:
   the same rows filed under the class an ensemble trained on the *fit* part predicts; no extra bytes), one row
   each in the table with ``labels: "teacher"``;
4. **check**: the ``finalists`` best screened candidates are scored again with :data:`CHECK_RECIPE` (a grid
   recipe 5x longer than the screen's) on ``check_splits`` validation splits (split seeds ``split_seed``,
   ``split_seed + 1``, ...): on each further split the candidate's set is rebuilt from that split's fit part, with
   a teacher trained on that fit part, and scored on that split's validation rows. The finalist with the best mean
   check score wins (ties: the better screen score). One split of 1,800 rows cannot separate candidates less
   than ~1 point apart (the 36x demo's screen picked random rows over k-means rows that tie on split 0 and lead
   by 1.1-1.3 points on splits 1 and 2, in a validation-only experiment recorded in the #11 note);
5. **recipe**: the winner's set (split 0) gets the ``protocol.COMPACT_GRID`` search (``search_seeds``, one seed by
   default; the winner's split-0 check score is the grid row of :data:`CHECK_RECIPE`, not trained again; the
   16,000-step recipes only for the 2 best settings at 8,000 steps, ``recipe_long_top``), then the grid's winner
   with label smoothing ``smoothing`` (epsilons 0.1 and 0.2, ``protocol.search_recipe(smoothing=...)``; kept only
   if it scores higher); the chosen recipe is the one the payload carries and the device repeats.

Time: on the beam reference data (12,000 x 8, MLP 128-128) about 40 screening trainings of 1,500 steps, one KIP
run (100 iterations), two teacher ensembles (3 x 16,000 steps each), 6 check trainings of 8,000 steps and 16
recipe trainings; ``docs/benchmarks.md`` lists measured times.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from edge_sdk.errors import ConfigError
from edge_sdk.modelspec import TrainRecipe
from edge_sdk.server.datasets import TaskData
from edge_sdk.server.distill.base import DistillConfig, choose_point
from edge_sdk.server.distill.family import distill
from edge_sdk.server.payload_io import PayloadCost
from edge_sdk.server.protocol import (
    COMPACT_GRID,
    ProtocolConfig,
    search_recipe,
    search_row,
    split_train_val,
    val_top1,
)
from edge_sdk.server.teacher import TEACHER_RECIPE, Teacher, TeacherConfig, relabel, train_teacher
from edge_sdk.server.train_eval import train_model

#: the one recipe every candidate is screened with (seed 0)
SCREEN_RECIPE = TrainRecipe(optimizer="adam", lr=3e-3, schedule="cosine", steps=1500, batch_size=128, weight_decay=0.0)
#: the recipe the finalists are re-scored with on every check split (seed 0); a COMPACT_GRID recipe
CHECK_RECIPE = TrainRecipe(optimizer="adam", lr=3e-3, schedule="cosine", steps=8000, batch_size=128, weight_decay=1e-3)


def quantizer_options(payload_format: int) -> list[tuple[str, int | None]]:
    """(quantizer, bits) candidates: float16, the codebook at 2-4 bits, and per-feature affine at 2-8 bits (v2) or
    the uniform clip at 2-4 bits (v1, which cannot hold the affine kinds)."""
    opts: list[tuple[str, int | None]] = [("float16", None), *(("codebook", b) for b in (2, 3, 4))]
    if payload_format == 2:
        opts += [("affine_feature", b) for b in (2, 3, 4, 5, 6, 8)]
    else:
        opts += [("uniform", b) for b in (2, 3, 4)]
    return opts


@dataclass(frozen=True)
class AutoConfig:
    """Search space and effort of ``--method auto``."""

    selections: tuple[str, ...] = ("random", "kmeans")
    kip: bool = True
    #: KIP's iterations in the screen (and in the payload when it wins), capped for time: in the 36x / 180x demo
    #: runs KIP at 300 iterations screened 6 / 14 points below the best candidate and took ~17 s of the budget
    kip_iterations: int = 100
    teacher: bool = True  #: also score every candidate with teacher labels
    teacher_members: int = 3
    teacher_steps: int = TEACHER_RECIPE.steps
    payload_format: int = 1  #: which quantizer options exist (v2: the affine kinds)
    #: one search seed: the grid has 17 recipes, and the default run must finish in 5 min on 2 CPU cores (the
    #: results table, tools/accuracy_table.py, searches with seeds 0 and 1)
    protocol: ProtocolConfig = field(default_factory=lambda: ProtocolConfig(search_seeds=(0,)))
    screen_recipe: TrainRecipe = SCREEN_RECIPE
    finalists: int = 3  #: screened candidates re-scored in the check stage (0: the screen decides)
    check_splits: int = 2  #: validation splits of the check stage (split seeds split_seed, split_seed + 1, ...)
    check_recipe: TrainRecipe = CHECK_RECIPE
    grid: tuple[TrainRecipe, ...] = COMPACT_GRID
    #: ``protocol.search_recipe(long_top=...)``: the grid's 16,000-step recipes only for the 2 best settings at
    #: 8,000 steps (None: the whole grid); keeps every choice of the table's 23 full searches, saves ~22 s
    recipe_long_top: int | None = 2
    #: label-smoothing epsilons tried on the recipe search's winner (``protocol.search_recipe(smoothing=...)``; ()
    #: turns the stage off). tools/label_smoothing_val.py (validation only, 2 seeds, splits 0 and 1, k-means rows +
    #: 4-bit codebook + teacher labels): at 180x epsilon 0.2 gained 0.8-1.7 points (3,000 and 8,000 steps), at 36x
    #: 0.1 and 0.2 lost 0.1-0.6 points, so the stage chooses per set
    smoothing: tuple[float, ...] = (0.1, 0.2)
    device: str = "cpu"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.finalists < 0 or not 1 <= self.check_splits <= 5:
            raise ConfigError(f"auto: finalists must be >= 0 and check_splits in [1, 5], got {self.finalists} and "
                              f"{self.check_splits}")


#: what ``edge-sdk distill --method auto`` runs (its payload format, device, seed and KIP iterations set per run)
DEFAULT = AutoConfig()


@dataclass
class AutoChoice:
    method: str
    quantizer: str
    bits: int | None
    recipe: TrainRecipe
    val_top1: float
    table: list[dict[str, Any]]
    recipe_search: dict[str, Any]
    seconds: float
    labels: str = "data"
    teacher: dict[str, Any] | None = None
    check: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "quantizer": self.quantizer, "bits": self.bits, "labels": self.labels,
                "recipe": self.recipe.to_dict(), "val_top1": self.val_top1, "candidates": self.table,
                "check": self.check, "recipe_search": self.recipe_search, "teacher": self.teacher,
                "seconds": self.seconds}


def search_auto(data: TaskData, budget: int | None, cfg: AutoConfig, cost: PayloadCost,
                base: DistillConfig | None = None, progress: bool = False) -> AutoChoice:
    """Run the search of the module docstring on ``data`` under ``budget`` bytes, every byte counted by ``cost``
    (the payload header the run will write, e.g. ``edge_sdk.server.pipeline.payload_cost``)."""
    if budget is None:
        raise ConfigError("--method auto needs a byte budget (--budget or --compression)")
    t0 = time.perf_counter()
    base = base or DistillConfig()
    fit, (Xv, yv) = split_train_val(data, cfg.protocol)
    spec = data.spec
    table: list[dict[str, Any]] = []
    built: dict[int, tuple[Any, DistillConfig]] = {}  # table index -> (its set on the fit part, its config)

    def make_teacher(part: TaskData) -> Teacher:
        t = train_teacher(part, TeacherConfig(members=cfg.teacher_members, seed=cfg.seed, device=cfg.device,
                                              recipe=TEACHER_RECIPE.with_overrides(steps=cfg.teacher_steps)))
        if progress:
            print(f"auto: teacher ({cfg.teacher_members} models) trained in {t.info['seconds']:.0f} s", flush=True)
        return t

    teacher = make_teacher(fit) if cfg.teacher else None

    def score(method: str, quantizer: str, bits: int | None, **extra: Any) -> None:
        dcfg = replace(base, method=method, quantizer=quantizer, bits=bits, seed=cfg.seed, device=cfg.device,
                       select="none", ipc=None, search_bits=False, **extra)
        try:
            point = choose_point(fit, dcfg, budget, cost)
        except ConfigError as exc:  # does not fit: say so in the table
            table.append({"method": method, "quantizer": quantizer, "bits": bits, "labels": "data", "rows": 0,
                          "val_top1": None, "note": str(exc)[:120]})
            return
        t = time.perf_counter()
        r = distill(fit, dcfg, budget, cost=cost, point=point)
        for labels in ("data", "teacher") if teacher is not None else ("data",):
            cs = r.compact if labels == "data" or teacher is None else relabel(r.compact, teacher)
            v = val_top1(spec, train_model(spec, cs.X, cs.y, 0, cfg.screen_recipe, device=cfg.device), Xv, yv)
            row = {"method": method, "quantizer": quantizer, "bits": r.point.bits, "labels": labels,
                   "rows": r.point.n, "bytes": r.point.bytes, "val_top1": v, "seconds": time.perf_counter() - t}
            if "rows_changed_frac" in r.info:
                row["rows_changed_frac"] = r.info["rows_changed_frac"]
            if labels == "teacher":
                row["relabelled_frac"] = cs.info["teacher_relabelled_frac"]
            built[len(table)] = (cs, dcfg)
            table.append(row)
            if progress:
                print(f"auto: {method} {quantizer} {r.point.bits} bit, {r.point.n} rows, {labels} labels: "
                      f"val {v:.4f}", flush=True)

    for sel in cfg.selections:
        for q, b in quantizer_options(cfg.payload_format):
            score(sel, q, b)
    km = [r for r in table if r["method"] == "kmeans" and r["val_top1"] is not None and r["quantizer"] != "float16"
          and r["labels"] == "data"]
    if cfg.kip and spec.kind == "mlp" and km:
        best_km = max(km, key=lambda r: r["val_top1"])
        score("quadd-kip", best_km["quantizer"], best_km["bits"], iterations=cfg.kip_iterations)
    scored = [i for i, r in enumerate(table) if r["val_top1"] is not None]
    if not scored:
        raise ConfigError(f"no candidate fits the budget of {budget} bytes; raise the budget")
    ranked = sorted(scored, key=lambda i: -table[i]["val_top1"])  # stable: ties keep the table order
    finalists = ranked[:cfg.finalists]
    check = None
    k = ranked[0]
    if len(finalists) > 1:
        check = _check_finalists(data, budget, cfg, cost, finalists, table, built, teacher, make_teacher, progress)
        k = max(finalists, key=lambda i: (table[i]["check_mean"], table[i]["val_top1"]))
    win = built[k][0]
    known: tuple[dict[str, Any], ...] = ()
    if "check_val_top1" in table[k] and list(cfg.protocol.search_seeds) == [0]:
        known = (search_row(cfg.check_recipe, [table[k]["check_val_top1"][0]], [0]),)
    s = search_recipe(spec, win.X, win.y, Xv, yv, cfg.grid, cfg.protocol, known=known,
                      long_top=cfg.recipe_long_top, smoothing=cfg.smoothing)
    for i, r in enumerate(table):
        r["chosen"] = i == k
    w = table[k]
    return AutoChoice(w["method"], w["quantizer"], w["bits"], s.best, s.best_val, table, s.to_dict(),
                      time.perf_counter() - t0, labels=w["labels"],
                      teacher=teacher.info if teacher is not None else None, check=check)


def _check_finalists(data: TaskData, budget: int, cfg: AutoConfig, cost: PayloadCost, finalists: list[int],
                     table: list[dict[str, Any]], built: dict[int, tuple[Any, DistillConfig]],
                     teacher: Teacher | None, make_teacher: Callable[[TaskData], Teacher],
                     progress: bool) -> dict[str, Any]:
    """Step 4 of the module docstring: score every finalist (table index) with ``cfg.check_recipe`` (seed 0) on
    each check split and write ``check_val_top1`` [per split] and ``check_mean`` into its table row."""
    t0 = time.perf_counter()
    spec = data.spec
    split_seeds = [cfg.protocol.split_seed + j for j in range(cfg.check_splits)]
    for i in finalists:
        table[i]["check_val_top1"] = []
    for j, split_seed in enumerate(split_seeds):
        fit, (Xv, yv) = split_train_val(data, replace(cfg.protocol, split_seed=split_seed))
        split_teacher = teacher
        if j > 0 and any(table[i]["labels"] == "teacher" for i in finalists):
            split_teacher = make_teacher(fit)
        rebuilt: dict[DistillConfig, Any] = {}  # one distillation per configuration and split, for both label kinds
        for i in finalists:
            row = table[i]
            cs, dcfg = built[i]
            if j > 0:
                if dcfg not in rebuilt:
                    rebuilt[dcfg] = distill(fit, dcfg, budget, cost=cost, point=choose_point(fit, dcfg, budget, cost))
                cs = rebuilt[dcfg].compact
                if row["labels"] == "teacher":
                    assert split_teacher is not None
                    cs = relabel(cs, split_teacher)
            v = val_top1(spec, train_model(spec, cs.X, cs.y, 0, cfg.check_recipe, device=cfg.device), Xv, yv)
            row["check_val_top1"].append(v)
            if progress:
                print(f"auto: check split {split_seed}: {row['method']} {row['quantizer']} {row['bits']} bit, "
                      f"{row['labels']} labels: val {v:.4f}", flush=True)
    for i in finalists:
        table[i]["check_mean"] = float(np.mean(table[i]["check_val_top1"]))
    return {"recipe": cfg.check_recipe.to_dict(), "split_seeds": split_seeds, "finalists": finalists,
            "seconds": time.perf_counter() - t0}

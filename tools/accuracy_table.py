"""Accuracy per byte under the honest protocol (issue #11): tuned full-data baseline + equal-byte baselines.

    .venv/bin/python tools/accuracy_table.py --ratios 36,180 --out docs            # docs/accuracy-per-byte.{md,json}
    .venv/bin/python tools/accuracy_table.py --ratios 180 --selections kmeans --final-seeds 0 --out /tmp/x  # quick

Protocol (``edge_sdk.server.protocol``): a stratified 15 % validation split of the *training* data; every entry's
training recipe is chosen on it from a fixed grid; the test set is touched once per final row. Entries:

* ``full (tuned)``: the whole training set as float32 with the recipe chosen from ``FULL_GRID`` and the same
  label-smoothing stage as every other entry; ratios in the table are to its mean test Top-1. ``full (fixed 0.1 recipe)``: the same data with the old fixed recipe.
* ``<selection> + <quantizer>``: for every selector, every (quantizer, bits) of ``BASELINE_QUANTIZERS`` is built
  at the largest row count whose signed v2 payload file fits ``full_bytes / ratio`` and screened with one recipe
  (Adam 3e-3 cosine 3,000 steps, seed 0) on the validation split; the best per selector then gets the full
  ``COMPACT_GRID`` search, then the label-smoothing stage (``search_recipe(smoothing=...)``, the epsilons ``--method
  auto`` tries), and the final test runs. Bytes are the size of the signed v2 file actually written.
* ``<selection>+teacher`` (``--teacher``): the same sets with **teacher labels** (``edge_sdk.server.teacher``: each
  row filed under the class a 3-model ensemble trained on the fit part predicts; same bytes), screened, searched
  and tested the same way.
* **Final sets** are the chosen configuration (selection, quantizer, bits, labels, recipe) rebuilt from the
  *whole* training set (fit + validation rows; the teacher retrained on it), which is what ``edge-sdk distill``
  ships and what the full-data baseline's final runs train on; screening and recipe search use the fit part only.
  A cache from before this rule keeps its searches and gets only new final runs (``final_from`` marks new rows).
* ``--figure``: ``docs/rate_accuracy_beam.png``, test Top-1 against payload bytes, one line per family (its best
  entry at each budget), the Pareto frontier bold, and the frontier again with the ONNX graph's bytes added (a
  device that does not have the graph cached yet).

Progress is saved after every stage in ``--cache`` (JSON), so an interrupted run resumes where it stopped. A cached
entry whose search predates the label-smoothing stage gets only the smoothing rows trained (its grid rows are
reused); its final runs are repeated only when that changes its recipe.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeGuard

REPO = Path(__file__).resolve().parents[1]
SCREEN = {"optimizer": "adam", "lr": 3e-3, "schedule": "cosine", "steps": 3000, "batch_size": 128, "weight_decay": 0.0}


def _load_cache(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def _save(path: Path, obj: dict[str, Any]) -> None:
    from edge_sdk.atomic import atomic_path

    with atomic_path(path, make_parents=True) as tmp:
        Path(tmp).write_text(json.dumps(obj, indent=1))


def _written_bytes(cs, num_classes: int, recipe, task: dict, key) -> int:
    """Write ``cs`` as a signed v2 payload (the release form) and return the file size."""
    from edge_sdk.payload import write_payload_v2
    from edge_sdk.payload.taskblob import encode_task_blob

    digest = hashlib.sha256(encode_task_blob(task)).digest()
    with tempfile.TemporaryDirectory() as d:
        info = write_payload_v2(Path(d) / "p.epl", list(cs.groups), num_classes, task_digest=digest,
                                recipe=recipe.to_payload(), signing_key=key)
        return int(info.size)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", default=str(REPO / "datasets/3gpp/reference/train.h5"))
    ap.add_argument("--test", default=str(REPO / "datasets/3gpp/reference/test.h5"))
    ap.add_argument("--ratios", default="36,180")
    ap.add_argument("--selections", default="random,kmeans,herding")
    ap.add_argument("--teacher", default="kmeans,random",
                    help="selections also built with teacher labels (entries '<selection>+teacher'); '' for none")
    ap.add_argument("--figure", action="store_true", help="also draw docs/rate_accuracy_beam.png from the cache")
    ap.add_argument("--min-method-ratio", type=int, default=10,
                    help="run --methods only at ratios >= this (below it every real row fits in a few bits and a "
                         "distillation of thousands of rows costs far more than it can gain)")
    ap.add_argument("--methods", default="quadd-kip",
                    help="distillation methods, stored like the best k-means baseline of each budget (v2 file)")
    ap.add_argument("--search-seeds", default="0,1")
    ap.add_argument("--final-seeds", default="0,1,2")
    ap.add_argument("--out", default=str(REPO / "docs"))
    ap.add_argument("--cache", default=None, help="progress file (default OUT/accuracy-per-byte.cache.json)")
    ap.add_argument("--step-scale", type=float, default=1.0,
                    help="multiply every recipe's step count (smoke tests only; the table uses 1)")
    ap.add_argument("--render-only", action="store_true", help="only write the tables from the cache (no training)")
    ap.add_argument("--stop-after", default=None, help="stop after this stage key (e.g. full, 180x) to keep runs short")
    a = ap.parse_args(argv)

    from edge_sdk.server.pipeline import configure_torch_threads

    configure_torch_threads()
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from edge_sdk.modelspec import TrainRecipe
    from edge_sdk.server.datasets import load_beam
    from edge_sdk.server.distill import DistillConfig, distill
    from edge_sdk.server.distill.auto import DEFAULT as AUTO
    from edge_sdk.server.equal_bytes import BASELINE_QUANTIZERS, build_baseline, max_rows
    from edge_sdk.server.payload_io import PayloadCost
    from edge_sdk.server.protocol import (
        COMPACT_GRID,
        FULL_GRID,
        LEGACY_RECIPE,
        ProtocolConfig,
        final_eval,
        search_recipe,
        split_train_val,
        val_top1,
    )
    from edge_sdk.server.train_eval import train_model

    SMOOTHING = AUTO.smoothing  # the label-smoothing epsilons `--method auto` tries: every entry gets the same

    def scaled(r: TrainRecipe) -> TrainRecipe:
        return r.with_overrides(steps=max(10, int(r.steps * a.step_scale)))

    FULL_GRID, COMPACT_GRID, LEGACY_RECIPE = (tuple(map(scaled, FULL_GRID)), tuple(map(scaled, COMPACT_GRID)),
                                              scaled(LEGACY_RECIPE))
    ints = lambda s: tuple(int(x) for x in s.split(",") if x)  # noqa: E731
    cfg = ProtocolConfig(search_seeds=ints(a.search_seeds), final_seeds=ints(a.final_seeds))
    out = Path(a.out)
    cache_path = Path(a.cache) if a.cache else out / "accuracy-per-byte.cache.json"
    cache = _load_cache(cache_path)
    if a.render_only:
        write_outputs(cache, out)
        if a.figure:
            write_figure(cache, out)
        return 0
    data = load_beam(a.train, a.test)
    fit, (Xv, yv) = split_train_val(data, cfg)
    spec = data.spec
    key = Ed25519PrivateKey.from_private_bytes(bytes(32))  # a fixed key: only the trailer's size matters here
    command = ".venv/bin/python tools/accuracy_table.py " + " ".join(shlex.quote(x) for x in (argv or sys.argv[1:]))
    if command not in cache.setdefault("meta", {}).setdefault("commands", []):
        cache["meta"]["commands"].append(command)  # every invocation that added to this cache
    cache.setdefault("meta", {}).update({"protocol": cfg.to_dict(), "n_train": int(data.X_train.shape[0]),
                                         "n_fit": int(fit.X_train.shape[0]), "n_val": int(Xv.shape[0]),
                                         "n_test": int(data.X_test.shape[0]), "full_bytes": data.full_float32_bytes,
                                         "dim": int(data.dim), "num_classes": int(data.num_classes),
                                         "model": spec.to_dict(), "command": command,
                                         "step_scale": a.step_scale})

    def kpis(res) -> dict[str, Any]:
        return {"top1": res.mean["top1"], "top1_std": res.std["top1"], "per_seed": [s["top1"] for s in res.per_seed],
                "kpis": res.kpis(), "seconds": res.seconds}

    def smoothed(search: dict[str, Any]) -> bool:  # the search has the label-smoothing stage
        return set(SMOOTHING) <= {r["recipe"].get("label_smoothing") for r in search["rows"]
                                  if r.get("stage") == "smoothing"}

    full = cache.get("full")
    if full is None or not smoothed(full["search"]):
        t0 = time.perf_counter()
        print("full data: recipe search on the validation split", flush=True)
        s = search_recipe(spec, fit.X_train, fit.y_train, Xv, yv, FULL_GRID, cfg, progress=True,
                          known=tuple(full["search"]["rows"]) if full else (), smoothing=SMOOTHING)
        if full is not None and s.best == TrainRecipe.from_dict(full["recipe"]):  # the test runs stand
            full = {**full, "search": s.to_dict()}
        else:
            tuned = final_eval(spec, data.X_train, data.y_train, data, s.best, cfg)
            fixed = final_eval(spec, data.X_train, data.y_train, data, LEGACY_RECIPE, cfg)
            full = {"search": s.to_dict(), "recipe": s.best.to_dict(), "test": kpis(tuned),
                    "fixed_recipe_test": kpis(fixed), "seconds": time.perf_counter() - t0}
        cache["full"] = full
        _save(cache_path, cache)
        print(f"full tuned {full['test']['top1']:.4f} ± {full['test']['top1_std']:.4f} "
              f"({_recipe_text(full['recipe'])}); fixed {full['fixed_recipe_test']['top1']:.4f}", flush=True)
    if full["recipe"].get("label_smoothing") and "no_smoothing_test" not in full:
        # the grid's winner without the smoothing the stage added: shown beside the tuned baseline, so a reader sees
        # what the validation-chosen smoothing did to the baseline on test
        plain = TrainRecipe.from_dict(full["recipe"]).with_overrides(label_smoothing=0.0)
        full["no_smoothing_test"] = kpis(final_eval(spec, data.X_train, data.y_train, data, plain, cfg))
        _save(cache_path, cache)
        print(f"full tuned without label smoothing {full['no_smoothing_test']['top1']:.4f}", flush=True)
    if a.stop_after == "full":
        return 0
    teachers: dict[str, Any] = {}

    def teacher(part: str):
        """The ensemble of ``part``: "fit" (screening and recipe search: trained on the fit part only, so
        validation stays honest) or "train" (the final set: the whole training set, as ``edge-sdk distill`` ships)."""
        if part not in teachers:
            from edge_sdk.server.teacher import TEACHER_RECIPE, TeacherConfig, train_teacher

            src = fit if part == "fit" else data
            teachers[part] = train_teacher(src, TeacherConfig(recipe=scaled(TEACHER_RECIPE), device=cfg.device))
            print(f"teacher ({part}) trained in {teachers[part].info['seconds']:.0f} s", flush=True)
        return teachers[part]

    def build(key: str, q: str, bits: int, n: int, part: str = "fit"):
        from edge_sdk.server.teacher import relabel

        sel, _, labels = key.partition("+")
        cs = build_baseline(fit if part == "fit" else data, sel, q, bits, n, seed=0)
        return relabel(cs, teacher(part)) if labels == "teacher" else cs

    def searched(entry: dict[str, Any] | None) -> TypeGuard[dict[str, Any]]:
        """A cached search with a row for every recipe of the grid and the label-smoothing stage."""
        return entry is not None and set(COMPACT_GRID) <= {TrainRecipe.from_dict(r["recipe"])
                                                            for r in entry["search"]["rows"]} and smoothed(entry["search"])

    def unchanged(entry: dict[str, Any] | None, search: Any) -> TypeGuard[dict[str, Any]]:
        """A finished cached entry whose recipe the new search keeps: its final runs stand."""
        return (entry is not None and entry.get("final_from") == "train" and "test" in entry
                and TrainRecipe.from_dict(entry["recipe"]) == search.best)

    def finished(entry: dict[str, Any] | None) -> bool:  # searched on this grid, final set from the whole train set
        return searched(entry) and entry.get("final_from") == "train"

    screen = scaled(TrainRecipe.from_dict({"version": 1, **SCREEN}))
    plan_recipe = max((r.with_overrides(label_smoothing=max(SMOOTHING, default=None)) for r in COMPACT_GRID),
                      key=lambda r: len(json.dumps(r.to_payload())))  # the largest stored recipe
    for ratio in ints(a.ratios):
        budget = data.full_float32_bytes // ratio
        stage = cache.setdefault(f"{ratio}x", {"budget_bytes": budget, "screen": {}, "final": {}})
        keys = [*a.selections.split(","), *(f"{t}+teacher" for t in a.teacher.split(",") if t)]
        for sel in keys:
            for q, bits in BASELINE_QUANTIZERS:
                k = f"{sel}/{q}/{bits}"
                if k in stage["screen"]:
                    continue
                n = max_rows(budget, q, bits, fit, recipe=plan_recipe)
                if n == 0:
                    continue
                cs = build(sel, q, bits, n)
                v = val_top1(spec, train_model(spec, cs.X, cs.y, 0, screen), Xv, yv)
                stage["screen"][k] = {"selection": sel, "quantizer": q, "bits": bits, "n": n, "val_top1": v}
                print(f"{ratio}x screen {k} n={n}: val {v:.4f}", flush=True)
            _save(cache_path, cache)
            entry = stage["final"].get(sel)
            if finished(entry):
                continue
            cands = [r for r in stage["screen"].values() if r["selection"] == sel]
            best = max(cands, key=lambda r: r["val_top1"])
            if not searched(entry):
                # the recipe search: on the set built from the fit part, scored on validation (an older cache's
                # rows are reused; only recipes the grid gained since are trained)
                cs = build(sel, best["quantizer"], best["bits"], best["n"])
                print(f"{ratio}x {sel}: recipe search for {best['quantizer']} {best['bits']} bit, n={best['n']}",
                      flush=True)
                s = search_recipe(spec, cs.X, cs.y, Xv, yv, COMPACT_GRID, cfg, progress=True,
                                  known=tuple(entry["search"]["rows"]) if entry else (), smoothing=SMOOTHING)
                search, recipe = s.to_dict(), s.best
                if unchanged(entry, s):
                    stage["final"][sel] = {**entry, "search": search}
                    _save(cache_path, cache)
                    continue
                stage["final"][sel] = entry = {**best, "search": search, "recipe": recipe.to_dict()}
                _save(cache_path, cache)
            else:  # an older cache: its search stands, only the final set is rebuilt
                search, recipe = entry["search"], TrainRecipe.from_dict(entry["recipe"])
            # the final set: the chosen configuration rebuilt from the whole training set (what `edge-sdk distill`
            # ships; the full-data baseline's final runs train on it too)
            n_final = max_rows(budget, best["quantizer"], best["bits"], data, recipe=plan_recipe)
            cs = build(sel, best["quantizer"], best["bits"], n_final, "train")
            res = final_eval(spec, cs.X, cs.y, data, recipe, cfg)
            size = _written_bytes(cs, data.num_classes, recipe, data.task, key)
            if size > budget:
                raise SystemExit(f"{ratio}x {sel}: written file {size} B is over the budget {budget} B")
            extra = ({"relabelled_frac": cs.info["teacher_relabelled_frac"]}
                     if cs.info.get("labels") == "teacher" else {})
            stage["final"][sel] = {**best, **extra, "n": int(cs.n), "n_search": best["n"], "bytes": size,
                                   "final_from": "train", "search": search, "recipe": recipe.to_dict(),
                                   "test": kpis(res)}
            _save(cache_path, cache)
            print(f"{ratio}x {sel}: test {res.mean['top1']:.4f} ± {res.std['top1']:.4f} ({size} B)", flush=True)
        for method in [m for m in a.methods.split(",") if m and ratio >= a.min_method_ratio]:
            entry = stage["final"].get(method)
            if finished(entry):
                continue
            km = [r for r in stage["screen"].values() if r["selection"] == "kmeans" and r["quantizer"] != "float16"]
            best = max(km, key=lambda r: r["val_top1"]) if km else {"quantizer": "codebook", "bits": 4}
            q, bits = best["quantizer"], best["bits"]
            dcfg = DistillConfig(method=method, quantizer=q, bits=bits, seed=0, device=cfg.device)
            if a.step_scale != 1.0:  # smoke tests: shorter distillation too
                dcfg = replace(dcfg, iterations=max(2, int(dcfg.iterations * a.step_scale)), val_every=1)
            cost = PayloadCost(num_classes=data.num_classes, task={**data.task, "train": plan_recipe.to_payload()},
                               signed=True, payload_format=2)  # the signed v2 file, like the baselines
            if not searched(entry):  # the search: the set distilled from the fit part
                print(f"{ratio}x {method}: distilling the fit part, stored as {q} {bits} bit", flush=True)
                r = distill(fit, dcfg, budget, cost=cost)
                s = search_recipe(spec, r.compact.X, r.compact.y, Xv, yv, COMPACT_GRID, cfg, progress=True,
                                  known=tuple(entry["search"]["rows"]) if entry else (), smoothing=SMOOTHING)
                search, recipe = s.to_dict(), s.best
                if unchanged(entry, s):
                    stage["final"][method] = {**entry, "search": search}
                    _save(cache_path, cache)
                    continue
                stage["final"][method] = {"selection": method, "quantizer": q, "bits": bits, "search": search,
                                          "recipe": recipe.to_dict()}
                _save(cache_path, cache)
            else:  # an older cache: its search stands, only the final set is distilled again
                search, recipe = entry["search"], TrainRecipe.from_dict(entry["recipe"])
            print(f"{ratio}x {method}: distilling the whole training set (final set)", flush=True)
            t0 = time.perf_counter()
            r = distill(data, dcfg, budget, cost=cost)
            secs = time.perf_counter() - t0
            cs = r.compact
            res = final_eval(spec, cs.X, cs.y, data, recipe, cfg)
            size = _written_bytes(cs, data.num_classes, recipe, data.task, key)
            if size > budget:
                raise SystemExit(f"{ratio}x {method}: written file {size} B is over the budget {budget} B")
            moved = {k: r.info[k] for k in ("rows_changed_frac", "move_rms", "move_rms_nn", "selected_iteration")
                     if k in r.info}
            stage["final"][method] = {"selection": method, "quantizer": q, "bits": bits, "n": int(cs.n),
                                      "bytes": size, "distill_seconds": secs, "moved": moved, "final_from": "train",
                                      "search": search, "recipe": recipe.to_dict(), "test": kpis(res)}
            _save(cache_path, cache)
            print(f"{ratio}x {method}: test {res.mean['top1']:.4f} ± {res.std['top1']:.4f} ({size} B), moved {moved}",
                  flush=True)
        if a.stop_after == f"{ratio}x":
            break
    write_outputs(cache, out)
    if a.figure:
        write_figure(cache, out)
    return 0


#: figure families: entry key in a budget's "final" -> legend name (best entry per budget = one point)
FAMILIES = {"random": "random real rows", "kmeans": "per-class k-means", "herding": "herding",
            "random+teacher": "random rows, teacher labels", "kmeans+teacher": "k-means, teacher labels",
            "quadd-kip": "QuADD (KIP)"}


def pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (bytes, top1) points no other point beats with fewer or equal bytes, in byte order."""
    out: list[tuple[float, float]] = []
    for b, t in sorted(points, key=lambda p: (p[0], -p[1])):
        if not out or t > out[-1][1]:
            out.append((b, t))
    return out


def graph_bytes(meta: dict[str, Any], quantizer: str, bits: int, n: int, optimizer: str,
                memo: dict[tuple[Any, ...], int]) -> int:
    """Size of the ONNX training graph a device fetches for this storage (depends on kind, bits and optimizer)."""
    from edge_sdk.modelspec import ModelSpec
    from edge_sdk.server.budget import option_kind
    from edge_sdk.server.onnx_export.export import write_graph_for_payload
    from edge_sdk.server.payload_io import Storage

    key = (quantizer, bits, optimizer)
    if key not in memo:
        lay = Storage(option_kind(quantizer), bits).layouts(n, meta["dim"], meta["num_classes"])
        with tempfile.TemporaryDirectory() as d:
            memo[key] = int(write_graph_for_payload(lay, ModelSpec.from_dict(meta["model"]), optimizer=optimizer,
                                                    out_path=Path(d) / "g.onnx").size)
    return memo[key]


def write_figure(cache: dict[str, Any], out: Path) -> None:
    """docs/rate_accuracy_beam.png: test Top-1 vs payload bytes (module docstring); graph sizes go into the cache
    (``graph_bytes`` per final entry) so the JSON holds every plotted number."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edge_sdk.atomic import atomic_path

    meta, full = cache["meta"], cache["full"]
    memo: dict[tuple[Any, ...], int] = {}
    series: dict[str, list[tuple[float, float, float]]] = {}
    allpts: list[tuple[float, float]] = []
    graph_of: dict[tuple[float, float], int] = {}
    for key in (k for k in cache if k.endswith("x") and k[:-1].isdigit()):
        best_here: tuple[float, float] | None = None
        for name, r in cache[key]["final"].items():
            if name not in FAMILIES or "test" not in r:  # a search whose final run has not happened yet
                continue
            if "graph_bytes" not in r and "dim" in meta:
                r["graph_bytes"] = graph_bytes(meta, r["quantizer"], r["bits"], r["n"], r["recipe"]["optimizer"], memo)
            t = r["test"]
            series.setdefault(name, []).append((r["bytes"], t["top1"], t["top1_std"]))
            if best_here is None or t["top1"] > best_here[1]:
                best_here = (r["bytes"], t["top1"])
            if "graph_bytes" in r:
                graph_of[(r["bytes"], t["top1"])] = r["graph_bytes"]
        if best_here is not None:  # the frontier runs through the best entry of each budget
            allpts.append(best_here)
    fig, ax = plt.subplots(figsize=(9, 5))
    colors = plt.get_cmap("tab10")
    for i, (name, label) in enumerate(FAMILIES.items()):
        pts = sorted(series.get(name, []))
        if pts:
            ax.errorbar([p[0] for p in pts], [100 * p[1] for p in pts], yerr=[100 * p[2] for p in pts],
                        color=colors(i), marker="o", ms=4, lw=1, alpha=0.8, capsize=2, label=label)
    front = pareto(allpts)
    ax.plot([p[0] for p in front], [100 * p[1] for p in front], color="black", lw=3, alpha=0.55,
            label="Pareto frontier: best entry per budget (payload only)")
    if front and all(p in graph_of for p in front):
        ax.plot([p[0] + graph_of[p] for p in front], [100 * p[1] for p in front], color="black", lw=1.5, ls="--",
                label="frontier + ONNX graph (not cached)")
    ref = full["test"]["top1"]
    ax.axhline(100 * ref, color="grey", ls=":", lw=1.2)
    ax.plot([meta["full_bytes"]], [100 * ref], marker="*", ms=12, color="grey", ls="none",
            label=f"full data, tuned ({100 * ref:.1f} %)")
    for k, lab in ((0.95, "0.95x"), (0.90, "0.90x")):
        ax.axhline(100 * k * ref, color="grey", ls="-", lw=0.5, alpha=0.5)
        ax.text(0.01, 100 * k * ref + 0.2, lab + " full data", fontsize=7, color="grey",
                transform=ax.get_yaxis_transform())
    ax.set_xscale("log")
    ax.set_xlabel("bytes on the wire: signed payload v2 file (log scale)")
    ax.set_ylabel("test Top-1 beam accuracy % (3 seeds)")
    ax.set_title("Beam reference data, MLP 128-128: accuracy per byte (recipes chosen on validation)", fontsize=9)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "rate_accuracy_beam.png") as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    with atomic_path(out / "accuracy-per-byte.json") as tmp:
        Path(tmp).write_text(json.dumps(cache, indent=1))


def _recipe_text(r: dict[str, Any]) -> str:
    wd = f" wd {r['weight_decay']:g}" if r.get("weight_decay") and r["optimizer"] == "adam" else ""
    ls = f" ls {r['label_smoothing']:g}" if r.get("label_smoothing") else ""
    return f"{r['optimizer']} lr {r['lr']:g} {r['schedule']} {r['steps']} steps{wd}{ls}"


def write_outputs(cache: dict[str, Any], out: Path) -> None:
    """docs tables from the cached results (every figure below comes from the cache the run wrote)."""
    from edge_sdk.atomic import atomic_path

    meta, full = cache["meta"], cache.get("full")
    if full is None:
        return
    ref = full["test"]["top1"]
    commands = [c for c in meta.get("commands", [meta["command"]]) if "--render-only" not in c]
    lines = [
        "# Accuracy per byte under the honest protocol (beam reference data)",
        "",
        "Generated by `make accuracy-table`, which runs, on one cache, " + "; ".join(f"`{c}`" for c in commands) +
        ". Raw results in `docs/accuracy-per-byte.json`; the figure is `docs/rate_accuracy_beam.png`. Do not edit "
        "by hand.",
        "",
        f"Protocol (`edge_sdk.server.protocol`): training set {meta['n_train']} rows = fit {meta['n_fit']} + "
        f"validation {meta['n_val']} (stratified {meta['protocol']['val_frac']:.0%}, split seed "
        f"{meta['protocol']['split_seed']}); test {meta['n_test']} rows, touched once per row below. Every row's "
        f"training recipe is chosen on the validation split from a fixed grid (seeds {meta['protocol']['search_seeds']}); "
        "screening and recipe search use sets built from the fit part (teacher labels: an ensemble trained on the fit "
        "part); each row's final set is its chosen configuration rebuilt from the whole training set (teacher "
        "trained on it), as `edge-sdk distill` builds its payload and as the full-data baseline's final runs train; "
        f"test Top-1 is the mean ± std over seeds {meta['protocol']['final_seeds']}. Model: MLP "
        f"{'-'.join(str(h) for h in meta['model']['hidden'])}. Bytes: the signed payload v2 file (the release form: "
        "lean header, task blob and graph cached by digest). Ratio: test Top-1 / the tuned full-data baseline.",
        "",
        "| entry | budget | bytes | rows | stored as | recipe (chosen on val) | val Top-1 | test Top-1 | ratio | "
        "rows changed by distillation |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    ft = full["test"]
    lines.append(f"| full data (tuned) | 1x | {meta['full_bytes']} | {meta['n_train']} | float32 | "
                 f"{_recipe_text(full['recipe'])} | {full['search']['best_val_top1']:.4f} | "
                 f"{ft['top1']:.4f} ± {ft['top1_std']:.4f} | 1.000 | - |")
    if "no_smoothing_test" in full:
        nt = full["no_smoothing_test"]
        plain = {**full["recipe"], "label_smoothing": 0.0}
        lines.append(f"| full data (tuned, without label smoothing) | 1x | {meta['full_bytes']} | {meta['n_train']} | "
                     f"float32 | {_recipe_text(plain)} | - | {nt['top1']:.4f} ± {nt['top1_std']:.4f} | "
                     f"{nt['top1'] / ref:.3f} | - |")
    fx = full["fixed_recipe_test"]
    lines.append(f"| full data (0.1 fixed recipe) | 1x | {meta['full_bytes']} | {meta['n_train']} | float32 | "
                 f"sgd lr 0.05 constant 2000 steps | - | {fx['top1']:.4f} ± {fx['top1_std']:.4f} | "
                 f"{fx['top1'] / ref:.3f} | - |")
    for key in sorted((k for k in cache if k.endswith("x") and k[:-1].isdigit()), key=lambda k: int(k[:-1])):
        st = cache[key]
        done = {k: v for k, v in st["final"].items() if "test" in v}  # skip searches without a final run yet
        for sel, r in sorted(done.items(), key=lambda kv: -kv[1]["test"]["top1"]):
            t = r["test"]
            mv = r.get("moved")
            moved = (f"{mv['rows_changed_frac']:.0%} (RMS move {mv['move_rms_nn']:.2f} NN gaps)" if mv else
                     "- (real rows / centroids)")
            base, _, labels = sel.partition("+")
            label = sel if mv else f"{base} + {r['quantizer']}" + (
                f", teacher labels ({r['relabelled_frac']:.0%} of rows relabelled)" if labels else "")
            lines.append(f"| {label} | {key} ({st['budget_bytes']} B) | {r['bytes']} | {r['n']} | "
                         f"{r['quantizer']} {r['bits']} bit | {_recipe_text(r['recipe'])} | "
                         f"{r['search']['best_val_top1']:.4f} | {t['top1']:.4f} ± {t['top1_std']:.4f} | "
                         f"{t['top1'] / ref:.3f} | {moved} |")
    lines += ["", "## Screening (validation Top-1, one recipe: Adam 3e-3 cosine 3000 steps, seed 0)", "",
              "| budget | selection | stored as | rows | val Top-1 |", "|---|---|---|---|---|"]
    for key in sorted((k for k in cache if k.endswith("x") and k[:-1].isdigit()), key=lambda k: int(k[:-1])):
        for r in cache[key]["screen"].values():
            lines.append(f"| {key} | {r['selection']} | {r['quantizer']} {r['bits']} bit | {r['n']} | {r['val_top1']:.4f} |")
    lines += ["", "## Full-data recipe search (validation Top-1, mean of the search seeds)", "",
              "| recipe | val Top-1 |", "|---|---|"]
    for r in full["search"]["rows"]:
        lines.append(f"| {_recipe_text(r['recipe'])} | {r['mean']:.4f} |")
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "accuracy-per-byte.md") as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")
    with atomic_path(out / "accuracy-per-byte.json") as tmp:
        Path(tmp).write_text(json.dumps(cache, indent=1))


if __name__ == "__main__":
    os.environ.setdefault("EDGE_SDK_PROGRESS", "off")
    raise SystemExit(main())

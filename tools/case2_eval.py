"""BM-Case2 evaluation (TR 38.843): temporal models vs sample-and-hold, by period, horizon and speed.

    # data (once; each command < 5 min on one core, --resume continues)
    edge-sdk data generate --preset uma-fr2-case2 --samples 100000 --seed 303 --out runs/c2/v30-train.h5
    edge-sdk data generate --preset uma-fr2-case2 --samples 50000 --seed 404 --out runs/c2/v30-test.h5
    edge-sdk data generate --preset uma-fr2-case2-60kmh --samples 50000 --seed 313 --out runs/c2/v60-train.h5
    edge-sdk data generate --preset uma-fr2-case2-60kmh --samples 20000 --seed 414 --out runs/c2/v60-test.h5
    edge-sdk data generate --preset uma-fr2-case2-90kmh --samples 50000 --seed 323 --out runs/c2/v90-train.h5
    edge-sdk data generate --preset uma-fr2-case2-90kmh --samples 20000 --seed 424 --out runs/c2/v90-test.h5
    # evaluation (the dataset card's scale), one group / Set B at a time (each < 10 min on one core; results
    # are cached per setting in --out, a rerun resumes)
    A="--train-traj 500 --test-traj 200 --max-epochs 25 --patience 4 --lr 0.003 --lr 0.01"
    python tools/case2_eval.py --data runs/c2 --out runs/case2-eval $A --group period
    python tools/case2_eval.py --data runs/c2 --out runs/case2-eval $A --group speed --setb 1/4
    python tools/case2_eval.py --data runs/c2 --out runs/case2-eval $A --group horizon --setb 1/4
    python tools/case2_eval.py --data runs/c2 --out runs/case2-eval $A --group speed --setb all
    python tools/case2_eval.py --out runs/case2-eval --report          # tables -> case2-eval.md
    # learning-curve point: the target's setting alone on the whole 30 km/h training file (< 10 min)
    python tools/case2_eval.py --data runs/c2 --out runs/case2-eval-t1000 --train-traj 1000 --test-traj 200 \
        --max-epochs 25 --patience 4 --lr 0.003 --lr 0.01 --group target --setb 1/4
    # pre-trained spatial model (Set B 1/4 only): independent drops of the same configuration, then the temporal
    # models on the spatial model's per-period Set A log-probabilities (cached in --out/spatial-*; the dataset
    # card's "BM-Case2 evaluation" lists every run)
    edge-sdk data generate --preset uma-fr2-case2-drops --samples 200000 --seed 505 --out runs/c2/drops-train.h5
    python tools/case2_eval.py --data runs/c2 --out runs/case2-eval-sp4 --train-traj 500 --test-traj 200 \
        --max-epochs 25 --patience 4 --lr 0.0003 --lr 0.001 --lr 0.003 --lr 0.01 --group target --setb 1/4 \
        --spatial runs/c2/drops-train.h5

A setting = (speed, measurement period, history K, horizon F, Set B). For each: the training file's trajectories
are split 80/20 into train / validation by trajectory (:func:`edge_sdk.server.case2.split_by_trajectory`); the
task spec (``BeamTaskSpec(case="case2", ...)``, normalisation fitted on train) gives windows of K
Set B measurements one period apart and the Top-1 Set A beam F periods after the last one. Baselines on the test
file: sample-and-hold (S&H) of the last full Set A sweep, S&H of the best measured Set B beam, and the mean power
over the K instants (Set A sweeps, or Set B). Models: an MLP over the window and a GRU (with a linear skip from
the latest step); for each kind the recipe (input normalisation, learning rate) is chosen on validation Top-1, then 3
seeds are trained (early stopping on validation) and scored once on the test file. Percent, mean of 3 seeds.

``--spatial DROPS.h5`` (Set B subsets only): a spatial MLP (Set B at one instant -> Set A Top-1 at that instant) is
first trained on the independent drops (:func:`edge_sdk.server.case2.train_spatial`; checked to share the Case2
files' scenario, arrays and codebooks; 10% of the drops for early stopping) and frozen. The temporal models then
see per period its Set A log-probabilities, alone or with the period's Set B RSRP (the feature set is chosen on
validation with the learning rate). Extra baselines: the spatial model's inference of the latest period held
("S&H inferred Set A") and its log-probabilities averaged over the K periods; and the spatial model's Top-1 at
the same instant on every row of the test trajectories (its single-instant accuracy on this data). Results are
cached as ``<setting>-spatial.json``. ``--spatial-rows CASE2.h5`` also trains the spatial model on the instants of
other trajectories of the same configuration (refused if they could hold the setting's train / validation / test
trajectories). ``--spatial-target local_mean`` trains the spatial model on the Top-1 of each drop's fading-free local
mean instead of its stored instantaneous Top-1 (regenerated from the drops file by
:func:`edge_sdk.server.datagen.local_mean.drops_local_mean`, checked against the stored RSRP, cached in ``--out``;
cache tag ``-lm``): the beam worth holding when the next measurement meets a new small-scale fading draw.
``--spatial-pattern Q`` (with ``--spatial-only --setb 1/4``) trains it on phase Q of the rotating Set B instead
(cache tag ``-rQ``), for ``tools/case2_pool.py --rotating``. ``--spatial-only --breakdown FILE.h5`` measures the spatial model's same-instant Top-1 on its
held-out drops and on every row of the files, split by LOS, distance and trajectory step.

``--score-on TEST.h5`` scores a cached setting's chosen models on another test set without any new selection (the
chosen candidates are retrained with the same seeds on the same train / validation trajectories, which reproduces
them exactly; checked), with 95% per-trajectory (cluster) bootstrap intervals of every Top-1 and of the paired
differences (windows of one trajectory are strongly correlated: the trajectory is the independent unit)::

    python tools/case2_eval.py $SAME_ARGS_AS_THE_CACHED_RUN --test-traj 200 --score-on runs/c2/v30-test.h5
    edge-sdk data generate --preset uma-fr2-case2 --samples 100000 --seed 4040 --out runs/c2t/v30-test.h5
    python tools/case2_eval.py $SAME_ARGS_AS_THE_CACHED_RUN --score-on runs/c2t/v30-test.h5   # all trajectories
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

GROUPS = {
    "period": [dict(kmh=30, period_ms=p, history=4, horizon=1) for p in (40, 80, 160)],
    "horizon": [dict(kmh=30, period_ms=160, history=4, horizon=f) for f in (2, 3)],
    "speed": [dict(kmh=v, period_ms=160, history=4, horizon=1) for v in (60, 90)],
    # the target's setting alone (30 km/h, 160 ms, K = 4, F = 1), e.g. for a learning curve over --train-traj
    "target": [dict(kmh=30, period_ms=160, history=4, horizon=1)],
}
SETB = ("1/4", "all")


def key(s: dict, setb: str) -> str:
    return f"v{s['kmh']}-p{s['period_ms']}-k{s['history']}-f{s['horizon']}-{setb.replace('/', 'of')}"


def run_setting(data: Path, s: dict, setb: str, max_epochs: int, seeds: tuple[int, ...], patience: int = 6,
                lrs: tuple[float, ...] = (1e-3, 3e-3), train_traj: int | None = None,
                test_traj: int | None = None, spatial=None, soft: tuple[float, ...] = ()) -> dict:
    from edge_sdk.beam.h5reader import SERVER_DATA, read_beam_h5
    from edge_sdk.beam.kpis import (
        beam_kpis,
        history_average_scores,
        sample_and_hold_scores,
        sample_and_hold_setb_scores,
    )
    from edge_sdk.beam.taskspec import BeamTaskSpec
    from edge_sdk.server import case2 as C

    t0 = time.perf_counter()
    full = C.first_trajectories(read_beam_h5(data / f"v{s['kmh']}-train.h5", **SERVER_DATA.kwargs()), train_traj)
    te_ds = C.first_trajectories(read_beam_h5(data / f"v{s['kmh']}-test.h5", **SERVER_DATA.kwargs()), test_traj)
    tr_ds, val_ds = C.split_by_trajectory(full, 0.2, seed=0)
    rec = None
    if callable(spatial):  # a spatial model that also learns from this split's Case2 rows
        spatial, rec = spatial(tr_ds, val_ds)
    p = int(round(s["period_ms"] / 1000 / float(full.time_step_s or 0.02)))
    base = BeamTaskSpec(n_tx=full.n_tx, setb=setb, case="case2", history=s["history"], horizon=s["horizon"],
                        period_steps=p)
    splits = C.Splits(base, tr_ds, val_ds, te_ds, spatial=spatial)
    spec = splits.spec("per_sample_max")
    tr, val, te = (splits.arrays("per_sample_max", part) for part in ("train", "val", "test"))
    base = {
        "sh_seta": beam_kpis(sample_and_hold_scores(spec, te_ds), te.rsrp),
        "sh_setb": beam_kpis(sample_and_hold_setb_scores(spec, te_ds), te.rsrp),
        "avg_seta": beam_kpis(history_average_scores(spec, te_ds, seta=True), te.rsrp),
        "avg_setb": beam_kpis(history_average_scores(spec, te_ds, seta=False), te.rsrp),
    }
    extra = {}
    if spatial is not None:
        for name, last in (("sh_spatial", 1), ("avg_spatial", s["history"])):
            base[name] = beam_kpis(C.spatial_baseline_scores(spatial, spec, te_ds, last), te.rsrp)
        one = BeamTaskSpec.from_dict({**spatial.task.to_dict()})  # the same instant, every test row
        extra["spatial_same_instant_test"] = beam_kpis(
            C.scores(spatial.model, spatial.params, one.inputs(te_ds)), one.target_rsrp(te_ds))
        extra["spatial_hold_split"] = hold_split(spatial, spec, te_ds, te.y)
    models = {}
    selection = {}
    for kind in ("mlp", "gru"):
        cands = [c for c in C.default_candidates(max_epochs, patience, lrs) if c.kind == kind]
        if spatial is not None:
            cands = [replace(c, features=f) for c in cands if c.norm == "per_sample_max"
                     for f in ("spatial", "spatial+setb")]
        cands += [C.with_recipe(c, soft_temperature_db=t) for t in soft for c in cands]
        best, table = C.select(cands, splits, seed=0)
        selection[kind] = table
        models[kind] = C.evaluate(best, splits, seeds=seeds)
        print(f"  {key(s, setb)} {kind}: {100 * models[kind]['mean']['top1']:.1f} "
              f"(S&H A {100 * base['sh_seta']['top1']:.1f}, S&H B {100 * base['sh_setb']['top1']:.1f})", flush=True)
    scale = {"train_traj": len(np.unique(full.traj_id)), "test_traj": len(np.unique(te_ds.traj_id)),
             "max_epochs": max_epochs, "patience": patience, "lrs": list(lrs), "seeds": list(seeds)}
    return {"setting": {**s, "setb": setb, "period_steps": p}, "scale": scale, "task": spec.to_dict(), "baselines": base,
            **extra, **({} if rec is None else {"spatial": rec}), "models": models, "selection": selection, "n_train": len(tr.y), "n_val": len(val.y),
            "n_test": len(te.y), "rs_overhead_reduction": spec.rs_overhead_reduction(),
            "seconds": round(time.perf_counter() - t0, 1)}


def hold_split(spatial, spec, te_ds, y: np.ndarray) -> dict:
    """Holding the spatial model's inferred beam of the latest period, split by whether that inference was right
    at the latest measurement instant (``y``: the Top-1 labels at the target instant)."""
    from edge_sdk.server import case2 as C

    anchor = spec.anchors(te_ds)
    held = C.spatial_baseline_scores(spatial, spec, te_ds, 1).argmax(1)
    right_now = held == te_ds.label[anchor]
    right_later = held == y
    return {"same_instant_top1_at_anchors": float(right_now.mean()),
            "hold_top1_if_right": float(right_later[right_now].mean()) if right_now.any() else None,
            "hold_top1_if_wrong": float(right_later[~right_now].mean()) if not right_now.all() else None,
            "seta_hold_top1": float((te_ds.label[anchor] == y).mean())}


def score_on(data: Path, cached: dict, test_path: Path, test_traj: int | None, spatial=None,
             n_boot: int = 10_000) -> tuple[dict, dict[str, np.ndarray]]:
    """Score a cached setting's **chosen** models (no new selection) on another test set, with per-trajectory
    bootstrap intervals. The candidates and seeds are read from ``cached`` (a ``run_setting`` result) and retrained
    on the same train / validation trajectories, which reproduces the cached models (training is deterministic;
    checked: every seed's validation Top-1 must equal the cached one). Returns (result, per-window arrays)."""
    from edge_sdk.beam.h5reader import SERVER_DATA, read_beam_h5
    from edge_sdk.beam.kpis import (
        beam_kpis,
        sample_and_hold_scores,
        sample_and_hold_setb_scores,
        topk_predictions,
    )
    from edge_sdk.beam.taskspec import BeamTaskSpec
    from edge_sdk.server import case2 as C

    t0 = time.perf_counter()
    s, setb = cached["setting"], cached["setting"]["setb"]
    full = C.first_trajectories(read_beam_h5(data / f"v{s['kmh']}-train.h5", **SERVER_DATA.kwargs()),
                                cached["scale"]["train_traj"])
    te_ds = C.first_trajectories(read_beam_h5(test_path, **SERVER_DATA.kwargs()), test_traj)
    tr_ds, val_ds = C.split_by_trajectory(full, 0.2, seed=0)
    base = BeamTaskSpec(n_tx=full.n_tx, setb=setb, case="case2", history=s["history"], horizon=s["horizon"],
                        period_steps=s["period_steps"])
    splits = C.Splits(base, tr_ds, val_ds, te_ds, spatial=spatial)
    spec = splits.spec("per_sample_max")
    te = splits.arrays("per_sample_max", "test")
    genie = te.rsrp.argmax(1)
    anchor = spec.anchors(te_ds)
    score_fns = {"sh_seta": sample_and_hold_scores(spec, te_ds), "sh_setb": sample_and_hold_setb_scores(spec, te_ds)}
    if spatial is not None:
        score_fns["sh_spatial"] = C.spatial_baseline_scores(spatial, spec, te_ds, 1)
    baselines = {k: beam_kpis(v, te.rsrp) for k, v in score_fns.items()}
    correct = {k: (topk_predictions(v, 1)[:, 0] == genie).astype(np.float64) for k, v in score_fns.items()}
    arrays: dict[str, np.ndarray] = {"genie": genie, "traj_id": te_ds.traj_id[anchor]}
    models, same = {}, {}
    for kind in ("mlp", "gru"):
        m = cached["models"][kind]
        preds: dict[str, np.ndarray] = {}
        models[kind] = C.evaluate(C.Candidate.from_dict(m["candidate"]), splits,
                                  seeds=tuple(p["seed"] for p in m["per_seed"]), predictions=preds)
        same[kind] = [a["val_top1"] for a in models[kind]["per_seed"]] == [p["val_top1"] for p in m["per_seed"]]
        arrays[f"{kind}_top1"] = preds["top1"]
        correct[kind] = (preds["top1"] == genie[None]).mean(axis=0)  # per window: share of the seeds right
    for k in score_fns:
        arrays[f"{k}_top1"] = topk_predictions(score_fns[k], 1)[:, 0]
    diffs = [("sh_seta", "gru"), ("sh_seta", "mlp"), ("gru", "sh_setb")]
    if spatial is not None:
        diffs += [("gru", "sh_spatial"), ("sh_seta", "sh_spatial")]
    boot = C.cluster_bootstrap(correct, arrays["traj_id"], diffs=tuple(diffs), n_boot=n_boot)
    gap = boot["diff"]["sh_seta-gru"]
    verdict = ("met" if gap["hi"] <= TARGET_GAP else "not met" if gap["lo"] > TARGET_GAP else "undecided")
    return {"setting": s, "test_file": str(test_path), "test_traj": int(len(np.unique(te_ds.traj_id))),
            "n_test": int(len(te.y)), "train_traj": cached["scale"]["train_traj"], "baselines": baselines,
            "models": models, "same_models_as_cached": same, "bootstrap": boot,
            "target": {"gap_limit": TARGET_GAP, "gap": gap, "verdict_at_level": verdict},
            **({} if spatial is None else {"spatial_hold_split": hold_split(spatial, spec, te_ds, te.y)}),
            "seconds": round(time.perf_counter() - t0, 1)}, arrays


#: the target: the Set B temporal model within 5 points Top-1 of S&H Set A
TARGET_GAP = 0.05


def load_spatial(drops_paths: list[Path], out: Path, hidden: tuple[int, ...], n_drops: int | None,
                 setb: str, case2_rows=None, rows_tag: str = "", epochs: int = 40, target: str = "instantaneous",
                 pattern: int | None = None):
    """Train the spatial model on the drops (the files' rows, concatenated; or load it from ``out``); returns
    (Spatial, record dict); Adam 1e-3, at most ``epochs``, early stopping after 5 epochs without progress.
    ``case2_rows``: (train, validation) Case2 datasets whose rows join the training / replace the validation
    drops (:func:`edge_sdk.server.case2.train_spatial`); ``rows_tag`` names them in the cache file.
    ``target``: the drops' labels, ``"instantaneous"`` (the stored Top-1) or ``"local_mean"`` (the Top-1 of the
    fading-free local mean, :func:`drops_local_means`; cache file tag ``-lm``). ``pattern`` (1-3, Set B 1/4
    only): measure phase ``pattern`` of the rotating Set B (``case2_setb_rotation.rotating_patterns``; phase 0 is
    the fixed pattern) instead; cache file tag ``-r<pattern>``."""
    import numpy as np

    from edge_sdk.atomic import atomic_write_text
    from edge_sdk.beam.taskspec import BeamTaskSpec
    from edge_sdk.server import case2 as C

    tag = (f"spatial-{setb.replace('/', 'of')}-{'-'.join(map(str, hidden))}-n{n_drops or 'all'}{rows_tag}"
           + (f"-{len(drops_paths)}files" if len(drops_paths) > 1 else "") + (f"-e{epochs}" if epochs != 40 else "")
           + ("-lm" if target == "local_mean" else "") + ("" if pattern is None else f"-r{pattern}"))
    meta, weights = out / f"{tag}.json", out / f"{tag}.npz"
    if meta.exists() and weights.exists():
        return read_cached_spatial(meta)
    drops = read_drops(drops_paths, n_drops)
    if pattern is None:
        template = BeamTaskSpec(n_tx=drops.n_tx, setb=setb, case="case2", history=1, horizon=1)
    else:
        from case2_setb_rotation import rotating_patterns

        template = BeamTaskSpec(n_tx=drops.n_tx, setb="explicit", case="case2", history=1, horizon=1,
                                setb_indices=tuple(int(i) for i in rotating_patterns(drops.n_tx)[pattern]))
    labels = None
    if target == "local_mean":
        labels = drops_local_means(drops_paths, out)[: drops.n].argmax(axis=1)
    sp = C.train_spatial(drops, template, hidden=hidden, recipe=C.Recipe(lr=1e-3, max_epochs=epochs, patience=5),
                         case2_rows=case2_rows, labels=labels)
    rec = {"tag": tag, "drops": [str(p) for p in drops_paths], "n_drops": drops.n, "hidden": list(hidden),
           "target": target, "task": sp.task.to_dict(),
           "case2_rows": None if case2_rows is None else [int(d.n) for d in case2_rows],
           "model": sp.model.to_dict(), "epochs": sp.fit.epochs, "val_top1": sp.fit.val_top1,
           "curve": sp.fit.curve, "seconds": round(sp.fit.seconds, 1)}
    tmp = weights.with_suffix(".tmp.npz")
    np.savez(tmp, **sp.to_arrays())
    tmp.replace(weights)
    atomic_write_text(meta, json.dumps(rec, indent=1))
    return sp, rec


def read_cached_spatial(meta: Path):
    """The spatial model :func:`load_spatial` cached as ``<tag>.json`` (record) + ``<tag>.npz`` (weights):
    (Spatial, record dict with ``tag``)."""
    import numpy as np
    import torch

    from edge_sdk.beam.taskspec import BeamTaskSpec
    from edge_sdk.modelspec import ModelSpec
    from edge_sdk.server import case2 as C

    rec = {"tag": meta.stem, **json.loads(meta.read_text())}
    with np.load(meta.with_suffix(".npz")) as z:
        params = {k: torch.from_numpy(z[k]) for k in z.files}
    fit = C.Fit(params, rec["epochs"], rec["val_top1"], rec["curve"], rec["seconds"])
    return C.Spatial(BeamTaskSpec.from_dict(rec["task"]), ModelSpec.from_dict(rec["model"]), params, fit), rec


def drops_local_means(drops_paths: list[Path], out: Path):
    """The fading-free local mean of every drop of the files, concatenated: float32 [N, n_tx] dBm (best Rx beam).
    Regenerated by :func:`edge_sdk.server.datagen.local_mean.drops_local_mean` (checked against the stored
    instantaneous RSRP) and cached per file as ``out/localmean-<folder>-<file>.npy``."""
    import h5py
    import numpy as np

    from edge_sdk.server.datagen.local_mean import drops_local_mean

    parts = []
    for p in drops_paths:
        cache = out / f"localmean-{p.parent.name}-{p.stem}.npy"
        with h5py.File(p, "r") as f:
            n_rows = int(f["rsrp"].shape[0])
        if cache.exists() and np.load(cache, mmap_mode="r").shape[0] != n_rows:  # another file of that name
            cache.unlink()
        if not cache.exists():
            t0 = time.perf_counter()
            lm = drops_local_mean(p, progress=True)
            tmp = cache.with_suffix(".tmp.npy")
            np.save(tmp, lm)
            tmp.replace(cache)
            print(f"  local mean of {p}: {len(lm):,} drops in {time.perf_counter() - t0:.0f} s -> {cache}", flush=True)
        parts.append(np.load(cache))
    return np.concatenate(parts)


def read_drops(drops_paths: list[Path], n_drops: int | None = None):
    """The drops files' rows concatenated (the first ``n_drops`` of them), as one BeamDataset."""
    import numpy as np

    from edge_sdk.beam.dataset import BeamDataset
    from edge_sdk.beam.h5reader import SERVER_DATA, read_beam_h5

    parts = [read_beam_h5(p, **SERVER_DATA.kwargs()) for p in drops_paths]
    drops = parts[0] if len(parts) == 1 else BeamDataset(
        *(np.concatenate([getattr(d, f) for d in parts]) for f in ("rsrp", "label", "los", "indoor", "d2d", "ue_pos",
                                                                 "cell")), attrs=parts[0].attrs)
    return drops if n_drops is None else drops.subset(slice(0, n_drops))


def spatial_rows(path: Path, skip: int, data: Path, kmh: int, train_traj: int | None):
    """(train, validation) trajectories of a BM-Case2 file for the spatial model (:func:`load_spatial`
    ``case2_rows``): the trajectories after the first ``skip``, split 90/10 by trajectory. SystemExit if they
    could hold the setting's train / validation trajectories (same preset and seed as the training file and
    ``skip`` < ``--train-traj``) or its test trajectories (same preset and seed as the test file), or if the file
    is not of the setting's configuration."""
    import h5py

    from edge_sdk.beam.h5reader import SERVER_DATA, read_beam_h5
    from edge_sdk.server import case2 as C

    def ident(p: Path) -> tuple:
        with h5py.File(p, "r") as f:
            return str(f.attrs.get("preset", "")), int(f.attrs.get("seed", -1))

    train_file, test_file = data / f"v{kmh}-train.h5", data / f"v{kmh}-test.h5"
    if ident(path) == ident(test_file):
        raise SystemExit(f"--spatial-rows {path} is a run of the test file's preset and seed: it holds test trajectories")
    if ident(path) == ident(train_file) and (train_traj is None or skip < train_traj):
        raise SystemExit(f"--spatial-rows {path} is a run of the training file's preset and seed: skip at least its "
                         f"--train-traj trajectories (--spatial-rows-skip >= {train_traj or 'all'})")
    a, b = preset_of(path), preset_of(train_file)
    C.check_same_configuration(a, b)
    if a.get("trajectory") != b.get("trajectory"):
        raise SystemExit(f"--spatial-rows {path} has other trajectories than {train_file}")
    ds = read_beam_h5(path, **SERVER_DATA.kwargs())
    ids = np.unique(ds.traj_id)[skip:]
    if len(ids) < 2:
        raise SystemExit(f"--spatial-rows {path}: fewer than 2 trajectories after skipping {skip}")
    return C.split_by_trajectory(ds.subset(np.isin(ds.traj_id, ids)), 0.1, seed=0)


def breakdown(spatial, drops_paths: list[Path], n_drops: int | None, files: list[Path]) -> dict:
    """:func:`edge_sdk.server.case2.spatial_breakdown` on the spatial model's held-out drops and on ``files``."""
    from edge_sdk.beam.h5reader import SERVER_DATA, read_beam_h5
    from edge_sdk.server import case2 as C

    drops = read_drops(drops_paths, n_drops)
    out = {"held-out drops": C.spatial_breakdown(spatial, drops.subset(C.drop_validation_mask(drops.n)))}
    for f in files:
        out[str(f)] = C.spatial_breakdown(spatial, read_beam_h5(f, **SERVER_DATA.kwargs()))
    return out


def _say_breakdown(bd: dict) -> None:
    for name, r in bd.items():
        by = "; ".join(f"{g}: " + ", ".join(f"{k} {_pct(v['top1'])} ({_pct(v['share'])}%)" for k, v in b.items()
                                            if v["n"]) for g, b in r["by"].items())
        print(f"  {name}: {r['n']:,} rows, Top-1 {_pct(r['top1'])}; {by}", flush=True)


def preset_of(path: Path) -> dict:
    """The generator preset stored in a beam HDF5 file (its root attribute only)."""
    import h5py

    with h5py.File(path, "r") as f:
        raw = f.attrs.get("preset", "{}")
    return json.loads(raw.decode() if isinstance(raw, bytes) else str(raw))


def _say(rec: dict) -> None:
    rows = "" if not rec.get("case2_rows") else f" + {rec['case2_rows'][0]:,} Case2 rows (validation: Case2 rows)"
    print(f"spatial model {rec['hidden']} on {rec['n_drops']:,} drops{rows}: validation Top-1 "
          f"{100 * rec['val_top1']:.1f} (epoch {rec['epochs']})", flush=True)


def _say_scored(r: dict) -> None:
    b, g = r["bootstrap"], r["target"]["gap"]
    acc = ", ".join(f"{k} {_pct(v['point'])} [{_pct(v['lo'])}, {_pct(v['hi'])}]" for k, v in b["acc"].items())
    print(f"{r['test_file']} ({r['test_traj']} trajectories, {r['n_test']:,} windows): {acc}; S&H Set A - GRU "
          f"{_pct(g['point'])} [{_pct(g['lo'])}, {_pct(g['hi'])}] points ({100 * b['level']:.0f}% per-trajectory "
          f"bootstrap): target {r['target']['verdict_at_level']}; same models as cached: {r['same_models_as_cached']}",
          flush=True)


def _pct(v: float) -> str:
    return f"{100 * v:.1f}"


def report(out: Path) -> str:
    res = {p.stem: json.loads(p.read_text()) for p in sorted(out.glob("v*.json"))
           if not p.stem.endswith("-spatial") and "-on-" not in p.stem}
    lines = []
    for group, settings in GROUPS.items():
        if group == "target":  # its one setting is a row of "period"
            continue
        lines += [f"### {group}", "",
                  "| speed | period | K | F | Set B | model Top-1 (mean +- std, 3 seeds) | model Top-2 | model 1 dB | "
                  "S&H Set A Top-1 | S&H Set A Top-2 | S&H Set A 1 dB | S&H best Set B Top-1 | mean-of-K Set A Top-1 | "
                  "mean-of-K Set B Top-1 | test windows |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for s in settings:
            for setb in SETB:
                r = res.get(key(s, setb))
                if r is None:
                    continue
                b = r["baselines"]
                for kind in ("mlp", "gru"):
                    m = r["models"][kind]
                    lines.append(
                        f"| {s['kmh']} km/h | {s['period_ms']} ms | {s['history']} | {s['horizon']} | "
                        f"{'Set A' if setb == 'all' else setb} | {kind.upper()} {_pct(m['mean']['top1'])} +- "
                        f"{_pct(m['std']['top1'])} | {_pct(m['mean']['top2'])} | {_pct(m['mean']['top1_1db'])} | "
                        f"{_pct(b['sh_seta']['top1'])} | {_pct(b['sh_seta']['top2'])} | {_pct(b['sh_seta']['top1_1db'])} | "
                        f"{_pct(b['sh_setb']['top1'])} | {_pct(b['avg_seta']['top1'])} | {_pct(b['avg_setb']['top1'])} | "
                        f"{r['n_test']:,} |")
        lines.append("")
    sp = {p.stem: json.loads(p.read_text()) for p in sorted(out.glob("v*-spatial.json"))}
    if sp:
        lines += ["### pre-trained spatial model (Set B, temporal models on its per-period Set A log-probabilities)", "",
                  "| speed | period | K | F | Set B | train traj. | drops | spatial Top-1 same instant | "
                  "S&H inferred Set A | mean-of-K inferred | MLP Top-1 | GRU Top-1 | GRU Top-2 | GRU 1 dB | "
                  "S&H Set A Top-1 | S&H best Set B Top-1 |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in sp.values():
            s, b, m = r["setting"], r["baselines"], r["models"]
            lines.append(
                f"| {s['kmh']} km/h | {s['period_ms']} ms | {s['history']} | {s['horizon']} | {s['setb']} | "
                f"{r['scale']['train_traj']} | {r['spatial']['n_drops']:,} | "
                f"{_pct(r['spatial_same_instant_test']['top1'])} | {_pct(b['sh_spatial']['top1'])} | "
                f"{_pct(b['avg_spatial']['top1'])} | {_pct(m['mlp']['mean']['top1'])} +- {_pct(m['mlp']['std']['top1'])} | "
                f"{_pct(m['gru']['mean']['top1'])} +- {_pct(m['gru']['std']['top1'])} | {_pct(m['gru']['mean']['top2'])} | "
                f"{_pct(m['gru']['mean']['top1_1db'])} | {_pct(b['sh_seta']['top1'])} | {_pct(b['sh_setb']['top1'])} |")
        lines.append("")
    scored = [json.loads(p.read_text()) for p in sorted(out.glob("v*-on-*.json"))]
    if scored:
        lines += ["### chosen models scored on other test sets (95% per-trajectory bootstrap intervals)", "",
                  "| setting | test file | trajectories | windows | S&H Set A | S&H best Set B | S&H inferred Set A | "
                  "MLP | GRU | S&H Set A - GRU (points) | target (gap <= 5) | same models |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        def ci(v: dict) -> str:
            return f"{_pct(v['point'])} [{_pct(v['lo'])}, {_pct(v['hi'])}]"

        for r in scored:
            a, s = r["bootstrap"]["acc"], r["setting"]
            lines.append(f"| {key(s, s['setb'])} | `{r['test_file']}` | {r['test_traj']:,} | {r['n_test']:,} | "
                         f"{ci(a['sh_seta'])} | {ci(a['sh_setb'])} | {ci(a['sh_spatial']) if 'sh_spatial' in a else ''} | "
                         f"{ci(a['mlp'])} | {ci(a['gru'])} | {ci(r['target']['gap'])} | "
                         f"{r['target']['verdict_at_level']} | {all(r['same_models_as_cached'].values())} |")
        lines.append("")
    md = "\n".join(lines)
    (out / "case2-eval.md").write_text(md)
    return md


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("runs/c2"))
    ap.add_argument("--out", type=Path, default=Path("runs/case2-eval"))
    ap.add_argument("--group", choices=sorted(GROUPS), action="append")
    ap.add_argument("--setb", choices=SETB, action="append")
    ap.add_argument("--max-epochs", type=int, default=40)
    ap.add_argument("--patience", type=int, default=6, help="early stopping: epochs without a better validation Top-1")
    ap.add_argument("--lr", type=float, action="append", help="Adam learning rates searched (default 1e-3 and 3e-3)")
    ap.add_argument("--train-traj", type=int, help="use only the first N trajectories of each training file")
    ap.add_argument("--test-traj", type=int, help="use only the first N trajectories of each test file")
    ap.add_argument("--spatial", type=Path, metavar="DROPS.h5", action="append",
                    help="pre-train a spatial model on these independent drops (Set B subsets; see above); "
                         "repeat to use several files")
    ap.add_argument("--spatial-epochs", type=int, default=40, help="spatial model: at most this many epochs")
    ap.add_argument("--spatial-hidden", type=int, action="append", help="spatial MLP widths (default 512 512)")
    ap.add_argument("--spatial-drops", type=int, help="use only the first N drops")
    ap.add_argument("--spatial-pattern", type=int, choices=(1, 2, 3),
                    help="with --spatial-only --setb 1/4: the spatial model measures phase 1-3 of the rotating Set B "
                         "(tools/case2_setb_rotation.py; phase 0 is the fixed pattern) for tools/case2_pool.py "
                         "--rotating")
    ap.add_argument("--spatial-target", choices=("instantaneous", "local_mean"), default="instantaneous",
                    help="the spatial model's training label per drop: the stored Top-1 of the instantaneous RSRP, "
                         "or the Top-1 of its fading-free local mean (regenerated from the drops file's preset, seed "
                         "and chunks, checked against the stored RSRP, cached in --out): the beam worth holding "
                         "when the next measurement meets a new small-scale fading draw")
    ap.add_argument("--spatial-case2-rows", action="store_true",
                    help="also train the spatial model on every instant of the setting's training trajectories and "
                         "stop it early on its validation trajectories' instants (cached per speed and --train-traj)")
    ap.add_argument("--spatial-rows", type=Path, metavar="CASE2.h5",
                    help="also train the spatial model on every instant of this BM-Case2 file's trajectories (after "
                         "--spatial-rows-skip) and stop it early on 10%% of those trajectories' instants: the "
                         "distribution the temporal models see, unlike fresh drops. Refused if it would hold the "
                         "setting's train / validation / test trajectories")
    ap.add_argument("--spatial-rows-skip", type=int, default=0, metavar="N",
                    help="skip the first N trajectories of --spatial-rows (e.g. the --train-traj trajectories when "
                         "it is a longer run of the training file's preset and seed)")
    ap.add_argument("--breakdown", type=Path, metavar="FILE.h5", action="append",
                    help="with --spatial-only: the spatial model's same-instant Top-1 on every row of these files "
                         "(drops or trajectories) and on its held-out drops, split by LOS, indoor, distance and "
                         "trajectory step; writes <spatial model>-breakdown.json")
    ap.add_argument("--spatial-only", action="store_true",
                    help="only train (or load) the spatial model and print its validation Top-1 on held-out drops")
    ap.add_argument("--soft-target-db", type=float, action="append",
                    help="also search every candidate with soft targets softmax(RSRP / T dB) at the target instant "
                         "(Recipe.soft_temperature_db)")
    ap.add_argument("--score-on", type=Path, metavar="TEST.h5",
                    help="only score the cached settings' chosen models (no new selection; same seeds, retrained on "
                         "the same train / validation trajectories) on this test file (--test-traj: its first N "
                         "trajectories), with per-trajectory bootstrap intervals; writes <setting>-on-<tag>.json/.npz")
    ap.add_argument("--bootstrap", type=int, default=10_000, help="bootstrap resamples of --score-on")
    ap.add_argument("--report", action="store_true", help="only render the tables from the cached results")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.spatial_only and args.spatial is None:
        ap.error("--spatial-only needs --spatial")
    if args.score_on is not None and (args.spatial_case2_rows or args.report):
        ap.error("--score-on takes neither --spatial-case2-rows nor --report")
    if args.spatial_rows is not None and (args.spatial is None or args.spatial_case2_rows):
        ap.error("--spatial-rows needs --spatial and excludes --spatial-case2-rows")
    if args.spatial_target == "local_mean" and (args.spatial is None or args.spatial_rows is not None
                                                or args.spatial_case2_rows):
        ap.error("--spatial-target local_mean needs --spatial drops and takes neither --spatial-rows nor "
                 "--spatial-case2-rows (trajectory rows carry instantaneous labels only)")
    if args.breakdown and not args.spatial_only:
        ap.error("--breakdown needs --spatial-only")
    if args.spatial_pattern is not None and (not args.spatial_only or args.setb != ["1/4"] or args.breakdown
                                             or args.spatial_rows is not None):
        ap.error("--spatial-pattern needs --spatial-only --setb 1/4 and takes neither --breakdown nor --spatial-rows")
    if not args.report:
        import torch

        from edge_sdk.atomic import atomic_write_text

        torch.set_num_threads(1)
        for g in args.group or list(GROUPS):
            for s in GROUPS[g]:
                for setb in args.setb or SETB:
                    spatial: Any = None
                    rec = None
                    hidden = tuple(args.spatial_hidden or (512, 512))
                    if args.spatial is not None and setb == "all":
                        continue
                    if args.spatial is not None:  # the drops must share the Case2 data's configuration
                        from edge_sdk.server.case2 import check_same_configuration

                        for drops_file in args.spatial:
                            check_same_configuration(preset_of(drops_file), preset_of(args.data / f"v{s['kmh']}-train.h5"))
                    if args.spatial is not None and args.spatial_case2_rows:
                        def from_rows(tr_ds, val_ds, setb=setb, s=s, hidden=hidden):
                            sp, r = load_spatial(args.spatial, args.out, hidden, args.spatial_drops, setb,
                                                 (tr_ds, val_ds), f"-v{s['kmh']}-t{args.train_traj or 'all'}",
                                                 args.spatial_epochs)
                            _say(r)
                            return sp, r

                        spatial = from_rows
                    elif args.spatial is not None:
                        rows, rows_tag = None, ""
                        if args.spatial_rows is not None:
                            rows = spatial_rows(args.spatial_rows, args.spatial_rows_skip, args.data, s["kmh"],
                                                args.train_traj)
                            rows_tag = f"-rows-{args.spatial_rows.parent.name}-{args.spatial_rows.stem}-skip{args.spatial_rows_skip}"
                        spatial, rec = load_spatial(args.spatial, args.out, hidden, args.spatial_drops, setb, rows,
                                                    rows_tag, epochs=args.spatial_epochs, target=args.spatial_target,
                                                    pattern=args.spatial_pattern)
                        _say(rec)
                        if args.spatial_only:
                            if args.breakdown:
                                bd = breakdown(spatial, args.spatial, args.spatial_drops, args.breakdown)
                                tag = rec.get("tag") or "spatial"
                                atomic_write_text(args.out / f"{tag}-breakdown.json", json.dumps(bd, indent=1))
                                _say_breakdown(bd)
                            continue
                    path = args.out / f"{key(s, setb)}{'' if args.spatial is None else '-spatial'}.json"
                    if args.score_on is not None:
                        if not path.exists():
                            raise SystemExit(f"--score-on needs the cached result {path}: run the evaluation first")
                        cached = json.loads(path.read_text())
                        if rec is not None and (cached["spatial"]["n_drops"], cached["spatial"]["val_top1"]) != (
                                rec["n_drops"], rec["val_top1"]):
                            raise SystemExit(f"{path} was made with another spatial model than --spatial gives")
                        tag = f"{args.score_on.parent.name}-{args.score_on.stem}-t{args.test_traj or 'all'}"
                        r, arrays = score_on(args.data, cached, args.score_on, args.test_traj, spatial, args.bootstrap)
                        r["command"] = "python tools/case2_eval.py " + " ".join(sys.argv[1:] if argv is None else argv)
                        stem = path.with_name(f"{path.stem}-on-{tag}")
                        tmp = stem.with_suffix(".tmp.npz")
                        np.savez(tmp, **arrays)
                        tmp.replace(stem.with_suffix(".npz"))
                        atomic_write_text(stem.with_suffix(".json"), json.dumps(r, indent=1, default=float))
                        _say_scored(r)
                        continue
                    if path.exists():
                        continue
                    r = run_setting(args.data, s, setb, args.max_epochs, (1, 2, 3), patience=args.patience,
                                    lrs=tuple(args.lr or (1e-3, 3e-3)), train_traj=args.train_traj,
                                    test_traj=args.test_traj, spatial=spatial, soft=tuple(args.soft_target_db or ()))
                    if rec is not None:
                        r["spatial"] = rec
                    r["command"] = "python tools/case2_eval.py " + " ".join(sys.argv[1:])
                    atomic_write_text(path, json.dumps(r, indent=1, default=float))
    if not args.spatial_only:
        print(report(args.out))


if __name__ == "__main__":
    np.seterr(divide="ignore")
    main()

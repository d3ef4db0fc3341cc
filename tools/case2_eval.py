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
cached as ``<setting>-spatial.json``.
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
        # holding the inferred beam, split by whether the inference was right at the latest measurement instant
        anchor = spec.anchors(te_ds)
        held = C.spatial_baseline_scores(spatial, spec, te_ds, 1).argmax(1)
        right_now = held == te_ds.label[anchor]
        right_later = held == te.y
        extra["spatial_hold_split"] = {
            "same_instant_top1_at_anchors": float(right_now.mean()),
            "hold_top1_if_right": float(right_later[right_now].mean()) if right_now.any() else None,
            "hold_top1_if_wrong": float(right_later[~right_now].mean()) if not right_now.all() else None,
            "seta_hold_top1": float((te_ds.label[anchor] == te.y).mean())}
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


def load_spatial(drops_paths: list[Path], out: Path, hidden: tuple[int, ...], n_drops: int | None,
                 setb: str, case2_rows=None, rows_tag: str = "", epochs: int = 40):
    """Train the spatial model on the drops (the files' rows, concatenated; or load it from ``out``); returns
    (Spatial, record dict); Adam 1e-3, at most ``epochs``, early stopping after 5 epochs without progress.
    ``case2_rows``: (train, validation) Case2 datasets whose rows join the training / replace the validation
    drops (:func:`edge_sdk.server.case2.train_spatial`); ``rows_tag`` names them in the cache file."""
    import numpy as np
    import torch

    from edge_sdk.atomic import atomic_write_text
    from edge_sdk.beam.dataset import BeamDataset
    from edge_sdk.beam.h5reader import SERVER_DATA, read_beam_h5
    from edge_sdk.beam.taskspec import BeamTaskSpec
    from edge_sdk.modelspec import ModelSpec
    from edge_sdk.server import case2 as C

    tag = (f"spatial-{setb.replace('/', 'of')}-{'-'.join(map(str, hidden))}-n{n_drops or 'all'}{rows_tag}"
           + (f"-{len(drops_paths)}files" if len(drops_paths) > 1 else "") + (f"-e{epochs}" if epochs != 40 else ""))
    meta, weights = out / f"{tag}.json", out / f"{tag}.npz"
    if meta.exists() and weights.exists():
        rec = json.loads(meta.read_text())
        with np.load(weights) as z:
            params = {k: torch.from_numpy(z[k]) for k in z.files}
        fit = C.Fit(params, rec["epochs"], rec["val_top1"], rec["curve"], rec["seconds"])
        return C.Spatial(BeamTaskSpec.from_dict(rec["task"]), ModelSpec.from_dict(rec["model"]), params, fit), rec
    parts = [read_beam_h5(p, **SERVER_DATA.kwargs()) for p in drops_paths]
    drops = parts[0] if len(parts) == 1 else BeamDataset(
        *(np.concatenate([getattr(d, f) for d in parts]) for f in ("rsrp", "label", "los", "indoor", "d2d", "ue_pos",
                                                                 "cell")), attrs=parts[0].attrs)
    if n_drops is not None:
        drops = drops.subset(slice(0, n_drops))
    template = BeamTaskSpec(n_tx=drops.n_tx, setb=setb, case="case2", history=1, horizon=1)
    sp = C.train_spatial(drops, template, hidden=hidden, recipe=C.Recipe(lr=1e-3, max_epochs=epochs, patience=5),
                         case2_rows=case2_rows)
    rec = {"drops": [str(p) for p in drops_paths], "n_drops": drops.n, "hidden": list(hidden), "task": sp.task.to_dict(),
           "case2_rows": None if case2_rows is None else [int(d.n) for d in case2_rows],
           "model": sp.model.to_dict(), "epochs": sp.fit.epochs, "val_top1": sp.fit.val_top1,
           "curve": sp.fit.curve, "seconds": round(sp.fit.seconds, 1)}
    tmp = weights.with_suffix(".tmp.npz")
    np.savez(tmp, **sp.to_arrays())
    tmp.replace(weights)
    atomic_write_text(meta, json.dumps(rec, indent=1))
    return sp, rec


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


def _pct(v: float) -> str:
    return f"{100 * v:.1f}"


def report(out: Path) -> str:
    res = {p.stem: json.loads(p.read_text()) for p in sorted(out.glob("v*.json")) if not p.stem.endswith("-spatial")}
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
    ap.add_argument("--spatial-case2-rows", action="store_true",
                    help="also train the spatial model on every instant of the setting's training trajectories and "
                         "stop it early on its validation trajectories' instants (cached per speed and --train-traj)")
    ap.add_argument("--spatial-only", action="store_true",
                    help="only train (or load) the spatial model and print its validation Top-1 on held-out drops")
    ap.add_argument("--soft-target-db", type=float, action="append",
                    help="also search every candidate with soft targets softmax(RSRP / T dB) at the target instant "
                         "(Recipe.soft_temperature_db)")
    ap.add_argument("--report", action="store_true", help="only render the tables from the cached results")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.spatial_only and args.spatial is None:
        ap.error("--spatial-only needs --spatial")
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
                        spatial, rec = load_spatial(args.spatial, args.out, hidden, args.spatial_drops, setb,
                                                    epochs=args.spatial_epochs)
                        _say(rec)
                        if args.spatial_only:
                            continue
                    path = args.out / f"{key(s, setb)}{'' if args.spatial is None else '-spatial'}.json"
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

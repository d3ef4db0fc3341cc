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

A setting = (speed, measurement period, history K, horizon F, Set B). For each: the training file's trajectories
are split 80/20 into train / validation by trajectory (:func:`edge_sdk.server.case2.split_by_trajectory`); the
task spec (``BeamTaskSpec(case="case2", ...)``, normalisation fitted on train) gives windows of K
Set B measurements one period apart and the Top-1 Set A beam F periods after the last one. Baselines on the test
file: sample-and-hold (S&H) of the last full Set A sweep, S&H of the best measured Set B beam, and the mean power
over the K instants (Set A sweeps, or Set B). Models: an MLP over the window and a GRU (with a linear skip from
the latest step); for each kind the recipe (input normalisation, learning rate) is chosen on validation Top-1, then 3
seeds are trained (early stopping on validation) and scored once on the test file. Percent, mean of 3 seeds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

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
                test_traj: int | None = None) -> dict:
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
    p = int(round(s["period_ms"] / 1000 / float(full.time_step_s or 0.02)))
    base = BeamTaskSpec(n_tx=full.n_tx, setb=setb, case="case2", history=s["history"], horizon=s["horizon"],
                        period_steps=p)
    splits = C.Splits(base, tr_ds, val_ds, te_ds)
    spec = splits.spec("per_sample_max")
    tr, val, te = (splits.arrays("per_sample_max", part) for part in ("train", "val", "test"))
    base = {
        "sh_seta": beam_kpis(sample_and_hold_scores(spec, te_ds), te.rsrp),
        "sh_setb": beam_kpis(sample_and_hold_setb_scores(spec, te_ds), te.rsrp),
        "avg_seta": beam_kpis(history_average_scores(spec, te_ds, seta=True), te.rsrp),
        "avg_setb": beam_kpis(history_average_scores(spec, te_ds, seta=False), te.rsrp),
    }
    models = {}
    selection = {}
    for kind in ("mlp", "gru"):
        cands = [c for c in C.default_candidates(max_epochs, patience, lrs) if c.kind == kind]
        best, table = C.select(cands, splits, seed=0)
        selection[kind] = table
        models[kind] = C.evaluate(best, splits, seeds=seeds)
        print(f"  {key(s, setb)} {kind}: {100 * models[kind]['mean']['top1']:.1f} "
              f"(S&H A {100 * base['sh_seta']['top1']:.1f}, S&H B {100 * base['sh_setb']['top1']:.1f})", flush=True)
    scale = {"train_traj": len(np.unique(full.traj_id)), "test_traj": len(np.unique(te_ds.traj_id)),
             "max_epochs": max_epochs, "patience": patience, "lrs": list(lrs), "seeds": list(seeds)}
    return {"setting": {**s, "setb": setb, "period_steps": p}, "scale": scale, "task": spec.to_dict(), "baselines": base,
            "models": models, "selection": selection, "n_train": len(tr.y), "n_val": len(val.y),
            "n_test": len(te.y), "rs_overhead_reduction": spec.rs_overhead_reduction(),
            "seconds": round(time.perf_counter() - t0, 1)}


def _pct(v: float) -> str:
    return f"{100 * v:.1f}"


def report(out: Path) -> str:
    res = {p.stem: json.loads(p.read_text()) for p in sorted(out.glob("v*.json"))}
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
    ap.add_argument("--report", action="store_true", help="only render the tables from the cached results")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.report:
        import torch

        from edge_sdk.atomic import atomic_write_text

        torch.set_num_threads(1)
        for g in args.group or list(GROUPS):
            for s in GROUPS[g]:
                for setb in args.setb or SETB:
                    path = args.out / f"{key(s, setb)}.json"
                    if path.exists():
                        continue
                    r = run_setting(args.data, s, setb, args.max_epochs, (1, 2, 3), patience=args.patience,
                                    lrs=tuple(args.lr or (1e-3, 3e-3)), train_traj=args.train_traj,
                                    test_traj=args.test_traj)
                    r["command"] = "python tools/case2_eval.py " + " ".join(sys.argv[1:])
                    atomic_write_text(path, json.dumps(r, indent=1, default=float))
    print(report(args.out))


if __name__ == "__main__":
    np.seterr(divide="ignore")
    main()

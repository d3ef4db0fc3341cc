"""BM-Case2, Set B 1/4: a temporal head that pools frozen spatial models over the K periods (log-linear pooling).

    python tools/case2_pool.py --data runs/c2 --out runs/case2-pool --train-traj 500 \
        --spatial-model runs/case2-eval-sp400/spatial-1of4-512-512-nall-2files.json \
        --spatial-model runs/case2-eval-splm/spatial-1of4-512-512-nall-2files-lm.json \
        --test runs/c2/v30-test.h5:200 --test runs/c2t/v30-test.h5          # dataset card (~2 min on one core)

The spatial models are the cached ones of ``tools/case2_eval.py --spatial`` (``<tag>.json`` + ``<tag>.npz``;
e.g. one trained on the stored instantaneous Top-1 and one on the local-mean Top-1, ``--spatial-target``).
Setting: 30 km/h, 160 ms, K = 4, horizon 1 period, Set B 1/4 (the dataset card's target setting). The head
(:class:`edge_sdk.server.case2.Pooling`) scores a window by ``sum_s w_s sum_j decay**j logp_s(t - j)``: an
ensemble of the spatial models and a decaying average over the periods (the small-scale fading of the inputs is
independent from one period to the next, the beam drifts slowly). Its parameters, a weight per model in
{0, 0.5, 1} and decay in {0, 0.25, 0.5}, are fitted by Top-1 on the *train* trajectories (the first
``--train-traj`` of ``v30-train.h5`` split 80/20 by trajectory exactly as ``tools/case2_eval.py`` does), checked on
the validation ones, and scored once on each ``--test FILE[:N]`` (its first N trajectories), against
sample-and-hold of a full Set A sweep, of the best Set B beam, and of each spatial model's latest inference, with
95% per-trajectory bootstrap intervals (:func:`edge_sdk.server.case2.cluster_bootstrap`; paired differences).

``--rotating``: the gNB cycles through the four disjoint Set B 1/4 patterns, one per period, in sync for every UE
(``tools/case2_setb_rotation.py``; the measurement cost is that of the fixed Set B 1/4). Every ``--spatial-model``
is then four comma-separated caches, one spatial model per phase (phase 0: the fixed-pattern model; phases 1-3:
``tools/case2_eval.py --spatial-pattern 1/2/3``), and each period is read by its phase's model
(:func:`edge_sdk.server.case2.rotating_period_log_probs`); S&H of the best Set B beam holds the strongest beam of
the latest period's pattern. Every test set is also split by the time since the track's start.

Writes ``pool.json`` and ``pool.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

SETTING = dict(kmh=30, period_ms=160, history=4, horizon=1, setb="1/4")


def load_cached_spatial(meta: Path):
    """A spatial model cached by ``tools/case2_eval.py`` (``meta`` = its ``<tag>.json``; weights ``<tag>.npz``)."""
    from case2_eval import read_cached_spatial

    weights = meta.with_suffix(".npz")
    if not (meta.is_file() and weights.is_file()):
        raise SystemExit(f"--spatial-model {meta}: need the cached {meta.name} and {weights.name} of "
                         "tools/case2_eval.py --spatial (run it first)")
    return read_cached_spatial(meta)


def parse_test(arg: str) -> tuple[Path, int | None]:
    """``FILE`` or ``FILE:N`` (the first N trajectories)."""
    head, sep, tail = arg.rpartition(":")
    if sep and tail.isdigit():
        return Path(head), int(tail)
    return Path(arg), None


def by_position(correct: dict[str, np.ndarray], traj: np.ndarray, step: np.ndarray, first: str, dt_s: float,
                n_boot: int, parts: int = 3) -> list[dict[str, Any]]:
    """S&H Set A, the hold of the first model and the pooling head on the windows whose latest measurement lies in
    each of ``parts`` equal ranges of the track step (the time since the track's t0, where Procedure A drew the
    clusters), with the paired per-trajectory bootstrap interval of S&H Set A - pooling per range."""
    from edge_sdk.server.case2 import cluster_bootstrap

    edges = np.linspace(int(step.min()), int(step.max()) + 1, parts + 1).round().astype(int)
    out = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        m = (step >= lo) & (step < hi)
        keys = ("sh_seta", f"hold:{first}", "pooling")
        b = cluster_bootstrap({k: correct[k][m] for k in keys}, traj[m], diffs=(("sh_seta", "pooling"),),
                              n_boot=n_boot)
        out.append({"steps": [int(lo), int(hi) - 1], "seconds": [round(lo * dt_s, 2), round((hi - 1) * dt_s, 2)],
                    "windows": int(m.sum()), "acc": {k: float(correct[k][m].mean()) for k in keys},
                    "sh_seta-pooling": b["diff"]["sh_seta-pooling"]})
    return out


def rotating_setb_hold(phase_models, task, ds) -> np.ndarray:
    """S&H of the best measured beam under the rotating Set B, scores [M, n_tx]: each window takes
    :func:`edge_sdk.beam.kpis.sample_and_hold_setb_scores` of its latest period's pattern (phase
    :func:`edge_sdk.server.case2.rotation_phase`, patterns of ``phase_models``' tasks)."""
    from edge_sdk.beam.kpis import sample_and_hold_setb_scores
    from edge_sdk.server.case2 import phase_task, rotation_phase

    _, win, _ = task._case2_rows(ds)
    phase = rotation_phase(ds.t_index[win[:, -1]], task.period_steps, len(phase_models))
    out = np.full((len(win), task.n_tx), -np.inf, np.float32)
    for q, sp in enumerate(phase_models):
        sel = phase == q
        out[sel] = sample_and_hold_setb_scores(phase_task(task, sp), ds)[sel]
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from edge_sdk.beam.h5reader import SERVER_DATA, read_beam_h5
    from edge_sdk.beam.kpis import beam_kpis, sample_and_hold_scores, sample_and_hold_setb_scores
    from edge_sdk.beam.taskspec import BeamTaskSpec
    from edge_sdk.server import case2 as C

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    groups = [[Path(x) for x in str(arg).split(",")] for arg in args.spatial_model]
    if args.rotating and any(len(g) != 4 for g in groups):
        raise SystemExit("--rotating: give every --spatial-model as 4 comma-separated caches, phases 0-3 "
                         "(tools/case2_eval.py --spatial-pattern 1/2/3; phase 0 is the fixed-pattern model)")
    if not args.rotating and any(len(g) != 1 for g in groups):
        raise SystemExit("comma-separated --spatial-model lists (one cache per phase) need --rotating")
    loaded = [[load_cached_spatial(p) for p in g] for g in groups]
    sets = [[sp for sp, _ in g] for g in loaded]
    for g, models in zip(groups, sets, strict=True):
        beams = np.concatenate([sp.task.resolved_setb() for sp in models])
        if args.rotating and len(np.unique(beams)) != len(beams):
            raise SystemExit(f"--rotating: the phase models {[str(p) for p in g]} measure overlapping Set B "
                             "patterns; give one model per disjoint pattern (phase 0 fixed, then --spatial-pattern 1/2/3)")
    spatials = [g[0] for g in sets]
    names = [g[0][1]["tag"] + ("+rotating" if args.rotating else "") for g in loaded]
    full = C.first_trajectories(read_beam_h5(args.data / "v30-train.h5", **SERVER_DATA.kwargs()), args.train_traj)
    p = int(round(SETTING["period_ms"] / 1000 / float(full.time_step_s or 0.02)))
    task = BeamTaskSpec(n_tx=full.n_tx, setb=SETTING["setb"], case="case2", history=SETTING["history"],
                        horizon=SETTING["horizon"], period_steps=p)
    tr_ds, val_ds = C.split_by_trajectory(full, 0.2, seed=0)
    def log_probs(d):
        return C.rotating_period_log_probs(sets, task, d) if args.rotating else C.period_log_probs(spatials, task, d)

    lp_tr, lp_val = (log_probs(d) for d in (tr_ds, val_ds))
    y_tr, y_val = task.labels(tr_ds), task.labels(val_ds)
    pool, table = C.fit_pooling(lp_tr, y_tr)
    hold = C.Pooling(tuple(1.0 if i == 0 else 0.0 for i in range(len(spatials))), 0.0)

    def top1(lp: np.ndarray, y: np.ndarray, pl) -> float:
        return float(np.mean(C.pooling_scores(lp, pl).argmax(1) == y))

    fitted = {"pooling": {"weights": list(pool.weights), "decay": pool.decay},
              "train_top1": top1(lp_tr, y_tr, pool), "val_top1": top1(lp_val, y_val, pool),
              "hold_first_train_top1": top1(lp_tr, y_tr, hold), "hold_first_val_top1": top1(lp_val, y_val, hold)}
    print(f"  pooling {fitted['pooling']}: train {100 * fitted['train_top1']:.1f} / validation "
          f"{100 * fitted['val_top1']:.1f} (hold of {names[0]}: {100 * fitted['hold_first_train_top1']:.1f} / "
          f"{100 * fitted['hold_first_val_top1']:.1f})", flush=True)
    tests = {}
    for arg in args.test or [str(args.data / "v30-test.h5")]:
        path, n = parse_test(arg)
        te = C.first_trajectories(read_beam_h5(path, **SERVER_DATA.kwargs()), n)
        lp = log_probs(te)
        rsrp = task.target_rsrp(te)
        scores = {"sh_seta": sample_and_hold_scores(task, te),
                  "sh_setb": rotating_setb_hold(sets[0], task, te) if args.rotating
                  else sample_and_hold_setb_scores(task, te)}
        for i, name in enumerate(names):
            scores[f"hold:{name}"] = lp[i, :, -1]
        scores["pooling"] = C.pooling_scores(lp, pool)
        genie = rsrp.argmax(1)
        correct = {k: (v.argmax(1) == genie).astype(np.float64) for k, v in scores.items()}
        anchor = task.anchors(te)
        boot = C.cluster_bootstrap(correct, te.traj_id[anchor],
                                   diffs=(("sh_seta", "pooling"), ("pooling", f"hold:{names[0]}"),
                                          ("pooling", "sh_setb")), n_boot=args.bootstrap)
        tests[arg] = {"trajectories": int(len(np.unique(te.traj_id))), "windows": int(len(genie)),
                      "kpis": {k: beam_kpis(v, rsrp) for k, v in scores.items()}, "bootstrap": boot,
                      "by_position": by_position(correct, te.traj_id[anchor], te.t_index[anchor], names[0],
                                                 float(te.time_step_s or 0.02), args.bootstrap)}
    return {"setting": {**SETTING, "period_steps": p}, "rotating": bool(args.rotating),
            "spatial_models": [str(x) for x in args.spatial_model],
            "names": names, "train_traj": int(len(np.unique(full.traj_id))), "n_train": int(len(y_tr)),
            "n_val": int(len(y_val)), "fitted": fitted, "grid": table, "tests": tests,
            "seconds": round(time.perf_counter() - t0, 1), "command": "python tools/case2_pool.py " + " ".join(sys.argv[1:])}


def report(r: dict[str, Any]) -> str:
    """Markdown table of a :func:`run` result (Top-1 percent [95% interval over trajectories])."""
    def ci(v: dict[str, float]) -> str:
        return f"{100 * v['point']:.1f} [{100 * v['lo']:.1f}, {100 * v['hi']:.1f}]"

    holds = [f"hold:{n}" for n in r["names"]]
    head = ("| test file | trajectories / windows | S&H Set A | S&H best Set B | "
            + " | ".join(f"hold `{n}`" for n in r["names"])
            + " | pooling | pooling Top-2 | pooling 1 dB | S&H Set A - pooling (points) | pooling - hold of the first (points) |")
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for path, t in r["tests"].items():
        a, d, k = t["bootstrap"]["acc"], t["bootstrap"]["diff"], t["kpis"]["pooling"]
        lines.append(f"| `{path}` | {t['trajectories']:,} / {t['windows']:,} | {ci(a['sh_seta'])} | {ci(a['sh_setb'])} | "
                     + " | ".join(ci(a[h]) for h in holds)
                     + f" | {ci(a['pooling'])} | {100 * k['top2']:.1f} | {100 * k['top1_1db']:.1f} | "
                     f"{ci(d['sh_seta-pooling'])} | {ci(d['pooling-' + holds[0]])} |")
    lines += ["", "By the time since the track's start (the step of the window's latest measurement; Procedure A draws "
              "the clusters at step 0):", "",
              "| test file | latest measurement at step (s) | windows | S&H Set A | hold of the first | pooling | "
              "S&H Set A - pooling (points) |", "|" + " --- |" * 7]
    for path, t in r["tests"].items():
        for b in t.get("by_position", []):
            a = b["acc"]
            lines.append(f"| `{path}` | {b['steps'][0]}-{b['steps'][1]} ({b['seconds'][0]:.2f}-{b['seconds'][1]:.2f}) | "
                         f"{b['windows']:,} | {100 * a['sh_seta']:.1f} | {100 * a['hold:' + r['names'][0]]:.1f} | "
                         f"{100 * a['pooling']:.1f} | {ci(b['sh_seta-pooling'])} |")
    f = r["fitted"]
    return ("\n".join(lines) + f"\n\nPooling fitted on {r['n_train']:,} training windows: weights "
            f"{f['pooling']['weights']}, decay {f['pooling']['decay']}; train Top-1 {100 * f['train_top1']:.1f}, "
            f"validation {100 * f['val_top1']:.1f} (hold of the first model: {100 * f['hold_first_train_top1']:.1f} / "
            f"{100 * f['hold_first_val_top1']:.1f}).\n")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="folder with v30-train.h5 (and v30-test.h5)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--spatial-model", type=Path, action="append", required=True, metavar="TAG.json",
                    help="a cached spatial model of tools/case2_eval.py --spatial (repeat to pool several; the first "
                         "is the hold reference)")
    ap.add_argument("--rotating", action="store_true",
                    help="rotating Set B: the gNB cycles through the 4 disjoint 1/4 patterns, one per period "
                         "(tools/case2_setb_rotation.py); every --spatial-model is then 4 comma-separated caches, "
                         "one per phase")
    ap.add_argument("--train-traj", type=int, help="use the first N training trajectories (default all)")
    ap.add_argument("--test", action="append", metavar="FILE[:N]", help="test files, optionally their first N "
                    "trajectories (default DATA/v30-test.h5)")
    ap.add_argument("--bootstrap", type=int, default=10_000, help="bootstrap resamples")
    args = ap.parse_args(argv)
    from edge_sdk.atomic import atomic_write_text

    args.out.mkdir(parents=True, exist_ok=True)
    r = run(args)
    atomic_write_text(args.out / "pool.json", json.dumps(r, indent=1, default=float))
    md = report(r)
    atomic_write_text(args.out / "pool.md", md)
    print(md)


if __name__ == "__main__":
    main()

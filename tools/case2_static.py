"""BM-Case2, Set B 1/4: the same predictors on a *static* channel, to split the Set B gap into its causes.

    python tools/case2_static.py --pool runs/case2-pool/pool.json --drops runs/c2t/drops-test.h5 --rows 20000 \
        --out runs/case2-static                                   # dataset card (~5 min on one core)

On a Procedure A track the gap "S&H of a full Set A sweep - Set B model" mixes two things: what measuring 8 of the
32 beams costs, and what the motion over the window costs (the beam drifts between the K periods, and the later
instants of a track are harder to infer from Set B; dataset card). This tool removes the motion. It regenerates
independent drops (a BM-Case1 file of the Case2 configuration, never trained on) with ``K + T`` independent
small-scale fading draws each (:func:`edge_sdk.server.datagen.local_mean.drops_fading_redraws`: the same clusters
and rays, new ray phases). At 30 GHz the fading decorrelates within about 1.5 wavelengths, so a draw is the same
channel one measurement period later *without any drift*: draws ``0 .. K-1`` are the K measured periods (draw 0 the
latest), draws ``K .. K+T-1`` are T independent targets (the Top-1 Set A beam "one period later"; every predictor
is scored on each and the accuracies averaged).

Predictors, exactly those of ``tools/case2_pool.py`` (read from its ``pool.json``: the spatial models and the fitted
pooling head): S&H of the latest full Set A sweep, S&H of the best Set B beam, the hold of each spatial model's
latest inference, and the pooling head over the K looks; plus the mean linear power of K full Set A sweeps and the
equal-weight sum of the first model's log-probabilities over the K looks (the static channel's natural pooling).
Intervals: 95% bootstrap over drops (the independent unit). The table sets the static gap beside the trajectory
gap of the same predictors from ``pool.json``.

Writes ``static.json`` and ``static.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from case2_pool import load_cached_spatial

    from edge_sdk.server import case2 as C
    from edge_sdk.server.datagen.local_mean import drops_fading_redraws

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    try:
        pool_run = json.loads(args.pool.read_text())
        models = [Path(p) for p in pool_run["spatial_models"]]
        names = list(pool_run["names"])
        pooling = C.Pooling(tuple(float(w) for w in pool_run["fitted"]["pooling"]["weights"]),
                            float(pool_run["fitted"]["pooling"]["decay"]))
        k_hist = int(pool_run["setting"]["history"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SystemExit(f"--pool {args.pool}: not a pool.json of tools/case2_pool.py ({exc}); run it first") from None
    if pool_run.get("rotating"):
        raise SystemExit(f"--pool {args.pool} is a rotating Set B pool; the static channel has no periods to rotate "
                         "over, give a fixed-pattern pool.json")
    spatials = [load_cached_spatial(m)[0] for m in models]
    setb = np.asarray(spatials[0].task.resolved_setb(), np.int64)  # the Set B the spatial models measure
    draws = drops_fading_redraws(args.drops, k_hist + args.targets, rows=args.rows, seed=args.seed,
                                 progress=sys.stderr.isatty())  # [N, K + T, n_tx] dBm
    n = draws.shape[0]
    looks, targets = draws[:, :k_hist], draws[:, k_hist:].argmax(axis=2)  # [N, K, n_tx], [N, T]
    # clipped log-probabilities like C.period_log_probs, periods oldest first: [S, N, K, n_tx]
    lp = np.stack([np.stack([np.maximum(sp.log_probs(looks[:, j, setb]), -C.LOGP_FLOOR)
                             for j in range(k_hist - 1, -1, -1)], axis=1) for sp in spatials])
    lin = np.power(10.0, looks / 10.0)
    predictions = {
        "sh_seta": looks[:, 0].argmax(1),
        "seta_mean_of_looks": lin.mean(axis=1).argmax(1),
        "sh_setb": setb[looks[:, 0, setb].argmax(1)],
        **{f"hold:{name}": lp[i, :, -1].argmax(1) for i, name in enumerate(names)},
        "pooling": C.pooling_scores(lp, pooling).argmax(1),
        f"sum:{names[0]}": lp[0].sum(axis=1).argmax(1),
    }
    correct = {k: (p[:, None] == targets).mean(axis=1) for k, p in predictions.items()}
    boot = C.cluster_bootstrap(correct, np.arange(n), n_boot=args.bootstrap,
                               diffs=(("sh_seta", "pooling"), ("sh_seta", f"hold:{names[0]}"),
                                      ("sh_seta", f"sum:{names[0]}"), ("pooling", "sh_setb")))
    trajectories = {}
    for path, t in pool_run.get("tests", {}).items():
        d = t["bootstrap"]["diff"]
        trajectories[path] = {"trajectories": t["trajectories"], "acc": t["bootstrap"]["acc"],
                              "sh_seta-pooling": d["sh_seta-pooling"]}
    return {"pool": str(args.pool), "drops": str(args.drops), "rows": int(n), "history": k_hist,
            "targets": int(args.targets), "seed": int(args.seed), "names": names,
            "pooling": {"weights": list(pooling.weights), "decay": pooling.decay},
            "bootstrap": boot, "trajectories": trajectories, "seconds": round(time.perf_counter() - t0, 1),
            "command": "python tools/case2_static.py " + " ".join(sys.argv[1:])}


def report(r: dict[str, Any]) -> str:
    """Markdown: Top-1 percent [95% interval] of every predictor on the static channel, beside the trajectories."""
    def ci(v: dict[str, float]) -> str:
        return f"{100 * v['point']:.1f} [{100 * v['lo']:.1f}, {100 * v['hi']:.1f}]"

    a, d = r["bootstrap"]["acc"], r["bootstrap"]["diff"]
    first = r["names"][0]
    label = {"sh_seta": "S&H Set A (latest full sweep)", "seta_mean_of_looks": "mean of the K full Set A sweeps",
             "sh_setb": "S&H best Set B beam", "pooling": "pooling head (fitted on trajectories)",
             f"sum:{first}": f"equal-weight sum over the K looks, `{first}`"}
    for name in r["names"]:
        label[f"hold:{name}"] = f"hold `{name}`"
    paths = list(r["trajectories"])
    head = ("| predictor | static channel, " + f"{r['rows']:,} drops x {r['targets']} targets | "
            + " | ".join(f"trajectories `{p}`" for p in paths) + " |")
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for key, text in label.items():
        cells = [ci(t["acc"][key]) if key in t["acc"] else "" for t in r["trajectories"].values()]
        lines.append(f"| {text} | {ci(a[key])} | " + " | ".join(cells) + " |")
    gaps = [ci(t["sh_seta-pooling"]) for t in r["trajectories"].values()]
    lines.append("| **S&H Set A - pooling (points)** | " + f"**{ci(d['sh_seta-pooling'])}** | "
                 + " | ".join(f"**{g}**" for g in gaps) + " |")
    holds = [f"{100 * (t['acc']['sh_seta']['point'] - t['acc']['hold:' + first]['point']):.1f}"
             for t in r["trajectories"].values()]
    lines.append(f"| S&H Set A - hold `{first}` (points) | {ci(d['sh_seta-hold:' + first])} | " + " | ".join(holds) + " |")
    lines.append(f"| S&H Set A - equal-weight sum `{first}` (points) | {ci(d['sh_seta-sum:' + first])} | "
                 + " | ".join("" for _ in paths) + " |")
    return ("\n".join(lines) + f"\n\nK = {r['history']} looks (independent fading draws of each drop, draw 0 the "
            f"latest), pooling weights {r['pooling']['weights']}, decay {r['pooling']['decay']}; static intervals: "
            f"bootstrap over drops, {r['bootstrap']['n_boot']:,} resamples; trajectory figures from `{r['pool']}` "
            "(per-trajectory bootstrap).\n")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pool", type=Path, required=True, help="pool.json of tools/case2_pool.py (models, fitted head)")
    ap.add_argument("--drops", type=Path, required=True,
                    help="a BM-Case1 drops file of the Case2 configuration that no model was trained on")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--rows", type=int, help="use the first N drops (default all)")
    ap.add_argument("--targets", type=int, default=4, help="independent target draws per drop (default 4)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the fading redraws")
    ap.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples over drops")
    args = ap.parse_args(argv)
    if args.targets < 1 or args.bootstrap < 1:
        raise SystemExit("--targets and --bootstrap must be >= 1")
    from edge_sdk.atomic import atomic_write_text

    args.out.mkdir(parents=True, exist_ok=True)
    r = run(args)
    atomic_write_text(args.out / "static.json", json.dumps(r, indent=1, default=float))
    md = report(r)
    atomic_write_text(args.out / "static.md", md)
    print(md)


if __name__ == "__main__":
    main()

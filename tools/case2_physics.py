"""Physical validation of the BM-Case2 trajectories: dwell time, angular drift, correlation vs displacement.

    python tools/case2_physics.py --out runs/case2-physics                 # the dataset-card figures
    python tools/case2_physics.py --out /tmp/p --traj 20 --long-traj 6 --fading-traj 4    # quick look

For 30 / 60 / 90 km/h (presets ``uma-fr2-case2``, ``-60kmh``, ``-90kmh``; ``--traj`` trajectories of 2 s each)
it measures, with :mod:`edge_sdk.server.datagen.physics`: best-beam dwell time (instantaneous L1-RSRP and local
mean), the angular drift rate of the multipath and of the LOS direction, sample-and-hold Top-1 vs lag, and
LOS/NLOS transitions per 100 m; on ``--long-traj`` 90 km/h trajectories of 8 s (200 m) the correlation of the
shadow-fading field, of the large-scale residual and of the per-beam RSRP vs displacement, fitted with
exp(-Delta/D) and compared with the TR 38.901 correlation distances; on ``--fading-traj`` finely sampled tracks
the small-scale fading correlation vs displacement in wavelengths. Writes ``physics.json``, ``physics.md`` and
``physics.png`` to ``--out``. CPU, one thread.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

SPEEDS = {30: "uma-fr2-case2", 60: "uma-fr2-case2-60kmh", 90: "uma-fr2-case2-90kmh"}
LAGS_SH = [1, 2, 4, 8]  # 20 / 40 / 80 / 160 ms


def run(args: argparse.Namespace) -> dict:
    import torch

    from edge_sdk.server.datagen import physics as P
    from edge_sdk.server.datagen.presets import load_preset

    torch.set_num_threads(1)

    def preset(name: str, **traj: object):
        p = load_preset(name)
        assert p.trajectory is not None
        return dataclasses.replace(p, trajectory=dataclasses.replace(
            p.trajectory, **{"time_evolution": args.time_evolution, **traj}))

    res: dict = {"command": "python tools/case2_physics.py " + " ".join(sys.argv[1:]), "speeds": {},
                 "time_evolution": args.time_evolution}
    for kmh, name in SPEEDS.items():
        t0 = time.perf_counter()
        ts = P.track_sample(preset(name), args.traj, seed=args.seed + kmh)
        v = kmh / 3.6
        inst, mean = P._labels(ts.rsrp), P._labels(ts.rsrp_mean)
        res["speeds"][kmh] = {
            "preset": name, "n_traj": args.traj,
            "dwell_inst": P.dwell_time_s(inst, ts.dt), "dwell_mean": P.dwell_time_s(mean, ts.dt),
            "drift": P.drift_rate_deg_s(ts),
            "sh_top1_inst": P.sample_and_hold_top1(inst, LAGS_SH),
            "sh_top1_mean": P.sample_and_hold_top1(mean, LAGS_SH),
            "los_share": float(ts.los.mean()),
            "los_transitions_per_100m": P.los_transitions_per_100m(ts, v),
            "seconds": round(time.perf_counter() - t0, 1),
        }
        print(f"{kmh} km/h done in {res['speeds'][kmh]['seconds']} s", flush=True)
    long = preset(SPEEDS[90], steps_per_trajectory=400)
    ts = P.track_sample(long, args.long_traj, seed=args.seed + 1000, batch_traj=2)
    lags = [1, 2, 4, 8, 16, 32, 64, 96, 128, 192, 256]  # up to 128 m on 200 m tracks
    res["correlation"] = P.correlation_table(ts, lags, 90 / 3.6)
    res["correlation"]["n_traj"] = args.long_traj
    res["correlation"]["tr38901_m"] = P.TR38901_UMA_CORR_M
    res["fading"] = P.fading_correlation(preset(SPEEDS[30]), args.fading_traj, seed=args.seed + 2000)
    return res


def _at(d: dict, k: int) -> float:
    """``d[k]`` for int keys, also after a JSON round trip (string keys)."""
    return float(d[k] if k in d else d[str(k)])


def render_markdown(res: dict) -> str:
    sp = res["speeds"]
    lines = [
        "| speed | dwell, instantaneous (s) | dwell, local mean (s) | multipath AoD drift (deg/s, median / p90) | "
        "AoA drift (deg/s) | LOS AoD drift (deg/s) | S&H Top-1 inst. 20/40/80/160 ms | S&H Top-1 local mean "
        "20/40/80/160 ms | LOS share | LOS changes / 100 m |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for kmh, r in sp.items():
        d = r["drift"]
        sh = "/".join(f"{100 * _at(r['sh_top1_inst'], k):.0f}" for k in LAGS_SH)
        shm = "/".join(f"{100 * _at(r['sh_top1_mean'], k):.0f}" for k in LAGS_SH)
        lines.append(
            f"| {kmh} km/h | {r['dwell_inst']['dwell_s']:.2f} | {r['dwell_mean']['dwell_s']:.2f} | "
            f"{d['aod_median_deg_s']:.2f} / {d['aod_p90_deg_s']:.1f} | {d['aoa_median_deg_s']:.2f} | "
            f"{d['los_aod_median_deg_s']:.2f} | {sh} | {shm} | {100 * r['los_share']:.0f}% | "
            f"{r['los_transitions_per_100m']:.1f} |")
    c = res["correlation"]
    lines += ["", "| displacement (m) | SF LOS | SF NLOS | residual LOS | residual NLOS | per-beam RSRP inst. | "
              "per-beam RSRP local mean |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in c["rows"]:
        if r["displacement_m"] > 130:  # too few same-state pairs on 200 m tracks
            continue
        lines.append(f"| {r['displacement_m']:.1f} | {r['sf_los']:.2f} | {r['sf_nlos']:.2f} | {r['residual_los']:.2f} | "
                     f"{r['residual_nlos']:.2f} | {r['beam_rsrp_inst']:.2f} | {r['beam_rsrp_mean']:.2f} |")
    from edge_sdk.server.datagen.physics import fit_corr_distance

    disp = np.array([r["displacement_m"] for r in c["rows"]])
    f = {k: fit_corr_distance(disp, np.array([r[k] for r in c["rows"]], dtype=float))
         for k in ("sf_los", "sf_nlos", "residual_los", "residual_nlos")}
    c["fits"] = f
    tr = c["tr38901_m"]
    lines += ["", f"Exponential fits rho = a exp(-Delta/D): SF LOS D = {f['sf_los']['D_m']:.0f} m (TR 38.901: "
              f"{tr['sf_los']:.0f} m), SF NLOS D = {f['sf_nlos']['D_m']:.0f} m ({tr['sf_nlos']:.0f} m); large-scale "
              f"residual LOS D = {f['residual_los']['D_m']:.0f} m (a = {f['residual_los']['a']:.2f}), NLOS D = "
              f"{f['residual_nlos']['D_m']:.0f} m (a = {f['residual_nlos']['a']:.2f}) (cluster/ray variables: "
              f"{tr['cluster_los']:.0f} / {tr['cluster_nlos']:.0f} m)."]
    fd = res["fading"]
    lines += ["", "Small-scale fading (instantaneous / local-mean power of the 4 strongest beam pairs, 30 km/h "
              "preset, straight tracks): correlation " + ", ".join(
                  f"{r['rho']:.2f} at {r['displacement_wavelengths']:.2f} lambda" for r in fd["rows"][:6])
              + f"; below 0.5 from {fd['rho_below_0.5_at_wavelengths']:.2f} wavelengths "
              f"({1000 * fd['rho_below_0.5_at_wavelengths'] * fd['wavelength_m']:.1f} mm)."]
    return "\n".join(lines) + "\n"


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    rows = [r for r in res["correlation"]["rows"] if r["displacement_m"] <= 130]
    d = np.array([r["displacement_m"] for r in rows])
    for key, lab in (("sf_los", "SF, LOS"), ("sf_nlos", "SF, NLOS"), ("residual_nlos", "large-scale residual, NLOS"),
                     ("beam_rsrp_mean", "per-beam RSRP, local mean"), ("beam_rsrp_inst", "per-beam RSRP, inst.")):
        ax[0].plot(d, [r[key] for r in rows], marker="o", label=lab)
    xs = np.linspace(0, d.max(), 100)
    tr = res["correlation"]["tr38901_m"]
    ax[0].plot(xs, np.exp(-xs / tr["sf_los"]), "k--", lw=0.8, label="exp(-d/37 m)")
    ax[0].plot(xs, np.exp(-xs / tr["sf_nlos"]), "k:", lw=0.8, label="exp(-d/50 m)")
    ax[0].set_xlabel("displacement (m)")
    ax[0].set_ylabel("correlation")
    ax[0].legend(fontsize=7)
    ax[0].set_title("Correlation vs displacement (90 km/h, 8 s tracks)")
    sp = res["speeds"]
    kmh = [int(k) for k in sp]
    ax[1].plot(kmh, [sp[k]["drift"]["aod_median_deg_s"] for k in sp], marker="o", label="multipath AoD drift (deg/s)")
    ax[1].plot(kmh, [sp[k]["drift"]["los_aod_median_deg_s"] for k in sp], marker="o", label="LOS AoD drift (deg/s)")
    ax[1].plot(kmh, [sp[k]["dwell_mean"]["switches_per_s"] for k in sp], marker="s",
               label="best-beam changes/s (local mean)")
    ax[1].set_xlabel("UE speed (km/h)")
    ax[1].legend(fontsize=7)
    ax[1].set_title("Drift and best-beam changes vs speed")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/case2-physics"))
    ap.add_argument("--traj", type=int, default=300, help="2 s trajectories per speed")
    ap.add_argument("--long-traj", type=int, default=60, help="8 s trajectories at 90 km/h for the correlation")
    ap.add_argument("--fading-traj", type=int, default=40, help="finely sampled tracks for the fading correlation")
    ap.add_argument("--seed", type=int, default=500)
    ap.add_argument("--from-json", type=Path, help="only re-render the tables and plot of an earlier physics.json")
    ap.add_argument("--time-evolution", choices=["procedure_a", "spatial_consistency"], default="procedure_a",
                    help="BM-Case2 route (dataset card): Procedure A (default) or per-position spatial consistency")
    args = ap.parse_args(argv)
    from edge_sdk.atomic import atomic_write_text

    res = json.loads(args.from_json.read_text()) if args.from_json else run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    md = render_markdown(res)
    print(md)
    atomic_write_text(args.out / "physics.json", json.dumps(res, indent=1, default=float))
    atomic_write_text(args.out / "physics.md", md)
    plot(res, args.out / "physics.png")
    return res


if __name__ == "__main__":
    main()

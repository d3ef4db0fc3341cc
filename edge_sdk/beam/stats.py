"""Summary statistics of a beam dataset file (for ``edge-sdk data info``).

:func:`dataset_info` reads and validates the whole file (:func:`~edge_sdk.beam.h5reader.read_beam_h5`) and
returns a JSON-able dict: schema attributes, sizes, Top-1 label histogram, LOS / indoor shares, RSRP
percentiles (dBm) of the best beam pair per sample and of all beam pairs, 2D distance range, and for
BM-Case2 the trajectory count and steps per trajectory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from edge_sdk.beam.dataset import BeamDataset
from edge_sdk.beam.h5reader import H5ReadOptions, read_beam_h5

PERCENTILES = (1, 5, 50, 95, 99)


def _pct(x: np.ndarray) -> dict[str, float]:
    if x.size == 0:
        return {}
    v = np.percentile(x.astype(np.float64), PERCENTILES)
    return {f"p{q}": round(float(a), 3) for q, a in zip(PERCENTILES, v, strict=True)}


def summarize(ds: BeamDataset) -> dict[str, Any]:
    """Statistics of an in-memory dataset (see module docstring)."""
    n = ds.n
    out: dict[str, Any] = {
        "n": n,
        "n_tx": ds.n_tx,
        "n_rx": ds.n_rx,
        "case": ds.case,
        "label_hist": np.bincount(ds.label.astype(np.int64), minlength=ds.n_tx).tolist()
        if n
        else [0] * ds.n_tx,
        "los_share": round(float(ds.los.mean()), 4) if n else None,
        "indoor_share": round(float(ds.indoor.mean()), 4) if n else None,
        "rsrp_best_dbm": _pct(ds.rsrp.max(axis=(1, 2))) if n else {},
        "rsrp_all_dbm": _pct(ds.rsrp.reshape(-1)[:: max(1, ds.rsrp.size // 4_000_000)]) if n else {},
        "d2d_m": (
            {
                "min": round(float(ds.d2d.min()), 2),
                "mean": round(float(ds.d2d.mean()), 2),
                "max": round(float(ds.d2d.max()), 2),
            }
            if n
            else {}
        ),  # fmt: skip
    }
    if ds.case == "case2" and ds.traj_id is not None:
        _, counts = np.unique(ds.traj_id, return_counts=True)
        out["trajectories"] = int(counts.size)
        out["steps_per_trajectory"] = (
            {"min": int(counts.min()), "max": int(counts.max())} if counts.size else {}
        )
        out["time_step_s"] = ds.time_step_s
    return out


def dataset_info(path: Path, *, allow_incomplete: bool = False, h5: H5ReadOptions | None = None) -> dict[str, Any]:
    """Validate ``path`` (read as ``h5`` allows, default :class:`H5ReadOptions`) and return attributes +
    :func:`summarize` statistics + file size."""
    ds = read_beam_h5(path, allow_incomplete=allow_incomplete, **(h5 or H5ReadOptions()).kwargs())
    attrs = dict(ds.attrs)
    attrs["preset"] = ds.preset
    return {"path": str(path), "file_bytes": os.path.getsize(path), "attrs": attrs, "stats": summarize(ds)}


def format_info(d: dict[str, Any]) -> str:
    """Human-readable text of :func:`dataset_info`."""
    a, s = d["attrs"], d["stats"]
    name = a["preset"].get("name", "?") if isinstance(a["preset"], dict) else "?"
    lines = [
        f"file:        {d['path']} ({d['file_bytes']} bytes)",
        f"schema:      {a['schema']} v{a['schema_version']}  complete={a['complete']}",
        f"case:        {a['case']}  preset={name}  seed={a['seed']}",
        f"generator:   {a['generator_version']}  sionna={a['sionna_version']}  created={a['created']}",
        f"samples:     {s['n']}  Tx beams (Set A)={s['n_tx']}  Rx beams={s['n_rx']}",
        f"LOS share:   {s['los_share']}   indoor share: {s['indoor_share']}",
        f"best RSRP:   {s['rsrp_best_dbm']} dBm",
        f"all pairs:   {s['rsrp_all_dbm']} dBm",
        f"2D distance: {s['d2d_m']} m",
        f"Top-1 label histogram (beam 0..{s['n_tx'] - 1}): {s['label_hist']}",
    ]
    if "trajectories" in s:
        lines.append(
            f"trajectories: {s['trajectories']}  steps/trajectory: {s['steps_per_trajectory']}  "
            f"time step: {s['time_step_s']} s"
        )
    return "\n".join(lines)


def card_stats(ds: BeamDataset) -> dict[str, Any]:
    """Label histogram, LOS/indoor share, RSRP spread of a Case1 dataset: the dataset card's statistics
    (``edge-sdk data faithfulness --stats FILE``). RSRP in dBm, distances in m, shares in [0, 1]."""
    r = ds.rsrp.astype(np.float32)
    best = r.max(axis=(1, 2))
    per_tx = r.max(axis=2)
    top2 = np.sort(per_tx, axis=1)[:, -2]
    hist = np.bincount(ds.label.astype(np.int64), minlength=ds.n_tx)
    q = [5, 50, 95]
    return {
        "n": int(ds.n),
        "los_share": float(ds.los.mean()),
        "indoor_share": float(ds.indoor.mean()),
        "los_share_outdoor": float(ds.los[~ds.indoor].mean()) if (~ds.indoor).any() else None,
        "best_rsrp_dbm_p5_p50_p95": [float(v) for v in np.percentile(best, q)],
        "setA_spread_db_p5_p50_p95": [float(v) for v in np.percentile(best - per_tx.min(axis=1), q)],
        "best_minus_2nd_db_p50": float(np.median(best - top2)),
        "label_hist": hist.tolist(),
        "label_hist_by_zenith_row": hist.reshape(4, -1).sum(axis=1).tolist(),
        "d2d_m_min_max": [float(ds.d2d.min()), float(ds.d2d.max())],
    }

"""Fleet outputs: the per-device Parquet table, the summary JSON, the plots and the text report.

``devices.parquet``: one row per (device, round), columns of :class:`~edge_sdk.fleet.engine.DeviceRound` plus the
KPIs on the device's local data (``top1``, ``top2``, ``top1_1db``, ``rsrp_diff_mean``, ``rsrp_diff_p90``,
``n_local``), ``memo`` and the wall-clock columns ``wall_train_s``, ``wall_eval_s``, ``worker`` (the only columns
that differ between backends). Times are seconds, bytes are bytes. The file's metadata carries the scenario name,
seed and the edge-sdk version.

``summary.json``: scenario (parsed TOML and source), versions, seeds, backend, memo, measured timing, the release's
tiers, and per round and tier: devices, failures by reason, time-to-model p50/p90, the time by which 50% / 90% of
the round's devices hold a model, fetch time p50/p90 (channel request to the tier's last byte, devices that
downloaded), bytes per device, bytes on the air (re-sent bytes and headers included), re-sent bytes, requests, drops,
KPI percentiles.

Plots (PNG): ``ttm_cdf.png`` (CDF of time-to-model per tier), ``accuracy_vs_bytes.png`` (fleet mean Top-1, a device
counting with the model it holds and 0 without one, against cumulative bytes on the air, in time order), ``tier_mix.png`` (devices per
tier and failure, per class), ``top1_cdf.png`` (CDF of the devices' Top-1 on their own local data per tier, last
round).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge_sdk.atomic import atomic_write_bytes, atomic_write_text
from edge_sdk.errors import ConfigError
from edge_sdk.units import format_size

WALL_COLUMNS = ("wall_train_s", "wall_eval_s", "worker")
Table = dict[str, list[Any]]


def _pct(values: Sequence[float], q: float) -> float | None:
    v = [x for x in values if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return float(np.percentile(np.asarray(v, np.float64), q)) if v else None


def _coverage_time(ttm: Sequence[float | None], n: int, frac: float) -> float | None:
    """Virtual seconds after publication by which ``frac`` of ``n`` devices hold a model (None: never)."""
    done = sorted(x for x in ttm if x is not None)
    need = int(math.ceil(frac * n))
    if need == 0:
        return 0.0
    return float(done[need - 1]) if len(done) >= need else None


def group_stats(rows: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(rows)
    ok = [r for r in rows if r["failure"] is None]
    trained = [r for r in ok if not r["up_to_date"]]
    fails: dict[str, int] = {}
    for r in rows:
        if r["failure"] is not None:
            fails[r["failure"]] = fails.get(r["failure"], 0) + 1
    ttm = [r["time_to_model_s"] if r["failure"] is None else None for r in rows]
    bytes_down = [r["bytes_down"] for r in rows]
    top1 = [r["top1"] for r in ok if r.get("top1") is not None]
    return {
        "devices": n,
        "with_model": len(ok),
        "trained": len(trained),
        "up_to_date": len(ok) - len(trained),
        "failures": dict(sorted(fails.items())),
        "time_to_model_s": {"p50": _pct([r["time_to_model_s"] for r in trained], 50),
                            "p90": _pct([r["time_to_model_s"] for r in trained], 90)},
        "fetch_time_s": {"p50": _pct([r["fetch_time_s"] for r in trained if r["fetch_time_s"] is not None], 50),
                         "p90": _pct([r["fetch_time_s"] for r in trained if r["fetch_time_s"] is not None], 90)},
        "fleet_time_to_50pct_s": _coverage_time(ttm, n, 0.5),
        "fleet_time_to_90pct_s": _coverage_time(ttm, n, 0.9),
        "bytes_per_device": {"mean": float(np.mean(bytes_down)) if n else None, "p50": _pct(bytes_down, 50),
                             "p90": _pct(bytes_down, 90)},
        "bytes_on_air": int(sum(bytes_down)),
        "bytes_resent": int(sum(r["bytes_resent"] for r in rows)),
        "requests": int(sum(r["requests"] for r in rows)),
        "drops": int(sum(r["drops"] for r in rows)),
        "top1": {"mean": float(np.mean(top1)) if top1 else None, "p10": _pct(top1, 10), "p50": _pct(top1, 50),
                 "p90": _pct(top1, 90)},
        "top1_1db_mean": float(np.mean([r["top1_1db"] for r in ok if r.get("top1_1db") is not None]))
        if top1 else None,
        "rsrp_diff_mean_db": float(np.mean([r["rsrp_diff_mean"] for r in ok if r.get("rsrp_diff_mean") is not None]))
        if top1 else None,
    }


def rows_of(table: Table) -> list[dict[str, Any]]:
    cols = list(table)
    return [dict(zip(cols, vals, strict=True)) for vals in zip(*(table[c] for c in cols), strict=True)]


def fleet_stats(table: Table) -> dict[str, Any]:
    """Stats per round: overall and per tier (rows that failed before a tier was chosen are under ``"-"``)."""
    rows = rows_of(table)
    out: dict[str, Any] = {}
    for r in sorted({row["round"] for row in rows}):
        rr = [row for row in rows if row["round"] == r]
        per_tier: dict[str, Any] = {}
        for tier in sorted({row["tier"] or "-" for row in rr}):
            per_tier[tier] = group_stats([row for row in rr if (row["tier"] or "-") == tier])
        out[str(r)] = {"all": group_stats(rr), "tiers": per_tier}
    return out


# ------------------------------------------------------------------------------------------- files
def write_parquet(table: Table, path: Path, metadata: Mapping[str, str]) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError("writing Parquet needs pyarrow: pip install -e '.[fleet]' in a checkout (docs/install.md)") from None
    import io

    t = pa.table({k: pa.array(v) for k, v in table.items()})
    t = t.replace_schema_metadata({**(t.schema.metadata or {}), **{k.encode(): v.encode() for k, v in metadata.items()}})
    buf = io.BytesIO()
    pq.write_table(t, buf)
    atomic_write_bytes(path, buf.getvalue(), make_parents=True)


def read_parquet(path: Path) -> Table:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError("reading Parquet needs pyarrow: pip install -e '.[fleet]' in a checkout (docs/install.md)") from None
    try:
        return pq.read_table(path).to_pydict()
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a readable fleet table ({exc}); run `edge-sdk fleet simulate` first") from None


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=True, default=str) + "\n", make_parents=True)


# ------------------------------------------------------------------------------------------- plots
def _save(fig: Any, path: Path) -> None:
    """PNG bytes rendered in memory, then written atomically (no half-written plot is ever visible)."""
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue(), make_parents=True)


def write_plots(table: Table, out_dir: Path, title: str = "") -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("plots need matplotlib: pip install -e '.[fleet]' in a checkout (docs/install.md)") from None
    rows = rows_of(table)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    tiers = sorted({r["tier"] for r in rows if r["tier"]})
    colors = {t: f"C{i}" for i, t in enumerate(tiers)}

    # 1. CDF of time-to-model per tier (fraction of the tier's devices holding a model by then)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for t in tiers:
        tr = [r for r in rows if r["tier"] == t and not r["up_to_date"]]
        x = np.sort([r["time_to_model_s"] for r in tr if r["failure"] is None])
        if len(tr) and len(x):
            ax.step(np.concatenate([[x[0]], x]), np.arange(len(x) + 1) / len(tr), where="post",
                    color=colors[t], label=f"{t} ({len(tr)} devices)")
    ax.set_xscale("log")
    ax.set_xlabel("time to model after publication (s, virtual)")
    ax.set_ylabel("fraction of the tier's devices with a model")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(f"{title}: time to model per tier" if title else "time to model per tier", fontsize=10)
    fig.tight_layout()
    paths.append(out_dir / "ttm_cdf.png")
    _save(fig, paths[-1])

    # 2. fleet accuracy vs cumulative bytes on the air: devices in order of their round's end (model ready, or
    # the deadline for a failure); a device counts with the Top-1 of the model it holds now, 0 without one
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    n_dev = len({r["device"] for r in rows})
    ends = []
    for r in rows:
        ends.append((r["published_at_s"] + (r["ended_s"] or 0.0), r["device"], r["round"], r))
    ends.sort(key=lambda e: e[:3])
    held: dict[int, float] = {}
    total = 0.0
    xs, ys = [0.0], [0.0]
    on_air = 0
    for _, dev, _, r in ends:
        on_air += r["bytes_down"]
        new = r["top1"] if r["failure"] is None and r.get("top1") is not None else 0.0
        total += new - held.get(dev, 0.0)
        held[dev] = new
        xs.append(on_air / 1e6)
        ys.append(100 * total / max(n_dev, 1))
    ax.plot(xs, ys, color="k", drawstyle="steps-post")
    for t in sorted({(r["round"], r["published_at_s"]) for r in rows})[1:]:
        done = [x for (e, x) in zip(ends, xs[1:], strict=True) if e[0] >= t[1]]
        if done:
            ax.axvline(done[0], color="0.6", ls=":", lw=1)
            ax.text(done[0], 2, f" round {t[0]}", fontsize=8, color="0.4")
    ax.set_xlabel("cumulative bytes on the air (MB, retries and headers included)")
    ax.set_ylabel("fleet mean Top-1 (%), no model = 0")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.set_title("fleet accuracy vs bytes on the air", fontsize=10)
    fig.tight_layout()
    paths.append(out_dir / "accuracy_vs_bytes.png")
    _save(fig, paths[-1])

    # 3. tier mix per device class (and failures)
    classes = sorted({r["device_class"] for r in rows})
    cats = tiers + sorted({"failed: " + r["failure"] for r in rows if r["failure"]})
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    bottom = np.zeros(len(classes))
    for i, cat in enumerate(cats):
        vals = np.array([sum(1 for r in rows if r["device_class"] == c and (
            (r["failure"] is None and r["tier"] == cat) or (r["failure"] and "failed: " + r["failure"] == cat)))
            for c in classes], np.float64)
        ax.bar(classes, vals, bottom=bottom, label=cat, color=colors.get(cat, f"C{len(tiers) + i}"),
               hatch="//" if cat.startswith("failed") else None)
        bottom += vals
    ax.set_ylabel("device-rounds")
    ax.legend(fontsize=8)
    ax.set_title("tier mix per device class", fontsize=10)
    fig.tight_layout()
    paths.append(out_dir / "tier_mix.png")
    _save(fig, paths[-1])

    # 4. accuracy distribution per tier: CDF of each device's Top-1 on its own local drops, for the models the fleet
    # holds after the last round (devices without a model are left out; their share is in the tier mix)
    last = max((r["round"] for r in rows), default=0)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for t in tiers:
        x = np.sort([100 * r["top1"] for r in rows if r["round"] == last and r["tier"] == t
                     and r["failure"] is None and r.get("top1") is not None])
        if len(x):
            ax.step(np.concatenate([[x[0]], x]), np.arange(len(x) + 1) / len(x), where="post", color=colors[t],
                    label=f"{t}: p10/p50/p90 {np.percentile(x, 10):.1f}/{np.percentile(x, 50):.1f}/"
                          f"{np.percentile(x, 90):.1f} % ({len(x)} devices)")
    ax.set_xlabel("Top-1 on the device's own local drops (%)")
    ax.set_ylabel("fraction of the tier's devices with a model")
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(f"accuracy per tier after round {last}", fontsize=10)
    fig.tight_layout()
    paths.append(out_dir / "top1_cdf.png")
    _save(fig, paths[-1])
    return paths


# ------------------------------------------------------------------------------------------ report
def _s(x: float | None) -> str:
    if x is None:
        return "-"
    if x < 1:
        return f"{x * 1000:.0f} ms"
    if x < 120:
        return f"{x:.1f} s"
    if x < 7200:
        return f"{x / 60:.1f} min"
    return f"{x / 3600:.1f} h"


def _p(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def report_text(summary: Mapping[str, Any]) -> str:
    """The fleet tables as text: per round and tier, time to model, bytes, Top-1 percentiles, failures."""
    lines = []
    sc = summary.get("scenario", {})
    lines.append(f"fleet run: scenario {sc.get('name')} ({sc.get('source')}), {summary.get('devices')} devices, "
                 f"seed {summary.get('seed')}, backend {summary.get('backend', {}).get('backend')}, "
                 f"memo {'on' if summary.get('memo') else 'off'}")
    head = (f"{'round':>5} {'tier':>6} {'devices':>8} {'model':>7} {'fetch p90':>9} {'ttm p50':>9} {'ttm p90':>9} "
            f"{'50% fleet':>10} "
            f"{'90% fleet':>10} {'B/device':>9} {'on air':>9} {'resent':>9} {'drops':>6} {'Top-1 p10/p50/p90 %':>20}  "
            "failures")
    for r, st in summary.get("stats", {}).items():
        lines.append("")
        lines.append(head)
        for tier, g in list(st["tiers"].items()) + [("all", st["all"])]:
            t1 = g["top1"]
            if g["trained"] == 0:  # nobody downloaded or trained anything (all up to date or failed early)
                g = {**g, "time_to_model_s": {"p50": None, "p90": None}, "fetch_time_s": {"p50": None, "p90": None}}
            fails = ", ".join(f"{k} {v}" for k, v in g["failures"].items()) or "-"
            lines.append(
                f"{r:>5} {tier:>6} {g['devices']:>8} {g['with_model']:>7} "
                f"{_s(g.get('fetch_time_s', {}).get('p90')):>9} {_s(g['time_to_model_s']['p50']):>9} "
                f"{_s(g['time_to_model_s']['p90']):>9} {_s(g['fleet_time_to_50pct_s']):>10} "
                f"{_s(g['fleet_time_to_90pct_s']):>10} {format_size(g['bytes_per_device']['mean'] or 0):>9} "
                f"{format_size(g['bytes_on_air']):>9} {format_size(g['bytes_resent']):>9} {g['drops']:>6} "
                f"{_p(t1['p10']) + '/' + _p(t1['p50']) + '/' + _p(t1['p90']):>20}  {fails}")
    if summary.get("live"):
        from edge_sdk.fleet.live import live_text

        lines.append("")
        lines.append(live_text(summary["live"]))
    w = summary.get("wall_s", {})
    if w:
        lines.append("")
        lines.append("wall time: " + ", ".join(f"{k} {v:.1f} s" for k, v in w.items())
                     + f"; {summary.get('devices_per_s', 0):.0f} devices/s")
    return "\n".join(lines)

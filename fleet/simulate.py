"""One fleet run: scenario -> release -> devices -> timeline (engine) -> real training + KPIs (backend) -> outputs.

1. resolve the release (every payload verified, graphs checked, the device's recipe worked out);
2. build the population (class, link, local data of each device) from the scenario's seed;
3. measure this machine's step time per tier and SHA-256 rate (unless the scenario pins ``step_time``);
4. run the discrete-event engine: every device's fetch of every round, on the virtual clock;
5. on the backend: with the memo, train each distinct (payload, graph, config) once, then evaluate every device
   that got a model on its own local data; without it, every device trains its own model, really;
6. write ``devices.parquet``, ``summary.json`` and the plots.

Results (wall-clock columns aside) do not depend on the backend, the number of workers or the batch size.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_sdk._version import __version__
from edge_sdk.atomic import atomic_write_text
from edge_sdk.errors import ConfigError
from edge_sdk.fleet.backends import make_backend
from edge_sdk.fleet.engine import DeviceRound, Engine, Timing
from edge_sdk.fleet.memo import Memo
from edge_sdk.fleet.outputs import (
    WALL_COLUMNS,
    Table,
    fleet_stats,
    report_text,
    write_json,
    write_parquet,
    write_plots,
)
from edge_sdk.fleet.population import Population, build_population, read_pool_positions
from edge_sdk.fleet.release import FleetRelease, Tier, resolve_release
from edge_sdk.fleet.scenario import Scenario
from edge_sdk.fleet.work import KPI_COLUMNS, DeviceResult, DeviceTask, TrainResult, device_task, train_task

#: devices per backend task, by backend (Ray: 50-200 per task amortises its ~1.5 ms per-task cost)
DEFAULT_BATCH = {"inline": 256, "process": 64, "ray": 100}


@dataclass(frozen=True)
class RunOptions:
    backend: str = "process"
    workers: int | None = None
    memo: bool = True
    memo_dir: Path | None = None
    batch_size: int | None = None
    progress: bool = True
    trace: bool = False
    plots: bool = True
    ray_address: str | None = None
    dense_links: bool = False  # draw every second of each link (the live check replays the same realisation)
    live: bool = False  # also fetch for real from edge-sdk serve and compare (use run_live)


@dataclass
class RunResult:
    table: Table
    summary: dict[str, Any]
    events: list[tuple[int, int, float, str, int]]


def _bar(total: int, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm

    # disable=None: silent when stderr is not a terminal (logs stay readable)
    return tqdm(total=total, desc=desc, unit="dev", disable=None if enabled else True, leave=False)


def pool_features(path: Path, tiers: list[Tier]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Model inputs and ideal per-beam RSRP of every pool drop, per distinct task spec:
    {task id: (X float32 [M, D], R float32 [M, n_tx])}."""
    from edge_sdk.beam.h5reader import read_beam_h5
    from edge_sdk.beam.taskspec import BeamTaskSpec

    ds = read_beam_h5(path)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for t in tiers:
        tid = task_id(t)
        if tid in out:
            continue
        if t.task.get("kind") != "beam" or "beam" not in t.task:
            raise ConfigError(f"tier {t.name!r}: the fleet evaluates beam tasks; this payload's task is "
                              f"{t.task.get('kind')!r}")
        spec = BeamTaskSpec.from_dict(t.task["beam"])
        if spec.case != "case1":
            raise ConfigError(f"tier {t.name!r}: local data per device supports BM-Case1 tasks (one drop = one "
                              f"example); this payload is {spec.case}")
        try:
            out[tid] = (np.ascontiguousarray(spec.inputs(ds), np.float32),
                        np.ascontiguousarray(spec.target_rsrp(ds), np.float32))
        except Exception as exc:  # a pool that does not fit the task (other Set A size, ...)
            raise ConfigError(f"[local_data] pool {path} does not fit tier {t.name!r}'s task: {exc}") from None
    return out


def _raw_keys(paths: list[str] | None) -> list[bytes]:
    """Public key files -> raw 32-byte Ed25519 keys (picklable, what every worker verifies payloads with)."""
    from edge_sdk.payload.signing import load_public_key, raw_public

    return [raw_public(load_public_key(p)) for p in paths or []]


def task_id(t: Tier) -> str:
    return hashlib.sha256(json.dumps(t.task.get("beam"), sort_keys=True).encode()).hexdigest()[:16]


def _versions() -> dict[str, str]:
    import onnxruntime

    return {"edge_sdk": __version__, "onnxruntime": onnxruntime.__version__, "numpy": np.__version__,
            "python": sys.version.split()[0], "platform": platform.platform()}


def simulate(scenario: Scenario, out_dir: Path | None = None, options: RunOptions | None = None) -> RunResult:
    opt = options or RunOptions()
    wall: dict[str, float] = {}
    t_all = time.perf_counter()

    t0 = time.perf_counter()
    release: FleetRelease = resolve_release(scenario.release)
    try:
        return _simulate(scenario, release, out_dir, opt, wall, t_all, t0)
    finally:
        release.close()


def _check_policy_tiers(scenario: Scenario, release: FleetRelease) -> None:
    spec = scenario.release
    names = [spec.fixed_tier] if spec.policy == "fixed" else [n for n, _ in spec.shares]
    for rnd in release.rounds:
        have = {t.name for t in rnd.tiers}
        for n in names:
            if n not in have:
                raise ConfigError(f"[release] {spec.policy} names tier {n!r}, but round {rnd.index}'s release "
                                  f"{rnd.manifest.release.release!r} has only {sorted(have)}")


def _simulate(scenario: Scenario, release: FleetRelease, out_dir: Path | None, opt: RunOptions,
              wall: dict[str, float], t_all: float, t0: float) -> RunResult:
    _check_policy_tiers(scenario, release)
    positions = read_pool_positions(scenario.local_data.pool)
    pop: Population = build_population(scenario, positions)
    feats = pool_features(scenario.local_data.pool, release.tiers())
    wall["setup"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    trusted = [str(k) for k in scenario.release.trusted_keys] or None
    if scenario.compute.step_time_s is not None:
        steps = {t.train_key: scenario.compute.step_time_s for t in release.tiers()}
        timing_source = "scenario"
    else:
        from edge_sdk.fleet.calibrate import step_times

        steps = step_times(release, trusted)
        timing_source = "measured"
    from edge_sdk.fleet.calibrate import measure_store_time, measure_verify_times

    cp = scenario.compute
    if cp.verify_time_s is not None:
        manifests = {rnd.manifest.digest: cp.verify_time_s for rnd in release.rounds}
        payloads = {t.train_key: cp.verify_time_s for t in release.tiers()}
    else:
        manifests, payloads = measure_verify_times(release, trusted)
    timing = Timing(steps, payloads, manifests, cp.store_time_s if cp.store_time_s is not None else measure_store_time())
    wall["calibrate"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    engine = Engine(release, scenario.release, scenario.transfer, timing, scenario.classes, pop.class_index,
                    scenario.links, pop.link_names, pop.link_index, scenario.seed, trace=opt.trace,
                    dense_links=opt.dense_links)
    bar = _bar(pop.n, "fleet timeline", opt.progress)
    rows: list[DeviceRound] = engine.run(bar.update)
    bar.close()
    wall["engine"] = time.perf_counter() - t0

    tiers_by_key = {t.train_key: t for t in release.tiers()}
    todo = [i for i, r in enumerate(rows) if r.failure is None and not r.up_to_date]
    tasks = [DeviceTask(i, rows[i].train_key or "", task_id(tiers_by_key[rows[i].train_key or ""]),
                        pop.local[rows[i].device]) for i in todo]
    results: dict[int, DeviceResult] = {}
    train_results: dict[str, TrainResult] = {}
    memo = Memo(opt.memo_dir) if opt.memo else None
    backend = make_backend(opt.backend, workers=opt.workers,
                           **({"address": opt.ray_address} if opt.ray_address else {}))
    try:
        describe = backend.describe()
        blobs = {digest: release.blob_path(digest).read_bytes() for digest in release.blobs()}
        backend.share("blobs", blobs)
        backend.share("trusted_keys", _raw_keys(trusted))
        backend.share("pool", feats)
        t0 = time.perf_counter()
        if memo is not None:
            keys = sorted({t.train_key for t in tasks})
            missing = []
            for k in keys:
                hit = memo.get(k)
                if hit is not None:
                    train_results[k] = hit
                else:
                    missing.append(k)
            for _, res in backend.map(train_task, missing):
                train_results[res.key] = res
                memo.put(res)
            backend.share("models", {k: r.model for k, r in train_results.items() if r.model is not None})
            backend.share("train_errors", {k: r.error for k, r in train_results.items() if r.error})
        wall["train_unique"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        bs = opt.batch_size or DEFAULT_BATCH.get(opt.backend, 64)
        if memo is None:
            bs = max(1, min(bs, math.ceil(len(tasks) / max(1, backend.workers * 4))))
        batches = [(memo is not None, tasks[i: i + bs]) for i in range(0, len(tasks), bs)]
        bar = _bar(len(tasks), "fleet devices", opt.progress)
        for _, out in backend.map(device_task, batches):
            for dres in out:
                results[dres.row] = dres
            bar.update(len(out))
        bar.close()
        wall["devices"] = time.perf_counter() - t0
    finally:
        backend.close()

    live = None
    if opt.live:
        from edge_sdk.fleet.live import live_check

        t0 = time.perf_counter()
        live = live_check(scenario, release, rows, list(pop.link_names), pop.link_index)
        wall["live"] = time.perf_counter() - t0
    table = _table(rows, results)
    wall["total"] = time.perf_counter() - t_all
    n_train = len(train_results) if memo is not None else len(tasks)
    summary: dict[str, Any] = {
        "scenario": {"name": scenario.name, "source": scenario.source, "description": scenario.description,
                     "toml": scenario.raw},
        "devices": scenario.devices,
        "seed": scenario.seed,
        "seeds": "every random stream is derived from (seed, purpose, device, round): edge_sdk.fleet.seeds",
        "versions": _versions(),
        "backend": describe,
        "memo": memo is not None,
        "memo_hits": memo.hits if memo is not None else 0,
        "trainings": n_train,
        "timing": {"source": timing_source, "store_s": timing.store_s,
                   "manifest_verify_s": dict(timing.manifest_verify_s),
                   "payload_verify_s": {tiers_by_key[k].name + f"@r{tiers_by_key[k].round}": v
                                        for k, v in timing.payload_verify_s.items()},
                   "step_time_s": {tiers_by_key[k].name + f"@r{tiers_by_key[k].round}": v for k, v in steps.items()}},
        "release": {"source": release.source, "channel": release.channel,
                    "rounds": [{"round": rnd.index, "release": rnd.manifest.release.release,
                                "manifest": rnd.manifest.digest, "manifest_bytes": rnd.manifest.size,
                                "signature": rnd.manifest.signature_status, "channel_bytes": rnd.channel_bytes,
                                "tiers": [{"tier": t.name, "payload": t.payload.digest, "payload_bytes": t.payload.size,
                                           "graph": t.graph.digest, "graph_bytes": t.graph.size,
                                           "train_steps": t.train_steps, "expected_top1": t.expected_top1,
                                           "train_config": t.train_config} for t in rnd.tiers]}
                               for rnd in release.rounds]},
        "train": {k: {"steps": r.steps, "final_loss": r.final_loss, "wall_s": r.wall_s, "error": r.error}
                  for k, r in train_results.items()},
        "stats": fleet_stats(table),
        "wall_s": wall,
        "devices_per_s": len(rows) / wall["total"] if wall["total"] > 0 else None,
    }
    if live is not None:
        summary["live"] = live
    if out_dir is not None:
        write_outputs(out_dir, table, summary, engine.events if opt.trace else None, plots=opt.plots)
    return RunResult(table, summary, engine.events)


def run_live(scenario: Scenario, out_dir: Path | None = None, options: RunOptions | None = None) -> RunResult:
    """``--live``: simulate at most 50 devices of ``scenario`` (the release's head round, links always on, no poll
    delay, every second of each link drawn) and fetch the same release for real from ``edge-sdk serve`` on loopback
    with each device's link shaped on the client (:mod:`edge_sdk.fleet.live`); ``summary["live"]`` compares."""
    from dataclasses import replace

    from edge_sdk.fleet.live import live_scenario

    opt = replace(options or RunOptions(), dense_links=True, live=True)
    return simulate(live_scenario(scenario), out_dir, opt)


def _table(rows: list[DeviceRound], results: dict[int, DeviceResult]) -> Table:
    cols = DeviceRound.columns()
    table: Table = {c: [] for c in cols}
    for c in (*KPI_COLUMNS, "n_local", "memo", *WALL_COLUMNS):
        table[c] = []
    last: dict[int, dict[str, Any]] = {}  # device -> KPIs of the model it holds
    for i, r in enumerate(rows):
        res = results.get(i)
        if res is not None and res.error is not None:
            r.failure, r.failure_detail = "train_failed", res.error
            r.time_to_model_s = None
        for c in cols:
            table[c].append(getattr(r, c))
        kp: dict[str, Any] | None = None
        if res is not None and res.kpis is not None:
            kp = {**res.kpis, "n_local": res.n_local}
            last[r.device] = kp
        elif r.up_to_date:
            kp = last.get(r.device)
        for c in (*KPI_COLUMNS, "n_local"):
            table[c].append(None if kp is None else kp[c])
        table["memo"].append(None if res is None else res.memo_hit)
        table["wall_train_s"].append(None if res is None else res.wall_train_s)
        table["wall_eval_s"].append(None if res is None else res.wall_eval_s)
        table["worker"].append(None if res is None else res.worker)
        if r.failure is not None:
            last.pop(r.device, None)  # a failed round leaves the device without a model
    return table


def write_outputs(out_dir: Path, table: Table, summary: dict[str, Any],
                  events: list[tuple[int, int, float, str, int]] | None = None, plots: bool = True) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {"edge_sdk.fleet.scenario": str(summary["scenario"]["name"]), "edge_sdk.fleet.seed": str(summary["seed"]),
            "edge_sdk.version": __version__}
    write_parquet(table, out_dir / "devices.parquet", meta)
    if events is not None:
        ev: Table = {"device": [], "round": [], "t_s": [], "event": [], "bytes": []}
        for d, r, t, what, b in events:
            for k, v in zip(ev, (d, r, t, what, b), strict=True):
                ev[k].append(v)
        write_parquet(ev, out_dir / "events.parquet", meta)
    if plots:
        summary["plots"] = [p.name for p in write_plots(table, out_dir, summary["scenario"]["name"])]
    write_json(out_dir / "summary.json", summary)
    atomic_write_text(out_dir / "report.txt", report_text(summary) + "\n")

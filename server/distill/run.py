"""The body of ``edge-sdk distill``: load data, plan the budget, distill, write payload + graph, evaluate,
write report.json. Kept out of the CLI module so that it can be called from Python and from
tools/distill_table.py.

``run_distill(...) -> dict`` returns the report (also written to ``out_dir/report.json``).
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from edge_sdk.server.budget import budget_from_compression, parse_budget, parse_compression, search_sweet_spot
from edge_sdk.server.datasets import TaskData, load_beam, load_task
from edge_sdk.server.distill.base import RAW, DistillConfig, choose_point, provenance_for, resolve_method
from edge_sdk.server.payload_io import layouts_for, read_compact, write_compact
from edge_sdk.server.report import build_report, write_report
from edge_sdk.server.train_eval import EvalConfig, evaluate_compact

from edge_sdk.errors import ConfigError, EdgeSdkError

PAYLOAD_NAME = "payload.epl"
GRAPH_NAME = "graph.onnx"
#: bit widths the sweet-spot search tries per quantizer
AUTO_BITS = {"uniform": (2, 3, 4, 8), "apot": (3, 5), "codebook": (1, 2, 3, 4)}


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_budget(data: TaskData, budget: str | int | None, compression: str | float | None) -> tuple[int | None, dict]:
    """Byte budget + its description for the report."""
    if budget is not None:
        b = parse_budget(budget)
        return b, {"bytes": b, "spec": str(budget), "compression_target": None}
    if compression is not None:
        r = parse_compression(compression)
        b = budget_from_compression(data.full_float32_bytes, r)
        return b, {"bytes": b, "spec": f"{r:g}x", "compression_target": r}
    return None, {"bytes": None, "spec": None, "compression_target": None}


def export_graph(data: TaskData, cfg: DistillConfig, out_dir: Path) -> tuple[dict | None, str | None]:
    """Write OUT/graph.onnx for the payload's group layout (independent of the sample count, so it can be
    exported before planning and its digest counted). Returns (digest, reason-if-skipped)."""
    try:
        from edge_sdk.server.onnx_export.export import write_graph_for_payload
    except ImportError as exc:
        return None, f"edge_sdk.server.onnx_export unavailable: {exc}"
    from edge_sdk.server.budget import option_kind

    kind = option_kind(cfg.quantizer)
    soft = cfg.soft_labels and cfg.method.endswith("mtt")
    lay = layouts_for(kind, cfg.resolved_bits(), 1, data.dim, data.num_classes,
                      per_feature=cfg.per_feature and kind == "uniform_clip", soft=soft, soft_bits=cfg.soft_bits)
    try:
        info = write_graph_for_payload(lay, data.spec, optimizer="sgd", out_path=out_dir / GRAPH_NAME)
    except EdgeSdkError as exc:
        return None, f"graph export not supported for this payload/model: {exc}"
    return info.digest(), None


def _auto_bits(data: TaskData, cfg: DistillConfig, budget: int, ev: EvalConfig) -> tuple[int, list[dict]]:
    """Sweet-spot search: a short proxy run (iterations/5, one seed, steps/3) per candidate bit width."""
    from edge_sdk.server.distill import distill

    prov = provenance_for(cfg, data)
    cands = []
    for b in AUTO_BITS[cfg.quantizer]:
        try:
            cands.append(choose_point(data, replace(cfg, bits=b), budget, prov))
        except ConfigError:
            continue
    proxy_ev = replace(ev, seeds=(ev.seeds[0],), steps=max(50, ev.steps // 3))
    log: list[dict] = []

    def proxy(pt) -> float:
        r = distill(data, replace(cfg, bits=pt.bits, iterations=max(10, cfg.iterations // 5)), budget)
        m = evaluate_compact(data.spec, r.compact.X, r.compact.targets(), data, proxy_ev).mean["top1"]
        log.append({"bits": pt.bits, "ipc": pt.ipc, "proxy_top1": m})
        return m

    best, _ = search_sweet_spot(cands, proxy)
    return best.bits, log


def run_distill(*, train_path=None, test_path=None, dataset=None, method="quadd", budget=None, compression=None,
                quantizer=None, bits=None, per_feature=False, ipc=None, iterations=300, soft_labels=False, seeds=3,
                steps=2000, seed=0, hidden=None, beam_task=None, model=None, graph=True, device=None, out_dir: Path,
                progress=True,
                data: TaskData | None = None, extra_cfg: dict[str, Any] | None = None) -> dict:
    from edge_sdk.server.distill import distill

    t_start = time.perf_counter()
    dev = device or default_device()
    method = resolve_method(method)
    if data is None:
        data = (load_beam(train_path, test_path, task_spec=beam_task, hidden=hidden, model=model) if train_path
                else load_task(dataset))
    t_load = time.perf_counter() - t_start
    if quantizer is None:
        quantizer = "codebook" if method.startswith(("quadd", "ptq")) else "float32"
    if method.startswith(("quadd", "ptq")) and quantizer in RAW:
        raise ConfigError(f"{method} needs --quantizer uniform, apot or codebook")
    b_bytes, bdesc = resolve_budget(data, budget, compression)
    if method == "full":
        b_bytes, bdesc = None, {"bytes": None, "spec": None, "compression_target": None}
    cfg = DistillConfig(method=method, quantizer=quantizer, bits=None if bits == "auto" else bits,
                        per_feature=per_feature, ipc=ipc, iterations=iterations, soft_labels=soft_labels,
                        seed=seed, device=dev, **(extra_cfg or {}))
    ev = EvalConfig(steps=steps, seeds=tuple(range(seeds)), device=dev)
    # the device trains with the server's recipe; stored in the payload (and counted in the budget)
    data.task["train"] = ev.device_recipe()
    search_log: list[dict] = []
    t0 = time.perf_counter()
    if bits == "auto":
        if quantizer in RAW:
            raise ConfigError("--bits auto needs a quantizer (uniform, apot, codebook)")
        best_bits, search_log = _auto_bits(data, cfg, b_bytes, ev)
        cfg = replace(cfg, bits=best_bits)
    t_search = time.perf_counter() - t0
    out_dir.mkdir(parents=True, exist_ok=True)
    digest, graph_note = (None, "disabled with --no-graph")
    t0 = time.perf_counter()
    if graph:
        digest, graph_note = export_graph(data, cfg, out_dir)
        if graph_note:
            warnings.warn(graph_note, stacklevel=1)
    t_graph = time.perf_counter() - t0
    res = distill(data, cfg, b_bytes, progress=progress, graph=digest)
    path = out_dir / PAYLOAD_NAME
    write_compact(path, res.compact, num_classes=data.num_classes, task=res.task, provenance=res.provenance,
                  graph=digest, budget_bytes=b_bytes)
    X, y, soft, _ = read_compact(path)
    ev_res = evaluate_compact(data.spec, X, soft if soft is not None else y, data, ev, progress=progress)
    rep = build_report(
        command="distill", method=method, config=res.config, budget=bdesc, payload_path=path,
        full_float32_bytes=data.full_float32_bytes, eval_result=ev_res,
        timings={"load_s": t_load, "search_s": t_search, "graph_s": t_graph, "distill_s": res.seconds,
                 "eval_s": ev_res.seconds, "total_s": time.perf_counter() - t_start},
        dataset={"name": data.name, "n_train": int(data.X_train.shape[0]), "n_test": int(data.X_test.shape[0]),
                 "dim": data.dim, "num_classes": data.num_classes, "model": data.spec.to_dict()},
        extra={"operating_point": res.point.to_dict(), "losses_first_last": res.losses[:1] + res.losses[-1:],
               "method_info": res.info, "graph": (str(out_dir / GRAPH_NAME) if digest else None),
               "graph_note": graph_note, "bits_search": search_log, "device": dev,
               "planned_bytes": res.point.bytes},
    )
    write_report(out_dir / "report.json", rep)
    k = rep["kpis"]["top1"]  # the result summary is printed with or without progress output (like quantize)
    print(f"{method}: {rep['payload_bytes']} bytes ({rep['compression']:.1f}x), ipc={res.point.ipc}, "
          f"bits={res.point.bits}, top1 {k['mean']:.4f} ± {k['std']:.4f} over {len(rep['seeds'])} seeds "
          f"-> {out_dir}{os.sep}")
    return rep

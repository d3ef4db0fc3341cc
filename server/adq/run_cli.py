"""The body of ``edge-sdk quantize`` (kept here so the CLI module stays torch-free): load the task, run
:func:`edge_sdk.server.adq.pipeline.run`, write ``graph.onnx`` (unless ``graph=False``), ``payload.epl``
(naming the graph by sha256 and size in its header) and ``report.json`` into ``out_dir``."""

from __future__ import annotations

import time
from pathlib import Path

import click

PAYLOAD_NAME = "payload.epl"
GRAPH_NAME = "graph.onnx"


def load_data(train_path, test_path, dataset, beam_norm: str | None = None, beam_task: dict | None = None,
              model: str | None = None):
    """TaskData from beam HDF5 files (``beam_task``: a ``BeamTaskSpec`` dict, e.g. BM-Case2; ``beam_norm``:
    its ``norm``; ``model``: ``mlp`` | ``gru``, see :func:`edge_sdk.server.datasets.load_beam`) or a named
    dataset."""
    from edge_sdk.server import datasets

    if train_path is not None:
        task = dict(beam_task or {})
        if beam_norm:
            task["norm"] = beam_norm
        return datasets.load_beam(train_path, test_path, task_spec=task or None, model=model)
    return datasets.load_task(dataset)


def run_quantize(*, method: str, train_path, test_path, dataset, beam_norm: str | None = None,
                 beam_task: dict | None = None, model: str | None = None, budget_spec: str, budget_is_bytes: bool,
                 prune, keep: float, allocation: str, k: int, threshold, allow_drop: bool, class_balanced: bool,
                 scale_dtype: str, ref_epochs: int, sens_bits: int, seeds: int, steps: int, seed: int,
                 out_dir: Path, progress: bool = True, graph: bool = True) -> dict:
    import torch
    from edge_sdk.server.report import build_report, write_report
    from edge_sdk.server.train_eval import EvalConfig

    from .pipeline import QuantizeConfig, run, write_compact_payload
    from .sensitivity import SensitivityConfig

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    data = load_data(train_path, test_path, dataset, beam_norm, beam_task, model)
    if budget_is_bytes:
        from edge_sdk.server.budget import parse_budget

        budget_spec = str(parse_budget(budget_spec))
    cfg = QuantizeConfig(method=method, budget=budget_spec, allocation=allocation, k=k, threshold=threshold,
                         allow_drop=allow_drop, class_balanced=class_balanced, scale_dtype=scale_dtype, prune=prune,
                         keep=keep, seed=seed, sensitivity=SensitivityConfig(ref_epochs=ref_epochs, bits=sens_bits,
                                                                             scale_dtype=scale_dtype))
    recipe = EvalConfig(steps=steps, seeds=tuple(range(seeds)))
    # the device trains with the server's recipe; stored in the payload (and counted in the budget)
    data.task["train"] = recipe.device_recipe()
    load_s = time.perf_counter() - t0
    out_dir.mkdir(parents=True, exist_ok=True)
    gpath = out_dir / GRAPH_NAME
    cs, res = run(data, cfg, recipe, progress=progress, graph_path=gpath if graph else None)
    if cs.graph is None and gpath.exists():
        gpath.unlink()  # a graph from an earlier run would not match this payload
    ppath = out_dir / PAYLOAD_NAME
    info = write_compact_payload(ppath, cs, data, cfg)
    g = cs.graph
    graph_rep = {"path": str(g.path), "sha256": g.sha256, "size": int(g.size)} if g is not None else None
    graph_note = "disabled with --no-graph" if not graph else cs.info.get("graph_note")
    n, d = data.X_train.shape
    rep = build_report(
        command="quantize", method=method, config={**cfg.to_dict(), "data": str(train_path or dataset)},
        budget={"bytes": int(cs.budget), "spec": budget_spec, "compression_target": cs.info["target_compression"]},
        payload_path=ppath, full_float32_bytes=data.full_float32_bytes, eval_result=res,
        timings={"load_s": load_s, "build_s": cs.info["build_seconds"], "eval_s": res.seconds,
                 **({"sensitivity_s": cs.info["sensitivity_seconds"]} if "sensitivity_seconds" in cs.info else {}),
                 **({"graph_plan_s": cs.info["graph_seconds"]} if "graph_seconds" in cs.info else {})},
        dataset={"name": data.name, "n_train": int(n), "dim": int(d), "num_classes": int(data.num_classes)},
        extra={"allocation": cs.info["allocation"], "stored_samples": int(cs.X.shape[0]),
               "compression_percent": 100.0 * (1.0 - info.size / data.full_float32_bytes),
               "planned_bytes": int(cs.nbytes), "graph": graph_rep, "graph_note": graph_note,
               "graph_rounds": cs.info.get("graph_rounds", []),
               "bytes_to_device": int(info.size) + (int(g.size) if g is not None else 0),
               **({"sensitivity": cs.info["sensitivity"]} if "sensitivity" in cs.info else {})},
    )
    write_report(out_dir / "report.json", rep)
    top1 = res.mean.get("top1", float("nan"))
    gtxt = f" + graph {g.size} B" if g is not None else ""
    click.echo(f"{method}: {cs.X.shape[0]}/{n} samples, {info.size} B{gtxt} "
               f"({rep['compression']:.1f}x vs float32), top1 {top1:.4f} +- {res.std.get('top1', 0):.4f} -> {out_dir}")
    return rep

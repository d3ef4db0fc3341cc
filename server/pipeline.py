"""The one entry point for producing a payload under a byte budget: every method family, one path.

API (``edge-sdk distill`` and ``edge-sdk quantize`` are thin faces over it)::

    from edge_sdk.atomic import atomic_write_bytes
from edge_sdk.units import Budget
    from edge_sdk.modelspec import TrainRecipe
    from edge_sdk.server.pipeline import DataSource, RunConfig, run
    from edge_sdk.server.distill import DistillConfig          # family "distill" (DD hosts, QuADD, PTQ, baselines)
    from edge_sdk.server.adq import QuantizeConfig             # family "quantize" (ADQ, pruning, baselines)
    from edge_sdk.server.train_eval import EvalConfig
    data = DataSource(train="train.h5", test="test.h5").load()  # or DataSource(dataset="digits").load()
    res = run(data, RunConfig(method=DistillConfig(method="quadd", bits=4), budget=Budget.parse("36x"),
                              eval=EvalConfig(TrainRecipe(steps=2000), seeds=(0, 1, 2))), out_dir="runs/q36")
    res.report  # the report.json dict; res.payload, res.graph (paths), res.compact (what was written)

The path (:func:`run`), the same for every method — the family only decides *what* is stored:

1. the budget in bytes (:meth:`Budget.resolve` against ``data.full_float32_bytes``; families may ignore it);
2. the payload header, fixed before planning: ``task`` = the data's task with the training recipe
   (``task["train"] = recipe.to_payload()``), ``provenance`` = ``edge_sdk.payload.make_provenance`` — a
   :class:`PayloadCost` that counts every byte;
3. ``family.prepare`` (searches, e.g. ``--bits auto``), then ``family.plan`` (the groups and their exact size);
   with a graph, plan and graph export reach a fixed point (``edge_sdk.server.budget.plan_with_graph``) so the
   header's graph digest is counted too;
4. ``family.build``: the :class:`CompactSet` (groups + decoded values);
5. :func:`write_compact` (refuses anything over the budget or different from the plan) -> ``OUT/payload.epl``;
6. evaluation of the *written* files: the device runtime with ``OUT/graph.onnx`` (``evaluate_with_graph``), or
   torch on the decoded payload when there is no graph;
7. ``OUT/report.json`` (:func:`build_report`, :func:`write_report`; below).

Nothing passed in is modified (``TaskData`` and every config are frozen).

``report.json``, the result record of ``edge-sdk distill`` and ``edge-sdk quantize`` (:func:`build_report`,
:func:`validate_report` raises ConfigError listing every problem, :func:`write_report` validates then writes
atomically). Schema (``schema == "edge-sdk.report/1"``; documented field by field in docs/report-schema.md):
``schema, command, method, config, budget {bytes, spec, compression_target}, dataset {name, n_train, n_test, dim,
num_classes, model}, payload {path, bytes, sha256}, payload_bytes, full_float32_bytes, compression,
kpis {name: {mean, std, per_seed}}, eval {config, seeds}, seeds, timings {..._s}, versions, created_utc,
extra``.  ``payload_bytes`` is the size of the file on disk; ``compression = full_float32_bytes /
payload_bytes``.

Torch threads (:func:`configure_torch_threads`, called once at the start of a server command, before any torch
work): how many CPU threads torch uses on the server side (issue #11: default runs must stay fast on a 2-core
machine even while another process competes for the cores).

The models here are small (MLP 8-128-128-32, batches of 128-2048 rows): one intra-op thread is about as fast as
two on a quiet 2-core machine, and beside another busy process two threads are 8-12x slower than one (they
spin-wait on each other). Measured with ``tools/experiments/exp_e_threads.py`` under ``cpujob -n 2``
(results/e_threads.json): 2,000 training steps take 1.48 s with 1 thread and 1.33 s with 2 on a quiet machine,
but 2.3-2.6 s with 1 thread and 18-20 s with 2 threads beside a competing process. Default: 1 thread,
overridable with ``--threads N`` or ``EDGE_SDK_TORCH_THREADS`` (0 = torch's own default, all cores).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import os
import platform
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from edge_sdk.atomic import atomic_write_bytes
from edge_sdk.errors import ConfigError
from edge_sdk.modelspec import TrainRecipe
from edge_sdk.payload import make_provenance
from edge_sdk.server.budget import GraphExportError, plan_with_graph
from edge_sdk.server.datasets import TaskData, load_beam, load_task
from edge_sdk.server.payload_io import CompactSet, PayloadCost, read_compact, write_compact
from edge_sdk.server.train_eval import EvalConfig, evaluate_compact, evaluate_with_graph
from edge_sdk.units import Budget

#: environment variable with the default torch thread count
THREADS_ENV = "EDGE_SDK_TORCH_THREADS"
DEFAULT_THREADS = 1


def resolve_threads(threads: int | None = None) -> int:
    """``threads`` if given, else ``$EDGE_SDK_TORCH_THREADS``, else :data:`DEFAULT_THREADS` (0 = all cores)."""
    if threads is None:
        raw = os.environ.get(THREADS_ENV, "").strip()
        if not raw:
            return DEFAULT_THREADS
        try:
            threads = int(raw)
        except ValueError:
            raise ConfigError(f"{THREADS_ENV}={raw!r} is not an integer; use e.g. {THREADS_ENV}=1 "
                              "(0 = all cores)") from None
    if threads < 0:
        raise ConfigError(f"torch threads must be >= 0 (0 = all cores), got {threads}")
    return int(threads)


def configure_torch_threads(threads: int | None = None) -> int:
    """Set torch's intra-op thread count (and one inter-op thread when it can still be set); returns the count
    in effect. Call once at the start of a server command."""
    import torch

    n = resolve_threads(threads)
    if n == 0:
        n = os.cpu_count() or 1
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set (or parallel work started): keep what is there
        pass
    return int(torch.get_num_threads())


PAYLOAD_NAME = "payload.epl"
GRAPH_NAME = "graph.onnx"
REPORT_NAME = "report.json"


@dataclass(frozen=True)
class DataSource:
    """Where the task comes from: beam HDF5 files (``train`` + ``test``; ``beam_norm`` = ``BeamTaskSpec.norm``,
    ``hidden`` = MLP widths) or a named ``dataset`` (``digits``, ``cifar10:PATH``, ``cifar100:PATH``)."""

    train: str | Path | None = None
    test: str | Path | None = None
    dataset: str | None = None
    beam_norm: str | None = None
    hidden: tuple[int, ...] | None = None
    beam_task: dict[str, Any] | None = None
    model: str | None = None

    def __post_init__(self) -> None:
        if (self.train is None) != (self.test is None):
            raise ConfigError("--data and --test go together (beam HDF5 files)")
        if (self.train is None) == (self.dataset is None):
            raise ConfigError("give --data TRAIN.h5 --test TEST.h5, or --dataset digits (not both)")

    def load(self) -> TaskData:
        if self.train is not None:
            assert self.test is not None
            spec = dict(self.beam_task or {})
            if self.beam_norm:
                spec["norm"] = self.beam_norm
            return load_beam(self.train, self.test, task_spec=spec or None, hidden=self.hidden, model=self.model)
        assert self.dataset is not None
        return load_task(self.dataset)

    def describe(self) -> str:
        return str(self.train) if self.train is not None else str(self.dataset)


if TYPE_CHECKING:
    from edge_sdk.server.adq.family import QuantizeConfig
    from edge_sdk.server.distill.base import DistillConfig

    MethodConfig = DistillConfig | QuantizeConfig
else:
    MethodConfig = Any

#: method family name (a config's ``family``) -> the module that implements it as ``FAMILY`` (a :class:`Family`);
#: imported when a run needs it, so a distillation never loads the quantize family and the reverse
FAMILY_MODULES = {"distill": "edge_sdk.server.distill.family", "quantize": "edge_sdk.server.adq.family"}


@dataclass(frozen=True)
class RunConfig:
    """One run: the method family's config, the budget (None only for methods that ignore it, e.g. ``full``),
    the evaluation (recipe, seeds, torch device) and whether the ONNX training graph is exported."""

    method: MethodConfig
    budget: Budget | None = None
    eval: EvalConfig = field(default_factory=EvalConfig)
    graph: bool = True
    payload_format: int = 1  #: 2: the lean v2 payload + OUT/task.json (server/payload_io.py)


@dataclass(frozen=True)
class RunResult:
    report: dict[str, Any]
    payload: Path
    graph: Path | None
    compact: CompactSet


class Plan(Protocol):
    """What a family's plan gives the pipeline: the stored groups' layouts and the exact payload size (bytes)."""

    @property
    def layouts(self) -> list[Any]: ...

    @property
    def nbytes(self) -> int: ...


class Family(Protocol):
    """What a method family provides (``distill``: DD hosts, QuADD, baselines; ``quantize``: ADQ and its baselines)."""

    command: str

    def method_name(self, cfg: Any) -> str: ...
    def ignores_budget(self, cfg: Any) -> bool: ...
    def prepare(self, data: TaskData, cfg: Any, budget: int | None, cost: PayloadCost, ev: EvalConfig,
                progress: bool) -> tuple[Any, dict[str, Any]]: ...
    def plan(self, data: TaskData, cfg: Any, budget: int | None, cost: PayloadCost, ev: EvalConfig,
             progress: bool) -> Plan: ...
    def build(self, data: TaskData, cfg: Any, plan: Any, progress: bool) -> CompactSet: ...


def default_device() -> str:
    """The torch device used when none is given: ``cuda`` when available, else ``cpu``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def family_of(cfg: MethodConfig) -> Family:
    """The family that runs ``cfg`` (its ``family`` name, :data:`FAMILY_MODULES`)."""
    name = getattr(type(cfg), "family", None)
    if name not in FAMILY_MODULES:
        raise ConfigError(f"no method family takes a {type(cfg).__name__}; families: {sorted(FAMILY_MODULES)}")
    fam: Family = importlib.import_module(FAMILY_MODULES[name]).FAMILY
    return fam


def payload_cost(data: TaskData, cfg: RunConfig, family: Family) -> PayloadCost:
    """The header every byte count and the writer use: the data's task with the recipe, the core provenance."""
    m = cfg.method
    task = {**data.task, "train": cfg.eval.recipe.to_payload()}
    prov = make_provenance(family.method_name(m), seed=int(m.seed), dataset=data.name, **m.provenance_extra())
    return PayloadCost(num_classes=data.num_classes, task=task, provenance=prov, payload_format=cfg.payload_format)


def export_graph_fn(data: TaskData, recipe: TrainRecipe) -> Any:
    """``(layouts, path) -> GraphInfo``: the training graph for ``data.spec`` and the recipe's optimizer (with a
    label-smoothing input iff the recipe smooths labels)."""
    from edge_sdk.server.onnx_export.export import write_graph_for_payload

    def export(layouts: list[Any], path: Path) -> Any:
        return write_graph_for_payload(layouts, data.spec, optimizer=recipe.optimizer, out_path=path,
                                       label_smoothing=recipe.label_smoothing > 0)

    return export


def run(data: TaskData, cfg: RunConfig, out_dir: str | Path, progress: bool = False) -> RunResult:
    """Produce ``OUT/payload.epl`` (+ ``graph.onnx``) under the budget, evaluate it, write ``OUT/report.json``
    (steps in the module docstring). Returns the report and the paths."""
    t_start = time.perf_counter()
    out = Path(out_dir)
    if cfg.payload_format == 2:  # v2 stores the recipe's floats as float32: evaluate with what the device follows
        from edge_sdk.payload.format_v2 import stored_recipe

        cfg = replace(cfg, eval=replace(cfg.eval, recipe=stored_recipe(cfg.eval.recipe, has_soft=True)))
    fam = family_of(cfg.method)
    method = fam.method_name(cfg.method)
    if fam.ignores_budget(cfg.method):
        budget_bytes, budget_desc = None, {"bytes": None, "spec": None, "compression_target": None}
    elif cfg.budget is None:
        raise ConfigError(f"method {method} needs a budget: --budget (e.g. 16KiB) or --compression (e.g. 36x)")
    else:
        budget_desc = cfg.budget.describe(data.full_float32_bytes)
        budget_bytes = budget_desc["bytes"]
    cost = payload_cost(data, cfg, fam)
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    mcfg, search_log = fam.prepare(data, cfg.method, budget_bytes, cost, cfg.eval, progress)
    timings["search_s"] = time.perf_counter() - t0

    out.mkdir(parents=True, exist_ok=True)
    gpath = out / GRAPH_NAME
    gpath.unlink(missing_ok=True)  # a graph from an earlier run would not match this payload
    graph_info: Any = None
    graph_note: str | None = "disabled with --no-graph"
    graph_log: list[Any] = []
    t0 = time.perf_counter()
    if cfg.graph:
        try:
            gp = plan_with_graph(lambda digest: fam.plan(data, mcfg, budget_bytes, cost.with_graph(digest), cfg.eval,
                                                         progress),
                                 export_graph_fn(data, cfg.eval.recipe), gpath)
        except GraphExportError as exc:
            graph_note = str(exc)
            warnings.warn(graph_note, stacklevel=2)
        else:
            plan, graph_info, graph_note, graph_log = gp.plan, gp.graph, None, gp.log
            cost = cost.with_graph(graph_info.digest())
    if graph_info is None:
        plan = fam.plan(data, mcfg, budget_bytes, cost, cfg.eval, progress)
    timings["plan_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    cs = fam.build(data, mcfg, plan, progress)
    timings["build_s"] = time.perf_counter() - t0
    ppath = out / PAYLOAD_NAME
    info = write_compact(ppath, cs, cost, budget_bytes=budget_bytes, planned_bytes=plan.nbytes)

    if graph_info is not None:
        ev = evaluate_with_graph(ppath, gpath, data, cfg.eval, progress=progress)
    else:
        X, y, soft, _ = read_compact(ppath)
        ev = evaluate_compact(data.spec, X, y, data, cfg.eval, progress=progress, soft=soft)
    timings["eval_s"] = ev.seconds
    timings["total_s"] = time.perf_counter() - t_start

    graph_rep = ({"path": str(gpath), "sha256": graph_info.sha256, "size": int(graph_info.size)}
                 if graph_info is not None else None)
    rep = build_report(
        command=fam.command, method=method, config=mcfg.to_dict(), budget=budget_desc, payload_path=ppath,
        data=data, eval_result=ev, timings=timings,
        extra={"planned_bytes": int(plan.nbytes), "stored_samples": cs.n, "graph": graph_rep,
               "graph_note": graph_note, "graph_rounds": graph_log,
               "bytes_to_device": int(info.size) + (int(graph_info.size) if graph_info is not None else 0),
               "device": cfg.eval.device, "method_info": dict(cs.info), **search_log})
    write_report(out / REPORT_NAME, rep)
    return RunResult(rep, ppath, gpath if graph_info is not None else None, cs)


def summary_line(res: RunResult) -> str:
    """One line for the terminal: bytes, compression, samples, Top-1 over seeds, output folder."""
    rep = res.report
    k = rep["kpis"].get("top1", {"mean": float("nan"), "std": float("nan")})
    g = rep["extra"]["graph"]
    gtxt = f" + graph {g['size']} B" if g else ""
    return (f"{rep['method']}: {rep['payload_bytes']} B{gtxt} ({rep['compression']:.1f}x vs float32), "
            f"{rep['extra']['stored_samples']}/{rep['dataset']['n_train']} samples, top1 {k['mean']:.4f} ± "
            f"{k['std']:.4f} over {len(rep['seeds'])} seeds -> {res.payload.parent}")


# ------------------------------------------------------------------ report.json (module docstring)

SCHEMA_ID = "edge-sdk.report/1"

#: field -> expected python type(s) of the top-level report
_TOP: dict[str, tuple[type, ...]] = {
    "schema": (str,),
    "command": (str,),
    "method": (str,),
    "config": (dict,),
    "budget": (dict,),
    "dataset": (dict,),
    "payload": (dict,),
    "payload_bytes": (int,),
    "full_float32_bytes": (int,),
    "compression": (float, int),
    "kpis": (dict,),
    "eval": (dict,),
    "seeds": (list,),
    "timings": (dict,),
    "versions": (dict,),
    "created_utc": (str,),
    "extra": (dict,),
}


def library_versions() -> dict[str, str]:
    """Versions of python and the libraries a result depends on."""
    import numpy

    from edge_sdk._version import __version__

    out = {"python": platform.python_version(), "edge_sdk": __version__, "numpy": numpy.__version__}
    for mod in ("torch", "h5py", "onnx", "onnxruntime", "sklearn"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - optional libraries
            pass
    return out


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def dataset_block(data: Any) -> dict[str, Any]:
    """The report's ``dataset`` block of a ``TaskData``: name, sizes, classes and the model spec."""
    return {"name": data.name, "n_train": int(data.X_train.shape[0]), "n_test": int(data.X_test.shape[0]),
            "dim": int(data.X_train.shape[1]), "num_classes": int(data.num_classes), "model": data.spec.to_dict()}


def build_report(*, command: str, method: str, config: dict[str, Any], budget: dict[str, Any],
                 payload_path: str | os.PathLike, data: Any, eval_result: Any, timings: dict[str, float],
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Assemble a report; ``payload_bytes`` is measured on disk, ``dataset`` and ``full_float32_bytes`` come from
    ``data`` (a ``TaskData``) and ``kpis`` from ``eval_result`` (an :class:`edge_sdk.server.train_eval.EvalResult`)."""
    full_float32_bytes = int(data.full_float32_bytes)
    dataset = dataset_block(data)
    p = Path(payload_path)
    size = p.stat().st_size
    rep = {
        "schema": SCHEMA_ID,
        "command": command,
        "method": method,
        "config": config,
        "budget": {"bytes": budget.get("bytes"), "spec": budget.get("spec"),
                   "compression_target": budget.get("compression_target")},
        "dataset": dataset,
        "payload": {"path": str(p), "bytes": size, "sha256": file_sha256(p)},
        "payload_bytes": size,
        "full_float32_bytes": int(full_float32_bytes),
        "compression": float(full_float32_bytes) / size,
        "kpis": eval_result.kpis(),
        "eval": {"config": eval_result.config, "seeds": list(eval_result.seeds), "seconds": eval_result.seconds},
        "seeds": list(eval_result.seeds),
        "timings": {k: float(v) for k, v in timings.items()},
        "versions": library_versions(),
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "extra": extra or {},
    }
    validate_report(rep)
    return rep


def validate_report(rep: Any) -> None:
    """Raise :class:`ConfigError` naming every field that breaks the schema."""
    errs: list[str] = []
    if not isinstance(rep, dict):
        raise ConfigError("report must be a JSON object")
    for k, types in _TOP.items():
        if k not in rep:
            errs.append(f"missing field {k!r}")
        elif not isinstance(rep[k], types) or isinstance(rep[k], bool):
            errs.append(f"field {k!r} must be {'/'.join(t.__name__ for t in types)}, got {type(rep[k]).__name__}")
    if errs:
        raise ConfigError("invalid report.json: " + "; ".join(errs))
    if rep["schema"] != SCHEMA_ID:
        errs.append(f"schema must be {SCHEMA_ID!r}, got {rep['schema']!r}")
    if rep["command"] not in ("distill", "quantize"):
        errs.append("command must be 'distill' or 'quantize'")
    if rep["payload_bytes"] <= 0:
        errs.append("payload_bytes must be > 0")
    if rep["payload"].get("bytes") != rep["payload_bytes"]:
        errs.append("payload.bytes must equal payload_bytes")
    b = rep["budget"].get("bytes")
    if b is not None and (not isinstance(b, int) or rep["payload_bytes"] > b):
        errs.append(f"payload_bytes {rep['payload_bytes']} exceeds budget.bytes {b}")
    if rep["full_float32_bytes"] > 0 and not math.isclose(
        rep["compression"], rep["full_float32_bytes"] / max(rep["payload_bytes"], 1), rel_tol=1e-9
    ):
        errs.append("compression must equal full_float32_bytes / payload_bytes")
    if len(rep["seeds"]) < 1:
        errs.append("seeds must not be empty")
    if not rep["kpis"]:
        errs.append("kpis must not be empty")
    for name, v in rep["kpis"].items():
        if not isinstance(v, dict) or not {"mean", "std", "per_seed"} <= set(v):
            errs.append(f"kpis[{name!r}] needs mean, std, per_seed")
            continue
        if len(v["per_seed"]) != len(rep["seeds"]):
            errs.append(f"kpis[{name!r}].per_seed has {len(v['per_seed'])} values for {len(rep['seeds'])} seeds")
        if not all(isinstance(x, (int, float)) and math.isfinite(x) for x in [v["mean"], v["std"], *v["per_seed"]]):
            errs.append(f"kpis[{name!r}] has a non-finite value")
    for k in ("name", "n_train", "n_test", "dim", "num_classes", "model"):
        if k not in rep["dataset"]:
            errs.append(f"dataset.{k} is missing")
    for k, v in rep["timings"].items():
        if not k.endswith("_s") or not isinstance(v, (int, float)):
            errs.append(f"timings[{k!r}] must be a number of seconds named *_s")
    if errs:
        raise ConfigError("invalid report.json: " + "; ".join(errs))


def write_report(path: str | os.PathLike, rep: dict[str, Any]) -> None:
    """Validate and atomically write ``rep`` as indented JSON."""
    validate_report(rep)
    atomic_write_bytes(path, (json.dumps(rep, indent=2, sort_keys=False) + "\n").encode(), make_parents=True)

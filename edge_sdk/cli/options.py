"""Options several commands share.

* :func:`pipeline_options` — the option set ``edge-sdk distill`` and ``edge-sdk quantize`` share (with
  ``--beam-task``/``--model``, :func:`beam_task_options`), and :func:`run_face`, the one function both faces call;
* :func:`h5_read_options` — the options every command that reads a beam HDF5 file shares: how far it trusts
  the file (:class:`edge_sdk.beam.h5reader.H5ReadOptions`; docs/dataset-hdf5.md, "Reading untrusted files").

``distill`` and ``quantize`` are thin faces over ``edge_sdk.server.pipeline.run``: they add their family's options,
build the family's config, and hand everything else — data source, budget, evaluation recipe and seeds, graph,
output — to :func:`run_face`. Parsing and validation of the shared options happen here, before torch is imported, so
a bad budget or recipe fails in milliseconds with one line. """

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from edge_sdk.beam.h5reader import DEFAULT_MAX_BYTES, H5ReadOptions
from edge_sdk.errors import ConfigError
from edge_sdk.modelspec import OPTIMIZERS, SCHEDULES, TrainRecipe
from edge_sdk.units import Budget

_DEFAULT = TrainRecipe()

#: the largest --beam-task file read (a task spec is a few hundred bytes)
MAX_TASK_BYTES = 64 * 1024


def beam_task_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--beam-task`` (-> ``beam_task``) and ``--model`` (-> ``model``) to a click command."""
    f = click.option("--model", type=click.Choice(["mlp", "gru"]), default=None,
                     help="beam model: mlp (BM-Case1 default) or gru (temporal GRU with the residual start at "
                          "sample-and-hold; BM-Case2 default)")(f)
    return click.option("--beam-task", type=str, default=None, metavar="JSON|FILE",
                        help="beam task spec (BeamTaskSpec fields) as JSON or a .json file, e.g. BM-Case2: "
                             '\'{"case": "case2", "setb": "1/4", "history": 4, "horizon": 1, "period_steps": 8}\'')(f)


def parse_beam_task(text: str | None) -> dict[str, Any] | None:
    """``--beam-task``: JSON text or a path to a JSON file -> a checked BeamTaskSpec dict (ConfigError naming
    the problem otherwise)."""
    if text is None:
        return None
    from edge_sdk.beam.taskspec import BeamTaskSpec

    src = text
    if not text.lstrip().startswith("{"):
        p = Path(text)
        if not p.is_file():
            raise ConfigError(f"--beam-task: {text!r} is neither a JSON object nor an existing .json file")
        if p.stat().st_size > MAX_TASK_BYTES:
            raise ConfigError(f"--beam-task: {p} is larger than {MAX_TASK_BYTES} bytes; a task spec is a few hundred")
        src = p.read_text(encoding="utf-8", errors="replace")
    try:
        d = json.loads(src)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--beam-task: not valid JSON ({exc.msg} at position {exc.pos})") from None
    if not isinstance(d, dict):
        raise ConfigError("--beam-task: expected a JSON object of BeamTaskSpec fields")
    return BeamTaskSpec.from_dict(d).to_dict()


#: (decorator, name of the keyword it adds) for every shared option, in --help order
_OPTIONS: list[Callable[[Any], Any]] = [
    click.option("--data", "train_path", type=click.Path(exists=True, dir_okay=False), help="beam training HDF5"),
    click.option("--test", "test_path", type=click.Path(exists=True, dir_okay=False), help="beam test HDF5"),
    click.option("--dataset", type=str, default=None,
                 help="'digits', 'cifar10:PATH' or 'cifar100:PATH' instead of --data/--test"),
    click.option("--beam-norm", type=click.Choice(["per_sample_max", "affine"]), default=None,
                 help="beam input normalisation (BeamTaskSpec.norm; default per_sample_max)"),
    click.option("--hidden", type=str, default=None, help="beam model hidden widths (default: MLP 128,128; GRU 128)"),
    beam_task_options,  # --beam-task, --model
    click.option("--budget", type=str, default=None,
                 help="byte budget of the whole payload file: 16KiB, 16kB, 20000"),
    click.option("--compression", type=str, default=None,
                 help="ratio vs the float32 training set: 36x, or the saved share: 93.75%"),
    click.option("--seeds", type=int, default=3, show_default=True, help="evaluation seeds (>= 3 for the protocol)"),
    click.option("--steps", type=int, default=_DEFAULT.steps, show_default=True,
                 help="training recipe: updates per evaluation run (the device repeats the recipe)"),
    click.option("--batch-size", type=int, default=_DEFAULT.batch_size, show_default=True, help="training recipe"),
    click.option("--lr", type=float, default=None, help="training recipe: learning rate (default: the optimizer's)"),
    click.option("--weight-decay", type=float, default=None,
                 help="training recipe: L2 weight decay added to the gradient (default: the optimizer's: sgd 5e-4, "
                      "adam 0)"),
    click.option("--label-smoothing", type=float, default=None,
                 help="training recipe: label-smoothing epsilon of the hard-label target (default 0; > 0 needs "
                      "edge-sdk >= 0.3.0 on the device)"),
    click.option("--optimizer", type=click.Choice(list(OPTIMIZERS)), default=_DEFAULT.optimizer, show_default=True,
                 help="training recipe; the ONNX graph is exported for it"),
    click.option("--schedule", type=click.Choice(list(SCHEDULES)), default=_DEFAULT.schedule, show_default=True,
                 help="training recipe: learning-rate schedule"),
    click.option("--seed", type=int, default=0, show_default=True, help="seed of the method's random choices"),
    click.option("--device", type=str, default=None, help="torch device (default: cuda if available, else cpu)"),
    click.option("--no-graph", is_flag=True,
                 help="do not export OUT/graph.onnx (the payload then names no graph; a device cannot train on it)"),
    click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True),
    click.option("--no-progress", is_flag=True, help="no progress output"),
    click.option("--payload-format", type=click.Choice(["1", "2"]), default="2", show_default=True,
                 help="2 (default): the lean payload v2 (recipe in the payload, task spec in OUT/task.json, which "
                      "`edge-sdk store add` attaches to the release and `device fetch` caches by digest, like the "
                      "graph; needed for the affine quantizers); 1: the self-describing v1 payload for devices "
                      "older than v2"),
    click.option("--threads", type=int, default=None,
                 help="torch CPU threads (default 1, or $EDGE_SDK_TORCH_THREADS; 0 = all cores): one thread is as "
                      "fast as two on these small models and stays fast beside other busy processes"),
]
#: the training-recipe options and their defaults (``--method auto`` chooses the recipe itself and refuses them)
RECIPE_DEFAULTS = {"steps": _DEFAULT.steps, "batch_size": _DEFAULT.batch_size, "lr": None, "weight_decay": None,
                   "label_smoothing": None, "optimizer": _DEFAULT.optimizer, "schedule": _DEFAULT.schedule}
SHARED_KEYS = ("train_path", "test_path", "dataset", "beam_norm", "hidden", "model", "beam_task", "budget", "compression", "seeds", "steps",
               "batch_size", "lr", "weight_decay", "label_smoothing", "optimizer", "schedule", "seed", "device", "no_graph", "out_dir", "no_progress", "threads", "payload_format")


def pipeline_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Add the shared options to a click command (after its own, so ``--help`` lists the family's first)."""
    for opt in reversed(_OPTIONS):
        f = opt(f)
    return f


@dataclass(frozen=True)
class CommonArgs:
    """The shared options, parsed and validated (no torch needed)."""

    source: dict[str, Any]
    budget: Budget | None
    recipe: TrainRecipe
    seeds: tuple[int, ...]
    seed: int
    device: str | None
    graph: bool
    out_dir: Path
    progress: bool
    threads: int | None = None
    payload_format: int = 1


def parse_common(kw: dict[str, Any], ignores_budget: bool) -> CommonArgs:
    """Validate the shared options (``kw``: click's keyword arguments); ``ignores_budget``: the method takes
    none (``full``), so neither ``--budget`` nor ``--compression`` is required."""
    budget, compression = kw["budget"], kw["compression"]
    if budget is not None and compression is not None:
        raise ConfigError("give one of --budget (e.g. 16KiB) or --compression (e.g. 36x), not both")
    if budget is None and compression is None and not ignores_budget:
        raise ConfigError("give exactly one of --budget (e.g. 16KiB) or --compression (e.g. 36x)")
    parsed = None
    if budget is not None:
        parsed = Budget.parse(budget)
        if parsed.kind != "bytes":
            raise ConfigError(f"--budget {budget!r} is a ratio; --budget takes bytes (16KiB, 20000), "
                              "--compression takes ratios (36x, 93.75%)")
    elif compression is not None:
        parsed = Budget.parse(compression)
        if parsed.kind != "ratio":
            raise ConfigError(f"--compression {compression!r} is a byte count; --compression takes ratios (36x, "
                              "93.75%), --budget takes bytes (16KiB, 20000)")
    if kw["dataset"] is not None and (kw["train_path"] is not None or kw["test_path"] is not None):
        raise ConfigError("--dataset replaces --data/--test: give --dataset NAME, or --data TRAIN.h5 --test TEST.h5, "
                          "not both")
    if (kw["train_path"] is None) != (kw["test_path"] is None):
        raise ConfigError("--data and --test go together (beam HDF5 files)")
    if (kw["train_path"] is None) == (kw["dataset"] is None):
        raise ConfigError("give --data TRAIN.h5 --test TEST.h5, or --dataset digits (not both)")
    if kw["seeds"] < 1:
        raise ConfigError("--seeds must be >= 1")
    hidden: tuple[int, ...] | None = None
    if kw["hidden"] is not None:
        try:
            hidden = tuple(int(h) for h in str(kw["hidden"]).split(",") if h.strip())
        except ValueError:
            raise ConfigError(f"--hidden must be comma-separated ints, got {kw['hidden']!r}") from None
        if not hidden or min(hidden) < 1:
            raise ConfigError(f"--hidden needs at least one positive width, got {kw['hidden']!r}")
    beam_task = parse_beam_task(kw["beam_task"])
    if (beam_task is not None or kw["model"] is not None) and kw["train_path"] is None:
        raise ConfigError("--beam-task/--model apply to beam data: give --data TRAIN.h5 --test TEST.h5")
    recipe = TrainRecipe.defaults(kw["optimizer"]).with_overrides(
        steps=kw["steps"], batch_size=kw["batch_size"], lr=kw["lr"], weight_decay=kw["weight_decay"],
        schedule=kw["schedule"], label_smoothing=kw.get("label_smoothing"))
    source = {"train": kw["train_path"], "test": kw["test_path"], "dataset": kw["dataset"],
              "beam_norm": kw["beam_norm"], "hidden": hidden, "beam_task": beam_task, "model": kw["model"]}
    return CommonArgs(source, parsed, recipe, tuple(range(kw["seeds"])), kw["seed"], kw["device"],
                      not kw["no_graph"], Path(kw["out_dir"]), not kw["no_progress"], kw.get("threads"),
                      int(kw.get("payload_format") or 1))


def run_face(make_method_config: Callable[[str], Any], args: CommonArgs) -> dict[str, Any]:
    """Load the data, run the pipeline (``edge_sdk.server.pipeline.run``), print one line; returns the report.
    ``make_method_config(device)`` builds the family's config (torch device resolved here)."""
    from edge_sdk.server.pipeline import (
        DataSource,
        RunConfig,
        configure_torch_threads,
        default_device,
        run,
        summary_line,
    )
    from edge_sdk.server.train_eval import EvalConfig

    configure_torch_threads(args.threads)  # before any torch work
    device = args.device or default_device()
    data = DataSource(**args.source).load()
    cfg = RunConfig(method=make_method_config(device), budget=args.budget,
                    eval=EvalConfig(args.recipe, args.seeds, device), graph=args.graph,
                    payload_format=args.payload_format)
    res = run(data, cfg, args.out_dir, progress=args.progress)
    click.echo(summary_line(res))
    return res.report


# ------------------------------------------------------------------ HDF5 read options

def h5_read_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--max-bytes SIZE``, ``--allow-virtual`` and ``--allow-external`` to a click command; the command
    function receives them as one keyword argument ``h5: H5ReadOptions``."""

    @functools.wraps(fn)
    def wrapper(*args: Any, h5_max_bytes: str, h5_allow_virtual: bool, h5_allow_external: bool, **kw: Any) -> Any:
        from edge_sdk.units import parse_size

        h5 = H5ReadOptions(max_bytes=parse_size(h5_max_bytes, "--max-bytes"), allow_virtual=h5_allow_virtual,
                           allow_external=h5_allow_external)
        return fn(*args, h5=h5, **kw)

    wrapper = click.option(
        "--allow-external", "h5_allow_external", is_flag=True,
        help="follow links out of the HDF5 file (external links, soft links, external raw storage, virtual "
             "datasets over any file); only for files you trust")(wrapper)
    wrapper = click.option(
        "--allow-virtual", "h5_allow_virtual", is_flag=True,
        help="read a stitched sharded dataset (virtual datasets over .h5 shard files in the same directory)")(wrapper)
    wrapper = click.option(
        "--max-bytes", "h5_max_bytes", default=f"{DEFAULT_MAX_BYTES >> 30}GiB", show_default=True, metavar="SIZE",
        help="refuse HDF5 files whose declared arrays need more than SIZE when decompressed (checked from the "
             "metadata before reading a value: guards against compression bombs)")(wrapper)
    return wrapper

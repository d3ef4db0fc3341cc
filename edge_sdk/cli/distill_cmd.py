"""``edge-sdk distill``: dataset distillation under a byte budget -> payload v1 + ONNX graph + report.json.

Examples::

    edge-sdk distill --data train.h5 --test test.h5 --method quadd --compression 36x --out runs/q36
    edge-sdk distill --dataset digits --method quadd-dm --quantizer codebook --bits 2 --budget 8KiB --out runs/d
    edge-sdk distill --dataset digits --method ptq-dm --bits auto --compression 36x --out runs/p

Writes ``OUT/payload.epl`` (never larger than the budget), ``OUT/graph.onnx`` (the dequantize-and-train
graph for the payload's groups, MLP models; named by digest in the payload header) and ``OUT/report.json``
(schema ``edge-sdk.report/1``, docs/report-schema.md). The evaluation trains fresh models on the values
*decoded from the written payload*. torch is imported inside the command.
"""

from __future__ import annotations

from pathlib import Path

import click

from edge_sdk.cli.beam_task import beam_task_options, parse_beam_task
from edge_sdk.errors import ConfigError

QUANTIZERS = ["uniform", "apot", "codebook", "float32", "float16"]


def _method_names() -> list[str]:
    hosts = ["dm", "dc", "mtt"]
    return ["quadd", *hosts, *[f"quadd-{h}" for h in hosts], *[f"ptq-{h}" for h in hosts], "random", "full"]


@click.command(name="distill")
@click.option("--data", "train_path", type=click.Path(exists=True, dir_okay=False), help="beam training HDF5")
@click.option("--test", "test_path", type=click.Path(exists=True, dir_okay=False), help="beam test HDF5")
@click.option("--dataset", type=str, default=None, help="'digits', 'cifar10:PATH' or 'cifar100:PATH' instead of --data/--test")
@click.option("--method", type=click.Choice(_method_names()), default="quadd", show_default=True,
              help="quadd (= quadd-mtt), dm/dc/mtt (float32), quadd-*, ptq-* (DD then PTQ), random, full")
@click.option("--budget", type=str, default=None, help="payload byte budget: 16KiB, 16kB, 20000")
@click.option("--compression", type=str, default=None, help="ratio vs the float32 training set: 36x")
@click.option("--quantizer", type=click.Choice(QUANTIZERS), default=None,
              help="default: codebook for quadd/ptq, float32 for dm/dc/mtt/random/full")
@click.option("--bits", type=str, default=None, help="bit width (default 3 for quantizers), or 'auto' (sweet-spot search with short proxy runs)")
@click.option("--per-feature", is_flag=True, help="uniform quantizer: one clipping threshold per feature")
@click.option("--ipc", type=int, default=None, help="samples per class (default: as many as fit the budget)")
@click.option("--iterations", type=int, default=300, show_default=True, help="distillation iterations")
@click.option("--soft-labels", is_flag=True, help="mtt hosts: learn soft labels (stored, counted in the budget)")
@click.option("--seeds", type=int, default=3, show_default=True, help="evaluation seeds (>= 3 for the protocol)")
@click.option("--steps", type=int, default=2000, show_default=True, help="evaluation training updates per seed")
@click.option("--seed", type=int, default=0, show_default=True, help="distillation seed")
@click.option("--hidden", type=str, default=None, help="beam model hidden widths (default: MLP 128,128; GRU 128)")
@beam_task_options
@click.option("--no-graph", is_flag=True, help="do not export graph.onnx")
@click.option("--device", type=str, default=None, help="torch device (default: cuda if available, else cpu)")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True)
@click.option("--no-progress", is_flag=True)
def cli(train_path, test_path, dataset, method, budget, compression, quantizer, bits, per_feature, ipc, iterations,
        soft_labels, seeds, steps, seed, hidden, beam_task, model, no_graph, device, out_dir, no_progress) -> None:
    """Distill a training set into a payload that fits a byte budget, and evaluate it."""
    if method != "full" and (compression is None) == (budget is None):
        raise ConfigError("give exactly one of --budget (e.g. 16KiB) or --compression (e.g. 36x)")
    if dataset is not None and (train_path is not None or test_path is not None):
        raise ConfigError("--dataset replaces --data/--test: give --dataset NAME, or --data TRAIN.h5 --test TEST.h5, "
                          "not both")
    if (train_path is None) != (test_path is None):
        raise ConfigError("--data and --test go together (beam HDF5 files)")
    if (train_path is None) == (dataset is None):
        raise ConfigError("give --data TRAIN.h5 --test TEST.h5, or --dataset digits")
    if seeds < 1:
        raise ConfigError("--seeds must be >= 1")
    try:
        hid = tuple(int(h) for h in hidden.split(",") if h.strip()) if hidden is not None else None
    except ValueError:
        raise ConfigError(f"--hidden must be comma-separated ints, got {hidden!r}") from None
    task = parse_beam_task(beam_task)
    if (task is not None or model is not None) and train_path is None:
        raise ConfigError("--beam-task/--model apply to beam data: give --data TRAIN.h5 --test TEST.h5")
    bits_val: int | str | None
    if bits is None or bits == "auto":
        bits_val = bits
    else:
        try:
            bits_val = int(bits)
        except ValueError:
            raise ConfigError(f"--bits must be an integer or 'auto', got {bits!r}") from None
    from edge_sdk.server.distill.run import run_distill

    run_distill(train_path=train_path, test_path=test_path, dataset=dataset, method=method, budget=budget,
                compression=compression, quantizer=quantizer, bits=bits_val, per_feature=per_feature, ipc=ipc,
                iterations=iterations, soft_labels=soft_labels, seeds=seeds, steps=steps, seed=seed, hidden=hid,
                beam_task=task, model=model,
                graph=not no_graph, device=device, out_dir=Path(out_dir), progress=not no_progress)

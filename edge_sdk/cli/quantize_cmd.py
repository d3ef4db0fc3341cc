"""``edge-sdk quantize``: adaptive dataset quantization (ADQ) and its baselines -> payload v1 + report.json.

Examples::

    edge-sdk quantize --method adq --data train.h5 --test test.h5 --compression 16x --out runs/adq16
    edge-sdk quantize --method adq --dataset digits --compression 16x --prune ccs --keep 0.1 --out runs/x
    edge-sdk quantize --method fixed --dataset digits --budget 16KiB --seeds 3 --out runs/y

Writes ``OUT/graph.onnx`` (the ONNX training graph, SGD, for exactly the stored groups; ``--no-graph`` skips
it), ``OUT/payload.epl`` (one ``symmetric_per_sample`` group per bit width, named ``b{bits}``; dropped samples
are not stored; the header names the graph by sha256 and size, counted in the byte budget) and
``OUT/report.json`` (schema ``edge-sdk.report/1``, shared with ``distill``; ``extra.graph`` = path, sha256,
size of the graph).
torch and ``edge_sdk.server`` are imported inside the command (the CLI must load on a device without torch).
"""

from __future__ import annotations

from pathlib import Path

import click

from edge_sdk.cli.beam_task import beam_task_options, parse_beam_task
from edge_sdk.errors import ConfigError


@click.command(name="quantize")
@click.option("--method", type=click.Choice(["adq", "uniform", "fixed", "prune", "full"]), default="adq",
              show_default=True, help="adq; baselines: uniform, fixed (random allocation), prune (pruning alone), full")
@click.option("--data", "train_path", type=click.Path(exists=True, dir_okay=False), help="beam training HDF5")
@click.option("--test", "test_path", type=click.Path(exists=True, dir_okay=False), help="beam test HDF5")
@click.option("--beam-norm", type=click.Choice(["per_sample_max", "affine"]), default=None,
              help="beam input normalisation (BeamTaskSpec.norm; default per_sample_max)")
@beam_task_options
@click.option("--dataset", type=str, default=None, help="'digits' (or cifar10:PATH) instead of --data/--test")
@click.option("--compression", type=str, default=None, help="ratio vs float32 bytes: 16x, 93.75%")
@click.option("--budget", type=str, default=None, help="byte budget of the whole payload file: 16KiB, 20000")
@click.option("--prune", type=click.Choice(["random", "el2n", "ccs"]), default=None, help="pruning before quantization")
@click.option("--keep", type=float, default=1.0, show_default=True, help="fraction kept by --prune")
@click.option("--allocation", type=click.Choice(["two", "k", "threshold"]), default="two", show_default=True)
@click.option("--groups", "k", type=int, default=2, show_default=True, help="k for --allocation k")
@click.option("--threshold", type=float, default=None, help="S threshold for --allocation threshold (default mean S)")
@click.option("--no-drop", is_flag=True, help="never use b_low = 0 (drop)")
@click.option("--class-balanced", is_flag=True, help="split into bit groups inside each class")
@click.option("--scale-dtype", type=click.Choice(["float32", "float16"]), default="float32", show_default=True)
@click.option("--ref-epochs", type=int, default=5, show_default=True, help="reference model epochs (0 = random init)")
@click.option("--sens-bits", type=int, default=2, show_default=True, help="bit width of the quantized copy in S(d)")
@click.option("--seeds", type=int, default=3, show_default=True, help="evaluation seeds (>= 3 for the protocol)")
@click.option("--steps", type=int, default=2000, show_default=True, help="evaluation training updates per seed (same default as distill)")
@click.option("--seed", type=int, default=0, show_default=True, help="seed of pruning/random choices")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True)
@click.option("--no-graph", is_flag=True,
              help="do not export OUT/graph.onnx (the payload then names no graph; the device cannot train on it)")
@click.option("--no-progress", is_flag=True)
def cli(method, train_path, test_path, beam_norm, beam_task, model, dataset, compression, budget, prune, keep, allocation, k, threshold, no_drop,
        class_balanced, scale_dtype, ref_epochs, sens_bits, seeds, steps, seed, out_dir, no_graph, no_progress) -> None:
    """Quantize a training set per sample under a byte budget (ADQ) and evaluate it."""
    if (compression is None) == (budget is None) and method != "full":
        raise ConfigError("give exactly one of --compression (e.g. 16x) or --budget (e.g. 16KiB)")
    if dataset is not None and (train_path is not None or test_path is not None):
        raise ConfigError("--dataset replaces --data/--test: give --dataset NAME, or --data TRAIN.h5 --test TEST.h5, "
                          "not both")
    if (train_path is None) != (test_path is None):
        raise ConfigError("--data and --test go together (beam HDF5 files)")
    if train_path is None and dataset is None:
        raise ConfigError("give --data TRAIN.h5 --test TEST.h5, or --dataset digits")
    if seeds < 1:
        raise ConfigError("--seeds must be >= 1")
    task = parse_beam_task(beam_task)
    if (task is not None or model is not None) and train_path is None:
        raise ConfigError("--beam-task/--model apply to beam data: give --data TRAIN.h5 --test TEST.h5")
    from edge_sdk.server.adq.run_cli import run_quantize

    run_quantize(
        method=method, train_path=train_path, test_path=test_path, dataset=dataset, beam_norm=beam_norm,
        beam_task=task, model=model,
        budget_spec=compression if compression is not None else (budget or "1x"), budget_is_bytes=budget is not None,
        prune=prune, keep=keep, allocation=allocation, k=k, threshold=threshold, allow_drop=not no_drop,
        class_balanced=class_balanced, scale_dtype=scale_dtype, ref_epochs=ref_epochs, sens_bits=sens_bits,
        seeds=seeds, steps=steps, seed=seed, out_dir=Path(out_dir), progress=not no_progress, graph=not no_graph,
    )


"""``edge-sdk quantize``: adaptive dataset quantization (ADQ) and its baselines -> payload v1 + report.json.

Examples::

    edge-sdk quantize --method adq --data train.h5 --test test.h5 --compression 16x --out runs/adq16
    edge-sdk quantize --method adq --dataset digits --compression 16x --prune ccs --keep 0.1 --out runs/x
    edge-sdk quantize --method fixed --dataset digits --budget 16KiB --seeds 3 --out runs/y

A thin face over ``edge_sdk.server.pipeline.run`` (shared options: ``edge_sdk.cli.options``). Writes
``OUT/graph.onnx`` (the ONNX training graph for exactly the stored groups; ``--no-graph`` skips it),
``OUT/payload.epl`` (one group per bit width, named ``b{bits}``: ``symmetric_per_sample`` in payload v1,
``affine_sample`` with compact lo/hi in v2 (``--payload-format 2``, ``--kind``); dropped samples are not
stored; the header names the graph by sha256 and size and carries the training recipe, all counted in the byte
budget) and ``OUT/report.json`` (schema ``edge-sdk.report/1``, shared with ``distill``).
torch and ``edge_sdk.server`` are imported inside the command (the CLI must load on a device without torch).
"""

from __future__ import annotations

from typing import Any

import click

from edge_sdk.catalog import ALLOCATIONS, PARAM_ENCODINGS, PRUNERS, QUANTIZE_METHODS, SAMPLE_KINDS
from edge_sdk.cli.options import SHARED_KEYS, parse_common, pipeline_options, run_face


@click.command(name="quantize")
@click.option("--method", type=click.Choice(list(QUANTIZE_METHODS)), default="adq", show_default=True,
              help="adq; baselines: uniform, fixed (random allocation), prune (pruning alone), full")
@click.option("--prune", type=click.Choice(list(PRUNERS)), default=None, help="pruning before quantization")
@click.option("--keep", type=float, default=1.0, show_default=True, help="fraction kept by --prune")
@click.option("--allocation", type=click.Choice(list(ALLOCATIONS)), default="cover", show_default=True,
              help="cover: keep a class- and sensitivity-stratified set when samples must be dropped (default, "
                   "chosen on validation); two: the paper's equal split (drops the less sensitive half)")
@click.option("--groups", "k", type=int, default=2, show_default=True, help="k for --allocation k")
@click.option("--threshold", type=float, default=None, help="S threshold for --allocation threshold (default mean S)")
@click.option("--no-drop", is_flag=True, help="never use b_low = 0 (drop)")
@click.option("--class-balanced", is_flag=True, help="split into bit groups inside each class")
@click.option("--cover-bits", type=int, default=3, show_default=True,
              help="--allocation cover: width of the less sensitive kept half when samples must be dropped")
@click.option("--kind", type=click.Choice(list(SAMPLE_KINDS)), default="auto", show_default=True,
              help="per-sample quantizer: auto = affine (min/max) with --payload-format 2, symmetric with 1")
@click.option("--param-encoding", type=click.Choice(list(PARAM_ENCODINGS)), default="compact", show_default=True,
              help="affine kind: lo/hi storage (compact = 8-bit grid lo + one constant or 8-bit grid hi)")
@click.option("--scale-dtype", type=click.Choice(["float32", "float16"]), default="float32", show_default=True,
              help="symmetric kind: scale storage")
@click.option("--ref-epochs", type=int, default=5, show_default=True, help="reference model epochs (0 = random init)")
@click.option("--sens-bits", type=int, default=2, show_default=True, help="bit width of the quantized copy in S(d)")
@pipeline_options
def cli(method: str, prune: str | None, keep: float, allocation: str, k: int, threshold: float | None,
        no_drop: bool, class_balanced: bool, cover_bits: int, kind: str, param_encoding: str, scale_dtype: str,
        ref_epochs: int, sens_bits: int, **kw: Any) -> None:
    """Quantize a training set per sample under a byte budget (ADQ) and evaluate it."""
    args = parse_common({key: kw[key] for key in SHARED_KEYS}, ignores_budget=method == "full")

    def config(device: str) -> Any:
        from edge_sdk.server.adq import QuantizeConfig
        from edge_sdk.server.adq.sensitivity import SensitivityConfig

        return QuantizeConfig(method=method, allocation=allocation, k=k, threshold=threshold,
                              allow_drop=not no_drop, class_balanced=class_balanced, scale_dtype=scale_dtype,
                              kind=kind, param_encoding=param_encoding, cover_bits=cover_bits,
                              prune=prune, keep=keep, seed=args.seed,
                              sensitivity=SensitivityConfig(ref_epochs=ref_epochs, bits=sens_bits,
                                                            scale_dtype=scale_dtype))

    run_face(config, args)

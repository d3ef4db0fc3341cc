"""``edge-sdk distill``: dataset distillation under a byte budget -> payload v1 + ONNX graph + report.json.

Examples::

    edge-sdk distill --data train.h5 --test test.h5 --method quadd --compression 36x --out runs/q36
    edge-sdk distill --dataset digits --method quadd-dm --quantizer codebook --bits 2 --budget 8KiB --out runs/d
    edge-sdk distill --dataset digits --method ptq-dm --bits auto --compression 36x --out runs/p

A thin face over ``edge_sdk.server.pipeline.run`` (shared options: ``edge_sdk.cli.pipeline_opts``). Writes
``OUT/payload.epl`` (never larger than the budget; its header carries the training recipe), ``OUT/graph.onnx``
(the dequantize-and-train graph for the payload's groups, MLP models; named by digest in the payload header) and
``OUT/report.json`` (schema ``edge-sdk.report/1``, docs/report-schema.md). The evaluation trains on the *written*
payload (with the device runtime when there is a graph). torch is imported inside the command.
"""

from __future__ import annotations

from typing import Any

import click

from edge_sdk.catalog import DISTILL_ALIASES, DISTILL_METHODS, QUANTIZERS, RAW_KINDS
from edge_sdk.cli.pipeline_opts import SHARED_KEYS, parse_common, pipeline_options, run_face
from edge_sdk.errors import ConfigError


@click.command(name="distill")
@click.option("--method", type=click.Choice(sorted([*DISTILL_METHODS, *DISTILL_ALIASES])), default="quadd",
              show_default=True,
              help="quadd (= quadd-mtt), dm/dc/mtt (float32), quadd-*, ptq-* (DD then PTQ), random, full")
@click.option("--quantizer", type=click.Choice([*QUANTIZERS, *RAW_KINDS]), default=None,
              help="default: codebook for quadd/ptq, float32 for dm/dc/mtt/random/full")
@click.option("--bits", type=str, default=None,
              help="bit width (default 3 for quantizers), or 'auto' (sweet-spot search with short proxy runs)")
@click.option("--per-feature", is_flag=True, help="uniform quantizer: one clipping threshold per feature")
@click.option("--ipc", type=int, default=None, help="samples per class (default: as many as fit the budget)")
@click.option("--iterations", type=int, default=300, show_default=True, help="distillation iterations")
@click.option("--soft-labels", is_flag=True, help="mtt hosts: learn soft labels (stored, counted in the budget)")
@pipeline_options
def cli(method: str, quantizer: str | None, bits: str | None, per_feature: bool, ipc: int | None, iterations: int,
        soft_labels: bool, **kw: Any) -> None:
    """Distill a training set into a payload that fits a byte budget, and evaluate it."""
    args = parse_common({k: kw[k] for k in SHARED_KEYS}, ignores_budget=method == "full")
    canonical = DISTILL_ALIASES.get(method, method)
    if quantizer is None:
        quantizer = "codebook" if canonical.startswith(("quadd", "ptq")) else "float32"
    if canonical.startswith(("quadd", "ptq")) and quantizer in RAW_KINDS:
        raise ConfigError(f"{method} needs --quantizer uniform, apot or codebook")
    bits_val: int | None = None
    if bits is not None and bits != "auto":
        try:
            bits_val = int(bits)
        except ValueError:
            raise ConfigError(f"--bits must be an integer or 'auto', got {bits!r}") from None

    def config(device: str) -> Any:
        from edge_sdk.server.distill import DistillConfig

        return DistillConfig(method=canonical, quantizer=quantizer, bits=bits_val, search_bits=bits == "auto",
                             per_feature=per_feature, ipc=ipc, iterations=iterations, soft_labels=soft_labels,
                             seed=args.seed, device=device)

    run_face(config, args)

"""``edge-sdk distill``: dataset distillation under a byte budget -> payload v1 + ONNX graph + report.json.

Examples::

    edge-sdk distill --data train.h5 --test test.h5 --compression 36x --out runs/a36          # --method auto
    edge-sdk distill --data train.h5 --test test.h5 --method quadd --compression 36x --out runs/q36
    edge-sdk distill --dataset digits --method quadd-dm --quantizer codebook --bits 2 --budget 8KiB --out runs/d
    edge-sdk distill --dataset digits --method ptq-dm --bits auto --compression 36x --out runs/p

A thin face over ``edge_sdk.server.pipeline.run`` (shared options: ``edge_sdk.cli.options``). Writes
``OUT/payload.epl`` (never larger than the budget; its header carries the training recipe), ``OUT/graph.onnx``
(the dequantize-and-train graph for the payload's groups, MLP models; named by digest in the payload header) and
``OUT/report.json`` (schema ``edge-sdk.report/1``, docs/report-schema.md). The evaluation trains on the *written*
payload (with the device runtime when there is a graph). torch is imported inside the command.
"""

from __future__ import annotations

from typing import Any

import click

from edge_sdk.catalog import (
    DISTILL_ALIASES,
    DISTILL_METHODS,
    DISTILL_SEARCH,
    LABEL_SOURCES,
    QUANTIZERS,
    RAW_KINDS,
    V2_QUANTIZERS,
)
from edge_sdk.cli.options import RECIPE_DEFAULTS, SHARED_KEYS, parse_common, pipeline_options, run_face
from edge_sdk.errors import ConfigError


@click.command(name="distill")
@click.option("--method", type=click.Choice(sorted([*DISTILL_METHODS, *DISTILL_ALIASES, *DISTILL_SEARCH])),
              default="auto", show_default=True,
              help="auto: method, quantizer, bits, label source and training recipe chosen on a validation split of "
                   "the training data under the exact byte budget (server/distill/auto.py; the search table goes "
                   "into report.json). Or name one: quadd (= quadd-mtt), dm/dc/mtt/kip (float32), quadd-*, ptq-* "
                   "(DD then PTQ), random, kmeans/kmedoids/herding (per-class selection baselines), full")
@click.option("--quantizer", type=click.Choice([*QUANTIZERS, *V2_QUANTIZERS, *RAW_KINDS]), default=None,
              help="default: codebook for quadd/ptq, float32 for the others; the affine kinds need --payload-format 2")
@click.option("--bits", type=str, default=None,
              help="bit width (default 3 for quantizers), or 'auto' (sweet-spot search with short proxy runs)")
@click.option("--per-feature", is_flag=True, help="uniform quantizer: one clipping threshold per feature")
@click.option("--ipc", type=int, default=None, help="samples per class (default: as many as fit the budget)")
@click.option("--iterations", type=click.IntRange(1, None), default=None,
              help="distillation iterations (default: 300; --method auto: 100 for its quadd-kip candidate, "
                   "server/distill/auto.py)")
@click.option("--soft-labels", is_flag=True, help="mtt hosts: learn soft labels (stored, counted in the budget)")
@click.option("--labels", type=click.Choice(LABEL_SOURCES), default="data", show_default=True,
              help="teacher: file every stored row under the class an ensemble trained on the training data "
                   "predicts for it (server/teacher.py; no extra bytes). auto tries both")
@click.option("--teacher-members", type=click.IntRange(1, 16), default=3, show_default=True,
              help="--labels teacher / auto: models in the teacher ensemble")
@click.option("--teacher-steps", type=click.IntRange(1, None), default=16000, show_default=True,
              help="--labels teacher / auto: training steps of each teacher model (Adam 3e-3, cosine)")
@pipeline_options
def cli(method: str, quantizer: str | None, bits: str | None, per_feature: bool, ipc: int | None,
        iterations: int | None,
        soft_labels: bool, labels: str, teacher_members: int, teacher_steps: int, **kw: Any) -> None:
    """Distill a training set into a payload that fits a byte budget, and evaluate it."""
    args = parse_common({k: kw[k] for k in SHARED_KEYS}, ignores_budget=method == "full")
    canonical = DISTILL_ALIASES.get(method, method)
    if canonical == "auto":
        if quantizer is not None or bits is not None or labels != "data":
            raise ConfigError("--method auto (the default) chooses the quantizer, bits and label source itself; "
                              "drop --quantizer/--bits/--labels, or name a method (e.g. --method kmeans)")
        recipe_flags = [f"--{k.replace('_', '-')}" for k, v in RECIPE_DEFAULTS.items() if kw.get(k) != v]
        if recipe_flags:
            raise ConfigError(f"--method auto (the default) chooses the training recipe on the validation split; "
                              f"drop {'/'.join(recipe_flags)}, or name a method (e.g. --method kmeans)")
        _run_auto(args, iterations, teacher_members, teacher_steps)
        return
    if quantizer is None:
        quantizer = "codebook" if canonical.startswith(("quadd", "ptq")) else "float32"
    if canonical.startswith(("quadd", "ptq")) and quantizer in RAW_KINDS:
        raise ConfigError(f"{method} needs --quantizer uniform, apot, codebook or an affine kind")
    if quantizer in V2_QUANTIZERS and str(kw.get("payload_format")) != "2":
        raise ConfigError(f"--quantizer {quantizer} is stored in payload format v2 only: use --payload-format 2 "
                          "(the default)")
    bits_val: int | None = None
    if bits is not None and bits != "auto":
        try:
            bits_val = int(bits)
        except ValueError:
            raise ConfigError(f"--bits must be an integer or 'auto', got {bits!r}") from None

    def config(device: str) -> Any:
        from edge_sdk.server.distill import DistillConfig

        return DistillConfig(method=canonical, quantizer=quantizer, bits=bits_val, search_bits=bits == "auto",
                             per_feature=per_feature, ipc=ipc, soft_labels=soft_labels, labels=labels,
                             iterations=iterations if iterations is not None else DistillConfig.iterations,
                             teacher_members=teacher_members, teacher_steps=teacher_steps,
                             seed=args.seed, device=device)

    run_face(config, args)


def _run_auto(args: Any, iterations: int | None, teacher_members: int, teacher_steps: int) -> None:
    """``--method auto``: the search of ``edge_sdk.server.distill.auto`` on the loaded data, then the pipeline run of
    the winner with the chosen recipe; the search table goes into report.json (``extra.auto``)."""
    from dataclasses import replace

    from edge_sdk.server.distill import DistillConfig, auto
    from edge_sdk.server.pipeline import (
        REPORT_NAME,
        DataSource,
        RunConfig,
        configure_torch_threads,
        default_device,
        family_of,
        payload_cost,
        run,
        summary_line,
        write_report,
    )
    from edge_sdk.server.train_eval import EvalConfig

    configure_torch_threads(args.threads)
    if iterations is None:
        iterations = auto.DEFAULT.kip_iterations
    if args.budget is None:
        raise ConfigError("--method auto needs a byte budget: --budget (e.g. 16KiB) or --compression (e.g. 36x)")
    device = args.device or default_device()
    data = DataSource(**args.source).load()
    budget_bytes = args.budget.describe(data.full_float32_bytes)["bytes"]
    base = DistillConfig(method="random", iterations=iterations, seed=args.seed, device=device)
    acfg = replace(auto.DEFAULT, payload_format=args.payload_format, device=device, seed=args.seed,
                   kip_iterations=iterations, teacher_members=teacher_members, teacher_steps=teacher_steps)
    probe = RunConfig(method=base, budget=args.budget, eval=EvalConfig(acfg.screen_recipe, args.seeds, device),
                      graph=False, payload_format=args.payload_format)
    choice = auto.search_auto(data, budget_bytes, acfg, payload_cost(data, probe, family_of(base)), base=base,
                              progress=args.progress)
    mcfg = DistillConfig(method=choice.method, quantizer=choice.quantizer, bits=choice.bits, iterations=iterations,
                         labels=choice.labels, teacher_members=acfg.teacher_members, teacher_steps=acfg.teacher_steps,
                         seed=args.seed, device=device)
    cfg = RunConfig(method=mcfg, budget=args.budget, eval=EvalConfig(choice.recipe, args.seeds, device),
                    graph=args.graph, payload_format=args.payload_format)
    res = run(data, cfg, args.out_dir, progress=args.progress)
    res.report.setdefault("extra", {})["auto"] = choice.to_dict()
    write_report(args.out_dir / REPORT_NAME, res.report)
    click.echo(summary_line(res) + f" [auto: chosen on validation in {choice.seconds:.0f} s]")

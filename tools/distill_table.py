"""Run every distillation method x compression ratio, write a results table + rate-distortion curve.

    .venv/bin/python tools/distill_table.py --dataset digits --compressions 36,180 --seeds 3 --out docs
    .venv/bin/python tools/distill_table.py --data datasets/3gpp/reference/train.h5 --test datasets/3gpp/reference/test.h5 \
        --compressions 36,180 --out docs --name beam

Each run goes through the same code path as ``edge-sdk distill`` (payload written, size checked against the
budget, evaluation on the values decoded from the payload, report.json). Outputs (``--out DIR``):
``distillation-results[-NAME].md`` (table + the exact command), ``distillation-rd[-NAME].parquet`` and
``.png`` (KPI vs payload bytes), run folders under ``--runs``.

Method entries are ``name:quantizer[:bits]``; ``full`` runs once (it ignores the budget).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

DEFAULT_METHODS = ["full:float32", "full:uniform:8", "random:float32", "random:uniform:2", "dm:float32",
                   "ptq-dm:uniform:2", "quadd-dm:uniform:2", "quadd-dm:codebook:2"]


def parse_entry(e: str) -> tuple[str, str, int | None]:
    parts = e.split(":")
    if len(parts) not in (2, 3):
        raise SystemExit(f"bad method entry {e!r}; use name:quantizer[:bits]")
    return parts[0], parts[1], int(parts[2]) if len(parts) == 3 else None


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default=None)
    ap.add_argument("--data", default=None)
    ap.add_argument("--test", default=None)
    ap.add_argument("--methods", default=",".join(DEFAULT_METHODS))
    ap.add_argument("--compressions", default="36,180")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--lr-data", type=float, default=None, help="DistillConfig.lr_data (default: the config default)")
    ap.add_argument("--class-alloc", default=None, choices=["auto", "balanced", "proportional"],
                    help="DistillConfig.class_alloc (default: the config default, auto)")
    ap.add_argument("--init", default=None, choices=["auto", "greedy", "random"], help="DistillConfig.init")
    ap.add_argument("--select", default=None, choices=["auto", "none", "val"], help="DistillConfig.select")
    ap.add_argument("--name", default="")
    ap.add_argument("--out", default="docs")
    ap.add_argument("--runs", default="runs/distill_table")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from edge_sdk.errors import ConfigError
    from edge_sdk.modelspec import TrainRecipe
    from edge_sdk.server.budget import write_rd_curve
    from edge_sdk.server.distill import DistillConfig
    from edge_sdk.server.pipeline import DataSource, RunConfig, run
    from edge_sdk.server.train_eval import EvalConfig
    from edge_sdk.units import Budget

    source = DataSource(train=args.data, test=args.test) if args.data else DataSource(dataset=args.dataset or "digits")
    data = source.load()
    ev = EvalConfig(TrainRecipe(steps=args.steps), seeds=tuple(range(args.seeds)))

    kpi = "top1"
    rows = []
    skipped: list[str] = []
    ratios = [float(r.rstrip("x")) for r in args.compressions.split(",") if r]
    extra = {k: v for k, v in (("lr_data", args.lr_data), ("class_alloc", args.class_alloc), ("init", args.init),
                                              ("select", args.select))
             if v is not None}
    for entry in args.methods.split(","):
        name, quant, bits = parse_entry(entry)
        for ratio in ([1.0] if name == "full" else ratios):
            tag = f"{name}-{quant}{bits or ''}-{ratio:g}x"
            t0 = time.perf_counter()
            try:
                method = DistillConfig(method=name, quantizer=quant, bits=bits, iterations=args.iterations, **extra)
                budget = None if name == "full" else Budget.of_ratio(ratio)
                rep = run(data, RunConfig(method, budget, ev, graph=False),
                          Path(args.runs) / (args.name or data.name) / tag).report
            except ConfigError as exc:  # e.g. float32 cannot hold one sample per class at 180x
                skipped.append(f"{tag}: {exc}")
                print(f"{tag:34s} skipped: {exc}", flush=True)
                continue
            op = rep["extra"]["method_info"]["operating_point"]
            row = {"method": name, "quantizer": quant, "bits": op["bits"], "ipc": op["ipc"], "n": op["n"],
                   "target_x": ratio, "payload_bytes": rep["payload_bytes"], "compression": rep["compression"],
                   f"{kpi}_mean": rep["kpis"][kpi]["mean"], f"{kpi}_std": rep["kpis"][kpi]["std"],
                   "seconds": time.perf_counter() - t0}
            if "top1_1db" in rep["kpis"]:
                row["top1_1db_mean"] = rep["kpis"]["top1_1db"]["mean"]
            rows.append(row)
            print(f"{tag:34s} {row['payload_bytes']:>8d} B {row['compression']:7.1f}x ipc={row['ipc']:<5d} "
                  f"{kpi} {row[f'{kpi}_mean']:.4f} ± {row[f'{kpi}_std']:.4f}  ({row['seconds']:.0f} s)", flush=True)

    out = Path(args.out)
    suffix = f"-{args.name}" if args.name else ""
    write_rd_curve(rows, out / f"distillation-rd{suffix}.parquet", out / f"distillation-rd{suffix}.png", kpi=kpi)
    full = [r for r in rows if r["method"] == "full" and r["quantizer"] == "float32"]
    ref = full[0][f"{kpi}_mean"] if full else None
    cmd = ".venv/bin/python tools/distill_table.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    lines = [f"# Distillation results ({args.name or data.name})", "",
             f"Produced by `{cmd}`", "",
             f"Dataset `{data.name}`: {data.X_train.shape[0]} training x {data.dim} values, {data.X_test.shape[0]} test, "
             f"{data.num_classes} classes; model {data.spec.to_dict()}.",
             f"Distillation iterations {args.iterations}, lr_data {args.lr_data or 'default'}, class_alloc "
             f"{args.class_alloc or 'default (auto)'}, init {args.init or 'default (auto)'}, select "
             f"{args.select or 'default (auto)'}; evaluation: {args.seeds} seeds x {args.steps} SGD updates "
             "(edge_sdk.server.train_eval). Bytes are payload file sizes; compression = float32 training set / payload.",
             "", f"| method | quantizer | bits | ipc | target | payload B | compression | {kpi} mean ± std | rel. to full fp32 |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        rel = f"{r[f'{kpi}_mean'] / ref:.3f}" if ref else "-"
        tgt = "-" if r["method"] == "full" else f"{r['target_x']:g}x"
        lines.append(f"| {r['method']} | {r['quantizer']} | {r['bits']} | {r['ipc'] or 'all'} | {tgt} | {r['payload_bytes']} | "
                     f"{r['compression']:.1f}x | {r[f'{kpi}_mean']:.4f} ± {r[f'{kpi}_std']:.4f} | {rel} |")
    if skipped:
        lines += ["", "Runs that cannot fit the budget:", ""] + [f"- {s}" for s in skipped]
    lines += ["", f"Plot: `distillation-rd{suffix}.png`; table data: `distillation-rd{suffix}.parquet`.", ""]
    (out / f"distillation-results{suffix}.md").write_text("\n".join(lines))
    return {"rows": rows}


if __name__ == "__main__":
    main()

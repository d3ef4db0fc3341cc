"""One accuracy-vs-bytes figure for the beam task: ADQ, its baselines and QuADD / distillation results.

Inputs: ``docs/adq-results.json`` (written by ``tools/adq_table.py --dataset beam``) and the distillation
results if present — Parquet/JSON rate-distortion tables written by ``edge_sdk.server.budget.write_rd_curve``
(rows ``{method, bits, payload_bytes, top1_mean, top1_std}``) or ``report.json`` files of ``edge-sdk
distill``; pass them with ``--distill`` (repeatable) or let the script find ``docs/*<dataset>*.parquet`` and
``docs/*rd*<dataset>*.json``. Output: ``docs/rate_accuracy_adq_beam.png``: the old-protocol ADQ and distillation
tables (the honest-protocol figure is ``docs/rate_accuracy_beam.png``, from tools/accuracy_table.py); x: payload
file bytes, log scale; y: top-1 %, mean ± std over seeds.

    .venv/bin/python tools/plot_rate_accuracy.py [--dataset beam] [--distill docs/rd_beam.parquet] [--out docs/rate_accuracy_adq_beam.png]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edge_sdk.atomic import atomic_path

ROOT = Path(__file__).resolve().parents[1]


def adq_series(res: dict) -> dict[str, list[tuple[float, float, float]]]:
    """{label: [(bytes, top1 %, std %)]} for the compression sweep and the 99.375 % rows."""
    out: dict[str, list] = {}
    for r in res["rows"]:
        c = r["config"]
        if r["section"] not in ("reference", "ratio", "extreme"):
            continue
        if r["section"] == "extreme":
            name = f"pruning alone ({c['prune']})" if c["method"] == "prune" else f"{c['method']} + {c['prune']} 10%"
        else:
            name = {"full": "full float32", "adq": "ADQ", "fixed": "fixed allocation", "uniform": "uniform"}[c["method"]]
        k = r["kpis"]["top1"]
        out.setdefault(name, []).append((r["bytes"], 100 * k["mean"], 100 * k["std"]))
    return out


def distill_series(paths: list[Path]) -> dict[str, list[tuple[float, float, float]]]:
    out: dict[str, list] = {}
    for p in paths:
        rows: list[dict] = []
        if p.suffix == ".parquet":
            import pyarrow.parquet as pq

            rows = pq.read_table(p).to_pylist()
        else:
            d = json.loads(p.read_text())
            if isinstance(d, dict) and d.get("command") == "distill":  # a report.json
                rows = [{"method": d["method"], "bits": d["config"].get("bits", ""), "payload_bytes": d["payload_bytes"],
                         "top1_mean": d["kpis"]["top1"]["mean"], "top1_std": d["kpis"]["top1"]["std"]}]
            elif isinstance(d, dict) and "rows" in d:
                rows = d["rows"]
            elif isinstance(d, list):
                rows = d
        for r in rows:
            if not all(k in r for k in ("method", "payload_bytes", "top1_mean")):
                continue
            name = " ".join(str(v) for v in (r["method"], r.get("quantizer"), r.get("bits")) if v not in (None, ""))
            if r.get("bits") not in (None, ""):
                name += "b"
            out.setdefault(name, []).append((r["payload_bytes"], 100 * r["top1_mean"], 100 * (r.get("top1_std") or 0)))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="beam")
    ap.add_argument("--results", type=Path, default=ROOT / "docs" / "adq-results.json")
    ap.add_argument("--distill", type=Path, action="append", default=None)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "rate_accuracy_adq_beam.png")
    a = ap.parse_args(argv)
    if not a.results.exists():
        print(f"{a.results} not found: run tools/adq_table.py first", file=sys.stderr)
        return 1
    res = json.loads(a.results.read_text())
    if a.dataset not in res:
        print(f"no {a.dataset!r} results in {a.results} (have {sorted(res)})", file=sys.stderr)
        return 1
    paths = a.distill if a.distill is not None else sorted(
        [*ROOT.glob(f"docs/*{a.dataset}*.parquet"), *ROOT.glob(f"docs/*rd*{a.dataset}*.json")])
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 5))
    ax.set_prop_cycle(color=[plt.get_cmap("tab20")(i) for i in range(20)])
    styles = {"ADQ": ("o", "-"), "fixed allocation": ("s", "--"), "uniform": ("^", ":")}
    for name, pts in sorted(adq_series(res[a.dataset]).items()):
        pts.sort()
        m, ls = styles.get(name, ("D", "none"))
        ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts], marker=m, linestyle=ls,
                    capsize=2, label=name)
    dist = distill_series(paths)
    for name, pts in sorted(dist.items()):
        pts.sort()
        ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts], marker="x", linestyle="-.",
                    capsize=2, label=f"distill: {name}")
    ax.set_xscale("log")
    ax.set_xlabel("payload file bytes (log)")
    ax.set_ylabel("top-1 beam accuracy % (mean ± std over seeds)")
    src = "" if dist else " (no distillation results found)"
    ax.set_title(f"{a.dataset}: accuracy vs bytes{src}", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=1, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    with atomic_path(a.out, make_parents=True) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    print(f"wrote {a.out} ({len(dist)} distillation series from {[str(p) for p in paths]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""ADQ result tables: ADQ vs uniform / fixed allocation / pruning alone at 50, 75, 87.5, 93.75 % and 99.375 %.

Runs the grid with the shared evaluation protocol (``edge_sdk.server.train_eval``: fresh models, ``--seeds``
seeds, ``--steps`` SGD updates each, last model scored on the real test set), stores every row in
``docs/adq-results.json`` (keyed by dataset; re-running one dataset keeps the others) and renders
``docs/adq-results.md`` from that JSON (tables + the exact commands).

    .venv/bin/python tools/adq_table.py --dataset digits --seeds 3 --steps 300
    .venv/bin/python tools/adq_table.py --dataset beam --train datasets/3gpp/reference/train.h5 \
        --test datasets/3gpp/reference/test.h5 --seeds 3 --steps 600
    .venv/bin/python tools/adq_table.py --render-only
    # payload v2 (affine per-sample kind, compact lo/hi) vs v1, cover vs two-group allocation (issue #11 item 7):
    # choices on the validation split of the training data, then the chosen rows once on the test set
    .venv/bin/python tools/adq_table.py --dataset beam --train datasets/3gpp/reference/train.h5 \
        --test datasets/3gpp/reference/test.h5 --v2 val --budgets 16x --seeds 3 --steps 2000
    .venv/bin/python tools/adq_table.py --dataset beam --train datasets/3gpp/reference/train.h5 \
        --test datasets/3gpp/reference/test.h5 --v2 test --budgets 16x,36x,180x --seeds 3 --steps 2000

Compression is relative to the float32 bytes of the full training features (``N * D * 4``) and every row's
bytes are the exact payload file size (``edge_sdk.payload.payload_size``, header included).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

from edge_sdk.atomic import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
JSON_PATH = ROOT / "docs" / "adq-results.json"
MD_PATH = ROOT / "docs" / "adq-results.md"
RATIOS = [("50%", "2x"), ("75%", "4x"), ("87.5%", "8x"), ("93.75%", "16x")]
EXTREME = "160x"  # keep 10 % x 16x quantization = 99.375 % (the paper's "99.3 %")


def grid(quick: bool = False) -> list[tuple[str, dict]]:
    """(section, QuantizeConfig kwargs) of every row."""
    rows: list[tuple[str, dict]] = [("reference", {"method": "full", "budget": "1x"})]
    for _, r in RATIOS:
        for m in ("uniform", "fixed", "adq"):
            rows.append(("ratio", {"method": m, "budget": r}))
    for pr in ("ccs", "random"):
        rows.append(("extreme", {"method": "prune", "budget": EXTREME, "prune": pr}))
        for m in ("uniform", "fixed", "adq"):
            rows.append(("extreme", {"method": m, "budget": EXTREME, "prune": pr, "keep": 0.1}))
    if not quick:
        for ref_epochs in (0, 1, 5, 20):
            for bits in (2, 4):
                rows.append(("ablation", {"method": "adq", "budget": "16x", "sens": {"ref_epochs": ref_epochs, "bits": bits}}))
        rows.append(("ablation", {"method": "adq", "budget": "16x", "class_balanced": True}))
        rows.append(("ablation", {"method": "fixed", "budget": "16x", "class_balanced": True}))
        for r in ("8x", "16x"):
            rows.append(("ablation", {"method": "adq", "budget": r, "allocation": "k", "k": 3}))
            rows.append(("ablation", {"method": "adq", "budget": r, "allocation": "threshold"}))
        for sd in ("float16",):
            for _, r in RATIOS:
                for m in ("fixed", "adq"):
                    rows.append(("scale16", {"method": m, "budget": r, "scale_dtype": sd}))
    return rows


#: the v2 sweep (``--v2 val|test``): (section, QuantizeConfig kwargs + payload_format) per budget
def grid_v2(split: str, budget: str, cover_bits: int = 3) -> list[tuple[str, dict]]:
    v1 = {"payload_format": 1, "kind": "symmetric"}
    v2 = {"payload_format": 2, "kind": "affine"}
    rows: list[tuple[str, dict]] = []
    for m in ("fixed", "adq"):
        rows.append(("v2", {"method": m, "budget": budget, **v1}))  # the old default (v1, symmetric, two groups)
    for m in ("fixed", "adq"):
        rows.append(("v2", {"method": m, "budget": budget, "allocation": "cover", "cover_bits": cover_bits, **v1}))
    for m in ("fixed", "adq"):
        rows.append(("v2", {"method": m, "budget": budget, **v2}))  # affine, the paper's two-group split
    for cb in ((2, 3, 4, 5) if split == "val" else (cover_bits,)):
        for m in ("fixed", "adq"):
            rows.append(("v2", {"method": m, "budget": budget, "allocation": "cover", "cover_bits": cb, **v2}))
    if split == "val":
        for enc in ("f2", "f4"):  # compact (q8 lo + c4 hi) vs float16 / float32 ranges
            rows.append(("v2", {"method": "adq", "budget": budget, "allocation": "cover", "cover_bits": cover_bits,
                                "param_encoding": enc, **v2}))
        rows.append(("v2", {"method": "uniform", "budget": budget, **v2}))
    return rows


def data_stats(data) -> dict:
    """Facts about the stored representation: sign of the features, how many of the 2Q+1 symmetric levels
    the codes actually use per width, bytes per sample at each width, and the fixed payload overhead."""
    import numpy as np

    from edge_sdk import codecs
    from edge_sdk.modelspec import TrainRecipe
    from edge_sdk.server.adq import QuantizeConfig
    from edge_sdk.server.adq.cost import ByteCost
    from edge_sdk.server.pipeline import RunConfig, family_of, payload_cost
    from edge_sdk.server.train_eval import EvalConfig

    x = data.X_train
    cfg = RunConfig(QuantizeConfig(), eval=EvalConfig(TrainRecipe()), graph=False)
    overhead = payload_cost(data, cfg, family_of(cfg.method)).size([])  # header with recipe + provenance, no graph
    out = {"frac_positive": float((x > 0).mean()), "frac_negative": float((x < 0).mean()),
           "overhead_bytes": int(overhead), "levels": {}, "per_sample_bytes": {}}
    for b in (2, 3, 4, 8):
        c, _ = codecs.quantize(x, "symmetric_per_sample", b)
        out["levels"][str(b)] = [int(np.unique(c).size), 2 * codecs.q_max(b) + 1]
    for sd in ("float32", "float16"):
        bc = ByteCost(d=data.dim, num_classes=data.num_classes, scale_dtype=sd)
        out["per_sample_bytes"][sd] = {str(b): bc.per_sample_bytes(b) for b in (2, 4, 8, 16, 32)}
    cfg2 = RunConfig(QuantizeConfig(), eval=EvalConfig(TrainRecipe()), graph=False, payload_format=2)
    from edge_sdk.server.adq.family import width_cost

    wc = width_cost(data, cfg2.method, payload_cost(data, cfg2, family_of(cfg2.method)))
    out["v2"] = {"overhead_bytes": int(wc.total([])), "encodings": dict(wc.param_encodings),
                 "row_bytes": {str(b): int(wc.total([(b, 1000)]) - wc.total([(b, 1)])) / 999 for b in (2, 3, 4, 8)}}
    return out


def run_grid(data, rows, ev, runs_dir: Path, log=print, paired: bool = False) -> list[dict]:
    """Every row through the product's one path (``edge_sdk.server.pipeline.run``, no graph: the table compares
    methods, and a graph digest would add the same ~80 B to every payload). ``paired``: seed ``s`` of the
    evaluation is also the method's seed (random allocation, coverage order), one run per seed, so the std
    covers the choice of the stored rows as well as the model initialisation."""
    from edge_sdk.server.adq import QuantizeConfig
    from edge_sdk.server.adq.sensitivity import SensitivityConfig
    from edge_sdk.server.pipeline import RunConfig, run
    from edge_sdk.units import Budget

    out = []
    for i, (section, kw) in enumerate(rows):
        kw = dict(kw)
        sens = kw.pop("sens", {})
        budget = Budget.parse(kw.pop("budget"))
        fmt = kw.pop("payload_format", 1)
        kw.setdefault("allocation", "two")  # the tables' rows name their allocation; unnamed = the paper's split
        sd = kw.get("scale_dtype", "float32")
        cfg = QuantizeConfig(**kw, sensitivity=SensitivityConfig(scale_dtype=sd, **sens))
        t0 = time.perf_counter()
        if paired:
            from dataclasses import replace

            import numpy as np

            reps = [run(data, RunConfig(replace(cfg, seed=sd_), budget, replace(ev, seeds=(sd_,)), graph=False,
                                        payload_format=fmt), runs_dir / f"row{i:02d}s{sd_}").report for sd_ in ev.seeds]
            rep = reps[0]
            per = {k: [r["kpis"][k]["mean"] for r in reps] for k in rep["kpis"]}
            rep["kpis"] = {k: {"mean": float(np.mean(v)), "std": float(np.std(v)), "per_seed": v} for k, v in per.items()}
            rep["payload_bytes"] = max(r["payload_bytes"] for r in reps)
        else:
            rep = run(data, RunConfig(cfg, budget, ev, graph=False, payload_format=fmt), runs_dir / f"row{i:02d}").report
        alloc = rep["extra"]["method_info"]["allocation"]
        row = {
            "section": section, "config": {**rep["config"], "budget": budget.spec, "payload_format": fmt},
            "bytes": int(rep["payload_bytes"]), "budget": int(budget.resolve(data.full_float32_bytes)),
            "full_float32_bytes": int(data.full_float32_bytes),
            "compression_percent": 100.0 * (1.0 - rep["payload_bytes"] / data.full_float32_bytes),
            "stored": int(rep["extra"]["stored_samples"]), "n_train": int(data.X_train.shape[0]),
            "groups": alloc["group_sizes"], "kpis": rep["kpis"], "seconds": time.perf_counter() - t0,
        }
        out.append(row)
        log(f"[{i + 1}/{len(rows)}] {section:9s} {label(row):38s} {row['bytes']:8d} B "
            f"top1 {row['kpis']['top1']['mean']:.4f} +- {row['kpis']['top1']['std']:.4f} ({row['seconds']:.0f} s)")
    return out


def label(row: dict) -> str:
    c = row["config"]
    if row["section"] == "v2":
        alloc = f"cover {c['cover_bits']}" if c["allocation"] == "cover" else c["allocation"]
        if c["method"] == "uniform":
            alloc = "uniform width"
        kind = (f"affine, {c['param_encoding']} lo/hi" if c["kind"] == "affine" else
                f"symmetric, {'f16' if c['scale_dtype'] == 'float16' else 'f32'} scale")
        return f"{c['method']} (v{c.get('payload_format', 1)}, {kind}, {alloc})"
    name = {"full": "full data float32", "prune": f"pruning alone ({c['prune']})"}.get(c["method"], c["method"])
    if c["method"] in ("adq", "uniform", "fixed") and c["prune"] and c["keep"] < 1:
        name += f" + {c['prune']} keep {c['keep']:g}"
    extras = []
    if c["allocation"] != "two" and c["method"] == "adq":
        extras.append(f"{c['k']} groups" if c["allocation"] == "k" else "threshold split")
    if c["class_balanced"]:
        extras.append("class-balanced")
    if row["section"] == "ablation" and c["method"] == "adq" and c["allocation"] == "two" and not c["class_balanced"]:
        s = c["sensitivity"]
        extras.append(f"ref {s['ref_epochs']} ep, S at {s['bits']} b")
    if c["scale_dtype"] == "float16":
        extras.append("f16 scale")
    return name + (f" ({', '.join(extras)})" if extras else "")


def _kpi(row, k):
    v = row["kpis"].get(k)
    return "" if v is None else f"{100 * v['mean']:.2f} ± {100 * v['std']:.2f}"


def _groups(g: dict) -> str:
    return ", ".join(f"{n}×{b}b" for b, n in sorted(((int(b), n) for b, n in g.items()), reverse=True)) or "-"


def table(rows: list[dict], kpis: list[str]) -> list[str]:
    head = ["method", "budget", "bytes written", "compression", "stored / N", "bit groups"] + [f"{k} %" for k in kpis]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        c = r["config"]
        out.append("| " + " | ".join([
            label(r), c["budget"], str(r["bytes"]), f"{r['compression_percent']:.2f} %", f"{r['stored']} / {r['n_train']}",
            _groups(r["groups"]), *[_kpi(r, k) for k in kpis]]) + " |")
    return out


def verdicts(rows: list[dict]) -> list[str]:
    """ADQ - fixed per ratio, and ADQ+pruning - pruning alone at 99.375 % (top-1, mean over seeds)."""
    out = []
    by = {(r["config"]["method"], r["config"]["budget"], r["config"]["prune"] if r["config"]["keep"] < 1 or
           r["config"]["method"] == "prune" else None): r for r in rows if r["section"] in ("ratio", "extreme")}
    for pct, ratio in RATIOS:
        a, f = by.get(("adq", ratio, None)), by.get(("fixed", ratio, None))
        if a and f:
            d = 100 * (a["kpis"]["top1"]["mean"] - f["kpis"]["top1"]["mean"])
            noise = 100 * max(a["kpis"]["top1"]["std"], f["kpis"]["top1"]["std"])
            if d >= 0:
                v = "ADQ ≥ fixed" + (" (within 1 std: a tie)" if d <= noise else "")
            elif -d <= noise:
                v = "ADQ < fixed by less than 1 std (a tie within seed noise)"
            else:
                v = "ADQ < fixed (the paper's ordering does NOT hold here)"
            drop = " [samples dropped]" if a["stored"] < a["n_train"] else ""
            out.append(f"- {pct}: ADQ − fixed allocation = {d:+.2f} pts top-1 (max std {noise:.2f}) → {v}{drop}")
    for pr in ("ccs", "random"):
        a, p = by.get(("adq", EXTREME, pr)), by.get(("prune", EXTREME, pr))
        if a and p:
            d = 100 * (a["kpis"]["top1"]["mean"] - p["kpis"]["top1"]["mean"])
            out.append(f"- 99.375 % ({pr}): ADQ + {pr} − {pr} alone = {d:+.2f} pts top-1 → "
                       f"{'ADQ + pruning beats pruning alone' if d > 0 else 'pruning alone is better'}")
    return out


def verdicts_v2(rows: list[dict]) -> list[str]:
    """Per budget: ADQ − fixed at the same layout and kind (two-group and cover), and ADQ v2 − the old v1 ADQ."""
    out = []

    def find(method, fmt, alloc, cb=3, enc="compact"):
        for r in rows:
            c = r["config"]
            if (c["method"], c.get("payload_format", 1), c["allocation"]) == (method, fmt, alloc) and \
                    (alloc != "cover" or c["cover_bits"] == cb) and (fmt == 1 or c["param_encoding"] == enc) and \
                    c["budget"] == budget:
                return r
        return None

    def d(a, b):
        m = 100 * (a["kpis"]["top1"]["mean"] - b["kpis"]["top1"]["mean"])
        noise = 100 * max(a["kpis"]["top1"]["std"], b["kpis"]["top1"]["std"])
        word = "≥" if m >= 0 else "<"
        return f"{m:+.2f} pts top-1 (max std {noise:.2f}): {word}" + (" (within 1 std: a tie)" if abs(m) <= noise else "")

    for budget in sorted({r["config"]["budget"] for r in rows}, key=lambda v: float(v.rstrip("x"))):
        cbs = sorted({r["config"]["cover_bits"] for r in rows if r["config"]["allocation"] == "cover"})
        pairs = [("v1 symmetric, two groups", find("adq", 1, "two"), find("fixed", 1, "two"))]
        pairs += [(f"v1 symmetric, cover {cb}", find("adq", 1, "cover", cb), find("fixed", 1, "cover", cb))
                  for cb in cbs]
        pairs += [("v2 affine, two groups", find("adq", 2, "two"), find("fixed", 2, "two"))]
        pairs += [(f"v2 affine, cover {cb}", find("adq", 2, "cover", cb), find("fixed", 2, "cover", cb))
                  for cb in cbs]
        for what, a, f in pairs:
            if a and f:
                out.append(f"- {budget}, {what}: ADQ − fixed allocation (same bytes, same kind) = {d(a, f)}")
        old = find("adq", 1, "two")
        for cb in cbs:
            a = find("adq", 2, "cover", cb)
            if a and old:
                out.append(f"- {budget}: ADQ v2 affine cover {cb} − the old ADQ (v1 symmetric, two groups) = "
                           f"{d(a, old)}")
    return out


def render(results: dict) -> str:
    lines = ["# ADQ results", "",
             "Generated by `tools/adq_table.py` from `docs/adq-results.json`; do not edit by hand. Method and",
             "definitions: [adq.md](adq.md). Compression = 1 − (payload file bytes) / (float32 bytes of the full",
             "training features, N·D·4); 50/75/87.5/93.75 % = 2x/4x/8x/16x = a 16/8/4/2-bit average per value,",
             "99.375 % = keep 10 % then 16x (the paper's \"99.3 %\"). Bytes are exact payload file sizes, v1 unless the",
             "row says v2 (header, labels and per-sample scales or ranges included). KPIs: mean ± std over the",
             "evaluation seeds (fresh models, last step, real test set; the `beam-v2-val` section scores the",
             "validation split of the training data instead).", ""]
    for name, res in results.items():
        rows = res["rows"]
        kpis = ["top1"] + (["top1_1db", "top2"] if "top1_1db" in rows[0]["kpis"] else [])
        cmds = sorted(set(res.get("commands", {}).values())) or [res["command"]]
        lines += [f"## {name}", "", "Command: " + "; ".join(f"`{c}`" for c in cmds), "",
                  f"Data: {res['data']}. Evaluation: {res['eval']}. Wall time {res['seconds']:.0f} s "
                  f"({res['host']}).", ""]
        st = res.get("stats")
        if st and "v2" in st and name.startswith("beam-v2"):
            v2 = st["v2"]
            rb = ", ".join(f"{b}-bit {v:.2f}" for b, v in v2["row_bytes"].items())
            lines += [f"Representation: features > 0: {100 * st['frac_positive']:.1f} %, < 0: "
                      f"{100 * st['frac_negative']:.1f} % (one-signed: the symmetric grid uses "
                      f"{st['levels']['2'][0]}/{st['levels']['2'][1]} levels at 2 bits). Payload v2 affine_sample, "
                      f"lo/hi encodings {v2['encodings']}: bytes per stored row {rb} (labels as class counts); "
                      f"fixed v2 overhead {v2['overhead_bytes']} B (v1 symmetric, float32 scale: "
                      f"{st['per_sample_bytes']['float32']['2']:.2f} B per 2-bit row, {st['overhead_bytes']} B "
                      "overhead).", ""]
        elif st:
            lv = ", ".join(f"{b}-bit {u}/{t}" for b, (u, t) in st["levels"].items())
            ps = st["per_sample_bytes"]
            lines += [f"Representation: features > 0: {100 * st['frac_positive']:.1f} %, < 0: "
                      f"{100 * st['frac_negative']:.1f} %; symmetric code levels used / available: {lv}. "
                      f"Bytes per stored sample (codes + scale + label) at 2 / 4 / 8 bits: "
                      f"{ps['float32']['2']:.2f} / {ps['float32']['4']:.2f} / {ps['float32']['8']:.2f} with float32 "
                      f"scales, {ps['float16']['2']:.2f} / {ps['float16']['4']:.2f} / {ps['float16']['8']:.2f} with "
                      f"float16; float32 raw {ps['float32']['32']:.2f}. Fixed payload overhead (header, task, "
                      f"provenance): {st['overhead_bytes']} B.", ""]
        if name.startswith("beam-v2"):
            lines += ["### Verdicts", ""] + verdicts_v2(rows) + [""]
            for b in sorted({r["config"]["budget"] for r in rows}, key=lambda v: float(v.rstrip("x"))):
                lines += [f"### {b}", ""] + table([r for r in rows if r["config"]["budget"] == b], kpis) + [""]
            continue
        lines += ["### Verdicts", ""] + verdicts(rows) + [""]
        for sec, title in (("reference", "Reference"), ("ratio", "Compression sweep (no pruning)"),
                           ("extreme", "99.375 %: pruning + quantization vs pruning alone"),
                           ("ablation", "Ablations at 93.75 % (sensitivity reference state and width, "
                                        "class balance, allocation variants)"),
                           ("scale16", "float16 scales (2 B instead of 4 B per sample)")):
            sel = [r for r in rows if r["section"] == sec]
            if sel:
                lines += [f"### {title}", ""] + table(sel, kpis) + [""]
    return "\n".join(lines) + "\n"


def atomic_write(path: Path, text: str) -> None:
    atomic_write_text(path, text, make_parents=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", choices=["digits", "beam"], default="digits")
    ap.add_argument("--train", type=Path)
    ap.add_argument("--test", type=Path)
    ap.add_argument("--beam-norm", choices=["per_sample_max", "affine"], default=None,
                    help="BeamTaskSpec normalisation (results stored under 'beam-<norm>' unless default)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--quick", action="store_true", help="skip the ablations")
    ap.add_argument("--v2", choices=["val", "test"], default=None,
                    help="the payload-v2 sweep (affine kind, cover allocation): 'val' scores on the stratified 15 %% "
                         "validation split of the training data (server/protocol.py), 'test' on the test set")
    ap.add_argument("--budgets", default="16x", help="--v2: comma-separated budgets")
    ap.add_argument("--paired-seeds", action="store_true",
                    help="seed s is both the evaluation seed and the method seed (which rows are kept / get more "
                         "bits): one run per seed, the std covers the allocation's randomness too")
    ap.add_argument("--cover-bits", type=int, default=3,
                    help="--v2: cover_bits of the rows that compare encodings (val) / of every cover row (test)")
    ap.add_argument("--render-only", action="store_true")
    ap.add_argument("--stats-only", action="store_true",
                    help="only (re)compute the representation facts of --dataset into the stored results")
    a = ap.parse_args(argv)
    results = json.loads(JSON_PATH.read_text()) if JSON_PATH.exists() else {}
    if not a.render_only:
        import platform

        import torch

        from edge_sdk.modelspec import TrainRecipe
        from edge_sdk.server import datasets
        from edge_sdk.server.train_eval import EvalConfig


        torch.set_num_threads(1)
        t0 = time.perf_counter()
        if a.dataset == "beam":
            if not (a.train and a.test):
                ap.error("--dataset beam needs --train and --test")
            data = datasets.load_beam(a.train, a.test, task_spec={"norm": a.beam_norm} if a.beam_norm else None)
            desc = (f"{a.train} (N={data.X_train.shape[0]}, D={data.dim}), test {a.test} (N={data.X_test.shape[0]}), "
                    f"BeamTaskSpec norm {data.task['beam']['norm']!r}")
        else:
            data = datasets.load_task("digits")
            desc = f"sklearn digits, N={data.X_train.shape[0]} train / {data.X_test.shape[0]} test, D={data.dim}"
        key = a.dataset if not a.beam_norm else f"beam-{a.beam_norm}"
        if a.v2:
            from dataclasses import replace

            from edge_sdk.server.protocol import ProtocolConfig, split_train_val

            key = f"{a.dataset}-v2-{a.v2}"
            if a.v2 == "val":  # the fit part trains, the validation rows score; the test set plays no part
                fit, (X_val, y_val) = split_train_val(data, ProtocolConfig())
                data = replace(fit, X_test=X_val, y_test=y_val, rsrp_test=None)
                desc += f"; scored on the validation split (15 %, {X_val.shape[0]} rows), fit part N={fit.X_train.shape[0]}"
        if a.stats_only:
            if key not in results:
                ap.error(f"no stored results for {key!r}; run the grid first")
            results[key]["stats"] = data_stats(data)
            atomic_write(JSON_PATH, json.dumps(results, indent=1))
            atomic_write(MD_PATH, render(results))
            print(json.dumps(results[key]["stats"], indent=1))
            return 0
        ev = EvalConfig(TrainRecipe(steps=a.steps), seeds=tuple(range(a.seeds)))
        todo = grid(a.quick) if not a.v2 else [r for b in a.budgets.split(",") for r in grid_v2(a.v2, b.strip(), a.cover_bits)]
        with tempfile.TemporaryDirectory(prefix="adq-table-") as runs:
            rows = run_grid(data, todo, ev, Path(runs), paired=a.paired_seeds)
        commands: dict[str, str] = {}
        if a.v2 and key in results:  # keep the stored rows (and commands) of other budgets
            done = {r["config"]["budget"] for r in rows}
            rows = [r for r in results[key]["rows"] if r["config"]["budget"] not in done] + rows
            commands = {b: c for b, c in results[key].get("commands", {}).items() if b not in done}
        cmd = ".venv/bin/python tools/adq_table.py " + " ".join(shlex.quote(x) for x in (argv if argv is not None else sys.argv[1:]))
        if a.v2:
            commands.update({b.strip(): cmd for b in a.budgets.split(",")})
        results[key] = {
            **({"commands": commands} if a.v2 else {}),
            "stats": data_stats(data),
            "command": cmd, "data": desc, "rows": rows, "seconds": time.perf_counter() - t0,
            "eval": f"{data.spec.kind} model, {a.steps} SGD steps (batch {ev.recipe.batch_size}, lr {ev.recipe.lr}, "
                    f"momentum {ev.recipe.momentum}), seeds {list(ev.seeds)}",
            "host": f"{platform.machine()}, torch {torch.__version__}, 1 thread",
        }
        atomic_write(JSON_PATH, json.dumps(results, indent=1))
    if not results:
        print("no results yet; run without --render-only first", file=sys.stderr)
        return 1
    atomic_write(MD_PATH, render(results))
    print(f"wrote {MD_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Faithfulness table of the TR 38.901 beam-management generator against TR 38.843 headline numbers.

``edge-sdk data faithfulness`` (edge_sdk/cli/data_cmd.py) runs it::

    edge-sdk data faithfulness --out runs/faithfulness            # full run (100k/20k Case1, 400/200 Case2)
    edge-sdk data faithfulness --out /tmp/f --train 5000 --test 2000 --c2-train 40 --c2-test 20 --epochs 3
    edge-sdk data faithfulness --stats datasets/3gpp/reference/train.h5      # dataset-card statistics only

Steps: (1) generate (or resume / reuse) BM-Case1 train/test files and BM-Case2 train/test files with
``generate_dataset`` (fixed seeds, CPU); (2) train the reference MLP (input -> 256 -> 256 -> n_tx, ReLU, Adam
lr 1e-3, batch 512, cross-entropy on the Top-1 label) with :class:`edge_sdk.beam.taskspec.BeamTaskSpec` inputs
for Set B 1/4 and 1/8 with the best Rx beam and with a random Rx beam; (3) KPIs on the test set with
:func:`edge_sdk.beam.kpis.beam_kpis` and the best-of-Set-B baseline; BM-Case2: MLP on K = 4 past Set B (1/4)
measurements predicting the Top-1 one period ahead vs sample-and-hold, at 40/80/160 ms periods; (4) print a
table and write ``<out>/faithfulness.json`` and ``<out>/faithfulness.md``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_sdk.atomic import atomic_write_text
from edge_sdk.beam.stats import card_stats
from edge_sdk.errors import DatasetError

#: TR 38.843 ranges (docs/reference 3gpp-beam-management.md), fractions / dB
RANGES = {
    "1/4": {"top1": (0.70, 0.90), "top1_1db": (0.90, 1.0), "top2": (0.80, 1.0), "rsrp_diff_mean": (0.0, 1.0),
            "best_of_setb_top1": (0.25, 0.25)},
    "1/8": {"top1": (0.50, 0.80), "top1_1db": (0.70, 0.90), "top2": (0.70, 0.90), "rsrp_diff_mean": (0.0, 2.0),
            "best_of_setb_top1": (0.125, 0.125)},
}
SEEDS = {"train": 101, "test": 202, "c2train": 303, "c2test": 404}


def _generate(out: Path, preset: str, n: int, seed: int, tag: str) -> Path:
    from edge_sdk.server.datagen.generate import generate_dataset

    path = out / f"{preset}-{tag}.h5"
    steps = 100 if preset.endswith("case2") else 1
    if path.exists():
        from edge_sdk.beam.h5reader import open_beam_h5

        with open_beam_h5(path) as f:
            if f.n == n * steps and int(f.attrs["seed"]) == seed:
                return path
        raise DatasetError(f"{path} exists with another size or seed; delete it or choose another --out")
    generate_dataset(preset, samples=n * steps, seed=seed, out=path, device="cpu", batch=1000, resume=True,
                     progress=True)
    return path


def train_mlp(x: np.ndarray, y: np.ndarray, n_cls: int, epochs: int, seed: int = 0):
    """Reference MLP D -> 256 -> 256 -> n_cls (ReLU), Adam 1e-3, batch 512, cross-entropy. Returns the model."""
    import torch

    torch.manual_seed(seed)
    d = x.shape[1]
    model = torch.nn.Sequential(torch.nn.Linear(d, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256),
                                torch.nn.ReLU(), torch.nn.Linear(256, n_cls))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(xt), generator=g)
        for i in range(0, len(xt), 512):
            idx = perm[i : i + 512]
            loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model


def scores_of(model, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def case1_rows(train_ds, test_ds, epochs: int) -> list[dict]:
    from edge_sdk.beam.kpis import beam_kpis, best_of_setb_scores
    from edge_sdk.beam.taskspec import BeamTaskSpec

    rows = []
    for setb in ("1/4", "1/8"):
        for rx_mode in ("best", "random"):
            spec = BeamTaskSpec(n_tx=train_ds.n_tx, setb=setb, rx_mode=rx_mode, rx_seed=1).fit(train_ds)
            test_spec = BeamTaskSpec.from_dict({**spec.to_dict(), "rx_seed": 2})
            t0 = time.perf_counter()
            model = train_mlp(spec.inputs(train_ds), spec.labels(train_ds), spec.num_classes, epochs)
            k = beam_kpis(scores_of(model, test_spec.inputs(test_ds)), test_spec.target_rsrp(test_ds))
            base = beam_kpis(best_of_setb_scores(test_spec, test_ds), test_spec.target_rsrp(test_ds))
            rows.append({"setb": setb, "rx_mode": rx_mode, "mlp": k, "best_of_setb": base,
                         "train_s": round(time.perf_counter() - t0, 1)})
    return rows


def case2_rows(train_ds, test_ds, epochs: int, step_s: float) -> list[dict]:
    from edge_sdk.beam.kpis import beam_kpis, sample_and_hold_scores
    from edge_sdk.beam.taskspec import BeamTaskSpec

    rows = []
    for period_ms in (40, 80, 160):
        p = int(round(period_ms / 1000 / step_s))
        row: dict = {"period_ms": period_ms, "period_steps": p, "history": 4, "horizon": 1}
        for setb in ("1/4", "all"):
            spec = BeamTaskSpec(n_tx=train_ds.n_tx, setb=setb, case="case2", history=4, horizon=1,
                                period_steps=p).fit(train_ds)
            model = train_mlp(spec.inputs(train_ds), spec.labels(train_ds), spec.num_classes, epochs)
            tgt = spec.target_rsrp(test_ds)
            row["mlp" if setb == "1/4" else "mlp_setb_all"] = beam_kpis(scores_of(model, spec.inputs(test_ds)), tgt)
            if setb == "1/4":
                row["sample_and_hold"] = beam_kpis(sample_and_hold_scores(spec, test_ds), tgt)
                row["n_train"] = int(len(spec.anchors(train_ds)))
                row["n_test"] = int(len(tgt))
        rows.append(row)
    return rows


def _pct(v: float) -> str:
    return f"{100 * v:5.1f}"


def print_table(res: dict) -> None:
    print("\nBM-Case1 (uma-fr2-case1, Set A 32): MLP test KPIs vs TR 38.843")
    print(f"{'Set B':6} {'Rx':7} {'Top-1':>6} {'Top-2/1':>7} {'1dB':>6} {'dRSRP':>6} {'bestB':>6}  TR 38.843 Top-1")
    for r in res["case1"]:
        k, b = r["mlp"], r["best_of_setb"]
        rng = RANGES[r["setb"]]["top1"]
        print(f"{r['setb']:6} {r['rx_mode']:7} {_pct(k['top1'])} {_pct(k['top2']):>7} {_pct(k['top1_1db'])} "
              f"{k['rsrp_diff_mean']:6.2f} {_pct(b['top1'])}  {100 * rng[0]:.0f}-{100 * rng[1]:.0f}%")
    for setb in ("1/4", "1/8"):
        best = [r for r in res["case1"] if r["setb"] == setb and r["rx_mode"] == "best"][0]
        rnd = [r for r in res["case1"] if r["setb"] == setb and r["rx_mode"] == "random"][0]
        print(f"random-Rx loss {setb}: {100 * (best['mlp']['top1'] - rnd['mlp']['top1']):.1f} points "
              "(TR 38.843: 20-50)")
    if res.get("case2"):
        print("\nBM-Case2 (uma-fr2-case2, Set B 1/4, K=4 past measurements, predict 1 period ahead)")
        print(f"{'period':>7} {'MLP Top-1':>9} {'MLP 1dB':>8} {'MLP(A) Top-1':>12} {'S&H Top-1':>9} "
              f"{'S&H 1dB':>8} {'n_test':>7}")
        for r in res["case2"]:
            print(f"{r['period_ms']:5d}ms {_pct(r['mlp']['top1']):>9} {_pct(r['mlp']['top1_1db']):>8} "
                  f"{_pct(r['mlp_setb_all']['top1']):>12} {_pct(r['sample_and_hold']['top1']):>9} "
                  f"{_pct(r['sample_and_hold']['top1_1db']):>8} {r['n_test']:7d}")


def render_markdown(res: dict) -> str:
    """Markdown tables of a result dict (pasted into datasets/3gpp/README.md)."""
    lines = [
        f"BM-Case1, preset `uma-fr2-case1`, Set A = 32, {res['n_train']:,} training / {res['n_test']:,} test drops, "
        f"MLP D -> 256 -> 256 -> 32, {res['epochs']} epochs. Percent, RSRP difference in dB.",
        "",
        "| Set B | Rx beam | Top-1 | Top-2/1 | 1 dB margin | mean RSRP diff | best-of-Set-B Top-1 | TR 38.843 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    ref = {"1/4": "Top-1 70-90, 1 dB >= ~90, Top-2/1 80-90+, diff <= ~1, best-of-B ~25",
           "1/8": "Top-1 50-80, 1 dB 70-90, Top-2/1 70-90, diff <= 1-2, best-of-B ~12.5"}
    for r in res["case1"]:
        k, b = r["mlp"], r["best_of_setb"]
        lines.append(f"| {r['setb']} | {r['rx_mode']} | {100 * k['top1']:.1f} | {100 * k['top2']:.1f} | "
                     f"{100 * k['top1_1db']:.1f} | {k['rsrp_diff_mean']:.2f} | {100 * b['top1']:.1f} | "
                     f"{ref[r['setb']] if r['rx_mode'] == 'best' else 'random Rx: 20-50 points lower'} |")
    for setb in ("1/4", "1/8"):
        best = [r for r in res["case1"] if r["setb"] == setb and r["rx_mode"] == "best"][0]
        rnd = [r for r in res["case1"] if r["setb"] == setb and r["rx_mode"] == "random"][0]
        lines.append("")
        lines.append(f"Random instead of best Rx beam, Set B {setb}: Top-1 "
                     f"{100 * (best['mlp']['top1'] - rnd['mlp']['top1']):.1f} points lower (TR 38.843: 20-50).")
    if res.get("case2"):
        c = res["case2_sizes"]
        lines += [
            "",
            f"BM-Case2, preset `uma-fr2-case2`, {c['train_traj']} training / {c['test_traj']} test trajectories of "
            f"{c['steps']} steps (20 ms); K = 4 past measurements one period apart, predict the Top-1 beam one "
            "period ahead. MLP(B): Set B 1/4 measured; MLP(A): Set B = Set A measured; sample-and-hold (S&H): the "
            "full Set A sweep at t held for t + period.",
            "",
            "| period | MLP(B) Top-1 | MLP(B) 1 dB | MLP(B) mean diff | MLP(A) Top-1 | MLP(A) 1 dB | S&H Top-1 | "
            "S&H 1 dB | S&H mean diff | test examples |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in res["case2"]:
            m, a, h = r["mlp"], r["mlp_setb_all"], r["sample_and_hold"]
            lines.append(f"| {r['period_ms']} ms | {100 * m['top1']:.1f} | {100 * m['top1_1db']:.1f} | "
                         f"{m['rsrp_diff_mean']:.2f} | {100 * a['top1']:.1f} | {100 * a['top1_1db']:.1f} | "
                         f"{100 * h['top1']:.1f} | {100 * h['top1_1db']:.1f} | {h['rsrp_diff_mean']:.2f} | "
                         f"{r['n_test']:,} |")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class FaithfulnessConfig:
    """One run: ``train`` / ``test`` BM-Case1 drops, ``c2_train`` / ``c2_test`` BM-Case2 trajectories (100 steps
    each; 0 skips Case2), ``epochs`` of the reference MLP, torch ``threads``; files and results go to ``out``."""

    out: Path
    train: int = 100_000
    test: int = 20_000
    c2_train: int = 400
    c2_test: int = 200
    epochs: int = 20
    threads: int = 1


def run(cfg: FaithfulnessConfig, command: str = "") -> dict[str, Any]:
    """Steps (1)-(4) of the module docstring; returns the results written to ``out/faithfulness.json``."""
    import torch

    from edge_sdk.beam.h5reader import read_beam_h5

    torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    tr = read_beam_h5(_generate(out, "uma-fr2-case1", cfg.train, SEEDS["train"], "train"))
    te = read_beam_h5(_generate(out, "uma-fr2-case1", cfg.test, SEEDS["test"], "test"))
    res: dict[str, Any] = {"command": command, "n_train": tr.n, "n_test": te.n, "epochs": cfg.epochs,
                           "ranges_tr38843": RANGES, "stats_train": card_stats(tr)}
    res["case1"] = case1_rows(tr, te, cfg.epochs)
    if cfg.c2_train > 0 and cfg.c2_test > 0:
        c2tr = read_beam_h5(_generate(out, "uma-fr2-case2", cfg.c2_train, SEEDS["c2train"], "train"))
        c2te = read_beam_h5(_generate(out, "uma-fr2-case2", cfg.c2_test, SEEDS["c2test"], "test"))
        res["case2_sizes"] = {"train_traj": cfg.c2_train, "test_traj": cfg.c2_test, "steps": 100}
        res["case2"] = case2_rows(c2tr, c2te, cfg.epochs, float(c2tr.time_step_s or 0.02))
    res["seconds"] = round(time.perf_counter() - t0, 1)
    print_table(res)
    atomic_write_text(out / "faithfulness.json", json.dumps(res, indent=1))
    atomic_write_text(out / "faithfulness.md", render_markdown(res))
    print(f"\nwrote {out / 'faithfulness.json'}")
    return res

"""Faithfulness table of the TR 38.901 beam-management generator against TR 38.843 headline numbers.

``edge-sdk data faithfulness`` (edge_sdk/cli/data_cmd.py) runs it::

    edge-sdk data faithfulness --out runs/faithfulness            # full run (100k/20k Case1 drops)
    edge-sdk data faithfulness --out /tmp/f --train 5000 --test 2000 --epochs 3
    edge-sdk data faithfulness --stats datasets/3gpp/reference/train.h5      # dataset-card statistics only

Steps: (1) generate (or resume / reuse) BM-Case1 train/test files with
``generate_dataset`` (fixed seeds, CPU); (2) train the reference MLP (input -> 256 -> 256 -> n_tx, ReLU, Adam
lr 1e-3, batch 512, cross-entropy on the Top-1 label) with :class:`edge_sdk.beam.taskspec.BeamTaskSpec` inputs
for Set B 1/4 and 1/8 with the best Rx beam and with a random Rx beam; (3) KPIs on the test set with
:func:`edge_sdk.beam.kpis.beam_kpis` and the best-of-Set-B baseline; (4) print a table and write
``<out>/faithfulness.json`` and ``<out>/faithfulness.md``. BM-Case2 (temporal) is evaluated by
``tools/case2_eval.py`` (models chosen on validation, both sample-and-hold baselines).
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
SEEDS = {"train": 101, "test": 202}


def _generate(out: Path, preset: str, n: int, seed: int, tag: str) -> Path:
    from edge_sdk.server.datagen.generate import generate_dataset

    path = out / f"{preset}-{tag}.h5"
    steps = 1
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
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class FaithfulnessConfig:
    """One run: ``train`` / ``test`` BM-Case1 drops, ``epochs`` of the reference MLP, torch ``threads``; files and
    results go to ``out``."""

    out: Path
    train: int = 100_000
    test: int = 20_000
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
    res["seconds"] = round(time.perf_counter() - t0, 1)
    print_table(res)
    atomic_write_text(out / "faithfulness.json", json.dumps(res, indent=1))
    atomic_write_text(out / "faithfulness.md", render_markdown(res))
    print(f"\nwrote {out / 'faithfulness.json'}")
    return res

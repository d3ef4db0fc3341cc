#!/usr/bin/env python3
"""`make demo`: the product's main job, end to end, on the shipped reference data.

1. check the shipped reference data (digests in datasets/3gpp/reference/SHA256SUMS);
2. server: `edge-sdk distill` with its defaults at 36x: ``--method auto`` chooses method x quantizer x bits x
   label source x training recipe on a validation split of the training data under the exact byte budget ->
   payload.epl + graph.onnx + report.json (3 evaluation seeds, torch; the search table in the report);
3. server: the full-data float32 baseline trained with the full-data recipe chosen on the same validation split
   (docs/accuracy-per-byte.json, "full"), so the ratio is to a well-trained baseline;
4. sign the payload with a fresh Ed25519 key and verify it;
5. device: train on the payload in a subprocess where importing torch is impossible (numpy + onnxruntime
   only), with the signature required, and evaluate on the device's local measurements (test.h5). No training
   flags: the device follows the recipe the payload carries (edge_sdk.modelspec.TrainRecipe), so its run is the
   server's seed-0 evaluation run, update for update, and the two Top-1 figures can be compared one to one;
6. print a table: bytes sent, compression, server- and device-side KPIs next to full-data training, times;
7. fleet: a 180x tier (``distill`` defaults again), both tiers signed and published as one release in a store
   (`edge-sdk store add`), then `edge-sdk fleet simulate`: 200 devices on two link presets (LTE driving, 3G
   driving) with byte budgets that select 36x or 180x, every device trained for real (onnxruntime) and scored on its
   own local measurements; prints time-to-model p50/p90, bytes per device and Top-1 percentiles per tier;
8. transfer (tools/demo_transfer.py): `edge-sdk serve` serves that store on loopback with token auth; a torch-free
   device fetches the channel with a byte budget that selects the 180x tier — killed once part-way (SIGKILL) and
   resumed from the bytes on disk — verifies every blob, trains from its cache (`device train --release`) and
   polls again with the same budget (only what is not cached yet crosses the link).

Usage: .venv/bin/python tools/demo.py [--out runs/demo] [--compression 36x] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))  # demo_transfer
REF = ROOT / "datasets" / "3gpp" / "reference"
EDGE_SDK = [sys.executable, "-m", "edge_sdk.cli"]

#: runs the device CLI with torch made unimportable (a stand-in for a device that has no torch at all)
DEVICE_RUNNER = (
    "import sys\n"
    "sys.modules['torch'] = None  # any `import torch` now raises ImportError\n"
    "from edge_sdk.cli.main import main\n"
    "rc = main(sys.argv[1:])\n"
    "assert not any(m == 'torch' or m.startswith('torch.') for m in sys.modules if sys.modules[m] is not None)\n"
    "sys.exit(rc)\n"
)


class Report:
    """The demo's result tables, kept as printed: while started, sys.stdout writes through to the terminal and
    keeps a copy (saved as OUT/demo-report.txt; `tools/readme_demo.py` copies it into README.md). The commands'
    echo lines and output between the tables are not kept."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self._stream = sys.stdout

    def start(self) -> None:
        self._stream = sys.stdout
        sys.stdout = self  # type: ignore[assignment]

    def stop(self) -> None:
        sys.stdout = self._stream

    def write(self, text: str) -> int:
        self.parts.append(text)
        return self._stream.write(text)

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name: str):  # isatty, encoding, fileno, ...: the terminal's
        return getattr(self._stream, name)

    def text(self) -> str:
        return "".join(self.parts).lstrip("\n")


REPORT = Report()


def run(cmd: list[str], label: str) -> float:
    print(f"\n$ {' '.join(str(c) for c in cmd)}", flush=True)
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=ROOT)
    if res.returncode != 0:
        sys.exit(f"demo: step '{label}' failed with exit code {res.returncode}")
    return time.perf_counter() - t0


def fmt_pct(kpi: dict | float | None, std: bool = True) -> str:
    if kpi is None:
        return "-"
    if isinstance(kpi, dict):
        return f"{100 * kpi['mean']:.1f} ± {100 * kpi['std']:.1f}" if std else f"{100 * kpi['mean']:.1f}"
    return f"{100 * kpi:.1f}"


def fmt_db(kpi: dict | float | None) -> str:
    if kpi is None:
        return "-"
    if isinstance(kpi, dict):
        return f"{kpi['mean']:.2f} ± {kpi['std']:.2f}"
    return f"{kpi:.2f}"


FLEET_SCENARIO = """\
# written by tools/demo.py: the demo's own release (36x + 180x, signed) pushed to {devices} devices
[scenario]
name = "demo-fleet"
description = "make demo: {devices} devices on LTE driving and 3G driving, tiers 36x and 180x"
devices = {devices}
seed = 0

[release]
source = "store"
store = "{store}"
channel = "beam-uma/demo"
trusted_keys = ["{pub}"]
policy = "best-fit"
period = "1 d"
deadline = "6 h"

[local_data]
pool = "{pool}"
samples = 64

[[class]]
name = "ue-lte"
share = 0.5
compute_factor = 3.0
storage = "64 MiB"
budget = "64 KiB"
link = "lte-driving"
poll_interval = "30 min"

[[class]]
name = "ue-3g"
share = 0.5
compute_factor = 6.0
storage = "16 MiB"
budget = "12 KiB"
link = "3g-driving"
poll_interval = "30 min"
"""


def tuned_full_recipe(override: list[str] | None = None) -> list[str]:
    """CLI recipe flags of the full-data recipe chosen on the validation split by tools/accuracy_table.py
    (docs/accuracy-per-byte.json ``full.recipe``); ``override`` replaces the step count (smoke runs)."""
    r = json.loads((ROOT / "docs" / "accuracy-per-byte.json").read_text())["full"]["recipe"]
    flags = ["--optimizer", r["optimizer"], "--lr", repr(r["lr"]), "--schedule", r["schedule"], "--batch-size",
             str(r["batch_size"]), "--weight-decay", repr(r["weight_decay"])]
    if r.get("label_smoothing"):
        flags += ["--label-smoothing", repr(r["label_smoothing"])]
    flags += ["--steps", str(r["steps"])]
    return flags[:-2] + override if override else flags


def describe_choice(report: dict) -> str:
    """What ``--method auto`` shipped, from its report: method, storage, label source, rows moved."""
    mi = report.get("extra", {}).get("method_info", {})
    cfg = report.get("config", {})
    what = f"{report['method']}, {cfg.get('quantizer')} {cfg.get('bits')} bit"
    if mi.get("labels") == "teacher":
        what += f", teacher labels ({100 * mi.get('teacher_relabelled_frac', 0):.0f}% relabelled)"
    if "rows_changed_frac" in mi:
        what += f", rows moved by distillation: {100 * mi['rows_changed_frac']:.0f}%"
    return what


def fleet_section(out: Path, test: Path, keys: Path, iters: list[str], devices: int,
                  times: dict[str, float]) -> dict:
    """A 180x tier, both tiers published as one signed release, and a fleet of ``devices`` pulling it."""
    s180 = out / "server-180x"
    times["server: distill 180x tier (defaults: auto)"] = run(
        [*EDGE_SDK, "distill", "--data", REF / "train.h5", "--test", test, "--compression", "180x", "--seeds", "3",
         *iters, "--out", s180], "distill 180x")
    times["sign + publish (store)"] = run(
        [*EDGE_SDK, "payload", "sign", s180 / "payload.epl", "--key", keys / "server.key"], "sign 180x")
    store = out / "store"
    times["sign + publish (store)"] += run(
        [*EDGE_SDK, "store", "add", "--store", store, "--channel", "beam-uma/demo", "--sign", keys / "server.key",
         "--tier-name", "36x", "--tier-name", "180x", out / "server" / "payload.epl", s180 / "payload.epl"],
        "store add")
    fdir = out / "fleet"
    fdir.mkdir(parents=True, exist_ok=True)
    scenario = fdir / "scenario.toml"
    scenario.write_text(FLEET_SCENARIO.format(devices=devices, store=store.resolve(), pub=(keys / "server.pub").resolve(),
                                              pool=test.resolve()))
    times[f"fleet: simulate {devices} devices (process pool)"] = run(
        [*EDGE_SDK, "fleet", "simulate", "--scenario", scenario, "--out", fdir, "--quiet"], "fleet simulate")
    fs = json.loads((fdir / "summary.json").read_text())
    st = fs["stats"]["0"]
    REPORT.start()
    print("\n" + "=" * 112)
    print(f"fleet: {devices} devices (LTE driving: 64 KiB budget, 3G driving: 12 KiB budget), the release above, "
          "each device trained for real")
    print("=" * 112)
    print(f"{'tier':6s} {'devices':>8s} {'with model':>11s} {'time to model p50':>18s} {'p90':>9s} "
          f"{'bytes/device':>13s} {'Top-1 % p10 / p50 / p90':>26s}  failures")

    def fmt_t(x: float | None) -> str:
        return "never" if x is None else (f"{x:.0f} s" if x < 120 else f"{x / 60:.1f} min")

    for name, g in [*st["tiers"].items(), ("all", st["all"])]:
        t1 = g["top1"]
        pct = " / ".join("-" if t1[q] is None else f"{100 * t1[q]:.1f}" for q in ("p10", "p50", "p90"))
        fails = ", ".join(f"{k} {v}" for k, v in g["failures"].items()) or "-"
        print(f"{name:6s} {g['devices']:>8d} {g['with_model']:>11d} {fmt_t(g['time_to_model_s']['p50']):>18s} "
              f"{fmt_t(g['time_to_model_s']['p90']):>9s} {g['bytes_per_device']['mean']:>13,.0f} {pct:>26s}  {fails}")
    print(f"90% of the fleet held a model {fmt_t(st['all']['fleet_time_to_90pct_s'])} after publication; "
          f"{st['all']['bytes_on_air']:,} bytes on the air (retries and headers included); {fs['trainings']} "
          f"distinct trainings (memo), plots in {fdir}")
    REPORT.stop()
    return {"summary": str(fdir / "summary.json"), "stats": st}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "demo")
    ap.add_argument("--compression", default="36x")
    ap.add_argument("--quick", action="store_true", help="fewer distillation iterations and steps (smoke run)")
    ap.add_argument("--fleet-devices", type=int, default=200, help="devices in the fleet section")
    args = ap.parse_args(argv)
    out: Path = args.out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    train, test = REF / "train.h5", REF / "test.h5"
    t_start = time.perf_counter()
    times: dict[str, float] = {}

    times["check reference data"] = run([*EDGE_SDK, "data", "verify", REF], "check data (edge-sdk data verify)")

    # --quick (smoke runs): a short KIP, a one-model short teacher and a short full-data run
    iters = ["--iterations", "20", "--teacher-members", "1", "--teacher-steps", "300"] if args.quick else []
    full_recipe = tuned_full_recipe(["--steps", "300"] if args.quick else None)
    server_dir, full_dir = out / "server", out / "full"
    times["server: distill (defaults: auto) + 3-seed eval"] = run(
        [*EDGE_SDK, "distill", "--data", train, "--test", test, "--compression", args.compression, "--seeds", "3",
         *iters, "--out", server_dir], "distill")
    times["server: full-data float32 baseline (tuned)"] = run(
        [*EDGE_SDK, "distill", "--data", train, "--test", test, "--method", "full", "--quantizer", "float32",
         "--seeds", "3", *full_recipe, "--no-graph", "--out", full_dir], "full-data baseline")

    payload, graph = server_dir / "payload.epl", server_dir / "graph.onnx"
    keys = out / "keys"
    # a fresh demo key every run (--force: keygen never replaces a key file otherwise)
    times["sign + verify"] = run([*EDGE_SDK, "payload", "keygen", "--out-dir", keys, "--name", "server", "--force"],
                                 "keygen")
    times["sign + verify"] += run([*EDGE_SDK, "payload", "sign", payload, "--key", keys / "server.key"], "sign")
    times["sign + verify"] += run(
        [*EDGE_SDK, "payload", "verify", payload, "--public-key", keys / "server.pub"], "verify")

    report = json.loads((server_dir / "report.json").read_text())
    full = json.loads((full_dir / "report.json").read_text())
    from edge_sdk.modelspec import TrainRecipe
    from edge_sdk.payload import read_payload

    p = read_payload(payload)
    recipe = TrainRecipe.from_dict(p.task["train"])
    n_samples = sum(g.n for g in p.groups if g.role == "samples")
    device_dir = out / "device"
    times["device: train + eval (onnxruntime, no torch)"] = run(
        [sys.executable, "-c", DEVICE_RUNNER, "device", "train", "--payload", payload, "--graph", graph,
         "--eval", test, "--trusted-key", keys / "server.pub", "--quiet", "--out", device_dir], "device train")
    dev = json.loads((device_dir / "report.json").read_text())
    # the server's seed-0 evaluation run is the run the device repeated (same recipe, init, batch order)
    same = {name: v["per_seed"][report["seeds"].index(0)] for name, v in report["kpis"].items()}

    k, dk, fk = report["kpis"], dev["kpis"], full["kpis"]
    graph_bytes = graph.stat().st_size
    signed_bytes = payload.stat().st_size
    task_blob = server_dir / "task.json"  # payload v2: the task spec travels once per release, cached by digest
    task_bytes = task_blob.stat().st_size if task_blob.is_file() else 0
    rows = [
        ("bytes sent to the device", f"{signed_bytes + graph_bytes + task_bytes:,} = {signed_bytes:,} payload + "
         f"{graph_bytes:,} graph" + (f" + {task_bytes:,} task" if task_bytes else ""),
         f"{full['payload_bytes']:,} (float32)"),
        ("compression vs float32 training set", f"{report['compression']:.1f}x (payload only)", "1.0x"),
        ("samples", f"{n_samples} rows", f"{full['dataset']['n_train']}"),
    ]
    kpi_rows = [("Top-1 %", "top1", fmt_pct), ("Top-2/1 %", "top2", fmt_pct), ("Top-1 within 1 dB %", "top1_1db", fmt_pct),
                ("mean L1-RSRP diff dB", "rsrp_diff_mean", fmt_db)]
    REPORT.start()
    print("\n" + "=" * 112)
    print("edge-sdk demo: 3GPP BM-Case1 (UMa 30 GHz, Set A 32, Set B 8), shipped reference data")
    print("=" * 112)
    print(f"{'':38s} {'payload of `distill` defaults (auto)':52s} {'full data (tuned)':22s}")
    for name, a, b in rows:
        print(f"{name:38s} {a:52s} {b:22s}")
    print(f"\n{'KPI (test set, 4,000 drops)':32s} {'server eval, 3 seeds':>22s} {'server eval, seed 0*':>22s}"
          f" {'device ORT, seed 0*':>20s} {'full data, 3 seeds':>20s}")
    for label, key, f in kpi_rows:
        print(f"{label:32s} {f(k.get(key)):>22s} {f(same.get(key)):>22s} {f(dk.get(key)):>20s} {f(fk.get(key)):>20s}")
    wd = f", weight decay {recipe.weight_decay:g}" if recipe.weight_decay else ""
    print(f"* same payload, seed 0 and recipe ({recipe.steps} {recipe.optimizer} updates of {recipe.batch_size}, "
          f"lr {recipe.lr:g} {recipe.schedule}{wd}); device - server Top-1 = {100 * (dk['top1'] - same['top1']):+.2f} points")
    print(f"auto chose on validation: {describe_choice(report)}")
    print(f"\ndevice: {dev['steps_per_s']:.0f} steps/s, peak RSS {dev['peak_rss_mb']:.0f} MB, "
          f"{dev['bytes_received']:,} bytes received, signature verified, torch never imported")
    REPORT.stop()
    fleet = fleet_section(out, test, keys, iters, args.fleet_devices, times)
    from demo_transfer import print_transfer, transfer_demo

    transfer = transfer_demo(out, out / "store", "beam-uma/demo", keys / "server.pub", test, DEVICE_RUNNER)
    times["transfer: serve, fetch (budget, resume), train"] = transfer["seconds"]
    REPORT.start()
    print_transfer(transfer)

    print("\ntimes:")
    for name, t in times.items():
        print(f"  {name:48s} {t:7.1f} s")
    total = time.perf_counter() - t_start
    print(f"  {'total':48s} {total:7.1f} s")
    REPORT.stop()
    (out / "demo-report.txt").write_text(REPORT.text(), encoding="utf-8")
    summary = {"server": report, "full": full, "device": dev, "server_seed0": same, "recipe": recipe.to_dict(),
               "fleet": fleet, "transfer": transfer, "times_s": times, "total_s": total}
    (out / "demo-summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"\nwrote {out / 'demo-summary.json'} and {out / 'demo-report.txt'} (the tables above)")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    sys.exit(main())

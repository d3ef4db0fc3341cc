#!/usr/bin/env python3
"""Make the release shipped for the fleet presets: datasets/3gpp/releases/beam-uma/ (server side, torch).

Tiers (QuADD on the shipped reference training set, the demo's method; full data as the baseline):

* ``36x``  — QuADD, learned 4-bit codebook, 36x compression (the demo's sweet spot);
* ``180x`` — QuADD, learned 3-bit codebook, 180x (3 bits beat 4 at 180x in docs/distillation-results-beam.md);
* ``full`` — the whole training set in float32 (1x), trained on the device with the same graph machinery.

Rounds: ``--rounds`` releases of the compressed tiers (distillation seeds 0, 1, ...); the graph of a tier is the
same in every round (same layout), so a device keeps it cached. The full-data tier does not change between rounds.
Each tier is evaluated by the server's protocol (3 seeds); its mean Top-1 is written to ``release.json`` as the
tier's expected Top-1. Deterministic for a given torch build.

Usage: python tools/make_fleet_release.py [--out datasets/3gpp/releases/beam-uma] [--rounds 2] [--quick]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT / "datasets" / "3gpp" / "reference"

TIERS = {
    "36x": ["--method", "quadd", "--quantizer", "codebook", "--bits", "4", "--compression", "36x"],
    "180x": ["--method", "quadd", "--quantizer", "codebook", "--bits", "3", "--compression", "180x"],
    "full": ["--method", "full", "--quantizer", "float32"],
}


def sha256_file(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "datasets" / "3gpp" / "releases" / "beam-uma")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="few iterations/steps (smoke test of this script)")
    args = ap.parse_args(argv)
    quick = ["--iterations", "20", "--steps", "100"] if args.quick else []
    out: Path = args.out
    tmp = Path(tempfile.mkdtemp(prefix="fleet-release-"))
    index: dict = {"name": "beam-uma", "source": "tools/make_fleet_release.py", "data": "datasets/3gpp/reference",
                   "rounds": args.rounds, "tiers": {}}
    try:
        if out.exists():
            shutil.rmtree(out)
        (out / "graphs").mkdir(parents=True)
        for tier, flags in TIERS.items():
            rounds = 1 if tier == "full" else args.rounds
            entries = []
            for r in range(rounds):
                run = tmp / f"{tier}-r{r}"
                cmd = [sys.executable, "-m", "edge_sdk.cli", "distill", "--data", str(REF / "train.h5"),
                       "--test", str(REF / "test.h5"), *flags, "--seed", str(r), "--seeds", "3", *quick,
                       "--no-progress", "--out", str(run)]
                print("$", " ".join(cmd[2:]), flush=True)
                subprocess.run(cmd, check=True, cwd=ROOT)
                rep = json.loads((run / "report.json").read_text())
                gsha = sha256_file(run / "graph.onnx")
                graph_rel = f"graphs/{gsha}.onnx"
                if not (out / graph_rel).exists():
                    shutil.copyfile(run / "graph.onnx", out / graph_rel)
                payload_rel = f"r{r}/{tier}.epl"
                (out / f"r{r}").mkdir(exist_ok=True)
                shutil.copyfile(run / "payload.epl", out / payload_rel)
                entries.append({"round": r, "payload": payload_rel, "payload_sha256": sha256_file(out / payload_rel),
                                "payload_bytes": (out / payload_rel).stat().st_size, "graph": graph_rel,
                                "graph_sha256": gsha, "graph_bytes": (out / graph_rel).stat().st_size,
                                "compression": rep.get("compression"),
                                "expected_top1": rep["kpis"]["top1"]["mean"],
                                "command": "edge-sdk " + " ".join(cmd[3:-2]).replace(str(ROOT) + "/", "")})
            index["tiers"][tier] = entries
        (out / "release.json").write_text(json.dumps(index, indent=1, sort_keys=True) + "\n")
        print(json.dumps({t: [(e["payload_bytes"], e["graph_bytes"], round(e["expected_top1"], 4)) for e in es]
                          for t, es in index["tiers"].items()}, indent=1))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

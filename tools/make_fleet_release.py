#!/usr/bin/env python3
"""Make the release store shipped for the fleet presets: datasets/3gpp/releases/beam-uma/ (server side, torch).

Tiers (QuADD on the shipped reference training set, the demo's method; full data as the baseline):

* ``36x``  — QuADD, learned 4-bit codebook, 36x compression (the demo's sweet spot);
* ``180x`` — QuADD, learned 3-bit codebook, 180x (3 bits beat 4 at 180x in docs/distillation-results-beam.md);
* ``full`` — the whole training set in float32 (1x), trained on the device with the same graph machinery.

Rounds: ``--rounds`` releases (distillation seeds 0, 1, ...) published one after the other on the channel
``beam-uma/stable`` of a content-addressed store (``edge_sdk.release``, docs/transfer.md), so the channel's history
holds every round; the graph of a tier is the same in every round (same layout) and the full-data tier does not
change. Every tier is evaluated by the server's protocol (3 seeds); the ``report.json`` beside each payload gives the
manifest its KPIs. Payloads and manifests are signed with a key made for this run; only its public half is kept
(``beam-uma.pub``), so the presets verify every signature like a device would.

Usage: .venv/bin/python tools/make_fleet_release.py [--out datasets/3gpp/releases] [--rounds 2] [--quick]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT / "datasets" / "3gpp" / "reference"
CHANNEL = "beam-uma/stable"

TIERS = {
    "36x": ["--method", "quadd", "--quantizer", "codebook", "--bits", "4", "--compression", "36x"],
    "180x": ["--method", "quadd", "--quantizer", "codebook", "--bits", "3", "--compression", "180x"],
    "full": ["--method", "full", "--quantizer", "float32"],
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "datasets" / "3gpp" / "releases")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="few iterations/steps (smoke test of this script)")
    args = ap.parse_args(argv)
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from edge_sdk.payload import sign_payload
    from edge_sdk.release import Store, publish

    quick = ["--iterations", "20", "--steps", "100"] if args.quick else []
    store_dir: Path = args.out / "beam-uma"
    key = Ed25519PrivateKey.generate()
    tmp = Path(tempfile.mkdtemp(prefix="fleet-release-"))
    commands: dict[str, list[str]] = {}
    try:
        runs: dict[tuple[str, int], Path] = {}
        for tier, flags in TIERS.items():
            for r in range(1 if tier == "full" else args.rounds):
                run = tmp / f"{tier}-r{r}"
                cmd = [sys.executable, "-m", "edge_sdk.cli", "distill", "--data", str(REF / "train.h5"),
                       "--test", str(REF / "test.h5"), *flags, "--seed", str(r), "--seeds", "3", *quick,
                       "--no-progress", "--out", str(run)]
                print("$", " ".join(cmd[2:]), flush=True)
                subprocess.run(cmd, check=True, cwd=ROOT)
                sign_payload(run / "payload.epl", key)
                runs[(tier, r)] = run
                commands.setdefault(tier, []).append("edge-sdk " + " ".join(cmd[3:-2]).replace(str(ROOT) + "/", ""))
        if store_dir.exists():
            shutil.rmtree(store_dir)
        store = Store(store_dir, create=True)
        index = []
        for r in range(args.rounds):
            names = list(TIERS)
            payloads = [runs[(t, r if t != "full" else 0)] / "payload.epl" for t in names]
            res = publish(store, payloads, channel=CHANNEL, signing_key=key, tier_names=names,
                          release_name=f"beam-uma-r{r}", created=f"2026-11-{29 + r:02d}T00:00:00Z")
            index.append({"round": r, "manifest": res.manifest.digest, "tiers": [
                {"name": t.name, "payload": t.payload.digest, "payload_bytes": t.payload.size, "graph": t.graph.digest,
                 "graph_bytes": t.graph.size, "compression": t.compression, "top1": t.kpis.get("top1")}
                for t in res.manifest.release.tiers]})
        shutil.rmtree(store_dir / "tmp", ignore_errors=True)
        (store_dir / "lock").unlink(missing_ok=True)
        pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        (args.out / "beam-uma.pub").write_bytes(pub)
        (args.out / "beam-uma.json").write_text(json.dumps(
            {"store": "beam-uma", "channel": CHANNEL, "public_key": "beam-uma.pub", "made_by": "tools/make_fleet_release.py",
             "commands": commands, "rounds": index}, indent=1, sort_keys=True) + "\n")
        for e in index:
            print(f"round {e['round']}: " + ", ".join(f"{t['name']} {t['payload_bytes']} + {t['graph_bytes']} B, "
                                                      f"Top-1 {t['top1']:.4f}" for t in e["tiers"]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

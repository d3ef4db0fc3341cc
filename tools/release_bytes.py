#!/usr/bin/env python3
"""Bytes a device receives for a release of payload format v1 and for one of format v2, same tiers
(docs/transfer.md, "Task blobs").

Per format F: `edge-sdk distill --method kmeans --quantizer codebook --bits 4 --payload-format F` at 180x and at
36x on the shipped reference data (one seed and a short recipe: the bytes do not depend on the recipe's length),
both payloads published as one release (`edge_sdk.release.publish`, what `edge-sdk store add` runs), served by
`edge-sdk serve`'s app on loopback in this process, then a fresh device cache fetches the 180x tier and afterwards
the 36x tier (`edge_sdk.device.fetch`, what `edge-sdk device fetch --tier` runs). Prints a table, writes
``OUT/release_bytes.json``.

    .venv/bin/python tools/release_bytes.py --out bench-results/release-bytes
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT / "datasets" / "3gpp" / "reference"
CHANNEL = "beam-uma/stable"


def distill(out: Path, comp: str, fmt: int, steps: int) -> dict:
    cmd = [sys.executable, "-m", "edge_sdk.cli", "distill", "--data", str(REF / "train.h5"), "--test",
           str(REF / "test.h5"), "--method", "kmeans", "--quantizer", "codebook", "--bits", "4", "--compression", comp,
           "--payload-format", str(fmt), "--seeds", "1", "--steps", str(steps), "--no-progress", "--out", str(out)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return json.loads((out / "report.json").read_text())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("bench-results/release-bytes"))
    ap.add_argument("--steps", type=int, default=30, help="recipe length of the distill runs (bytes do not depend on it)")
    args = ap.parse_args(argv)

    from edge_sdk.device.fetch import FetchConfig, fetch_release
    from edge_sdk.release import Store, publish
    from edge_sdk.serve.app import ServeConfig
    from edge_sdk.serve.server import start_in_thread

    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for fmt in (1, 2):
        base = args.out / f"v{fmt}"
        reports = {c: distill(base / c, c, fmt, args.steps) for c in ("180x", "36x")}
        store = Store(base / "store", create=True)
        m = publish(store, [base / "36x" / "payload.epl", base / "180x" / "payload.epl"], channel=CHANNEL).manifest
        task = sum(b.size for b in m.release.extra if b.type == "task")
        cache = base / "cache"
        with start_in_thread(ServeConfig(store=store.root), log_out=io.StringIO()) as srv:
            for i, comp in enumerate(("180x", "36x")):
                t = next(x for x in m.release.tiers if x.name == comp)
                rep = fetch_release(FetchConfig(url=srv.url, channel=CHANNEL, cache=cache, tier=comp))
                rows.append({"format": fmt, "tier": comp, "fetch": "first" if i == 0 else "second (same cache)",
                             "payload_bytes": t.payload.size, "rows": reports[comp]["extra"]["stored_samples"],
                             "graph_bytes": t.graph.size, "task_bytes": task, "bytes_needed": rep.bytes_needed,
                             "bytes_saved_by_cache": rep.bytes_saved_by_cache, "bytes_on_wire": rep.bytes_on_wire,
                             "manifest_bytes": m.size})
    hdr = (f"{'format':>6} {'tier':>5} {'fetch':>20} {'payload B':>9} {'rows':>5} {'graph B':>7} {'task B':>6} "
           f"{'needed B':>8} {'cached B':>8} {'wire B':>7} {'manifest B':>10}")
    print(hdr)
    for r in rows:
        print(f"{r['format']:>6} {r['tier']:>5} {r['fetch']:>20} {r['payload_bytes']:>9,} {r['rows']:>5} "
              f"{r['graph_bytes']:>7,} {r['task_bytes']:>6,} {r['bytes_needed']:>8,} {r['bytes_saved_by_cache']:>8,} "
              f"{r['bytes_on_wire']:>7,} {r['manifest_bytes']:>10,}")
    (args.out / "release_bytes.json").write_text(json.dumps({"rows": rows, "steps": args.steps}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

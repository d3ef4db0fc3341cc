#!/usr/bin/env python3
"""Run every benchmark (tools/bench_*.py), print their tables and write JSON to --out.

Each benchmark module exposes ``main(out_dir: Path) -> dict`` (see docs/contracts.md). ``--only NAME``
runs one; a failing benchmark is reported and the others still run (exit code 1 at the end).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: benchmarks with a make target of their own (not run by `make bench`)
SEPARATE = {"peers": "make bench-peers (creates the peer runtimes' venvs first)",
            "defaults": "make bench-defaults (the default server runs, quiet and contended: ~15 min)"}


def discover() -> dict[str, Path]:
    return {p.stem.removeprefix("bench_"): p for p in sorted(HERE.glob("bench_*.py"))
            if p.stem.removeprefix("bench_") not in SEPARATE}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("bench-results"))
    ap.add_argument("--only", action="append", help="benchmark name (e.g. bitpack); repeatable")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    benches = discover()
    names = args.only or list(benches)
    unknown = [n for n in names if n not in benches]
    if unknown:
        ap.error(f"unknown benchmark(s) {unknown}; available: {sorted(benches)}")
    summary: dict[str, dict] = {}
    failed = []
    for name in names:
        print(f"\n=== bench {name} ===", flush=True)
        spec = importlib.util.spec_from_file_location(f"bench_{name}", benches[name])
        assert spec and spec.loader
        mod = importlib.util.module_from_spec(spec)
        t0 = time.perf_counter()
        try:
            spec.loader.exec_module(mod)
            mod.main(args.out)
            summary[name] = {"ok": True, "seconds": round(time.perf_counter() - t0, 2)}
        except Exception:  # noqa: BLE001 - report and continue with the other benchmarks
            traceback.print_exc()
            failed.append(name)
            summary[name] = {"ok": False, "seconds": round(time.perf_counter() - t0, 2)}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"\nwrote {args.out}/*.json; failed: {failed or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

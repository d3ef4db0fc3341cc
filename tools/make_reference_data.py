"""Make the shipped reference data: datasets/3gpp/reference/{train,test}.h5 and SHA256SUMS.

    .venv/bin/python tools/make_reference_data.py            # regenerate both files (CPU, 1-2 min on one core)
    edge-sdk data verify [DIR]                               # verify the files against SHA256SUMS
    .venv/bin/python tools/make_reference_data.py --dir /tmp/ref   # regenerate elsewhere (compare the printed digests)

Preset uma-fr2-case1 (Set A 32 Tx x 8 Rx), train 12,000 drops with seed 1, test 4,000 drops with seed 2, chunks of
1,000 rows, generated on the CPU (CUDA draws other, equally valid, samples; the sums are for the CPU run).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REF_DIR = ROOT / "datasets" / "3gpp" / "reference"
PRESET = "uma-fr2-case1"
FILES = {"train.h5": (12_000, 1), "test.h5": (4_000, 2)}
BATCH = 1000


def make(ref_dir: Path = REF_DIR, progress: bool = True) -> dict[str, str]:
    import torch

    from edge_sdk.beam.reference import SUMS_NAME, array_digest, write_sums
    from edge_sdk.server.datagen.generate import generate_dataset

    torch.set_num_threads(1)
    sums = {}
    for name, (n, seed) in FILES.items():
        path = ref_dir / name
        generate_dataset(PRESET, samples=n, seed=seed, out=path, device="cpu", batch=BATCH, overwrite=True,
                         progress=progress)
        sums[name] = array_digest(path)
    write_sums(ref_dir / SUMS_NAME, sums)
    return sums


def check(ref_dir: Path = REF_DIR) -> bool:
    """The same check as ``edge-sdk data verify DIR``."""
    from edge_sdk.beam.reference import verify_dir

    res = verify_dir(ref_dir)
    for name, ok in res.items():
        print(f"{name}: {'OK' if ok else 'MISMATCH'}")
    return all(res.values())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="verify the files against SHA256SUMS")
    ap.add_argument("--dir", type=Path, default=REF_DIR, help="output / checked folder (default: %(default)s)")
    args = ap.parse_args(argv)
    if args.check:
        return 0 if check(args.dir) else 1
    args.dir.mkdir(parents=True, exist_ok=True)
    sums = make(args.dir)
    for name, d in sums.items():
        print(f"{d}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

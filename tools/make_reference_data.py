"""Make or check the reference data shipped in datasets/3gpp/reference/ ({train,test}.h5 and SHA256SUMS).

    .venv/bin/python tools/make_reference_data.py --check                  # the shipped files vs the shipped SHA256SUMS
    .venv/bin/python tools/make_reference_data.py                          # regenerate into runs/reference, then compare
    .venv/bin/python tools/make_reference_data.py --check --dir runs/reference   # a regenerated copy vs the shipped data
    .venv/bin/python tools/make_reference_data.py --out datasets/3gpp/reference --replace-shipped   # maintainers only
    edge-sdk data verify                                                   # the first check, torch-free, in the product

Preset uma-fr2-case1 (Set A 32 Tx x 8 Rx), train 12,000 drops with seed 1, test 4,000 drops with seed 2, chunks of
1,000 rows, generated on the CPU with one torch thread (CUDA draws other, equally valid, samples).

Every check is against the SHIPPED SHA256SUMS (array digests, edge_sdk.beam.reference.array_digest), never
against sums written next to the checked files (a regenerated copy gets none). The shipped files must match
exactly. A regenerated copy is reported "identical" (same digests) or "equivalent within float rounding" (another
CPU code path moved a few RSRP entries by one float16 step; compare_datasets) or MISMATCH; exit status 0 for the
first two.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REF_DIR = ROOT / "datasets" / "3gpp" / "reference"
DEFAULT_OUT = Path("runs") / "reference"  # under the current folder


def make_reference(out_dir: Path, progress: bool = True, write_sums_file: bool = False) -> dict[str, str]:
    """Generate the reference files into ``out_dir`` (CPU, one torch thread); returns ``{name: array digest}``.
    Existing files in ``out_dir`` are replaced. ``write_sums_file``: also write ``out_dir/SHA256SUMS`` (only when
    replacing the shipped data: a copy elsewhere is checked against the shipped sums, never its own)."""
    import torch

    from edge_sdk.beam.reference import (
        REFERENCE_BATCH,
        REFERENCE_FILES,
        REFERENCE_PRESET,
        SUMS_NAME,
        array_digest,
        write_sums,
    )
    from edge_sdk.server.datagen.generate import generate_dataset

    out_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    sums = {}
    for name, (n, seed) in REFERENCE_FILES.items():
        generate_dataset(REFERENCE_PRESET, samples=n, seed=seed, out=out_dir / name, device="cpu",
                         batch=REFERENCE_BATCH, overwrite=True, progress=progress)
        sums[name] = array_digest(out_dir / name)
    if write_sums_file:
        write_sums(out_dir / SUMS_NAME, sums)
    return sums


def report(files_dir: Path) -> bool:
    """Print one line per file (checked against the shipped SHA256SUMS); True if every file is OK."""
    from edge_sdk.beam.reference import check_reference

    checks = check_reference(files_dir, REF_DIR)
    for c in checks:
        print(c.line())
    return all(c.ok for c in checks)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true",
                    help="check the files in --dir (default: the shipped ones) against the shipped SHA256SUMS")
    ap.add_argument("--dir", type=Path, default=REF_DIR, help="folder checked by --check (default: %(default)s)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to regenerate (default: %(default)s)")
    ap.add_argument("--replace-shipped", action="store_true",
                    help="allow --out to be the shipped folder (replaces the tracked files and their SHA256SUMS)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = ap.parse_args(argv)
    if args.check:
        return 0 if report(args.dir) else 1
    shipped = args.out.resolve() == REF_DIR.resolve()
    if shipped and not args.replace_shipped:
        print(f"error: ConfigError: {args.out} holds the shipped reference data; regenerate elsewhere (default "
              f"{DEFAULT_OUT}) or pass --replace-shipped to replace the tracked files",
              file=sys.stderr)
        return 2
    sums = make_reference(args.out, progress=not args.no_progress, write_sums_file=shipped)
    for name, d in sums.items():
        print(f"{d}  {args.out / name}")
    if shipped:
        return 0
    print(f"compared with the shipped data ({REF_DIR.relative_to(ROOT)}):")
    return 0 if report(args.out) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Make or check the reference data shipped in datasets/3gpp/reference/ ({train,test}.h5 and SHA256SUMS).

    .venv/bin/python tools/make_reference_data.py --check                  # the shipped files vs the shipped SHA256SUMS
    .venv/bin/python tools/make_reference_data.py                          # regenerate into runs/reference, then compare
    .venv/bin/python tools/make_reference_data.py --check --dir runs/reference   # a regenerated copy vs the shipped data
    .venv/bin/python tools/make_reference_data.py --out datasets/3gpp/reference --replace-shipped   # maintainers only
    .venv/bin/python tools/make_reference_data.py --sync-presets           # copy datasets/3gpp/presets/*.toml into the package

Preset uma-fr2-case1 (Set A 32 Tx x 8 Rx), train 12,000 drops with seed 1, test 4,000 drops with seed 2, chunks of
1,000 rows, generated on the CPU with one torch thread (CUDA draws other, equally valid, samples).

Every check is against the SHIPPED SHA256SUMS (array digests, edge_sdk.server.datagen.reference.array_digest),
never against sums written next to the checked files. The shipped files must match exactly. A regenerated copy
is reported "identical" (same digests) or "equivalent within float rounding" (another CPU code path moved a few
RSRP entries by one float16 step; compare_datasets) or MISMATCH; exit status 0 for the first two.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REF_DIR = ROOT / "datasets" / "3gpp" / "reference"
DEFAULT_OUT = Path("runs") / "reference"  # under the current folder


def sync_presets() -> list[Path]:
    """Copy the repository presets (source of truth) into the package folder as presets_<name>.toml."""
    from edge_sdk.server.datagen.presets import PACKAGE_PREFIX, PACKAGE_PRESET_DIR, REPO_PRESET_DIR

    out = []
    for old in PACKAGE_PRESET_DIR.glob(f"{PACKAGE_PREFIX}*.toml"):
        old.unlink()
    for src in sorted(REPO_PRESET_DIR.glob("*.toml")):
        dst = PACKAGE_PRESET_DIR / f"{PACKAGE_PREFIX}{src.name}"
        shutil.copyfile(src, dst)
        out.append(dst)
    return out


def report(files_dir: Path) -> bool:
    """Print one line per file (checked against the shipped SHA256SUMS); True if every file is OK."""
    from edge_sdk.server.datagen.reference import check_reference

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
    ap.add_argument("--sync-presets", action="store_true", help="copy presets into the package and exit")
    args = ap.parse_args(argv)
    if args.sync_presets:
        for p in sync_presets():
            print(p.relative_to(ROOT))
        return 0
    if args.check:
        return 0 if report(args.dir) else 1
    if args.out.resolve() == REF_DIR.resolve() and not args.replace_shipped:
        print(f"error: ConfigError: {args.out} holds the shipped reference data; regenerate elsewhere (default "
              f"{DEFAULT_OUT}) or pass --replace-shipped to replace the tracked files",
              file=sys.stderr)
        return 2
    from edge_sdk.server.datagen.reference import make_reference

    sums = make_reference(args.out, progress=not args.no_progress)
    for name, d in sums.items():
        print(f"{d}  {args.out / name}")
    if args.out.resolve() == REF_DIR.resolve():
        return 0
    print(f"compared with the shipped data ({REF_DIR.relative_to(ROOT)}):")
    return 0 if report(args.out) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Make the shipped reference data: datasets/3gpp/reference/{train,test}.h5 and SHA256SUMS.

    .venv/bin/python tools/make_reference_data.py            # regenerate both files (CPU, 1-2 min on one core)
    .venv/bin/python tools/make_reference_data.py --check    # verify the files against SHA256SUMS
    .venv/bin/python tools/make_reference_data.py --dir /tmp/ref   # regenerate elsewhere (compare the printed digests)
    .venv/bin/python tools/make_reference_data.py --sync-presets   # copy datasets/3gpp/presets/*.toml into the package

Preset uma-fr2-case1 (Set A 32 Tx x 8 Rx), train 12,000 drops with seed 1, test 4,000 drops with seed 2, chunks of
1,000 rows, generated on the CPU (CUDA draws other, equally valid, samples; the sums are for the CPU run).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REF_DIR = ROOT / "datasets" / "3gpp" / "reference"
PRESET = "uma-fr2-case1"
FILES = {"train.h5": (12_000, 1), "test.h5": (4_000, 2)}
BATCH = 1000


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


def make(ref_dir: Path = REF_DIR, progress: bool = True) -> dict[str, str]:
    import torch
    from edge_sdk.server.datagen.generate import generate_dataset
    from edge_sdk.server.datagen.reference import SUMS_NAME, array_digest, write_sums

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
    from edge_sdk.server.datagen.reference import SUMS_NAME, array_digest, read_sums

    ok = True
    for name, digest in read_sums(ref_dir / SUMS_NAME).items():
        got = array_digest(ref_dir / name)
        print(f"{name}: {'OK' if got == digest else 'MISMATCH'}")
        ok &= got == digest
    return ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="verify the files against SHA256SUMS")
    ap.add_argument("--sync-presets", action="store_true", help="copy presets into the package and exit")
    ap.add_argument("--dir", type=Path, default=REF_DIR, help="output / checked folder (default: %(default)s)")
    args = ap.parse_args(argv)
    if args.sync_presets:
        for p in sync_presets():
            print(p.relative_to(ROOT))
        return 0
    if args.check:
        return 0 if check(args.dir) else 1
    args.dir.mkdir(parents=True, exist_ok=True)
    sums = make(args.dir)
    for name, d in sums.items():
        print(f"{d}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

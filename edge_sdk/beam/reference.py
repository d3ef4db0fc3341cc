"""Reference data: the content digest recorded in ``datasets/3gpp/reference/SHA256SUMS``, and its check.

numpy + h5py only (no torch), so a device can check a dataset too: ``edge-sdk data verify [DIR]``
(:func:`verify_dir`).

HDF5 files written by :class:`edge_sdk.beam.h5writer.BeamH5Writer` carry a ``created`` timestamp attribute, so
their bytes differ between two otherwise identical runs. The recorded digest is therefore over the *decoded*
arrays: for every stored field in schema order, ``name``, dtype string and shape (UTF-8, newline separated)
followed by the C-order array bytes, plus the ``seed`` and ``preset`` attributes. Two files with the same digest
hold identical samples generated from the identical preset and seed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from edge_sdk.atomic import atomic_write_text
from edge_sdk.beam.dataset import fields_for
from edge_sdk.errors import DatasetError

SUMS_NAME = "SHA256SUMS"
SUMS_HEADER = (
    "# SHA-256 of the decoded arrays + seed/preset attrs (edge_sdk.beam.reference.array_digest),\n"
    "# not of the file bytes (HDF5 attrs hold a creation timestamp). Regenerate: .venv/bin/python tools/make_reference_data.py\n"
)


def array_digest(path: str | Path) -> str:
    """Hex SHA-256 of the decoded content of a beam HDF5 file (see module docstring)."""
    from edge_sdk.beam.h5reader import read_beam_h5

    ds = read_beam_h5(path)
    h = hashlib.sha256()
    for name in fields_for(ds.case):
        arr = np.ascontiguousarray(getattr(ds, name))
        h.update(f"{name}\n{arr.dtype.str}\n{arr.shape}\n".encode())
        h.update(arr.tobytes())
    h.update(f"seed={int(ds.attrs['seed'])}\npreset={ds.attrs['preset']}\n".encode())
    return h.hexdigest()


MAX_SUMS_BYTES = 1 << 20


def read_sums(path: str | Path) -> dict[str, str]:
    """``{file name: hex digest}`` from a SHA256SUMS file (``<hex>  <name>`` lines, ``#`` comments). Names are
    plain file names in the same folder; anything else (a malformed line, a path, a bad digest) is a
    :class:`~edge_sdk.errors.DatasetError` naming the line."""
    p = Path(path)
    if p.stat().st_size > MAX_SUMS_BYTES:
        raise DatasetError(f"{p} is larger than {MAX_SUMS_BYTES} bytes; not a SHA256SUMS file")
    out: dict[str, str] = {}
    for i, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(maxsplit=1)
        digest, name = (parts[0].lower(), parts[1].strip()) if len(parts) == 2 else ("", "")
        if (len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest) or not name
                or "/" in name or "\\" in name or name.startswith(".")):
            raise DatasetError(f"{p}:{i}: expected '<64 hex digits>  <file name>', got {line[:120]!r}")
        out[name] = digest
    return out


def write_sums(path: str | Path, sums: dict[str, str]) -> None:
    """Write ``sums`` atomically in the format of :func:`read_sums`."""
    atomic_write_text(path, SUMS_HEADER + "".join(f"{d}  {n}\n" for n, d in sorted(sums.items())))


def verify_dir(folder: str | Path) -> dict[str, bool]:
    """``{file name: digest matches}`` for every file that ``folder/SHA256SUMS`` lists. A listed file that is
    missing, or a folder without SHA256SUMS, is a :class:`~edge_sdk.errors.DatasetError`."""
    d = Path(folder)
    sums_path = d / SUMS_NAME
    if not sums_path.is_file():
        raise DatasetError(f"{sums_path} does not exist; give a folder that holds {SUMS_NAME} and the files it lists")
    sums = read_sums(sums_path)
    if not sums:
        raise DatasetError(f"{sums_path} lists no files")
    missing = sorted(n for n in sums if not (d / n).is_file())
    if missing:
        raise DatasetError(f"{d} lacks {missing}, listed in {SUMS_NAME}")
    return {name: array_digest(d / name) == digest for name, digest in sums.items()}

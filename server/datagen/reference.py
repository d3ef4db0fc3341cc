"""Reference-data helpers: the content digest recorded in ``datasets/3gpp/reference/SHA256SUMS``.

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

from edge_sdk.beam.dataset import fields_for

SUMS_NAME = "SHA256SUMS"
SUMS_HEADER = (
    "# SHA-256 of the decoded arrays + seed/preset attrs (edge_sdk.server.datagen.reference.array_digest),\n"
    "# not of the file bytes (HDF5 attrs hold a creation timestamp). Regenerate: python tools/make_reference_data.py\n"
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


def read_sums(path: str | Path) -> dict[str, str]:
    """``{file name: hex digest}`` from a SHA256SUMS file (``<hex>  <name>`` lines, ``#`` comments)."""
    out: dict[str, str] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        digest, name = line.split(maxsplit=1)
        out[name.strip()] = digest
    return out


def write_sums(path: str | Path, sums: dict[str, str]) -> None:
    """Write ``sums`` atomically in the format of :func:`read_sums`."""
    atomic_write_text(path, SUMS_HEADER + "".join(f"{d}  {n}\n" for n, d in sorted(sums.items())))


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (``edge_sdk.atomic``)."""
    from edge_sdk.atomic import atomic_write_text as _write

    _write(path, text)

"""Sharded beam datasets: shard files stitched by an HDF5 virtual dataset (VDS), and the checks a reader applies.

h5py has no MPI, so a generation run split into K shards writes K ordinary schema-v1 files (one writer each,
:mod:`edge_sdk.server.datagen.shards`) and :func:`edge_sdk.beam.h5writer.stitch_shards` writes one small file ``OUT.h5`` whose field
datasets are HDF5 *virtual datasets* mapping row ranges to the shard files. The readers
(:func:`edge_sdk.beam.h5reader.open_beam_h5` / ``read_beam_h5`` and what builds on them) open ``OUT.h5`` when
asked to: ``allow_virtual=True`` (CLI ``--allow-virtual`` of ``data info``, ``data export``, ``device eval``,
``device train``; the server's training-data reader ``load_beam`` always passes it,
:data:`edge_sdk.beam.h5reader.SERVER_DATA`). Without it a virtual dataset over other files is refused (issue 12:
storage outside the file only when asked for). Plain h5py and other HDF5 tools read it too.

A virtual dataset reads fill values, silently, where a source file is missing, and it can point anywhere on the
file system, so :func:`check_virtual_sources` (called by the reader for any file with a virtual field) refuses
the file unless ALL of these hold (each is a :class:`DatasetError` naming the problem):

1. every source is named by a plain file name (``[A-Za-z0-9._-]+.h5``: no directory part, no ``..``) and read
   from the stitched file's own directory; it exists, is a regular file and not a symlink;
2. every source dataset name equals the field name, and every field maps the same rows to the same file;
3. the sources tile ``[0, n_done)`` exactly (no gap, no overlap, full rows);
4. each source is itself a complete, non-virtual schema-v1 beam file whose ``case``, ``n_tx``, ``n_rx``,
   ``preset``, ``seed`` and ``generator_version`` equal the stitched file's, whose row count equals its mapped
   range and whose ``row_offset`` attribute equals the range start.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge_sdk.beam.dataset import fields_for, trailing_shape
from edge_sdk.errors import DatasetError

#: attributes that differ between shards and are dropped from the stitched file's root attributes
SHARD_ATTRS = ("shard_index", "row_offset")
SAME_ATTRS = ("case", "n_tx", "n_rx", "preset", "seed", "generator_version")
_NAME = re.compile(r"^[A-Za-z0-9._-]+\.h5$")


def plain_source_name(name: str, where: str) -> str:
    if not _NAME.match(name) or name.startswith(".") or ".." in name:
        raise DatasetError(
            f"{where}: virtual source file {name!r} is not a plain file name in the same directory; "
            "a stitched dataset may only refer to its own shard files"
        )
    return name


def check_virtual_sources(h5: Any, path: Path, attrs: dict[str, Any], open_shard: Callable[[Path], Any]) -> list[str]:
    """Validate the virtual fields of an open file (module docstring); returns the source file names in row
    order. ``attrs`` are the file's validated root attributes; ``open_shard(path)`` opens a source with the
    validating reader, refusing virtual fields (``edge_sdk.beam.h5reader.BeamH5File`` passes itself, so this
    module never imports the reader)."""
    where = str(path)
    case, n = attrs["case"], int(attrs["n_done"])
    table = fields_for(case)
    mapping: dict[str, tuple[int, int]] | None = None
    for name, (_dtype, code) in table.items():
        ds = h5[name]
        if not ds.is_virtual:
            raise DatasetError(f"{where}: field {name!r} is not virtual while others are; the file is damaged")
        tail = trailing_shape(code, attrs["n_tx"], attrs["n_rx"])
        this: dict[str, tuple[int, int]] = {}
        for m in ds.virtual_sources():
            fname = plain_source_name(str(m.file_name), where)
            if str(m.dset_name).lstrip("/") != name:
                raise DatasetError(f"{where}: field {name!r} maps to dataset {m.dset_name!r} of {fname}")
            lo, hi = m.vspace.get_select_bounds()
            if tuple(lo[1:]) != (0,) * len(tail) or tuple(h + 1 for h in hi[1:]) != tail:
                raise DatasetError(f"{where}: field {name!r} maps partial rows of {fname}")
            if fname in this:
                raise DatasetError(f"{where}: field {name!r} maps {fname} twice")
            this[fname] = (int(lo[0]), int(hi[0]) + 1)
        if mapping is None:
            mapping = this
        elif this != mapping:
            raise DatasetError(f"{where}: fields map different rows or files ({name!r})")
    assert mapping is not None
    order = sorted(mapping, key=lambda f: mapping[f][0])
    pos = 0
    for f in order:
        a, b = mapping[f]
        if a != pos:
            raise DatasetError(f"{where}: shard rows do not tile [0, {n}): {f} starts at {a}, expected {pos}")
        pos = b
    if pos != n:
        raise DatasetError(f"{where}: shards cover {pos} rows but the file has n_done={n}")
    folder = path.resolve().parent
    for f in order:
        src = folder / f
        if src.is_symlink() or not src.is_file():
            raise DatasetError(f"{where}: shard file {src} is missing (or not a regular file); regenerate it")
        with open_shard(src) as sf:
            a, b = mapping[f]
            for k in SAME_ATTRS:
                if sf.attrs.get(k) != attrs.get(k):
                    raise DatasetError(f"{where}: shard {f} has a different {k} than the stitched file")
            if sf.n != b - a or sf.attrs.get("row_offset") != a:
                raise DatasetError(f"{where}: shard {f} holds {sf.n} rows at offset {sf.attrs.get('row_offset')}, "
                                   f"the stitched file maps rows [{a}, {b})")
    return order

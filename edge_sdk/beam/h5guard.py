"""What an HDF5 file may make the reader do: storage checks that run before any value is read
(docs/dataset-hdf5.md, "Reading untrusted files").

HDF5 can point outside the file (external links, virtual datasets whose sources are other files, external raw
storage), can declare chunks far larger than the rows asked for (decompressing one chunk then costs the whole
chunk), and can apply any registered filter. A beam file written by :mod:`edge_sdk.beam` has none of that: plain
chunked datasets, gzip or lzf with shuffle and fletcher32, chunks of at most about 1 MiB. So the reader accepts
only that and refuses everything else with a one-line :class:`~edge_sdk.errors.DatasetError` before reading a
value, unless the caller opts in:

* ``allow_virtual`` — a *stitched sharded dataset*: virtual datasets over shard files, which the reader then
  validates with :func:`edge_sdk.beam.vds.check_virtual_sources` (plain sibling ``.h5`` names, exact tiling,
  every shard a complete non-virtual beam file of the same run, read with these same checks).
* ``allow_external`` — full trust in links out of the file: external links, soft links, external raw storage
  and virtual datasets with any sources (not validated as a stitched dataset).

The decompressed size is bounded by the reader from the declared shapes (``max_bytes``,
:class:`H5ReadOptions`), so a compression bomb is refused from its metadata.

No check made from Python can stop libhdf5 itself from crashing on a crafted object header (the fuzz in
``tests/core/test_beam_h5_fuzz.py`` finds byte flips that make it segfault while reading attributes). So a file a
device is handed is first opened and read in a short-lived child process (``isolate``, on in
:class:`H5ReadOptions`, :func:`edge_sdk.beam.h5reader.probe_beam_h5`): a crash, a hang or a memory blow-up there
becomes a one-line :class:`~edge_sdk.errors.DatasetError`, and only a file the child read to the end is read in
the calling process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_sdk.errors import DatasetError

#: HDF5 filter ids a beam file may use: deflate (gzip), shuffle, fletcher32, lzf
ALLOWED_FILTERS = {1: "gzip", 2: "shuffle", 3: "fletcher32", 32000: "lzf"}
#: one chunk, decompressed, in bytes; the writer's chunks are <= ~1 MiB
MAX_CHUNK_BYTES = 64 << 20
#: readers refuse files whose declared arrays would need more memory than this, before reading a value
#: (override: ``max_bytes=`` / CLI ``--max-bytes``): 1 GiB holds ~2 M rows of 32 x 8 beams (534 B/row)
DEFAULT_MAX_BYTES = 1 << 30


@dataclass(frozen=True)
class H5ReadOptions:
    """How far a reader trusts an HDF5 input (the CLI's ``--max-bytes``, ``--allow-virtual``,
    ``--allow-external``); ``kwargs()`` are the keyword arguments of ``open_beam_h5`` / ``read_beam_h5``.

    max_bytes: largest total decompressed size of the declared arrays, in bytes.
    isolate: open and read the whole file in a child process first (module docstring), so that libhdf5
        crashing on a crafted file costs the child, not the command; on by default for every command's input,
        off only for the operator's own training data (:data:`SERVER_DATA`).
    """

    max_bytes: int = DEFAULT_MAX_BYTES
    allow_virtual: bool = False
    allow_external: bool = False
    isolate: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.max_bytes, bool) or not isinstance(self.max_bytes, int) or self.max_bytes < 1:
            raise DatasetError(f"max_bytes must be a positive number of bytes, got {self.max_bytes!r}")

    def kwargs(self) -> dict[str, Any]:
        return {"max_bytes": self.max_bytes, "allow_virtual": self.allow_virtual,
                "allow_external": self.allow_external, "isolate": self.isolate}


#: how the server reads the operator's own training data (``load_beam``: distill/quantize ``--data``): stitched
#: sharded files from ``data generate --shards`` are read (still validated), and the pre-issue-12 16 GiB cap
#: applies, and the file is read in-process (no child-process check: the operator made it, and it may be tens of
#: GiB); everything a device reads keeps the defaults
SERVER_DATA = H5ReadOptions(max_bytes=16 << 30, allow_virtual=True, isolate=False)


def _h5py() -> Any:
    import h5py

    return h5py


_EXTERNAL_HINT = "pass allow_external=True (CLI: --allow-external) if you trust the files it names"
_VIRTUAL_HINT = ("if this is a stitched sharded dataset you trust, pass allow_virtual=True (CLI: --allow-virtual)")


def _check_virtual(obj: Any, name: str, where: str, *, allow_virtual: bool, allow_external: bool) -> None:
    outside = sorted({str(src.file_name) for src in obj.virtual_sources() if str(src.file_name) != "."})
    if outside and not (allow_virtual or allow_external):
        raise DatasetError(f"{where}: dataset {name!r} is a virtual dataset over other files {outside[:3]}; "
                           f"refused ({_VIRTUAL_HINT})")


def checked_dataset(f: Any, name: str, where: str, *, allow_external: bool = False,
                    allow_virtual: bool = False) -> Any:
    """The dataset ``name`` of the open file ``f`` after its storage checks (module docstring); None when the
    name does not exist. Links are inspected before they are followed; ``where`` is the file's path."""
    h5py = _h5py()
    link = f.get(name, getlink=True)
    if link is None:
        return None
    if isinstance(link, h5py.ExternalLink):
        if not allow_external:
            raise DatasetError(f"{where}: {name!r} is an external link to {link.filename}:{link.path}; links out of "
                               f"the file are refused ({_EXTERNAL_HINT})")
    elif isinstance(link, h5py.SoftLink):
        if not allow_external:
            raise DatasetError(f"{where}: {name!r} is a soft link to {link.path}; schema v1 files hold the datasets "
                               f"themselves ({_EXTERNAL_HINT})")
    obj = f.get(name)
    if not isinstance(obj, h5py.Dataset):
        raise DatasetError(f"{where}: {name!r} is not a dataset")
    if obj.external and not allow_external:
        files = sorted({str(e[0]) for e in obj.external})
        raise DatasetError(f"{where}: dataset {name!r} stores its values in external files {files[:3]}; refused "
                           f"({_EXTERNAL_HINT})")
    if obj.is_virtual:
        _check_virtual(obj, name, where, allow_virtual=allow_virtual, allow_external=allow_external)
    else:  # a virtual dataset has no filters or chunks of its own; a stitched file's shards get these checks
        plist = obj.id.get_create_plist()
        for i in range(plist.get_nfilters()):
            code = int(plist.get_filter(i)[0])
            if code not in ALLOWED_FILTERS:
                raise DatasetError(f"{where}: dataset {name!r} uses HDF5 filter {code}; beam files use only "
                                   f"{sorted(ALLOWED_FILTERS.values())}")
        if obj.chunks is not None:
            chunk = int(np.prod(obj.chunks, dtype=np.int64)) * obj.dtype.itemsize
            if chunk > MAX_CHUNK_BYTES:
                raise DatasetError(f"{where}: dataset {name!r} has {chunk}-byte chunks (shape {obj.chunks}); "
                                   f"reading one row would decompress a whole chunk, so chunks are capped at "
                                   f"{MAX_CHUNK_BYTES} bytes")
    return obj

"""What an HDF5 file may make the reader do: storage checks run before any value is read (docs/dataset-hdf5.md,
"Reading untrusted files").

HDF5 can point outside the file (external links, virtual datasets with sources in other files, external raw
storage), can declare chunks far larger than the rows asked for (decompressing one chunk then costs the whole
chunk), and can apply any registered filter. A beam file written by :mod:`edge_sdk.beam` has none of that: plain
contiguous-or-chunked datasets, gzip or lzf with shuffle and fletcher32, chunks of at most about 1 MiB. So the
reader accepts only that, unless the caller explicitly allows links out of the file (``allow_external``, e.g. a
sharded dataset stitched by a virtual dataset), and refuses everything else with a one-line
:class:`~edge_sdk.errors.DatasetError` before reading a value. The decompressed size itself is bounded from the
declared shapes by the reader (``max_bytes``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edge_sdk.errors import DatasetError

#: HDF5 filter ids a beam file may use: deflate (gzip), shuffle, fletcher32, lzf
ALLOWED_FILTERS = {1: "gzip", 2: "shuffle", 3: "fletcher32", 32000: "lzf"}
#: one chunk, decompressed; the writer's chunks are <= ~1 MiB
MAX_CHUNK_BYTES = 64 << 20


def _h5py() -> Any:
    import h5py

    return h5py


def checked_dataset(f: Any, name: str, where: str, *, allow_external: bool = False) -> Any:
    """The dataset ``name`` of the open file ``f`` after its storage checks (module docstring); None when the
    name does not exist. Links are inspected before they are followed."""
    h5py = _h5py()
    link = f.get(name, getlink=True)
    if link is None:
        return None
    hint = "pass allow_external=True (CLI: --allow-external) if you trust the files it names"
    if isinstance(link, h5py.ExternalLink):
        if not allow_external:
            raise DatasetError(f"{where}: {name!r} is an external link to {link.filename}:{link.path}; links out of "
                               f"the file are refused ({hint})")
    elif isinstance(link, h5py.SoftLink):
        if not allow_external:
            raise DatasetError(f"{where}: {name!r} is a soft link to {link.path}; schema v1 files hold the datasets "
                               f"themselves ({hint})")
    obj = f.get(name)
    if not isinstance(obj, h5py.Dataset):
        raise DatasetError(f"{where}: {name!r} is not a dataset")
    if obj.external and not allow_external:
        files = sorted({str(e[0]) for e in obj.external})
        raise DatasetError(f"{where}: dataset {name!r} stores its values in external files {files[:3]}; refused "
                           f"({hint})")
    if obj.is_virtual and not allow_external:
        outside = sorted({s.file_name for s in obj.virtual_sources() if s.file_name != "."})
        if outside:
            raise DatasetError(f"{where}: dataset {name!r} is a virtual dataset over other files {outside[:3]}; "
                               f"refused ({hint})")
    plist = obj.id.get_create_plist()
    for i in range(plist.get_nfilters()):
        code = int(plist.get_filter(i)[0])
        if code not in ALLOWED_FILTERS:
            raise DatasetError(f"{where}: dataset {name!r} uses HDF5 filter {code}; beam files use only "
                               f"{sorted(ALLOWED_FILTERS.values())}")
    if obj.chunks is not None:
        chunk = int(np.prod(obj.chunks, dtype=np.int64)) * obj.dtype.itemsize
        if chunk > MAX_CHUNK_BYTES:
            raise DatasetError(f"{where}: dataset {name!r} has {chunk}-byte chunks (shape {obj.chunks}); reading "
                               f"one row would decompress a whole chunk, so chunks are capped at {MAX_CHUNK_BYTES} "
                               "bytes")
    return obj

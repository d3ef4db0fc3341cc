"""HDF5 beam-dataset schema v1: the schema (names, attributes, rules), the storage checks an untrusted file must pass
before any value is read, and the validating reader (numpy + h5py only).

API::

    from edge_sdk.beam.h5reader import read_beam_h5, open_beam_h5
    ds = read_beam_h5("train.h5")                  # BeamDataset, fully validated
    with open_beam_h5("train.h5") as f: f.n, f.attrs, f.read("rsrp", slice(0, 1000))   # lazy

The file format (docs/dataset-hdf5.md is the normative spec): root attributes ``schema =
"edge-sdk/beam-dataset"``, ``schema_version = 1``, ``case``, ``preset`` (JSON string), ``generator_version``,
``sionna_version``, ``seed``, ``n_tx``, ``n_rx``, ``n_az``, ``n_zen``, ``tx_beam_order``, ``created`` (ISO-8601
UTC), ``edge_sdk_version``, ``n_done``, ``n_target`` (-1 = open-ended), ``complete``, Case2 ``time_step_s``; one
root dataset per field of :mod:`edge_sdk.beam.dataset` (chunked along N, gzip + shuffle, fletcher32).

Modules (each imports only the ones above it; none imports back):

* :mod:`edge_sdk.beam.dataset` — the in-memory :class:`BeamDataset`, its fields and consistency checks;
* this module — schema constants, attribute conversion, :func:`check_attrs`; the storage checks
  (:func:`checked_dataset`, :class:`H5ReadOptions`); ``BeamH5File``, ``open_beam_h5``, ``read_beam_h5``;
* :mod:`edge_sdk.beam.h5writer` — ``BeamH5Writer``, ``write_beam_h5`` (appendable, resumable, atomic writer; it
  takes the schema constants from here).

Untrusted files (docs/dataset-hdf5.md, "Reading untrusted files"): before any value is read the reader refuses files
without rows, files whose declared arrays exceed ``max_bytes`` (default 1 GiB; the size comes from the declared
shapes, so a compression bomb is refused from its metadata), and datasets whose storage :func:`checked_dataset`
refuses (links, external or virtual storage pointing outside the file unless ``allow_virtual`` / ``allow_external``,
foreign filters, chunks above ``MAX_CHUNK_BYTES``). With ``isolate=True`` (what every command passes for the files
it is handed, :class:`H5ReadOptions`) the file is first opened and read to the end by :func:`probe_beam_h5` in a
child process, so libhdf5 crashing on a crafted file becomes a :class:`DatasetError` instead of killing the caller.

Why the storage checks: HDF5 can point outside the file (external links, virtual datasets whose sources are other
files, external raw storage), can declare chunks far larger than the rows asked for (decompressing one chunk then
costs the whole chunk), and can apply any registered filter. A beam file written by :mod:`edge_sdk.beam` has none of
that: plain chunked datasets, gzip or lzf with shuffle and fletcher32, chunks of at most about 1 MiB. So the reader
accepts only that and refuses everything else with a one-line :class:`~edge_sdk.errors.DatasetError` before reading
a value, unless the caller opts in:

* ``allow_virtual`` — a *stitched sharded dataset*: virtual datasets over shard files, which the reader then
  validates with :func:`edge_sdk.beam.vds.check_virtual_sources` (plain sibling ``.h5`` names, exact tiling,
  every shard a complete non-virtual beam file of the same run, read with these same checks).
* ``allow_external`` — full trust in links out of the file: external links, soft links, external raw storage
  and virtual datasets with any sources (not validated as a stitched dataset).

No check made from Python can stop libhdf5 itself from crashing on a crafted object header (the fuzz in
``tests/core/test_beam_h5_fuzz.py`` finds byte flips that make it segfault while reading attributes). So a file a
device is handed is first opened and read in a short-lived child process (``isolate``, on in :class:`H5ReadOptions`,
:func:`probe_beam_h5`): a crash, a hang or a memory blow-up there becomes a one-line
:class:`~edge_sdk.errors.DatasetError`, and only a file the child read to the end is read in the calling process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_sdk._version import __version__
from edge_sdk.beam.dataset import (
    CASES,
    MAX_RX,
    MAX_TX,
    BeamDataset,
    fields_for,
    trailing_shape,
    validate_arrays,
)
from edge_sdk.errors import DatasetError

# ------------------------------------------------------------------ the schema (shared with the writer)

SCHEMA_NAME = "edge-sdk/beam-dataset"
SCHEMA_VERSION = 1
N_ZEN = 4
TX_BEAM_ORDER = "zenith-major: k = k_zen * n_az + k_az"
PARTIAL_SUFFIX = ".partial"
#: attributes the writer fills itself; user attrs may not set them
RESERVED_ATTRS = (
    "schema", "schema_version", "case", "n_tx", "n_rx", "n_az", "n_zen", "tx_beam_order", "created",
    "edge_sdk_version", "n_done", "n_target", "complete",
)  # fmt: skip
REQUIRED_ATTRS: dict[str, tuple[type, ...]] = {
    "schema": (str,),
    "schema_version": (int,),
    "case": (str,),
    "preset": (str,),
    "generator_version": (str,),
    "sionna_version": (str,),
    "seed": (int,),
    "n_tx": (int,),
    "n_rx": (int,),
    "created": (str,),
    "n_done": (int,),
    "n_target": (int,),
    "complete": (bool,),
}


def h5py_module() -> Any:
    """h5py, imported on first use."""
    import h5py

    return h5py


def partial_path(path: str | os.PathLike[str]) -> Path:
    """Where an unfinished file lives: ``<path>.partial``."""
    p = Path(path)
    return p.with_name(p.name + PARTIAL_SUFFIX)


def attr_value(v: Any) -> Any:
    """HDF5 attribute value -> plain Python (str, int, float, bool, list)."""
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    if isinstance(v, np.ndarray):
        return [attr_value(x) for x in v.tolist()]
    return v


def to_attr(name: str, v: Any) -> Any:
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(v, sort_keys=True)
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v)
    if isinstance(v, str):
        return v
    raise DatasetError(
        f"attribute {name!r} has unsupported type {type(v).__name__}; use str/int/float/bool/dict"
    )



def check_attrs(attrs: dict[str, Any], where: str) -> None:
    schema = attrs.get("schema")
    if schema != SCHEMA_NAME:
        raise DatasetError(
            f"{where}: not an edge-sdk beam dataset (attribute schema={schema!r}, expected {SCHEMA_NAME!r})"
        )
    ver = attrs.get("schema_version")
    if not isinstance(ver, int) or isinstance(ver, bool):
        raise DatasetError(f"{where}: attribute schema_version must be an integer, got {ver!r}")
    if ver > SCHEMA_VERSION:
        raise DatasetError(
            f"{where}: beam dataset schema_version {ver} is newer than this edge-sdk ({__version__}) supports "
            f"(version {SCHEMA_VERSION}); upgrade edge-sdk"
        )
    if ver < 1:
        raise DatasetError(f"{where}: invalid schema_version {ver}; supported is {SCHEMA_VERSION}")
    for key, types in REQUIRED_ATTRS.items():
        v = attrs.get(key)
        if v is None:
            raise DatasetError(f"{where}: missing root attribute {key!r}")
        ok = isinstance(v, types) and not (bool not in types and isinstance(v, bool))
        if not ok:
            raise DatasetError(
                f"{where}: root attribute {key!r} has type {type(v).__name__}, expected {types[0].__name__}"
            )
    if attrs["case"] not in CASES:
        raise DatasetError(f"{where}: attribute case={attrs['case']!r}; expected one of {CASES}")
    n_tx, n_rx = attrs["n_tx"], attrs["n_rx"]
    if not (2 <= n_tx <= MAX_TX and 1 <= n_rx <= MAX_RX):
        raise DatasetError(f"{where}: n_tx={n_tx}, n_rx={n_rx} outside 2..{MAX_TX} / 1..{MAX_RX}")
    if attrs["n_done"] < 0:
        raise DatasetError(f"{where}: negative n_done")
    try:
        preset = json.loads(attrs["preset"])
    except ValueError:
        raise DatasetError(f"{where}: attribute 'preset' is not valid JSON") from None
    if not isinstance(preset, dict):
        raise DatasetError(f"{where}: attribute 'preset' must be a JSON object")
    if attrs["case"] == "case2":
        ts = attrs.get("time_step_s")
        if not isinstance(ts, (int, float)) or isinstance(ts, bool) or not ts > 0:
            raise DatasetError(f"{where}: case2 file needs a positive attribute 'time_step_s'")


# ------------------------------------------------------------------ storage checks (untrusted files)

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
    h5py = h5py_module()
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


# ------------------------------------------------------------------ the reader


class BeamH5File:
    """Lazy read access to a validated schema-v1 file (shapes/dtypes/attrs checked; data read on demand).

    Use as a context manager; ``read(name, rows)`` returns a numpy array, ``to_dataset()`` the whole file.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        allow_incomplete: bool = False,
        max_bytes: int = DEFAULT_MAX_BYTES,
        allow_virtual: bool = False,
        allow_external: bool = False,
        isolate: bool = False,
    ) -> None:
        self.path = Path(path)
        h5py = h5py_module()
        if not self.path.exists():
            raise FileNotFoundError(f"no such file: {self.path}")
        if self.path.is_dir():
            raise DatasetError(f"{self.path} is a directory, not an HDF5 beam dataset")
        if isolate:
            probe_beam_h5(self.path, allow_incomplete=allow_incomplete, max_bytes=max_bytes,
                          allow_virtual=allow_virtual, allow_external=allow_external)
        try:
            is_h5 = h5py.is_hdf5(str(self.path))
        except OSError:
            is_h5 = False
        if not is_h5:
            raise DatasetError(f"{self.path} is not an HDF5 file (expected an edge-sdk beam dataset .h5)")
        try:
            self._f = h5py.File(self.path, "r")
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise DatasetError(
                f"{self.path}: cannot open HDF5 file ({exc}); the file is damaged or truncated"
            ) from None
        try:
            self._check(allow_incomplete, max_bytes, allow_virtual, allow_external)
        except DatasetError:
            self._f.close()
            raise
        except Exception as exc:  # h5py raises assorted errors on damaged metadata
            self._f.close()
            raise DatasetError(f"{self.path}: damaged HDF5 metadata ({type(exc).__name__}: {exc})") from None

    def _check(self, allow_incomplete: bool, max_bytes: int, allow_virtual: bool, allow_external: bool) -> None:
        where = str(self.path)
        attrs = {k: attr_value(v) for k, v in self._f.attrs.items()}
        check_attrs(attrs, where)
        if not attrs["complete"] and not allow_incomplete:
            raise DatasetError(
                f"{where}: the file is incomplete (complete=False); finish or resume the generator run"
            )
        case, n_tx, n_rx, n = attrs["case"], attrs["n_tx"], attrs["n_rx"], attrs["n_done"]
        if attrs["complete"] and attrs["n_target"] != n:
            raise DatasetError(f"{where}: complete file with n_done={n} != n_target={attrs['n_target']}")
        if n == 0 and not allow_incomplete:
            raise DatasetError(f"{where}: the file has no rows (n_done = 0); there is nothing to read or evaluate")
        table = fields_for(case)
        total = 0
        for name, (dtype, code) in table.items():
            obj = checked_dataset(self._f, name, where, allow_virtual=allow_virtual, allow_external=allow_external)
            if obj is None:
                raise DatasetError(f"{where}: missing dataset {name!r} (required for {case})")
            if obj.dtype != dtype:
                raise DatasetError(f"{where}: dataset {name!r} has dtype {obj.dtype}, expected {dtype}")
            want = (n, *trailing_shape(code, n_tx, n_rx))
            shape = tuple(obj.shape)
            # an unfinished file may hold uncommitted rows past n_done (killed mid-append): they are ignored
            partial_ok = (
                not attrs["complete"] and len(shape) == len(want) and shape[1:] == want[1:] and shape[0] >= n
            )
            if shape != want and not partial_ok:
                raise DatasetError(
                    f"{where}: dataset {name!r} has shape {tuple(obj.shape)}, expected {want} "
                    f"(n_done={n}, n_tx={n_tx}, n_rx={n_rx})"
                )
            total += dtype.itemsize * int(np.prod(want, dtype=np.int64))
        if total > max_bytes:
            raise DatasetError(
                f"{where}: the declared arrays need {total} bytes when decompressed, above max_bytes={max_bytes}; "
                "if the file is trusted pass a larger max_bytes (CLI: --max-bytes SIZE)"
            )
        # a stitched sharded dataset (edge_sdk.beam.vds): checked_dataset refused it unless allow_virtual (or
        # allow_external, which trusts any virtual dataset without these checks)
        if not allow_external and any(self._f[name].is_virtual for name in table):
            from edge_sdk.beam.vds import check_virtual_sources

            self.shard_files: list[str] = check_virtual_sources(
                self._f, self.path, attrs, lambda p: type(self)(p, allow_virtual=False))
        self.attrs: dict[str, Any] = attrs
        self.case: str = case
        self.n: int = n
        self.n_tx: int = n_tx
        self.n_rx: int = n_rx
        self.nbytes: int = total

    def read(self, name: str, rows: slice | np.ndarray | None = None) -> np.ndarray:
        """Read dataset ``name`` (all committed rows, a slice with step > 0, or an int index array in any
        order). Checksums are verified."""
        if name not in fields_for(self.case):
            raise DatasetError(f"unknown field {name!r} for {self.case}")
        try:
            ds = self._f[name]
            if rows is None:
                return np.asarray(ds[: self.n])
            if isinstance(rows, slice):
                r = range(self.n)[rows]  # clamps the slice to the committed rows
                if r.step < 0:
                    raise DatasetError("negative slice steps are not supported")
                return np.asarray(ds[r.start : r.stop : r.step])
            idx = np.asarray(rows)
            if idx.dtype.kind not in "iu" or idx.ndim != 1:
                raise DatasetError("rows must be a slice or a 1-D integer index array")
            if idx.size and (idx.min() < 0 or idx.max() >= self.n):
                raise DatasetError(f"row index out of range [0, {self.n})")
            uniq, inv = np.unique(idx, return_inverse=True)  # h5py needs increasing indices
            return np.asarray(ds[uniq])[inv]
        except DatasetError:
            raise
        except Exception as exc:
            raise DatasetError(
                f"{self.path}: cannot read dataset {name!r} ({type(exc).__name__}: {exc}); the file is damaged"
            ) from None

    def iter_rows(self, batch: int = 65536) -> Iterator[BeamDataset]:
        """Iterate the file in row blocks as (unvalidated-label) :class:`BeamDataset` pieces."""
        for s in range(0, self.n, batch):
            sl = slice(s, min(self.n, s + batch))
            arrays = {name: self.read(name, sl) for name in fields_for(self.case)}
            yield BeamDataset(**arrays, attrs=dict(self.attrs))  # type: ignore[arg-type]

    def to_dataset(self, *, check_labels: bool = True) -> BeamDataset:
        """Read everything and validate values (finiteness, label == argmax)."""
        arrays = {name: self.read(name) for name in fields_for(self.case)}
        try:
            validate_arrays(arrays, self.case, check_labels=check_labels)
        except DatasetError as exc:
            raise DatasetError(f"{self.path}: {exc}") from None
        return BeamDataset(**arrays, attrs=dict(self.attrs))  # type: ignore[arg-type]

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> BeamH5File:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_beam_h5(
    path: str | os.PathLike[str], *, allow_incomplete: bool = False, max_bytes: int = DEFAULT_MAX_BYTES,
    allow_virtual: bool = False, allow_external: bool = False, isolate: bool = False,
) -> BeamH5File:
    """Open lazily (attributes, dataset shapes, dtypes and storage validated; values read on demand).
    ``isolate``: read the whole file in a child process first (:func:`probe_beam_h5`)."""
    return BeamH5File(path, allow_incomplete=allow_incomplete, max_bytes=max_bytes, allow_virtual=allow_virtual,
                      allow_external=allow_external, isolate=isolate)


def read_beam_h5(
    path: str | os.PathLike[str],
    *,
    allow_incomplete: bool = False,
    check_labels: bool = True,
    max_bytes: int = DEFAULT_MAX_BYTES,
    allow_virtual: bool = False,
    allow_external: bool = False,
    isolate: bool = False,
) -> BeamDataset:
    """Read and fully validate a schema-v1 beam file into a :class:`BeamDataset`.

    Raises :class:`DatasetError` for: not HDF5 / damaged / checksum failure, wrong schema name, newer
    schema_version, missing or wrongly typed attributes, missing / mis-typed / mis-shaped datasets,
    inconsistent lengths, an incomplete file (unless ``allow_incomplete``), no rows, arrays above ``max_bytes``,
    storage outside the file (unless ``allow_virtual`` / ``allow_external``, see :func:`checked_dataset`),
    foreign filters or huge chunks, non-finite RSRP, and labels that differ from argmax over Tx of max over Rx.
    ``FileNotFoundError`` if the path does not exist. ``isolate``: read the whole file in a child process
    first (:func:`probe_beam_h5`), so that a crash of libhdf5 on a crafted file is a :class:`DatasetError` too.
    """
    with BeamH5File(path, allow_incomplete=allow_incomplete, max_bytes=max_bytes, allow_virtual=allow_virtual,
                    allow_external=allow_external, isolate=isolate) as f:
        return f.to_dataset(check_labels=check_labels)


#: address space the probing child may use beyond its start-up size, in bytes: it reads in row blocks of at most
#: ``PROBE_BLOCK_ROWS`` rows (a few tens of MiB) and chunks are capped at ``MAX_CHUNK_BYTES``
PROBE_MEMORY_BYTES = 1 << 30
PROBE_BLOCK_ROWS = 65536
#: seconds the child may take to start and pass the metadata checks (a good file: well under a second after a
#: ~0.3 s start-up; libhdf5 can spin for ever on a crafted attribute header, tests/data/h5_libhdf5_hang.h5)
PROBE_OPEN_TIMEOUT_S = 20.0
#: then, to read every value: this floor plus the declared decompressed bytes at this rate (a 2-core machine
#: reads a beam file at ~100 MiB/s, so ~10x slack)
PROBE_READ_FLOOR_S = 20.0
PROBE_READ_BYTES_PER_S = 8 << 20
#: (path, inode, size, mtime, options) of the files a child has read to the end in this process: a command that
#: checks its evaluation file before training and reads it after does not pay for two children
_PROBED: dict[tuple[Any, ...], int] = {}


def probe_beam_h5(
    path: str | os.PathLike[str], *, allow_incomplete: bool = False, max_bytes: int = DEFAULT_MAX_BYTES,
    allow_virtual: bool = False, allow_external: bool = False,
) -> int:
    """Open ``path`` with this reader and read every value of it, in row blocks, in a short-lived child Python
    process (memory-capped; time-limited per phase: :data:`PROBE_OPEN_TIMEOUT_S` to pass the metadata checks,
    then :data:`PROBE_READ_FLOOR_S` + declared bytes / :data:`PROBE_READ_BYTES_PER_S` to read); returns its
    committed row count, or raises the child's one-line :class:`DatasetError`, or a :class:`DatasetError` saying
    the child crashed (the signal), ran out of time or memory. A file changed since its last probe in this
    process (inode, size, mtime) is probed again.

    Why: libhdf5 (C) can crash, or loop, on crafted metadata before any Python check runs; the child takes that.
    A file the child read to the end takes the same library code paths in the caller.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no such file: {p}")
    st = p.stat()
    opts = {"allow_incomplete": allow_incomplete, "max_bytes": int(max_bytes), "allow_virtual": allow_virtual,
            "allow_external": allow_external}
    key = (str(p.resolve()), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, *sorted(opts.items()))
    if key in _PROBED:
        return _PROBED[key]
    package_root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    # -P: the child does not put the working directory first on sys.path (Python >= 3.11)
    cmd = [sys.executable, *(["-P"] if sys.version_info >= (3, 11) else []), "-c",
           "import sys; from edge_sdk.beam.h5reader import _probe_main; sys.exit(_probe_main(sys.argv[1]))",
           json.dumps({"path": str(p), **opts})]
    if os.name == "posix":
        returncode, lines, stderr = _run_probe(cmd, env, p)
    else:  # select() on pipes is POSIX-only: one deadline for both phases
        returncode, lines, stderr = _run_probe_one_deadline(cmd, env, p, int(max_bytes))
    if returncode < 0:
        try:
            sig = signal.Signals(-returncode).name
        except ValueError:
            sig = f"signal {-returncode}"
        raise DatasetError(f"{p}: the HDF5 library crashed ({sig}) reading this file in a child process; the file "
                           "is damaged or crafted, nothing of it was used")
    try:
        verdict = json.loads(lines[-1]) if lines else {}
    except ValueError:
        verdict = {}
    if returncode != 0 or not isinstance(verdict, dict) or not ("n" in verdict or "error" in verdict):
        last = (stderr.strip().splitlines() or ["no output"])[-1][:300]
        raise DatasetError(f"{p}: the child process that checks the file failed (exit {returncode}: {last})")
    if "error" in verdict:
        if verdict.get("kind") == "FileNotFoundError":
            raise FileNotFoundError(str(verdict["error"]))
        raise DatasetError(" ".join(str(verdict["error"]).split()))
    _PROBED[key] = int(verdict["n"])
    return _PROBED[key]


def _run_probe_one_deadline(cmd: list[str], env: dict[str, str], p: Path, max_bytes: int) -> tuple[int, list[str], str]:
    """:func:`_run_probe` where ``select`` cannot wait on a pipe: one deadline, the sum of both phases' for
    ``max_bytes`` declared bytes."""
    t = PROBE_OPEN_TIMEOUT_S + PROBE_READ_FLOOR_S + max_bytes / PROBE_READ_BYTES_PER_S
    try:
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=t, env=env)
    except subprocess.TimeoutExpired:
        raise DatasetError(f"{p}: opening and reading it did not finish in {t:.0f} s (checked in a child process, "
                           "which was stopped); the HDF5 library is stuck on this file: it is damaged or crafted") from None
    return r.returncode, r.stdout.strip().splitlines(), r.stderr


def _run_probe(cmd: list[str], env: dict[str, str], p: Path) -> tuple[int, list[str], str]:
    """Run the probing child under the two deadlines of :func:`probe_beam_h5` (killed when one passes: a
    :class:`DatasetError`); its exit code, stdout lines and stderr."""
    import select
    import tempfile
    import time

    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, env=env)
        assert proc.stdout is not None
        lines: list[str] = []
        buf = b""
        deadline, phase = time.monotonic() + PROBE_OPEN_TIMEOUT_S, f"opening it did not finish in {PROBE_OPEN_TIMEOUT_S:.0f} s"
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DatasetError(f"{p}: {phase} (checked in a child process, which was stopped); the HDF5 "
                                       "library is stuck on this file: it is damaged or crafted")
                if not select.select([proc.stdout], [], [], left)[0]:
                    continue
                chunk = os.read(proc.stdout.fileno(), 1 << 16)
                if not chunk:
                    break
                buf += chunk
                if len(buf) > 1 << 20:
                    raise DatasetError(f"{p}: the child process that checks the file wrote more than 1 MiB")
                while b"\n" in buf:
                    raw, buf = buf.split(b"\n", 1)
                    lines.append(raw.decode("utf-8", "replace"))
                    try:
                        msg = json.loads(lines[-1])
                    except ValueError:
                        continue
                    if isinstance(msg, dict) and isinstance(msg.get("opened"), int):  # metadata checks passed
                        t = PROBE_READ_FLOOR_S + msg["opened"] / PROBE_READ_BYTES_PER_S
                        deadline, phase = time.monotonic() + t, (f"reading its {msg['opened']} declared bytes did "
                                                                  f"not finish in {t:.0f} s")
            returncode = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise DatasetError(f"{p}: the child process that checks the file did not exit") from None
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
        err.seek(0)
        stderr = err.read(1 << 16).decode("utf-8", "replace")
    if buf.strip():
        lines.append(buf.decode("utf-8", "replace"))
    return returncode, lines, stderr


def _probe_main(arg: str) -> int:
    """The child of :func:`probe_beam_h5`: one JSON line on stdout, ``{"n": rows}`` or ``{"error": ..., "kind":
    ...}``; exit 0 unless the process itself dies."""
    from edge_sdk.schema import cap_address_space

    opts = json.loads(arg)
    cap_address_space(PROBE_MEMORY_BYTES)  # where it cannot, the reader's own max_bytes bound still holds
    path = opts.pop("path")
    try:
        with BeamH5File(path, isolate=False, **opts) as f:
            print(json.dumps({"opened": f.nbytes}), flush=True)  # the parent's second deadline starts here
            for s in range(0, f.n, PROBE_BLOCK_ROWS):
                for name in fields_for(f.case):
                    f.read(name, slice(s, s + PROBE_BLOCK_ROWS))
            out: dict[str, Any] = {"n": f.n}
    except FileNotFoundError as exc:
        out = {"error": str(exc), "kind": "FileNotFoundError"}
    except DatasetError as exc:
        out = {"error": str(exc), "kind": "DatasetError"}
    except MemoryError:
        out = {"error": f"{path}: reading the file needs more than {PROBE_MEMORY_BYTES >> 20} MiB beyond start-up; "
                        "the file is damaged or crafted", "kind": "DatasetError"}
    except Exception as exc:  # noqa: BLE001 - h5py raises assorted errors on damaged files
        out = {"error": f"{path}: damaged HDF5 file ({type(exc).__name__}: {exc})", "kind": "DatasetError"}
    print(json.dumps(out), flush=True)
    return 0

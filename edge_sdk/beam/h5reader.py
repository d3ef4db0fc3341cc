"""HDF5 beam-dataset schema v1: the validating reader (numpy + h5py only).

API::

    from edge_sdk.beam.h5reader import read_beam_h5, open_beam_h5
    ds = read_beam_h5("train.h5")                  # BeamDataset, fully validated
    with open_beam_h5("train.h5") as f: f.n, f.attrs, f.read("rsrp", slice(0, 1000))   # lazy

The schema (names, attributes, rules) is in :mod:`edge_sdk.beam.h5schema`; the writer in
:mod:`edge_sdk.beam.h5writer`.

Untrusted files (docs/dataset-hdf5.md, "Reading untrusted files"): before any value is read the reader refuses
files without rows, files whose declared arrays exceed ``max_bytes`` (default 1 GiB; the size comes from the
declared shapes, so a compression bomb is refused from its metadata), and datasets whose storage
:func:`edge_sdk.beam.h5guard.checked_dataset` refuses (links, external or virtual storage pointing outside the
file unless ``allow_virtual`` / ``allow_external``, foreign filters, chunks above ``MAX_CHUNK_BYTES``). With
``isolate=True`` (what every command passes for the files it is handed, :class:`~edge_sdk.beam.h5guard.H5ReadOptions`)
the file is first opened and read to the end by :func:`probe_beam_h5` in a child process, so libhdf5 crashing on
a crafted file becomes a :class:`DatasetError` instead of killing the caller.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edge_sdk.beam.dataset import BeamDataset, fields_for, trailing_shape, validate_arrays
from edge_sdk.beam.h5guard import DEFAULT_MAX_BYTES, checked_dataset
from edge_sdk.beam.h5schema import attr_value, check_attrs, h5py_module
from edge_sdk.errors import DatasetError


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
    storage outside the file (unless ``allow_virtual`` / ``allow_external``, see :mod:`edge_sdk.beam.h5guard`),
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
#: seconds the probing child may take: a floor, plus one second per MiB of the file (about 10x the time a
#: 2-core machine needs to decompress and check it)
PROBE_TIMEOUT_FLOOR_S = 120.0
#: (path, inode, size, mtime, options) of the files a child has read to the end in this process: a command that
#: checks its evaluation file before training and reads it after does not pay for two children
_PROBED: dict[tuple[Any, ...], int] = {}


def probe_beam_h5(
    path: str | os.PathLike[str], *, allow_incomplete: bool = False, max_bytes: int = DEFAULT_MAX_BYTES,
    allow_virtual: bool = False, allow_external: bool = False,
) -> int:
    """Open ``path`` with this reader and read every value of it, in row blocks, in a short-lived child Python
    process (memory-capped, time-limited); returns its committed row count, or raises the child's one-line
    :class:`DatasetError`, or a :class:`DatasetError` saying the child crashed (the signal), ran out of time or
    memory. A file changed since its last probe in this process (inode, size, mtime) is probed again.

    Why: libhdf5 (C) can crash the process on crafted metadata before any Python check runs; the child takes
    that crash. A file the child read to the end takes the same library code paths in the caller.
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
    timeout = PROBE_TIMEOUT_FLOOR_S + st.st_size / (1 << 20)
    package_root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    # -P: the child does not put the working directory first on sys.path (Python >= 3.11)
    cmd = [sys.executable, *(["-P"] if sys.version_info >= (3, 11) else []), "-c", "import sys; from edge_sdk.beam.h5reader import _probe_main; "
           "sys.exit(_probe_main(sys.argv[1]))", json.dumps({"path": str(p), **opts})]
    try:
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
                           env=env)
    except subprocess.TimeoutExpired:
        raise DatasetError(f"{p}: reading the file did not finish in {timeout:.0f} s (checked in a child "
                           "process); the file is damaged or crafted") from None
    if r.returncode < 0:
        try:
            sig = signal.Signals(-r.returncode).name
        except ValueError:
            sig = f"signal {-r.returncode}"
        raise DatasetError(f"{p}: the HDF5 library crashed ({sig}) reading this file in a child process; the file "
                           "is damaged or crafted, nothing of it was used")
    lines = r.stdout.strip().splitlines()
    try:
        verdict = json.loads(lines[-1]) if lines else {}
    except ValueError:
        verdict = {}
    if r.returncode != 0 or not isinstance(verdict, dict) or not ("n" in verdict or "error" in verdict):
        last = (r.stderr.strip().splitlines() or ["no output"])[-1][:300]
        raise DatasetError(f"{p}: the child process that checks the file failed (exit {r.returncode}: {last})")
    if "error" in verdict:
        if verdict.get("kind") == "FileNotFoundError":
            raise FileNotFoundError(str(verdict["error"]))
        raise DatasetError(" ".join(str(verdict["error"]).split()))
    _PROBED[key] = int(verdict["n"])
    return _PROBED[key]


def _probe_main(arg: str) -> int:
    """The child of :func:`probe_beam_h5`: one JSON line on stdout, ``{"n": rows}`` or ``{"error": ..., "kind":
    ...}``; exit 0 unless the process itself dies."""
    opts = json.loads(arg)
    try:
        import resource

        with open("/proc/self/status") as fh:
            vm = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:"))
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        cap = vm + PROBE_MEMORY_BYTES
        if hard != resource.RLIM_INFINITY:
            cap = min(cap, hard)
        if soft == resource.RLIM_INFINITY or cap < soft:
            resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    except (ImportError, OSError, StopIteration, ValueError):
        pass  # no RLIMIT_AS on this platform: the reader's own max_bytes bound still holds
    path = opts.pop("path")
    try:
        with BeamH5File(path, isolate=False, **opts) as f:
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

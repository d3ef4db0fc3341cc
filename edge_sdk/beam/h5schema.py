"""HDF5 beam-dataset schema v1: appendable resumable writer and validating reader (numpy + h5py only).

API (for the generator and for readers)::

    from edge_sdk.beam.h5schema import BeamH5Writer, read_beam_h5, open_beam_h5, write_beam_h5

    attrs = {"preset": preset_dict_or_json, "seed": 7, "generator_version": "...", "sionna_version": "2.2.0",
             # case2 only: "time_step_s": 0.02;   any other JSON-able scalars/strings are stored too
             }
    w = BeamH5Writer.create("train.h5", attrs, n_tx=32, n_rx=8, case="case1", n_target=100_000)
    #   writes to "train.h5.partial" until finalize(); refuses to overwrite unless overwrite=True
    w.append({"rsrp": f[B,32,8] dBm, "los": bool[B], "indoor": bool[B], "d2d": f[B] m, "ue_pos": f[B,3] m,
              "cell": int[B],  # case2 also "traj_id": int[B], "t_index": int[B]
              # "label" optional: computed by the writer from the stored float16 rsrp
              })                       # each append is written and flushed; w.n_done grows by B
    w.finalize()                       # sets complete=True, fsync, renames .partial -> train.h5
    # after a crash:
    if BeamH5Writer.can_resume("train.h5"):
        w = BeamH5Writer.open_resume("train.h5")   # w.n_done rows kept, w.attrs to compare with the run
    ds = read_beam_h5("train.h5")                  # BeamDataset, fully validated
    with open_beam_h5("train.h5") as f: f.n, f.attrs, f.read("rsrp", slice(0, 1000))   # lazy

Layout (docs/dataset-hdf5.md is the normative spec): root attributes ``schema = "edge-sdk/beam-dataset"``,
``schema_version = 1``, ``case``, ``preset`` (JSON string), ``generator_version``, ``sionna_version``,
``seed``, ``n_tx``, ``n_rx``, ``n_az``, ``n_zen``, ``tx_beam_order``, ``created`` (ISO-8601 UTC),
``edge_sdk_version``, ``n_done``, ``n_target`` (-1 = open-ended), ``complete``, Case2 ``time_step_s``; one
root dataset per field of :mod:`edge_sdk.beam.dataset` (chunked along N, gzip + shuffle, fletcher32).

Crash safety: rows are written first, then the ``n_done`` attribute, then the file is flushed; on resume
every dataset is truncated back to ``n_done``, so a run killed between appends loses at most the batch in
flight. HDF5 has no journal: a kill *inside* the HDF5 library can still corrupt the partial file (the reader
then reports a DatasetError and the run restarts without --resume). The final name only ever appears for a
complete file (``os.replace`` of the fsynced ``.partial``).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Iterator, Mapping
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
    top1_label,
    trailing_shape,
    validate_arrays,
)
from edge_sdk.errors import DatasetError

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
#: readers refuse files whose arrays would need more memory than this (override with max_bytes=)
DEFAULT_MAX_BYTES = 16 * 2**30
_CHUNK_BYTES = 1 << 20


def _h5py() -> Any:
    import h5py

    return h5py


def partial_path(path: str | os.PathLike[str]) -> Path:
    """Where an unfinished file lives: ``<path>.partial``."""
    p = Path(path)
    return p.with_name(p.name + PARTIAL_SUFFIX)


def _attr_value(v: Any) -> Any:
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
        return [_attr_value(x) for x in v.tolist()]
    return v


def _to_attr(name: str, v: Any) -> Any:
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


def _chunk_rows(row_bytes: int) -> int:
    return int(max(64, min(16384, _CHUNK_BYTES // max(1, row_bytes))))


# =============================================================================== writer
class BeamH5Writer:
    """Appendable, resumable writer of a schema-v1 beam file. Use :meth:`create` or :meth:`open_resume`."""

    def __init__(self, final_path: Path, h5: Any, case: str, n_tx: int, n_rx: int) -> None:
        self.path = final_path
        self.partial = partial_path(final_path)
        self._f = h5
        self.case = case
        self.n_tx = n_tx
        self.n_rx = n_rx
        self._fields = fields_for(case)

    # ---------------------------------------------------------------- constructors
    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        attrs: Mapping[str, Any],
        n_tx: int,
        n_rx: int,
        case: str = "case1",
        *,
        n_target: int | None = None,
        overwrite: bool = False,
        compression: str = "gzip",
    ) -> BeamH5Writer:
        """Start a new file (written as ``<path>.partial``; a stale ``.partial`` from an earlier run is discarded,
        use :meth:`open_resume` to continue it instead).

        ``attrs`` must hold ``preset`` (dict or JSON string), ``seed`` (int), ``generator_version`` and
        ``sionna_version`` (str); Case2 also ``time_step_s`` (float, seconds between t_index steps).
        ``n_target``: planned sample count (stored; ``finalize`` checks it). ``compression``: "gzip" (level 4,
        portable) or "lzf" (faster, h5py-only readers).
        """
        if case not in CASES:
            raise DatasetError(f"unknown case {case!r}; expected one of {CASES}")
        if not (isinstance(n_tx, int) and 2 <= n_tx <= MAX_TX and n_tx % N_ZEN == 0):
            raise DatasetError(f"n_tx must be a multiple of {N_ZEN} in [4, {MAX_TX}], got {n_tx!r}")
        if not (isinstance(n_rx, int) and 1 <= n_rx <= MAX_RX):
            raise DatasetError(f"n_rx must be in [1, {MAX_RX}], got {n_rx!r}")
        if compression not in ("gzip", "lzf"):
            raise DatasetError(f"compression must be 'gzip' or 'lzf', got {compression!r}")
        attrs = dict(attrs)
        bad = sorted(set(attrs) & set(RESERVED_ATTRS))
        if bad:
            raise DatasetError(f"attrs {bad} are set by the writer; remove them")
        for key in ("preset", "seed", "generator_version", "sionna_version"):
            if key not in attrs:
                raise DatasetError(f"attrs must include {key!r}")
        if not isinstance(attrs["seed"], (int, np.integer)) or isinstance(attrs["seed"], bool):
            raise DatasetError("attrs['seed'] must be an int")
        if isinstance(attrs["preset"], str):
            try:
                json.loads(attrs["preset"])
            except ValueError as exc:
                raise DatasetError(f"attrs['preset'] is not valid JSON: {exc}") from None
        elif not isinstance(attrs["preset"], dict):
            raise DatasetError("attrs['preset'] must be a dict or a JSON string")
        if case == "case2" and not isinstance(attrs.get("time_step_s"), (int, float)):
            raise DatasetError("case2 needs attrs['time_step_s'] (seconds between consecutive t_index)")
        if n_target is not None and (not isinstance(n_target, int) or n_target < 0):
            raise DatasetError(f"n_target must be a non-negative int, got {n_target!r}")
        final = Path(path)
        if final.exists() and not overwrite:
            raise DatasetError(
                f"{final} exists; pass --overwrite to replace it, or choose another --out (API: overwrite=True)"
            )
        part = partial_path(final)
        final.parent.mkdir(parents=True, exist_ok=True)
        if part.exists():
            part.unlink()
        h5py = _h5py()
        # libver up to v108: superblock v0, whose writer lock is an OS file lock released when the process dies.
        # With v110+ (superblock v3) HDF5 marks the file "open for write" in the superblock, and after a SIGKILL
        # no later open succeeds (HDF5 asks for the h5clear tool), so the .partial could not be resumed.
        f = h5py.File(part, "w", libver=("earliest", "v108"))
        try:
            root = {
                "schema": SCHEMA_NAME,
                "schema_version": SCHEMA_VERSION,
                "case": case,
                "n_tx": n_tx,
                "n_rx": n_rx,
                "n_az": n_tx // N_ZEN,
                "n_zen": N_ZEN,
                "tx_beam_order": TX_BEAM_ORDER,
                "created": _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat(),
                "edge_sdk_version": __version__,
                "n_done": 0,
                "n_target": -1 if n_target is None else int(n_target),
                "complete": False,
            }
            for k, v in {**root, **attrs}.items():
                f.attrs[k] = _to_attr(k, v)
            for name, (dtype, code) in fields_for(case).items():
                tail = trailing_shape(code, n_tx, n_rx)
                row_bytes = dtype.itemsize * int(np.prod(tail, dtype=np.int64))
                kw: dict[str, Any] = {"compression": compression, "shuffle": True, "fletcher32": True}
                if compression == "gzip":
                    kw["compression_opts"] = 4
                f.create_dataset(
                    name, shape=(0, *tail), maxshape=(None, *tail), dtype=dtype,
                    chunks=(_chunk_rows(row_bytes), *tail), **kw,
                )  # fmt: skip
            f.flush()
        except BaseException:
            f.close()
            part.unlink(missing_ok=True)
            raise
        return cls(final, f, case, n_tx, n_rx)

    @staticmethod
    def can_resume(path: str | os.PathLike[str]) -> bool:
        """True when ``<path>.partial`` exists (an unfinished run to continue)."""
        return partial_path(path).exists()

    @classmethod
    def open_resume(cls, path: str | os.PathLike[str]) -> BeamH5Writer:
        """Reopen ``<path>.partial`` for appending; datasets are truncated to the committed ``n_done``.

        Raises :class:`DatasetError` if there is nothing to resume (or ``path`` is already complete) or the
        partial file is not a schema-v1 beam file.
        """
        final = Path(path)
        part = partial_path(final)
        if not part.exists():
            if final.exists():
                raise DatasetError(f"{final} is already complete; nothing to resume")
            raise DatasetError(f"no unfinished run at {part}; start without --resume")
        h5py = _h5py()
        try:
            f = h5py.File(part, "r+")
        except OSError as exc:
            raise DatasetError(
                f"cannot resume {part}: not a readable HDF5 file ({exc}); delete it and restart"
            ) from None
        try:
            attrs = {k: _attr_value(v) for k, v in f.attrs.items()}
            _check_attrs(attrs, str(part))
            case, n_tx, n_rx, n_done = attrs["case"], attrs["n_tx"], attrs["n_rx"], attrs["n_done"]
            for name, (dtype, code) in fields_for(case).items():
                if name not in f:
                    raise DatasetError(
                        f"cannot resume {part}: dataset {name!r} missing; delete it and restart"
                    )
                ds = f[name]
                tail = trailing_shape(code, n_tx, n_rx)
                if ds.dtype != dtype or tuple(ds.shape[1:]) != tail or ds.shape[0] < n_done:
                    raise DatasetError(
                        f"cannot resume {part}: dataset {name!r} is inconsistent; delete it and restart"
                    )
                if ds.shape[0] != n_done:
                    ds.resize(n_done, axis=0)
            f.flush()
        except BaseException:
            f.close()
            raise
        return cls(final, f, case, n_tx, n_rx)

    # ---------------------------------------------------------------- state
    @property
    def n_done(self) -> int:
        """Rows committed so far."""
        return int(self._f.attrs["n_done"])

    @property
    def n_target(self) -> int | None:
        """Planned rows (None = open-ended)."""
        t = int(self._f.attrs["n_target"])
        return None if t < 0 else t

    @property
    def attrs(self) -> dict[str, Any]:
        """Root attributes as Python values (to compare a resumed run's preset/seed with the new run's)."""
        return {k: _attr_value(v) for k, v in self._f.attrs.items()}

    @property
    def closed(self) -> bool:
        return not bool(self._f)

    # ---------------------------------------------------------------- writing
    def _coerce(self, batch: Mapping[str, Any]) -> dict[str, np.ndarray]:
        unknown = sorted(set(batch) - set(self._fields))
        if unknown:
            raise DatasetError(f"unknown field(s) {unknown} for {self.case}; known: {list(self._fields)}")
        rsrp_in = batch.get("rsrp")
        if rsrp_in is None:
            raise DatasetError("batch is missing 'rsrp'")
        rsrp_f = np.asarray(rsrp_in)
        if rsrp_f.ndim != 3 or rsrp_f.shape[1:] != (self.n_tx, self.n_rx):
            raise DatasetError(f"batch 'rsrp' must be [B, {self.n_tx}, {self.n_rx}], got {rsrp_f.shape}")
        if not np.isfinite(rsrp_f).all():
            raise DatasetError("batch 'rsrp' holds NaN or inf")
        if np.abs(rsrp_f).max(initial=0.0) > 60000:
            raise DatasetError("batch 'rsrp' is out of the float16 range; it must be in dBm")
        rsrp = rsrp_f.astype(np.float16)
        b = rsrp.shape[0]
        label = top1_label(rsrp)
        out: dict[str, np.ndarray] = {}
        for name, (dtype, code) in self._fields.items():
            if name == "rsrp":
                out[name] = rsrp
                continue
            if name == "label":
                given = batch.get("label")
                if given is not None:
                    g = np.asarray(given)
                    if g.shape != (b,) or g.dtype.kind not in "iu":
                        raise DatasetError(f"batch 'label' must be an int array of shape ({b},)")
                    if (g < 0).any() or (g >= self.n_tx).any():
                        raise DatasetError(f"batch 'label' out of range [0, {self.n_tx})")
                    best = rsrp.max(axis=2)
                    if (best[np.arange(b), g] != best.max(axis=1)).any():
                        raise DatasetError(
                            "batch 'label' is not argmax over Tx of max over Rx of the float16 rsrp; "
                            "omit 'label' and let the writer compute it"
                        )
                out[name] = label
                continue
            if name not in batch:
                raise DatasetError(f"batch is missing field {name!r}")
            arr = np.asarray(batch[name])
            want = (b, *trailing_shape(code, self.n_tx, self.n_rx))
            if arr.shape != want:
                raise DatasetError(f"batch field {name!r} must have shape {want}, got {arr.shape}")
            if dtype.kind == "b":
                if arr.dtype.kind not in "bui":
                    raise DatasetError(f"batch field {name!r} must be boolean")
                if arr.dtype.kind != "b" and not np.isin(arr, (0, 1)).all():
                    raise DatasetError(f"batch field {name!r} must be boolean (0/1)")
            elif dtype.kind in "iu":
                if arr.dtype.kind not in "iu":
                    raise DatasetError(f"batch field {name!r} must be integer, got {arr.dtype}")
                info = np.iinfo(dtype)
                if arr.size and (arr.min() < info.min or arr.max() > info.max):
                    raise DatasetError(f"batch field {name!r} does not fit {dtype}")
            else:
                if arr.dtype.kind not in "fiu" or not np.isfinite(arr).all():
                    raise DatasetError(f"batch field {name!r} must be finite numbers")
            out[name] = arr.astype(dtype)
        return out

    def append(self, batch: Mapping[str, Any]) -> int:
        """Append B rows (see module docstring for the fields) and flush; returns the new ``n_done``."""
        if self.closed:
            raise DatasetError("writer is closed")
        if bool(self._f.attrs["complete"]):
            raise DatasetError("file is complete; nothing more can be appended")
        arrays = self._coerce(batch)
        b = int(arrays["rsrp"].shape[0])
        n0 = self.n_done
        if self.n_target is not None and n0 + b > self.n_target:
            raise DatasetError(f"append of {b} rows would exceed n_target={self.n_target} (have {n0})")
        if b == 0:
            return n0
        for name, arr in arrays.items():
            ds = self._f[name]
            ds.resize(n0 + b, axis=0)
            ds[n0 : n0 + b] = arr
        self._f.attrs["n_done"] = n0 + b
        self._f.flush()
        return n0 + b

    def flush(self) -> None:
        """Flush HDF5 buffers to the OS (append already does this)."""
        if not self.closed:
            self._f.flush()

    def close(self) -> None:
        """Close without finalizing (the ``.partial`` file stays for a later resume)."""
        if not self.closed:
            self._f.close()

    def finalize(self, *, validate: bool = True) -> Path:
        """Mark complete, fsync, rename ``.partial`` to the final path; returns that path.

        Checks ``n_done == n_target`` (when a target was set) and, with ``validate``, re-reads the file with
        :func:`read_beam_h5` before the rename.
        """
        if self.closed:
            raise DatasetError("writer is closed")
        t = self.n_target
        if t is not None and self.n_done != t:
            raise DatasetError(f"cannot finalize: {self.n_done} of n_target={t} rows written")
        self._f.attrs["complete"] = True
        if t is None:
            self._f.attrs["n_target"] = self.n_done
        self._f.flush()
        self._f.close()
        fd = os.open(self.partial, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        if validate:
            read_beam_h5(self.partial)
        os.replace(self.partial, self.path)
        try:
            dfd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:  # pragma: no cover - directories cannot be fsynced on some platforms
            pass
        return self.path

    def __enter__(self) -> BeamH5Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_beam_h5(
    path: str | os.PathLike[str],
    ds: BeamDataset,
    *,
    overwrite: bool = True,
    compression: str = "gzip",
    chunk: int = 65536,
) -> Path:
    """Write a whole :class:`BeamDataset` atomically (``.partial`` then rename). Returns the path.

    ``ds.attrs`` provides the user attributes (the writer's own, e.g. ``schema``, are recomputed).
    """
    ds.validate()
    attrs = {k: v for k, v in ds.attrs.items() if k not in RESERVED_ATTRS}
    w = BeamH5Writer.create(
        path, attrs, ds.n_tx, ds.n_rx, ds.case, n_target=ds.n, overwrite=overwrite, compression=compression
    )
    try:
        arrays = ds.arrays()
        for s in range(0, ds.n, chunk):
            w.append({k: v[s : s + chunk] for k, v in arrays.items()})
        return w.finalize()
    except BaseException:
        w.close()
        partial_path(path).unlink(missing_ok=True)
        raise


# =============================================================================== reader
def _check_attrs(attrs: dict[str, Any], where: str) -> None:
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
        allow_virtual: bool = True,
    ) -> None:
        self.path = Path(path)
        self._allow_virtual = allow_virtual
        h5py = _h5py()
        if not self.path.exists():
            raise FileNotFoundError(f"no such file: {self.path}")
        if self.path.is_dir():
            raise DatasetError(f"{self.path} is a directory, not an HDF5 beam dataset")
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
            self._check(allow_incomplete, max_bytes)
        except DatasetError:
            self._f.close()
            raise
        except Exception as exc:  # h5py raises assorted errors on damaged metadata
            self._f.close()
            raise DatasetError(f"{self.path}: damaged HDF5 metadata ({type(exc).__name__}: {exc})") from None

    def _check(self, allow_incomplete: bool, max_bytes: int) -> None:
        where = str(self.path)
        attrs = {k: _attr_value(v) for k, v in self._f.attrs.items()}
        _check_attrs(attrs, where)
        if not attrs["complete"] and not allow_incomplete:
            raise DatasetError(
                f"{where}: the file is incomplete (complete=False); finish or resume the generator run"
            )
        case, n_tx, n_rx, n = attrs["case"], attrs["n_tx"], attrs["n_rx"], attrs["n_done"]
        if attrs["complete"] and attrs["n_target"] != n:
            raise DatasetError(f"{where}: complete file with n_done={n} != n_target={attrs['n_target']}")
        table = fields_for(case)
        total = 0
        h5py = _h5py()
        for name, (dtype, code) in table.items():
            obj = self._f.get(name)
            if obj is None:
                raise DatasetError(f"{where}: missing dataset {name!r} (required for {case})")
            if not isinstance(obj, h5py.Dataset):
                raise DatasetError(f"{where}: {name!r} is not a dataset")
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
                f"{where}: arrays need {total} bytes > max_bytes={max_bytes}; pass a larger max_bytes"
            )
        if any(self._f[name].is_virtual for name in table):  # a stitched sharded dataset (edge_sdk.beam.vds)
            if not self._allow_virtual:
                raise DatasetError(f"{where}: a shard file must not itself be a stitched (virtual) dataset")
            from edge_sdk.beam.vds import check_virtual_sources

            self.shard_files: list[str] = check_virtual_sources(self._f, self.path, attrs)
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
    path: str | os.PathLike[str], *, allow_incomplete: bool = False, max_bytes: int = DEFAULT_MAX_BYTES
) -> BeamH5File:
    """Open lazily (attributes, dataset shapes and dtypes validated; values read on demand)."""
    return BeamH5File(path, allow_incomplete=allow_incomplete, max_bytes=max_bytes)


def read_beam_h5(
    path: str | os.PathLike[str],
    *,
    allow_incomplete: bool = False,
    check_labels: bool = True,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> BeamDataset:
    """Read and fully validate a schema-v1 beam file into a :class:`BeamDataset`.

    Raises :class:`DatasetError` for: not HDF5 / damaged / checksum failure, wrong schema name, newer
    schema_version, missing or wrongly typed attributes, missing / mis-typed / mis-shaped datasets,
    inconsistent lengths, an incomplete file (unless ``allow_incomplete``), non-finite RSRP, and labels that
    differ from argmax over Tx of max over Rx. ``FileNotFoundError`` if the path does not exist.
    """
    with BeamH5File(path, allow_incomplete=allow_incomplete, max_bytes=max_bytes) as f:
        return f.to_dataset(check_labels=check_labels)

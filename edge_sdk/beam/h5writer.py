"""HDF5 beam-dataset schema v1: the appendable, resumable, atomic writer (numpy + h5py only).

API (for the generator)::

    from edge_sdk.beam.h5writer import BeamH5Writer, write_beam_h5

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
    write_beam_h5("test.h5", beam_dataset)         # a whole in-memory BeamDataset, atomically

Crash safety: rows are written first, then the ``n_done`` attribute, then the file is flushed; on resume
every dataset is truncated back to ``n_done``, so a run killed between appends loses at most the batch in
flight. HDF5 has no journal: a kill *inside* the HDF5 library can still corrupt the partial file (the reader
then reports a DatasetError and the run restarts without --resume). The final name only ever appears for a
complete file (``edge_sdk.atomic.commit_file`` of the fsynced ``.partial``).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge_sdk._version import __version__
from edge_sdk.atomic import atomic_path, commit_file
from edge_sdk.beam.dataset import CASES, MAX_RX, MAX_TX, BeamDataset, fields_for, top1_label, trailing_shape
from edge_sdk.beam.h5reader import (
    N_ZEN,
    RESERVED_ATTRS,
    SCHEMA_NAME,
    SCHEMA_VERSION,
    TX_BEAM_ORDER,
    BeamH5File,
    attr_value,
    check_attrs,
    h5py_module,
    partial_path,
    read_beam_h5,
    to_attr,
)
from edge_sdk.beam.vds import SHARD_ATTRS, plain_source_name
from edge_sdk.errors import DatasetError

_CHUNK_BYTES = 1 << 20


def _chunk_rows(row_bytes: int) -> int:
    return int(max(64, min(16384, _CHUNK_BYTES // max(1, row_bytes))))


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
        h5py = h5py_module()
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
                f.attrs[k] = to_attr(k, v)
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
        h5py = h5py_module()
        try:
            f = h5py.File(part, "r+")
        except OSError as exc:
            raise DatasetError(
                f"cannot resume {part}: not a readable HDF5 file ({exc}); delete it and restart"
            ) from None
        try:
            attrs = {k: attr_value(v) for k, v in f.attrs.items()}
            check_attrs(attrs, str(part))
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
        return {k: attr_value(v) for k, v in self._f.attrs.items()}

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
        if self.n_done == 0:
            raise DatasetError("cannot finalize a file with no rows (readers refuse empty files); append rows first")
        self._f.attrs["complete"] = True
        if t is None:
            self._f.attrs["n_target"] = self.n_done
        self._f.flush()
        self._f.close()
        if validate:
            read_beam_h5(self.partial)
        commit_file(self.partial, self.path)
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


def stitch_shards(out: str | os.PathLike[str], shards: Sequence[str | os.PathLike[str]], *,
                  overwrite: bool = False) -> Path:
    """Write ``out`` as a virtual dataset over complete shard files (same directory as ``out``, in row order).

    The shard files must carry ``row_offset`` attributes that tile the run; root attributes are copied from
    the first shard without :data:`SHARD_ATTRS`, plus ``shard_count`` and ``shard_files`` (JSON list). The
    file is written through :func:`edge_sdk.atomic.atomic_path` and re-opened with the validating reader
    before the rename. Sources and checks: :mod:`edge_sdk.beam.vds`.
    """
    h5py = h5py_module()
    out = Path(out)
    if out.exists() and not overwrite:
        raise DatasetError(f"{out} exists; pass overwrite=True (CLI: --overwrite) to replace it")
    paths = [Path(s) for s in shards]
    if not paths:
        raise DatasetError("no shard files to stitch")
    metas = []
    for p in paths:
        if p.resolve().parent != out.resolve().parent:
            raise DatasetError(f"shard {p} must be in the same directory as {out}")
        plain_source_name(p.name, str(out))
        with BeamH5File(p, allow_virtual=False) as f:
            metas.append((p.name, f.n, dict(f.attrs)))
    metas.sort(key=lambda m: int(m[2].get("row_offset", -1)))
    first = metas[0][2]
    case, n_tx, n_rx = first["case"], int(first["n_tx"]), int(first["n_rx"])
    total = sum(m[1] for m in metas)
    attrs = {k: v for k, v in first.items() if k not in SHARD_ATTRS}
    attrs.update(n_done=total, n_target=total, complete=True, shard_count=len(metas),
                 shard_files=json.dumps([m[0] for m in metas]),
                 created=_dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat())
    with atomic_path(out) as tmp:  # same directory: the sources are named relative to it
        with h5py.File(tmp, "w", libver=("v110", "latest")) as f:
            for k, v in attrs.items():
                f.attrs[k] = to_attr(k, v)
            for name, (dtype, code) in fields_for(case).items():
                tail = trailing_shape(code, n_tx, n_rx)
                layout = h5py.VirtualLayout(shape=(total, *tail), dtype=dtype)
                row = 0
                for fname, n, _a in metas:
                    layout[row:row + n] = h5py.VirtualSource(fname, name, shape=(n, *tail), dtype=dtype)
                    row += n
                f.create_virtual_dataset(name, layout, fillvalue=np.zeros((), dtype)[()])
        with BeamH5File(tmp, allow_virtual=True):  # the validating reader (checks the tiling and every shard) before the rename
            pass
    return out

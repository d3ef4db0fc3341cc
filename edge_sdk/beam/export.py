"""Parquet export of a beam dataset's per-sample table (``edge-sdk data export FILE.h5 --parquet OUT``).

One Parquet row per sample. Columns, in order:

* ``row`` int64 (sample index in the HDF5 file), ``label`` int16 (Top-1 Tx beam), ``los`` bool, ``indoor`` bool,
  ``d2d`` float32 (m), ``ue_x``, ``ue_y``, ``ue_z`` float32 (m), ``cell`` int16; Case2 also ``traj_id``,
  ``t_index`` int32;
* best-over-Rx L1-RSRP per Tx beam (float32 dBm): ``layout="columns"`` -> ``rsrp_best_tx00`` ..
  ``rsrp_best_tx31`` (zero-padded to the width of n_tx - 1); ``layout="list"`` -> one fixed-size list
  column ``rsrp_best`` [n_tx];
* ``full=True``: list column ``rsrp`` float32 [n_tx * n_rx], row-major (``tx * n_rx + rx``).

The file's key-value metadata ``edge_sdk.beam`` holds the HDF5 root attributes as JSON. Written in row
groups of 65,536 samples to a temporary file, fsynced and renamed (atomic).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edge_sdk.atomic import atomic_path
from edge_sdk.beam.dataset import BeamDataset, validate_arrays
from edge_sdk.beam.h5reader import H5ReadOptions, open_beam_h5
from edge_sdk.errors import ConfigError, DatasetError

ROW_GROUP = 65536


def _table(ds: BeamDataset, start: int, layout: str, full: bool):  # type: ignore[no-untyped-def]
    import pyarrow as pa

    n = ds.n
    cols: dict[str, object] = {
        "row": pa.array(np.arange(start, start + n, dtype=np.int64)),
        "label": pa.array(ds.label),
        "los": pa.array(ds.los),
        "indoor": pa.array(ds.indoor),
        "d2d": pa.array(ds.d2d),
        "ue_x": pa.array(ds.ue_pos[:, 0]),
        "ue_y": pa.array(ds.ue_pos[:, 1]),
        "ue_z": pa.array(ds.ue_pos[:, 2]),
        "cell": pa.array(ds.cell),
    }
    if ds.traj_id is not None and ds.t_index is not None:
        cols["traj_id"] = pa.array(ds.traj_id)
        cols["t_index"] = pa.array(ds.t_index)
    best = ds.best_rx_rsrp()
    if layout == "columns":
        width = len(str(ds.n_tx - 1))
        for k in range(ds.n_tx):
            cols[f"rsrp_best_tx{k:0{width}d}"] = pa.array(best[:, k])
    else:
        cols["rsrp_best"] = pa.FixedSizeListArray.from_arrays(pa.array(best.reshape(-1)), ds.n_tx)
    if full:
        flat = ds.rsrp.astype(np.float32).reshape(-1)
        cols["rsrp"] = pa.FixedSizeListArray.from_arrays(pa.array(flat), ds.n_tx * ds.n_rx)
    return pa.table(cols)


def export_parquet(src: Path, dst: Path, *, layout: str = "columns", full: bool = False,
                   h5: H5ReadOptions | None = None) -> int:
    """Export ``src`` (schema-v1 HDF5, read as ``h5`` allows) to ``dst`` (Parquet); returns the number of rows.
    Validates every block."""
    if layout not in ("columns", "list"):
        raise ConfigError(f"layout must be 'columns' or 'list', got {layout!r}")
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - pyarrow comes with the server and fleet extras
        raise ConfigError(f"Parquet export needs pyarrow ({exc}): pip install -e '.[server]' or '.[fleet]' in a "
                          "checkout (docs/install.md)") from None
    with atomic_path(dst, make_parents=True) as tmp, open_beam_h5(src, **(h5 or H5ReadOptions()).kwargs()) as f:
        meta = {b"edge_sdk.beam": json.dumps(f.attrs, sort_keys=True).encode()}
        writer = None
        start = 0
        for piece in f.iter_rows(ROW_GROUP):
            try:
                validate_arrays(piece.arrays(), piece.case)
            except DatasetError as exc:
                raise DatasetError(f"{src}: rows {start}..{start + piece.n - 1}: {exc}") from None
            t = _table(piece, start, layout, full)
            if writer is None:
                writer = pq.ParquetWriter(tmp, t.schema.with_metadata(meta), compression="zstd")
            writer.write_table(t.replace_schema_metadata(meta))
            start += piece.n
        if writer is None:  # empty dataset: write the schema only
            empty = BeamDataset(**{k: v[:0] for k, v in f.to_dataset().arrays().items()}, attrs=f.attrs)  # type: ignore[arg-type]
            t = _table(empty, 0, layout, full)
            writer = pq.ParquetWriter(tmp, t.schema.with_metadata(meta), compression="zstd")
            writer.write_table(t.replace_schema_metadata(meta))
        writer.close()
    return start

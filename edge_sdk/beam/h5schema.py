"""HDF5 beam-dataset schema v1: the names, attributes and rules shared by the reader and the writer.

The file format (docs/dataset-hdf5.md is the normative spec): root attributes ``schema =
"edge-sdk/beam-dataset"``, ``schema_version = 1``, ``case``, ``preset`` (JSON string), ``generator_version``,
``sionna_version``, ``seed``, ``n_tx``, ``n_rx``, ``n_az``, ``n_zen``, ``tx_beam_order``, ``created`` (ISO-8601
UTC), ``edge_sdk_version``, ``n_done``, ``n_target`` (-1 = open-ended), ``complete``, Case2 ``time_step_s``; one
root dataset per field of :mod:`edge_sdk.beam.dataset` (chunked along N, gzip + shuffle, fletcher32).

Modules (each imports only the ones above it; none imports back):

* :mod:`edge_sdk.beam.dataset` — the in-memory :class:`BeamDataset`, its fields and consistency checks;
* this module — schema constants, attribute conversion, :func:`check_attrs`;
* :mod:`edge_sdk.beam.h5reader` — ``BeamH5File``, ``open_beam_h5``, ``read_beam_h5`` (validating reader);
* :mod:`edge_sdk.beam.h5writer` — ``BeamH5Writer``, ``write_beam_h5`` (appendable, resumable, atomic writer).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from edge_sdk._version import __version__
from edge_sdk.beam.dataset import CASES, MAX_RX, MAX_TX
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

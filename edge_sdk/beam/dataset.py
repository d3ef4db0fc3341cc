"""In-memory beam dataset (:class:`BeamDataset`) and its consistency checks.

A beam dataset holds, per sample (one UE drop, or one time step of one UE trajectory):

========== ========= ====================== ==================================================
field      dtype     shape                  meaning
========== ========= ====================== ==================================================
rsrp       float16   [N, n_tx, n_rx]        wideband L1-RSRP of every Tx x Rx beam pair, dBm
label      int16     [N]                    Top-1 Tx beam: ``argmax_tx max_rx rsrp`` (first index on ties,
                                            computed on the stored float16 values)
los        bool      [N]                    line of sight to the serving sector
indoor     bool      [N]                    UE indoors (O2I)
d2d        float32   [N]                    2D distance UE - gNB, metres
ue_pos     float32   [N, 3]                 UE position (x, y, z), metres, gNB at the origin of (x, y)
cell       int16     [N]                    serving sector index
traj_id    int32     [N]                    BM-Case2 only: trajectory id
t_index    int32     [N]                    BM-Case2 only: time step index along the trajectory
========== ========= ====================== ==================================================

Tx beam index convention (Set A): ``k = k_zen * n_az + k_az`` (zenith-major) with ``n_zen = 4`` zenith rows
and ``n_az = n_tx // 4`` azimuth columns (8 for 32 beams, 16 for 64 beams); see docs/dataset-hdf5.md.

The file format lives in :mod:`edge_sdk.beam.h5reader` (schema, ``read_beam_h5``, ``open_beam_h5``) and
:mod:`edge_sdk.beam.h5writer` (``BeamH5Writer``, ``write_beam_h5``);
this module imports none of them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge_sdk.errors import DatasetError

CASES = ("case1", "case2")

#: name -> (numpy dtype, trailing shape as a function of (n_tx, n_rx)); order = storage order
FIELDS_CASE1: dict[str, tuple[np.dtype, str]] = {
    "rsrp": (np.dtype(np.float16), "tx,rx"),
    "label": (np.dtype(np.int16), ""),
    "los": (np.dtype(np.bool_), ""),
    "indoor": (np.dtype(np.bool_), ""),
    "d2d": (np.dtype(np.float32), ""),
    "ue_pos": (np.dtype(np.float32), "3"),
    "cell": (np.dtype(np.int16), ""),
}
FIELDS_CASE2_EXTRA: dict[str, tuple[np.dtype, str]] = {
    "traj_id": (np.dtype(np.int32), ""),
    "t_index": (np.dtype(np.int32), ""),
}

#: upper bounds that protect readers from absurd shapes before anything is allocated
MAX_TX = 1024
MAX_RX = 256


def fields_for(case: str) -> dict[str, tuple[np.dtype, str]]:
    """Ordered field table (name -> (dtype, trailing-shape code)) of a case."""
    if case not in CASES:
        raise DatasetError(f"unknown case {case!r}; expected one of {CASES}")
    out = dict(FIELDS_CASE1)
    if case == "case2":
        out.update(FIELDS_CASE2_EXTRA)
    return out


def trailing_shape(code: str, n_tx: int, n_rx: int) -> tuple[int, ...]:
    """Trailing shape of a field from its code ("" scalar, "3", "tx,rx")."""
    if code == "":
        return ()
    if code == "3":
        return (3,)
    if code == "tx,rx":
        return (n_tx, n_rx)
    raise AssertionError(code)  # pragma: no cover - table is static


def top1_label(rsrp: np.ndarray) -> np.ndarray:
    """Top-1 Tx beam per sample: ``argmax over Tx of (max over Rx)`` of ``rsrp [N, n_tx, n_rx]`` -> int16 [N].

    The 3GPP label (TR 38.843 BM-Case1: best beam over all Tx *and* Rx beams). Ties go to the lowest Tx
    index (numpy argmax). Compute it on the float16 values that are stored, so that readers agree.
    """
    r = np.asarray(rsrp)
    if r.ndim != 3 or r.shape[1] < 1 or r.shape[2] < 1:
        raise DatasetError(f"rsrp must have shape [N, n_tx, n_rx], got {r.shape}")
    if r.shape[0] == 0:
        return np.zeros(0, np.int16)
    return r.max(axis=2).argmax(axis=1).astype(np.int16)


@dataclass
class BeamDataset:
    """A beam-management dataset in memory (numpy arrays + the file's root attributes).

    Arrays are as in the module table; ``traj_id``/``t_index`` are ``None`` for BM-Case1. ``attrs`` holds the
    HDF5 root attributes as Python values (``preset`` stays a JSON string; :attr:`preset` parses it).
    """

    rsrp: np.ndarray
    label: np.ndarray
    los: np.ndarray
    indoor: np.ndarray
    d2d: np.ndarray
    ue_pos: np.ndarray
    cell: np.ndarray
    traj_id: np.ndarray | None = None
    t_index: np.ndarray | None = None
    attrs: dict[str, Any] = field(default_factory=dict)

    # ----------------------------------------------------------------- shape helpers
    @property
    def n(self) -> int:
        """Number of samples N."""
        return int(self.rsrp.shape[0])

    def __len__(self) -> int:
        return self.n

    @property
    def n_tx(self) -> int:
        """Set A size (Tx beams)."""
        return int(self.rsrp.shape[1])

    @property
    def n_rx(self) -> int:
        """Rx beams per UE (all panels)."""
        return int(self.rsrp.shape[2])

    @property
    def case(self) -> str:
        """``"case1"`` or ``"case2"`` (from attrs, else inferred from traj_id)."""
        c = self.attrs.get("case")
        if c in CASES:
            return str(c)
        return "case2" if self.traj_id is not None else "case1"

    @property
    def preset(self) -> dict[str, Any]:
        """The generator preset (parsed from the ``preset`` JSON attribute; ``{}`` if absent)."""
        p = self.attrs.get("preset", "{}")
        if isinstance(p, dict):
            return p
        try:
            out = json.loads(p)
        except (TypeError, ValueError) as exc:
            raise DatasetError(f"attribute 'preset' is not valid JSON: {exc}") from None
        if not isinstance(out, dict):
            raise DatasetError("attribute 'preset' must be a JSON object")
        return out

    @property
    def time_step_s(self) -> float | None:
        """BM-Case2 time step between consecutive ``t_index`` values, seconds (None for Case1)."""
        v = self.attrs.get("time_step_s")
        return None if v is None else float(v)

    def arrays(self) -> dict[str, np.ndarray]:
        """The stored per-sample arrays by name, in storage order (Case2 fields only for Case2)."""
        out = {name: getattr(self, name) for name in fields_for(self.case)}
        return out

    # ----------------------------------------------------------------- derived
    def best_rx_rsrp(self) -> np.ndarray:
        """Best-over-Rx RSRP per Tx beam, float32 [N, n_tx] dBm (the ideal Set A measurement)."""
        return self.rsrp.max(axis=2).astype(np.float32)

    def subset(self, idx: np.ndarray | slice) -> BeamDataset:
        """Rows ``idx`` (index array, boolean mask or slice) as a new dataset sharing ``attrs``."""
        pick = {name: arr[idx] for name, arr in self.arrays().items()}
        return BeamDataset(**pick, attrs=dict(self.attrs))  # type: ignore[arg-type]

    # ----------------------------------------------------------------- checks
    def validate(self, *, check_labels: bool = True) -> BeamDataset:
        """Check dtypes, shapes, lengths, finiteness and labels; raise :class:`DatasetError`. Returns self."""
        validate_arrays(self.arrays(), self.case, check_labels=check_labels)
        if self.case == "case1" and (self.traj_id is not None or self.t_index is not None):
            raise DatasetError("a case1 dataset must not carry traj_id/t_index (set attrs case='case2')")
        return self


def validate_arrays(arrays: Mapping[str, np.ndarray | None], case: str, *, check_labels: bool = True) -> None:
    """Check a complete set of per-sample arrays against the schema table of ``case``.

    Raises :class:`DatasetError` naming the field for: a missing field, wrong dtype, wrong rank or trailing
    shape, unequal lengths, non-finite RSRP, labels out of range or different from :func:`top1_label`.
    """
    table = fields_for(case)
    rsrp = arrays.get("rsrp")
    if rsrp is None:
        raise DatasetError("missing field 'rsrp'")
    if rsrp.ndim != 3:
        raise DatasetError(f"field 'rsrp' must have shape [N, n_tx, n_rx], got {tuple(rsrp.shape)}")
    n, n_tx, n_rx = (int(s) for s in rsrp.shape)
    if not (2 <= n_tx <= MAX_TX and 1 <= n_rx <= MAX_RX):
        raise DatasetError(
            f"rsrp has n_tx={n_tx}, n_rx={n_rx}; supported 2..{MAX_TX} Tx and 1..{MAX_RX} Rx beams"
        )
    for name, (dtype, code) in table.items():
        arr = arrays.get(name)
        if arr is None:
            raise DatasetError(f"missing field {name!r} (required for {case})")
        if arr.dtype != dtype:
            raise DatasetError(f"field {name!r} has dtype {arr.dtype}, expected {dtype}")
        want = (n, *trailing_shape(code, n_tx, n_rx))
        if tuple(arr.shape) != want:
            raise DatasetError(
                f"field {name!r} has shape {tuple(arr.shape)}, expected {want} (all fields need the same N={n})"
            )
    if n == 0:
        return
    if not np.isfinite(rsrp).all():
        raise DatasetError("field 'rsrp' holds NaN or inf values")
    label = arrays["label"]
    assert label is not None
    if label.min() < 0 or label.max() >= n_tx:
        raise DatasetError(f"field 'label' out of range [0, {n_tx})")
    if check_labels:
        want_label = top1_label(rsrp)
        bad = np.flatnonzero(want_label != label)
        if bad.size:
            i = int(bad[0])
            raise DatasetError(
                f"field 'label' disagrees with argmax over Tx of max over Rx of 'rsrp' in {bad.size} sample(s), "
                f"first at row {i} (label {int(label[i])}, argmax {int(want_label[i])})"
            )
    for name in ("d2d", "ue_pos"):
        if not np.isfinite(arrays[name]).all():  # type: ignore[arg-type]
            raise DatasetError(f"field {name!r} holds NaN or inf values")


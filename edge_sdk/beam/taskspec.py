"""BeamTaskSpec: how model inputs and labels are derived from a beam dataset (and from device measurements).

The spec is stored in the payload (``task["beam"] = spec.to_dict()``); the device rebuilds identical inputs
from its own Set B measurements with :meth:`BeamTaskSpec.inputs_from_measurements`. Shapes: N rows,
``n_b`` Set B measurements per instant, ``K = history``; model input ``D = K * n_b`` (Case1: K = 1).

**Set A / beam index.** ``n_tx`` in {32, 64} narrow Tx beams on a grid of ``n_zen = 4`` zenith rows x
``n_az = n_tx // 4`` azimuth columns, index ``k = k_zen * n_az + k_az`` (zenith-major).

**Set B** (``setb``; TR 38.843 BM-Case1 "Set B subset of Set A" and "Set B of wide beams"):

* ``"1/4"``: ``n_tx / 4`` beams (8 of 32, 16 of 64). Row ``k_zen`` holds the azimuths
  ``k_az = o4[k_zen] + 4 j`` with ``o4 = (0, 2, 1, 3)``: every azimuth column appears exactly once, each
  zenith row ``n_az / 4`` times, and adjacent rows are staggered (a quincunx-like cover of the grid).
  32 beams: [0, 4, 10, 14, 17, 21, 27, 31].
* ``"1/8"``: ``n_tx / 8`` beams (4 of 32, 8 of 64): ``k_az = o8[k_zen] + 8 j`` with ``o8 = (0, 4, 2, 6)``:
  every other azimuth column once, every zenith row equally. 32 beams: [0, 12, 18, 30].
* ``"all"``: Set B = Set A (BM-Case2 option).
* ``"explicit"``: ``setb_indices`` (unique Set A indices, in the given order).
* ``"wide"``: ``n_tx / 4`` wide beams, each the 2 (azimuth) x 2 (zenith) block ``w = b_zen * (n_az/2) +
  b_az`` of narrow beams. The data holds only narrow beams, so the wide-beam RSRP is APPROXIMATED per Rx beam
  as ``10 log10(mean of the 4 narrow beams' linear power)`` (no cross terms; a real wide beam has its own
  pattern). A device measuring real wide beams passes those RSRPs to ``inputs_from_measurements``.

**Rx mode** (``rx_mode``): ``"best"`` = max over Rx beams per Tx beam (3GPP default input); ``"random"`` =
one Rx beam per dataset row drawn with ``numpy PCG64(rx_seed).integers(0, n_rx, N)`` (rows 0..N-1 of the
dataset passed in); ``"fixed"`` = Rx beam ``rx_index``.

**Impairments** (off by default): ``rsrp_quant_db > 0`` clips to [-140, -44] dBm and rounds to that step
(L1-RSRP reporting range and 1 dB absolute step), in both ``inputs`` and ``inputs_from_measurements``;
``meas_error_db > 0`` adds seeded measurement error to the dataset-side measurements only (the device's
measurements carry their own): Gaussian, sigma = meas_error_db / 1.96 so 95% fall within
+-meas_error_db (TR 38.843 studied 2 / 4 / 6 dB), truncated at 3 sigma.

**Normalisation** (``norm``), applied to the window of measurements ``m`` (dBm):

* ``"per_sample_max"`` (default): ``x = (m - max(m)) / scale_db``, max over the whole input window. Relative
  RSRP is invariant to path loss, shadowing, Tx power and device calibration offsets, which shift all beams
  alike and do not change which beam is best; so the model sees the beam *shape* only and the same inputs
  come out on a device whose absolute RSRP is biased. ``scale_db`` defaults to 10 dB; ``fit`` sets it to the
  standard deviation of the relative values on the training data.
* ``"rel_linear"``: ``x = 10 ** ((m - max(m)) / 10)``, the linear power relative to the strongest measurement of
  the window, in (0, 1] (no fitted parameters; the strongest beams keep distinct values while weak ones fade to
  0 -- the BM-Case2 models learn the near-tie structure of the top beams more easily with it).
* ``"affine"``: ``x = (m - offset_db) / scale_db``; ``fit`` sets mean / standard deviation (scalars over all
  entries) of the training data; defaults -100 dBm / 20 dB.
* ``"none"``: ``x = m`` in dBm.

**BM-Case2** (``case = "case2"``): rows are (traj_id, t_index) steps ``time_step_s`` apart; measurements are
taken every ``period_steps`` steps. For an anchor row at time t the input is the Set B measurements at
``t - (K-1) p, ..., t - p, t`` (oldest first, concatenated) and the label is the Top-1 Tx beam at
``t + F p`` (``F = horizon`` >= 1). Only anchors whose whole window and target lie on the same trajectory are
used (:meth:`anchors`). RS overhead reduction 1 - N Mt / (M (Mt + Pt)) with Mt = K, Pt = F.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_sdk.beam.dataset import BeamDataset
from edge_sdk.errors import ConfigError, DatasetError, SchemaError

SPEC_VERSION = 1
SETB_KINDS = ("1/4", "1/8", "all", "explicit", "wide")
RX_MODES = ("best", "random", "fixed")
NORMS = ("per_sample_max", "rel_linear", "affine", "none")
N_ZEN = 4
O4 = (0, 2, 1, 3)
O8 = (0, 4, 2, 6)
RSRP_RANGE_DBM = (-140.0, -44.0)
#: schema bounds of the stored spec (far above any 3GPP setting; they keep a crafted spec from allocating much)
MAX_RX_INDEX = 1024
MAX_HISTORY = 1024
MAX_PERIOD_STEPS = 1 << 20


def setb_pattern(n_tx: int, kind: str) -> np.ndarray:
    """Set A indices of the fixed narrow-beam Set B patterns ``"1/4"``, ``"1/8"``, ``"all"`` (int64, sorted)."""
    if n_tx % N_ZEN or n_tx < 8:
        raise ConfigError(f"n_tx must be a multiple of 4 and >= 8, got {n_tx}")
    n_az = n_tx // N_ZEN
    if kind == "all":
        return np.arange(n_tx, dtype=np.int64)
    step, offs = {"1/4": (4, O4), "1/8": (8, O8)}.get(kind, (0, ()))
    if not step:
        raise ConfigError(f"no fixed pattern {kind!r}; use one of '1/4', '1/8', 'all'")
    if n_az % step:
        raise ConfigError(f"pattern {kind} needs n_az = n_tx/4 divisible by {step} (n_tx = 32 or 64)")
    idx = [kz * n_az + offs[kz] + step * j for kz in range(N_ZEN) for j in range(n_az // step)]
    return np.asarray(sorted(idx), dtype=np.int64)


def wide_blocks(n_tx: int) -> np.ndarray:
    """Narrow members of each wide beam: int64 [n_tx/4, 4], wide ``w = b_zen * (n_az/2) + b_az``."""
    n_az = n_tx // N_ZEN
    if n_tx % N_ZEN or n_az % 2:
        raise ConfigError(f"wide beams need n_az = n_tx/4 even, got n_tx={n_tx}")
    rows = []
    for bz in range(N_ZEN // 2):
        for ba in range(n_az // 2):
            rows.append([(2 * bz + dz) * n_az + 2 * ba + da for dz in (0, 1) for da in (0, 1)])
    return np.asarray(rows, dtype=np.int64)


@dataclass(frozen=True)
class BeamTaskSpec:
    """Task definition for beam prediction (see module docstring for every field's meaning)."""

    n_tx: int = 32
    setb: str = "1/4"
    setb_indices: tuple[int, ...] | None = None
    rx_mode: str = "best"
    rx_index: int = 0
    rx_seed: int = 0
    norm: str = "per_sample_max"
    offset_db: float | None = None
    scale_db: float | None = None
    fitted: bool = False
    case: str = "case1"
    history: int = 1
    horizon: int = 0
    period_steps: int = 1
    rsrp_quant_db: float = 0.0
    meas_error_db: float = 0.0
    noise_seed: int = 0

    def __post_init__(self) -> None:
        if self.n_tx not in (32, 64):
            raise ConfigError(f"n_tx (Set A size) must be 32 or 64, got {self.n_tx}")
        if self.setb not in SETB_KINDS:
            raise ConfigError(f"setb must be one of {SETB_KINDS}, got {self.setb!r}")
        if self.setb == "explicit":
            idx = self.setb_indices
            if not idx:
                raise ConfigError("setb='explicit' needs setb_indices (Set A beam indices)")
            object.__setattr__(self, "setb_indices", tuple(int(i) for i in idx))
            ii = self.setb_indices or ()
            if len(set(ii)) != len(ii) or min(ii) < 0 or max(ii) >= self.n_tx:
                raise ConfigError(f"setb_indices must be unique indices in [0, {self.n_tx})")
        elif self.setb_indices is not None:
            raise ConfigError("setb_indices is only allowed with setb='explicit'")
        if self.rx_mode not in RX_MODES:
            raise ConfigError(f"rx_mode must be one of {RX_MODES}, got {self.rx_mode!r}")
        if self.rx_index < 0:
            raise ConfigError("rx_index must be >= 0")
        if self.norm not in NORMS:
            raise ConfigError(f"norm must be one of {NORMS}, got {self.norm!r}")
        off = (
            float(self.offset_db)
            if self.offset_db is not None
            else (-100.0 if self.norm == "affine" else 0.0)
        )
        scale = (
            float(self.scale_db) if self.scale_db is not None else (20.0 if self.norm == "affine" else 10.0)
        )
        object.__setattr__(self, "offset_db", off)
        object.__setattr__(self, "scale_db", scale)
        if not (math.isfinite(scale) and scale > 0 and math.isfinite(off)):
            raise ConfigError("scale_db must be finite and > 0, offset_db finite")
        if self.case not in ("case1", "case2"):
            raise ConfigError(f"case must be 'case1' or 'case2', got {self.case!r}")
        if self.case == "case1" and (self.history != 1 or self.horizon != 0):
            raise ConfigError("case1 uses history=1, horizon=0; set case='case2' for temporal prediction")
        if self.case == "case2" and (self.history < 1 or self.horizon < 1 or self.period_steps < 1):
            raise ConfigError("case2 needs history K >= 1, horizon F >= 1 and period_steps >= 1")
        if not (math.isfinite(self.rsrp_quant_db) and self.rsrp_quant_db >= 0):
            raise ConfigError("rsrp_quant_db must be >= 0 (0 = no reporting quantization)")
        if not (math.isfinite(self.meas_error_db) and self.meas_error_db >= 0):
            raise ConfigError("meas_error_db must be >= 0 (0 = ideal measurements)")

    # ------------------------------------------------------------------ construction / storage
    @classmethod
    def default(cls, n_tx: int = 32, setb: str = "1/4", **kw: Any) -> BeamTaskSpec:
        """Convenience constructor, e.g. ``BeamTaskSpec.default(64, "1/8")``."""
        return cls(n_tx=n_tx, setb=setb, **kw)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (stored in payloads); includes the resolved Set B for readers' convenience."""
        d = dataclasses.asdict(self)
        d["setb_indices"] = None if self.setb_indices is None else list(self.setb_indices)
        d["spec_version"] = SPEC_VERSION
        d["resolved_setb"] = self.resolved_setb().tolist()
        return d

    @classmethod
    def from_dict(cls, d: Any, where: str = "beam task spec") -> BeamTaskSpec:
        """Strict inverse of :meth:`to_dict`: known keys only, each with its JSON type and bounds
        (:class:`~edge_sdk.errors.SchemaError` naming the field), no newer ``spec_version``, and a stored
        ``resolved_setb`` that this edge-sdk's Set B patterns reproduce."""
        from edge_sdk.schema import (
            as_bool,
            as_float,
            as_int,
            as_list,
            as_str,
            check_keys,
            expect_dict,
        )

        d = expect_dict(d, where)
        names = {f.name for f in dataclasses.fields(cls)}
        check_keys(d, where, (), names | {"spec_version", "resolved_setb"})
        ver = d.pop("spec_version", SPEC_VERSION)
        if not isinstance(ver, int) or isinstance(ver, bool) or ver > SPEC_VERSION:
            raise ConfigError(
                f"beam task spec_version {ver!r} is newer than supported ({SPEC_VERSION}); upgrade edge-sdk"
            )
        resolved = d.pop("resolved_setb", None)
        ints = {"n_tx": (32, 64), "rx_index": (0, MAX_RX_INDEX), "rx_seed": (0, 2**63 - 1),
                "noise_seed": (0, 2**63 - 1), "history": (1, MAX_HISTORY), "horizon": (0, MAX_HISTORY),
                "period_steps": (1, MAX_PERIOD_STEPS)}
        floats = {"rsrp_quant_db": (0.0, 100.0), "meas_error_db": (0.0, 100.0)}
        for k, v in d.items():
            w = f"{where}.{k}"
            if k in ints:
                as_int(v, w, *ints[k])
            elif k in floats:
                as_float(v, w, *floats[k])
            elif k in ("offset_db", "scale_db") and v is not None:
                as_float(v, w, -1e6, 1e6)
            elif k in ("setb", "rx_mode", "norm", "case"):
                as_str(v, w, {"setb": SETB_KINDS, "rx_mode": RX_MODES, "norm": NORMS, "case": ("case1", "case2")}[k])
            elif k == "fitted":
                as_bool(v, w)
            elif k == "setb_indices" and v is not None:
                d[k] = tuple(as_int(i, f"{w}[{j}]", 0, 63) for j, i in enumerate(as_list(v, w, 64)))
        if resolved is not None:
            resolved = [as_int(i, f"{where}.resolved_setb[{j}]", 0, 63)
                        for j, i in enumerate(as_list(resolved, f"{where}.resolved_setb", 64))]
        try:
            spec = cls(**d)
        except ConfigError as exc:
            raise SchemaError(f"{where}: {exc}") from None
        if resolved is not None and resolved != spec.resolved_setb().tolist():
            raise ConfigError(
                "stored resolved_setb differs from this edge-sdk's Set B pattern; upgrade edge-sdk"
            )
        return spec

    # ------------------------------------------------------------------ sizes
    def resolved_setb(self) -> np.ndarray:
        """Set B as Set A indices (int64 [n_b]); for ``"wide"`` the first narrow member of each block."""
        if self.setb == "explicit":
            return np.asarray(self.setb_indices, dtype=np.int64)
        if self.setb == "wide":
            return wide_blocks(self.n_tx)[:, 0].copy()
        return setb_pattern(self.n_tx, self.setb)

    @property
    def n_setb(self) -> int:
        """Measurements per instant (Set B size N)."""
        return int(self.resolved_setb().size)

    @property
    def input_dim(self) -> int:
        """Model input width D = history * n_setb."""
        return self.history * self.n_setb

    @property
    def num_classes(self) -> int:
        """Classes = Set A size."""
        return self.n_tx

    @property
    def is_subset(self) -> bool:
        """True when Set B is a subset of Set A's narrow beams (not wide beams)."""
        return self.setb != "wide"

    def rs_overhead_reduction(self) -> float:
        """TR 38.843 RS overhead reduction: Case1 ``1 - N/M``; Case2 ``1 - N Mt / (M (Mt + Pt))``, Mt=K, Pt=F."""
        n, m = self.n_setb, self.n_tx
        if self.case == "case1":
            return 1.0 - n / m
        mt, pt = self.history, self.horizon
        return 1.0 - n * mt / (m * (mt + pt))

    # ------------------------------------------------------------------ dataset side
    def check(self, ds: BeamDataset) -> None:
        """Raise DatasetError if ``ds`` cannot serve this spec (Set A size, Rx index, Case2 fields)."""
        if ds.n_tx != self.n_tx:
            raise DatasetError(f"dataset has {ds.n_tx} Tx beams but the task spec expects n_tx={self.n_tx}")
        if self.rx_mode == "fixed" and self.rx_index >= ds.n_rx:
            raise DatasetError(f"rx_index={self.rx_index} but the dataset has {ds.n_rx} Rx beams")
        if self.case == "case2" and (ds.traj_id is None or ds.t_index is None):
            raise DatasetError("a case2 task spec needs a case2 dataset (traj_id, t_index)")

    def measurements(self, ds: BeamDataset) -> np.ndarray:
        """Set B RSRP per dataset row as the UE would measure it: float32 [N, n_b] dBm (Rx mode applied)."""
        self.check(ds)
        r = ds.rsrp.astype(np.float32)
        if self.setb == "wide":
            blocks = wide_blocks(self.n_tx)
            lin = np.power(10.0, r[:, blocks, :] / 10.0, dtype=np.float64)  # [N, n_w, 4, n_rx]
            per_rx = (10.0 * np.log10(lin.mean(axis=2))).astype(np.float32)  # [N, n_w, n_rx]
        else:
            per_rx = r[:, self.resolved_setb(), :]
        if self.rx_mode == "best":
            m = per_rx.max(axis=2)
        elif self.rx_mode == "fixed":
            m = np.ascontiguousarray(per_rx[:, :, self.rx_index])
        else:
            pick = np.random.Generator(np.random.PCG64(self.rx_seed)).integers(0, ds.n_rx, ds.n)
            m = np.take_along_axis(per_rx, pick[:, None, None], axis=2)[:, :, 0]
        if self.meas_error_db > 0:
            m = m + self.measurement_error(m.shape)
        return m

    def measurement_error(self, shape: tuple[int, ...]) -> np.ndarray:
        """Seeded measurement error, float32 ``shape`` dB: Gaussian with sigma = meas_error_db / 1.96 (95% of
        draws within +-meas_error_db, TR 38.843 impairment), truncated at +-3 sigma by redrawing."""
        rng = np.random.Generator(np.random.PCG64(self.noise_seed))
        z = rng.standard_normal(shape)
        bad = np.abs(z) > 3.0
        while bad.any():
            z[bad] = rng.standard_normal(int(bad.sum()))
            bad = np.abs(z) > 3.0
        return (z * (self.meas_error_db / 1.96)).astype(np.float32)

    def anchors(self, ds: BeamDataset) -> np.ndarray:
        """Rows used as examples (int64 [M]). Case1: all rows. Case2: rows whose window and target exist."""
        if self.case == "case1":
            return np.arange(ds.n, dtype=np.int64)
        return self._case2_rows(ds)[0]

    def _case2_rows(self, ds: BeamDataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(anchor rows [M], window rows [M, K] oldest first, target rows [M])."""
        self.check(ds)
        assert ds.traj_id is not None and ds.t_index is not None
        traj = ds.traj_id.astype(np.int64)
        t = ds.t_index.astype(np.int64)
        if ds.n == 0:
            z = np.zeros(0, np.int64)
            return z, np.zeros((0, self.history), np.int64), z
        if t.min() < 0:
            raise DatasetError("t_index must be >= 0")
        p, k, f = self.period_steps, self.history, self.horizon
        span = (k - 1) * p + f * p
        mult = int(t.max()) + span + 1
        key = traj * mult + t
        order = np.argsort(key, kind="stable")
        skey = key[order]
        if (np.diff(skey) == 0).any():
            raise DatasetError("duplicate (traj_id, t_index) rows in the case2 dataset")

        def lookup(delta: int) -> np.ndarray:
            want = key + delta
            ok = (t + delta >= 0) & (t + delta < mult)
            pos = np.clip(np.searchsorted(skey, want), 0, len(skey) - 1)
            found = ok & (skey[pos] == want)
            return np.where(found, order[pos], -1)

        offsets = [-(k - 1 - j) * p for j in range(k)]
        win = np.stack([lookup(o) for o in offsets], axis=1)
        tgt = lookup(f * p)
        valid = (win >= 0).all(axis=1) & (tgt >= 0)
        rows = np.flatnonzero(valid).astype(np.int64)
        return rows, win[rows].astype(np.int64), tgt[rows].astype(np.int64)

    def _window_measurements(self, ds: BeamDataset) -> tuple[np.ndarray, np.ndarray]:
        """(measurements [M, K, n_b] dBm, target rows [M])."""
        m = self.measurements(ds)
        if self.case == "case1":
            return m[:, None, :], np.arange(ds.n, dtype=np.int64)
        _, win, tgt = self._case2_rows(ds)
        return m[win], tgt

    def inputs(self, ds: BeamDataset) -> np.ndarray:
        """Model inputs float32 [M, D] (M = len(anchors(ds)), D = input_dim)."""
        m, _ = self._window_measurements(ds)
        return self.inputs_from_measurements(m)

    def labels(self, ds: BeamDataset) -> np.ndarray:
        """Top-1 Tx beam of each example, int64 [M] (Case2: at the target time t + F p)."""
        lab = ds.label.astype(np.int64)
        if self.case == "case1":
            self.check(ds)
            return lab
        return lab[self._case2_rows(ds)[2]]

    def target_rsrp(self, ds: BeamDataset) -> np.ndarray:
        """Ideal best-over-Rx RSRP per Set A beam of each example, float32 [M, n_tx] dBm (for KPIs)."""
        self.check(ds)
        best = ds.best_rx_rsrp()
        if self.case == "case1":
            return best
        return best[self._case2_rows(ds)[2]]

    # ------------------------------------------------------------------ device side
    def _prepare(self, m: np.ndarray) -> np.ndarray:
        """Validate the shape of measurements and apply the reporting impairment; float64 [N, K, n_b]."""
        a = np.asarray(m, dtype=np.float64)
        k, nb = self.history, self.n_setb
        if self.case == "case1" and a.ndim == 2:
            a = a[:, None, :]
        if a.ndim != 3 or a.shape[1:] != (k, nb):
            want = f"[N, {nb}]" if self.case == "case1" else f"[N, {k}, {nb}]"
            raise ConfigError(f"Set B measurements must have shape {want} (dBm), got {np.shape(m)}")
        if not np.isfinite(a).all():
            raise ConfigError("Set B measurements hold NaN or inf")
        if self.rsrp_quant_db > 0:
            lo, hi = RSRP_RANGE_DBM
            q = self.rsrp_quant_db
            a = np.round((np.clip(a, lo, hi) - lo) / q) * q + lo
        return a

    def _raw(self, m: np.ndarray) -> np.ndarray:
        """Pre-normalised values float64 [N, D] (relative for per_sample_max)."""
        a = self._prepare(m).reshape(len(m), -1)
        if self.norm in ("per_sample_max", "rel_linear") and a.shape[0]:
            a = a - a.max(axis=1, keepdims=True)
        return a

    def inputs_from_measurements(self, setb_rsrp_dbm: np.ndarray) -> np.ndarray:
        """Model inputs float32 [N, D] from Set B L1-RSRP measured on a device.

        ``setb_rsrp_dbm``: Case1 [N, n_b] (or [N, 1, n_b]); Case2 [N, K, n_b] oldest first; dBm, in the
        order of :meth:`resolved_setb` (wide beams: wide-beam index order), with the device's Rx beam choice.
        """
        a = self._raw(setb_rsrp_dbm)
        if self.norm == "none":
            return a.astype(np.float32)
        if self.norm == "rel_linear":
            return np.power(10.0, a / 10.0).astype(np.float32)
        off = 0.0 if self.norm == "per_sample_max" else float(self.offset_db or 0.0)
        return ((a - off) / float(self.scale_db or 1.0)).astype(np.float32)

    def fit(self, ds: BeamDataset) -> BeamTaskSpec:
        """A copy with normalisation parameters fitted on (training) data ``ds`` (scalar mean / std)."""
        m, _ = self._window_measurements(ds)
        if m.shape[0] == 0:
            raise DatasetError("cannot fit normalisation on an empty dataset")
        a = self._raw(m)
        if self.norm in ("none", "rel_linear"):
            return dataclasses.replace(self, fitted=True)
        std = float(a.std())
        scale = std if std > 1e-6 else 1.0
        offset = float(a.mean()) if self.norm == "affine" else 0.0
        return dataclasses.replace(self, offset_db=offset, scale_db=scale, fitted=True)

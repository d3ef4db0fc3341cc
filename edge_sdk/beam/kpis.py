"""Beam-prediction KPIs and non-AI baselines, 3GPP TR 38.843 definitions (numpy).

Inputs: ``scores`` [N, n_tx] (any real numbers; higher = more likely best; -inf allowed, NaN not) and
``target_rsrp`` [N, n_tx] = ideal best-over-Rx L1-RSRP per Set A beam in dBm
(:meth:`BeamTaskSpec.target_rsrp`). Predicted ranking: beams sorted by descending score, ties to the lower
index. Genie-aided Top-1: ``argmax(target_rsrp)`` (ties to the lower index).

KPIs (fractions in [0, 1], not percent; RSRP differences in dB):

* ``top1``: genie Top-1 == predicted Top-1.
* ``top2``..``top4`` ("Top-K/1"): genie Top-1 is among the K highest-scored beams.
* ``top1_1db``: ideal RSRP of the predicted Top-1 is within ``margin_db`` (1 dB) of the genie best
  (``best - rsrp[pred] <= margin``).
* ``rsrp_diff_mean`` / ``_p50`` / ``_p90`` / ``_p95``: L1-RSRP difference ``best - rsrp[pred]`` >= 0
  (mean and CDF percentiles, numpy linear interpolation).
* ``n``: number of examples.

Baselines return ``scores`` aligned with ``spec.target_rsrp(ds)``: :func:`best_of_setb_scores` (choose the Set
B beam with the highest measured RSRP; TR 38.843 non-AI baseline; in BM-Case2 the latest measurement is used, i.e.
sample-and-hold of the best measured Set B beam, also named :func:`sample_and_hold_setb_scores`),
:func:`sample_and_hold_scores` (BM-Case2: the Set A ranking of the last measurement instant t -- a full Set A
sweep -- is held for t + F p) and :func:`history_average_scores` (BM-Case2, a simple non-AI baseline: the mean
linear power of each beam over the K measurement instants of the window). RS overhead:
:func:`rs_overhead_reduction`.
"""

from __future__ import annotations

import numpy as np

from edge_sdk.beam.dataset import BeamDataset
from edge_sdk.beam.taskspec import BeamTaskSpec
from edge_sdk.errors import ConfigError

KPI_KEYS = (
    "top1",
    "top2",
    "top3",
    "top4",
    "top1_1db",
    "rsrp_diff_mean",
    "rsrp_diff_p50",
    "rsrp_diff_p90",
    "rsrp_diff_p95",
)


def _check(scores: np.ndarray, target_rsrp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64)
    r = np.asarray(target_rsrp, dtype=np.float64)
    if s.ndim != 2 or r.ndim != 2 or s.shape != r.shape:
        raise ConfigError(f"scores and target_rsrp must both be [N, n_tx]; got {s.shape} and {r.shape}")
    if s.shape[0] == 0 or s.shape[1] < 2:
        raise ConfigError(f"need N >= 1 examples and n_tx >= 2 beams, got {s.shape}")
    if np.isnan(s).any():
        raise ConfigError("scores hold NaN")
    if not np.isfinite(r).all():
        raise ConfigError("target_rsrp must be finite dBm values")
    return s, r


def topk_predictions(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores per row, best first (ties to the lower index): int64 [N, k]."""
    s = np.asarray(scores, dtype=np.float64)
    if not 1 <= k <= s.shape[1]:
        raise ConfigError(f"k must be in [1, {s.shape[1]}], got {k}")
    return np.argsort(-s, axis=1, kind="stable")[:, :k].astype(np.int64)


def beam_kpis(scores: np.ndarray, target_rsrp: np.ndarray, *, margin_db: float = 1.0) -> dict[str, float]:
    """TR 38.843 KPIs of predicted beam scores against ideal RSRP (see module docstring). Returns floats."""
    s, r = _check(scores, target_rsrp)
    n, n_tx = s.shape
    kmax = min(4, n_tx)
    pred = topk_predictions(s, kmax)
    genie = r.argmax(axis=1)
    hit = pred == genie[:, None]  # [N, kmax]
    out: dict[str, float] = {}
    for k in range(1, 5):
        out[f"top{k}"] = float(hit[:, : min(k, kmax)].any(axis=1).mean())
    best = r.max(axis=1)
    diff = best - r[np.arange(n), pred[:, 0]]
    out["top1_1db"] = float((diff <= margin_db).mean())
    out["rsrp_diff_mean"] = float(diff.mean())
    for q in (50, 90, 95):
        out[f"rsrp_diff_p{q}"] = float(np.percentile(diff, q))
    out["n"] = float(n)
    return out


def rs_overhead_reduction(n_setb: int, n_seta: int, mt: int | None = None, pt: int | None = None) -> float:
    """TR 38.843 RS overhead reduction: ``1 - N/M`` (Case1) or ``1 - N Mt / (M (Mt + Pt))`` (Case2)."""
    if not (1 <= n_setb and 1 <= n_seta):
        raise ConfigError("Set sizes must be >= 1")
    if mt is None and pt is None:
        return 1.0 - n_setb / n_seta
    if mt is None or pt is None or mt < 1 or pt < 0:
        raise ConfigError("Case2 overhead needs Mt >= 1 and Pt >= 0")
    return 1.0 - n_setb * mt / (n_seta * (mt + pt))


def best_of_setb_scores(spec: BeamTaskSpec, ds: BeamDataset) -> np.ndarray:
    """Scores [M, n_tx] of the best-of-Set-B baseline: measured Set B RSRP (dBm, spec's Rx mode) at the
    Set B beams, -inf elsewhere; Case2: the latest measurement of the window (time t).

    Only defined when Set B is a subset of Set A (raises ConfigError for wide beams).
    """
    if not spec.is_subset:
        raise ConfigError("best-of-Set-B is defined for Set B subset of Set A, not for wide beams")
    m = spec.measurements(ds)
    rows = spec.anchors(ds)
    out = np.full((rows.size, spec.n_tx), -np.inf, dtype=np.float32)
    out[:, spec.resolved_setb()] = m[rows]
    return out


def sample_and_hold_scores(spec: BeamTaskSpec, ds: BeamDataset) -> np.ndarray:
    """BM-Case2 sample-and-hold baseline: scores [M, n_tx] = ideal best-over-Rx Set A RSRP at the last
    measurement instant t (a full Set A sweep at t), used as the prediction for t + F p."""
    if spec.case != "case2":
        raise ConfigError("sample-and-hold is a BM-Case2 baseline; use a case2 task spec")
    rows = spec.anchors(ds)
    return ds.best_rx_rsrp()[rows]


def sample_and_hold_setb_scores(spec: BeamTaskSpec, ds: BeamDataset) -> np.ndarray:
    """BM-Case2 sample-and-hold of the best measured Set B beam: the Set B beam with the highest RSRP at the last
    measurement instant t (spec's Rx mode) is held for t + F p; scores [M, n_tx] (-inf outside Set B)."""
    if spec.case != "case2":
        raise ConfigError("sample-and-hold is a BM-Case2 baseline; use a case2 task spec")
    return best_of_setb_scores(spec, ds)


def history_average_scores(spec: BeamTaskSpec, ds: BeamDataset, *, seta: bool) -> np.ndarray:
    """BM-Case2 non-AI baseline: each beam scored by its mean linear power over the K instants of the window.

    ``seta=True``: full Set A sweeps (ideal best-over-Rx RSRP) at every instant -- K times the measurements of
    sample-and-hold; ``seta=False``: the spec's Set B measurements (Rx mode and impairments applied), -inf
    outside Set B. Scores are dB of the mean power, [M, n_tx].
    """
    if spec.case != "case2":
        raise ConfigError("history averaging is a BM-Case2 baseline; use a case2 task spec")
    _, win, _ = spec._case2_rows(ds)
    if seta:
        m = ds.best_rx_rsrp()[win]  # [M, K, n_tx]
        return (10.0 * np.log10(np.power(10.0, m.astype(np.float64) / 10.0).mean(axis=1))).astype(np.float32)
    if not spec.is_subset:
        raise ConfigError("Set B history averaging is defined for Set B subset of Set A, not for wide beams")
    mb = spec.measurements(ds)[win]  # [M, K, n_b]
    out = np.full((len(win), spec.n_tx), -np.inf, dtype=np.float32)
    out[:, spec.resolved_setb()] = 10.0 * np.log10(np.power(10.0, mb.astype(np.float64) / 10.0).mean(axis=1))
    return out

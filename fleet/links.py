"""Link models: per-second downlink rate, latency, on/off availability, per-transfer drops.

A :class:`LinkModel` describes one kind of link; a :class:`LinkState` is one device's realisation of it,
drawn lazily from that device's own random streams (seeds from (run, device), see :mod:`edge_sdk.fleet.seeds`),
so every backend and every run with the same seed sees the same link.

Rate (bytes/s, piecewise constant over whole seconds of virtual time):

* :class:`LognormalRate` — the per-second rate is ``R_k = p50 * exp(s(z_k) * z_k)`` with ``s = sigma_lo`` for
  ``z < 0`` and ``sigma_hi`` for ``z >= 0`` (a *two-piece lognormal*: the log-rate is a split normal whose two
  halves are fitted to p10/p50 and p50/p90, ``sigma_lo = ln(p50/p10)/z90``, ``sigma_hi = ln(p90/p50)/z90``,
  ``z90 = 1.2816``), and ``z_k`` a stationary Gaussian AR(1) process, ``z_{k+1} = rho z_k + sqrt(1-rho^2) e_k``.
  With ``sigma_lo == sigma_hi`` it is the plain lognormal. The two halves are needed because the public cellular
  traces are skewed to the left in log-space (3G driving: p10/p50 = 0.09, p90/p50 = 2.1); one sigma cannot hit
  p10, p50 and p90 at once. Seconds that are not queried are skipped with the exact k-step AR(1) transition
  (``z_{k+n} = rho^n z_k + sqrt(1 - rho^(2n)) e``).
* :class:`TraceRate` — replay of a ``t_s,Mbps`` CSV trace (piecewise constant, looped), each device starting at
  its own random offset.

Latency is the round-trip time paid once per HTTP request before the first byte. Availability alternates
exponential on/off periods (stationary start). A transfer attempt is dropped with probability ``drop_prob``, at a
uniformly random point of the bytes it was to carry.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_sdk.errors import ConfigError
from edge_sdk.units import mbit_per_s

Z90 = 1.2815515655446004  # standard normal 90% quantile
#: CSV traces larger than this are refused before they are read (bytes)
MAX_TRACE_BYTES = 64 * 2**20
MAX_TRACE_ROWS = 2_000_000


@dataclass(frozen=True)
class LognormalRate:
    """Two-piece lognormal per-second rate with AR(1) correlation. Quantiles in bytes/s; ``rho`` = lag-1 s."""

    p10: float
    p50: float
    p90: float
    rho: float = 0.8

    def __post_init__(self) -> None:
        if not (0 < self.p10 <= self.p50 <= self.p90 and math.isfinite(self.p90)):
            raise ConfigError(f"rate quantiles must satisfy 0 < p10 <= p50 <= p90, got "
                              f"{mbit_per_s(self.p10):g} / {mbit_per_s(self.p50):g} / {mbit_per_s(self.p90):g} Mbit/s")
        if not 0.0 <= self.rho < 1.0:
            raise ConfigError(f"rho (lag-1 correlation of the per-second rate) must be in [0, 1), got {self.rho}")

    @property
    def sigma_lo(self) -> float:
        return math.log(self.p50 / self.p10) / Z90

    @property
    def sigma_hi(self) -> float:
        return math.log(self.p90 / self.p50) / Z90

    def rate_of(self, z: np.ndarray | float) -> np.ndarray:
        """Rate (bytes/s) of latent standard-normal values ``z``."""
        zz = np.asarray(z, np.float64)
        return self.p50 * np.exp(np.where(zz < 0, self.sigma_lo, self.sigma_hi) * zz)

    def sample_path(self, seconds: int, rng: np.random.Generator) -> np.ndarray:
        """A stationary path of ``seconds`` per-second rates (bytes/s), float64 [seconds]."""
        e = rng.standard_normal(seconds)
        z = np.empty(seconds)
        z[0] = e[0]
        c = math.sqrt(1.0 - self.rho**2)
        for k in range(1, seconds):
            z[k] = self.rho * z[k - 1] + c * e[k]
        return self.rate_of(z)


@dataclass(frozen=True)
class TraceRate:
    """Replay of a measured trace: ``times`` [n] seconds (first 0, increasing), ``rates`` [n] bytes/s; the rate
    ``rates[i]`` holds on ``[times[i], times[i+1])``; the trace lasts ``period`` seconds and then repeats."""

    times: tuple[float, ...]
    rates: tuple[float, ...]
    period: float
    source: str = ""

    def __post_init__(self) -> None:
        if not self.times or len(self.times) != len(self.rates):
            raise ConfigError("a trace needs at least one (t_s, Mbps) row")
        if self.period <= self.times[-1]:
            raise ConfigError("trace period must be longer than its last time stamp")

    def rate_at(self, t: float) -> float:
        tt = t % self.period
        i = int(np.searchsorted(np.asarray(self.times), tt, side="right")) - 1
        return float(self.rates[max(i, 0)])

    def next_change(self, t: float) -> float:
        """First time > t at which the trace's rate may change."""
        base = t - (t % self.period)
        tt = t - base
        i = int(np.searchsorted(np.asarray(self.times), tt, side="right"))
        nxt = self.times[i] if i < len(self.times) else self.period
        return base + nxt


def read_trace_csv(path: str | os.PathLike[str]) -> TraceRate:
    """Read a ``t_s,Mbps`` CSV (header row required; ``t_s`` seconds from 0, increasing; ``Mbps`` megabits per
    second, SI, >= 0). The last row's rate holds for the median row spacing, then the trace repeats."""
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise ConfigError(f"trace {p}: cannot read it ({exc.strerror}); give an existing t_s,Mbps CSV file") from None
    if size > MAX_TRACE_BYTES:
        raise ConfigError(f"trace {p} is {size} bytes, more than the {MAX_TRACE_BYTES} allowed")
    times: list[float] = []
    rates: list[float] = []
    with open(p, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise ConfigError(f"trace {p} is empty; expected a header 't_s,Mbps' and rows") from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ConfigError(f"trace {p} is not a CSV file: {exc}") from None
        if header != ["t_s", "Mbps"]:
            raise ConfigError(f"trace {p}: header must be exactly 't_s,Mbps' (seconds, megabits per second), "
                              f"got {','.join(header)!r}")
        try:
            for lineno, row in enumerate(reader, start=2):
                if not row:
                    continue
                if len(row) != 2:
                    raise ConfigError(f"trace {p} line {lineno}: expected 2 fields, got {len(row)}")
                try:
                    t, r = float(row[0]), float(row[1])
                except ValueError:
                    raise ConfigError(f"trace {p} line {lineno}: {row!r} is not two numbers") from None
                if not (math.isfinite(t) and math.isfinite(r)) or r < 0 or t < 0:
                    raise ConfigError(f"trace {p} line {lineno}: need t_s >= 0 and Mbps >= 0, finite; got {row!r}")
                if times and t <= times[-1]:
                    raise ConfigError(f"trace {p} line {lineno}: t_s must increase ({t} after {times[-1]})")
                if len(times) >= MAX_TRACE_ROWS:
                    raise ConfigError(f"trace {p} has more than {MAX_TRACE_ROWS} rows")
                times.append(t)
                rates.append(r * 1e6 / 8.0)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ConfigError(f"trace {p} is not a readable CSV file: {exc}") from None
    if not times:
        raise ConfigError(f"trace {p} has a header but no rows")
    if times[0] != 0.0:
        raise ConfigError(f"trace {p}: the first t_s must be 0, got {times[0]}")
    if max(rates) <= 0:
        raise ConfigError(f"trace {p}: every rate is 0 Mbit/s, nothing could ever be transferred")
    step = float(np.median(np.diff(times))) if len(times) > 1 else 1.0
    return TraceRate(tuple(times), tuple(rates), times[-1] + step, source=str(p))


@dataclass(frozen=True)
class Availability:
    """When the device is reachable. Either alternating exponential on/off periods (means in seconds;
    ``mean_off_s == 0`` = always on, the default), or explicit ``windows``: sorted, disjoint ``(start, end)``
    online intervals in seconds of virtual time (offline outside them; ``end`` may be ``inf``)."""

    mean_on_s: float = math.inf
    mean_off_s: float = 0.0
    windows: tuple[tuple[float, float], ...] | None = None

    def __post_init__(self) -> None:
        if self.windows is not None:
            prev = -math.inf
            for a, b in self.windows:
                if not (a >= 0 and b > a and a >= prev):
                    raise ConfigError(f"availability windows must be sorted, disjoint (start, end) pairs with "
                                      f"0 <= start < end, got {self.windows}")
                prev = b
            return
        if not (self.mean_on_s > 0) or self.mean_off_s < 0 or not math.isfinite(self.mean_off_s):
            raise ConfigError("availability needs on > 0 and 0 <= off < inf")
        if self.mean_off_s > 0 and not math.isfinite(self.mean_on_s):
            raise ConfigError("availability with off periods needs a finite mean on-period")

    @property
    def always_on(self) -> bool:
        return self.windows is None and self.mean_off_s == 0

    @property
    def fraction_on(self) -> float:
        return 1.0 if self.always_on else self.mean_on_s / (self.mean_on_s + self.mean_off_s)


@dataclass(frozen=True)
class TraceStats:
    """Per-second downlink statistics of a measured trace (rates in bytes/s; ``below_1mbps``: fraction of
    seconds under 1 Mbit/s) — what a fitted :class:`LognormalRate` is checked against."""

    mean: float
    p10: float
    p50: float
    p90: float
    below_1mbps: float


@dataclass(frozen=True)
class LinkModel:
    """One kind of link. ``latency_s``: round trip paid per request; ``drop_prob``: chance that one transfer
    attempt (one HTTP request) breaks before its last byte; ``source``/``target``: the trace it was fitted to."""

    name: str
    rate: LognormalRate | TraceRate
    latency_s: float = 0.05
    availability: Availability = field(default_factory=Availability)
    drop_prob: float = 0.0
    source: str = ""
    target: TraceStats | None = None

    def __post_init__(self) -> None:
        if not (0 <= self.latency_s < 3600 and math.isfinite(self.latency_s)):
            raise ConfigError(f"link {self.name!r}: latency must be in [0, 1 h), got {self.latency_s} s")
        if not 0.0 <= self.drop_prob < 1.0:
            raise ConfigError(f"link {self.name!r}: drop_prob must be in [0, 1), got {self.drop_prob}")


class LinkState:
    """One device's realisation of a :class:`LinkModel`. Queries must not go back in time (the engine processes a
    device's events in time order); each random stream is the device's own.

    By default only the seconds that are looked at are drawn (skipped ones with the exact k-step transition), which
    keeps long idle stretches free; ``dense=True`` draws every second, so the rate of second k is the same whichever
    seconds were looked at before (the live check needs the simulator and the real client to see one realisation).
    """

    def __init__(self, model: LinkModel, rate_rng: np.random.Generator, avail_rng: np.random.Generator,
                 drop_rng: np.random.Generator, dense: bool = False) -> None:
        self.model = model
        self.dense = dense
        self._rate_rng = rate_rng
        self._avail_rng = avail_rng
        self._drop_rng = drop_rng
        self._k = -1  # last second whose latent value was drawn
        self._z = 0.0
        self._offset = 0.0
        if isinstance(model.rate, TraceRate):
            self._offset = float(rate_rng.uniform(0.0, model.rate.period))
        av = model.availability
        self._windows = list(av.windows) if av.windows is not None else None
        if self._windows is not None:
            self._on, self._until = self._window_state(0.0)
        elif av.always_on:
            self._on, self._until = True, math.inf
        else:
            self._on = bool(avail_rng.random() < av.fraction_on)
            self._until = float(avail_rng.exponential(av.mean_on_s if self._on else av.mean_off_s))

    def _window_state(self, t: float) -> tuple[bool, float]:
        """(online at t, time the state changes) under explicit windows."""
        assert self._windows is not None
        for a, b in self._windows:
            if t < a:
                return False, a
            if t < b:
                return True, b
        return False, math.inf

    # ------------------------------------------------------------------------------ rate
    def rate_at(self, t: float) -> float:
        """Downlink rate (bytes/s) in the second containing virtual time ``t``."""
        rate = self.model.rate
        if isinstance(rate, TraceRate):
            return rate.rate_at(t + self._offset)
        k = int(math.floor(t))
        if k < self._k:
            raise RuntimeError(f"link queried back in time (second {k} after {self._k})")
        while k > self._k:
            step = 1 if self.dense else k - self._k
            e = float(self._rate_rng.standard_normal())
            if self._k < 0:
                self._z = e  # stationary start
                self._k = 0 if self.dense else k
                continue
            a = rate.rho ** step
            self._z = a * self._z + math.sqrt(max(0.0, 1.0 - a * a)) * e
            self._k += step
        return float(rate.rate_of(self._z))

    def rate_until(self, t: float) -> float:
        """End of the constant-rate piece that contains ``t``."""
        rate = self.model.rate
        if isinstance(rate, TraceRate):
            return rate.next_change(t + self._offset) - self._offset
        return math.floor(t) + 1.0

    # ---------------------------------------------------------------------- availability
    def _advance(self, t: float) -> None:
        av = self.model.availability
        if self._windows is not None:
            if self._until <= t:
                self._on, self._until = self._window_state(t)
            return
        while self._until <= t:
            since = self._until
            self._on = not self._on
            self._until = since + float(self._avail_rng.exponential(av.mean_on_s if self._on else av.mean_off_s))

    def online(self, t: float) -> bool:
        self._advance(t)
        return self._on

    def next_online(self, t: float) -> float:
        """Earliest time >= t at which the device is online."""
        self._advance(t)
        return t if self._on else self._until

    def online_until(self, t: float) -> float:
        """When the current on-period (which must contain t) ends (inf if always on)."""
        self._advance(t)
        if not self._on:
            raise RuntimeError("online_until() called while offline")
        return self._until

    # ----------------------------------------------------------------------------- drops
    def drop_point(self) -> float | None:
        """For a new transfer attempt: the fraction (0..1) of its bytes after which it breaks, or None."""
        p = self.model.drop_prob
        if p <= 0:
            return None
        u = self._drop_rng.random()
        if u >= p:
            return None
        return float(self._drop_rng.random())


def link_stats(link: LinkModel, seconds: int = 200_000, seed: int = 0) -> TraceStats:
    """Per-second rate statistics of ``link``'s model over ``seconds`` drawn seconds (a trace: its own seconds,
    weighted by duration)."""
    if isinstance(link.rate, TraceRate):
        t = np.asarray(link.rate.times + (link.rate.period,))
        x = np.repeat(np.asarray(link.rate.rates), np.maximum(1, np.round(np.diff(t)).astype(np.int64)))
    else:
        x = link.rate.sample_path(seconds, np.random.Generator(np.random.PCG64(seed)))
    p10, p50, p90 = (float(v) for v in np.percentile(x, [10, 50, 90]))
    return TraceStats(float(x.mean()), p10, p50, p90, float(np.mean(x < 1e6 / 8)))

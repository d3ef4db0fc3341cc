"""Discrete-event engine: every device's fetch of every release round on one virtual clock (it never sleeps).

Each device is a process (a Python generator) that yields the virtual time of its next event; the engine keeps
one heap of (time, device) and always resumes the earliest. Per round ``r`` (published at ``r * period``), a
device:

1. notices the release after a poll delay drawn from U[0, poll_interval);
2. waits until its link is online, reads the channel record and downloads the release manifest;
3. picks a tier (policy; the bytes it would download — the tier's blobs it does not hold yet, so the graph only
   when it is not cached — must fit its byte budget, else ``budget_too_small``; best-fit is the transfer
   service's own :func:`edge_sdk.release.choose_tier`); checks storage (graph + payload + checkpoint + model;
   cached graphs that this tier does not use are evicted first, else ``storage_full``);
4. downloads the missing blobs (graph, payload, extras): each attempt is one HTTP request (``latency`` before the
   first byte, ``request_overhead`` bytes of headers), bytes flow at the link's per-second rate; an attempt ends
   early when the link goes offline (the device waits for it to come back) or at a drop, after which it backs off
   as edge-sdk's device fetch does (full jitter: U(0, min(backoff_max, backoff * 2^(n-1))), ``n`` = failed
   attempts in a row without progress, at least 1; more than ``max_retries`` of them and the fetch gives up until
   the device's next poll). A resuming device (HTTP Range) keeps every byte it received and asks only for the rest;
   a device without resume starts the blob again and the bytes it had are counted as re-sent;
   each blob is stored durably in the device cache (measured time of one such write, times its compute factor);
   the manifest is verified before the tier is chosen and the payload after the last blob (measured times of the
   device's own readers), and the fetch ends by storing the channel state;
6. trains: ``train_steps`` x measured step time x compute factor; the model is ready at the end.

A round that is not done at its deadline fails: ``offline_too_long`` when the device is offline at the deadline
or spent more than half of the round's window offline, else ``too_slow``. A device that already holds the
chosen tier's payload (same digest) is ``up_to_date``: no bytes, no training. Bytes in flight are counted
down to the byte: ``bytes_down`` = blob bytes received (including bytes received twice) + header bytes.

The real training and the KPIs do not change the timeline (compute time comes from the measured step time), so
they run afterwards on a backend; see :mod:`edge_sdk.fleet.simulate`.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from edge_sdk.fleet.links import LinkModel, LinkState
from edge_sdk.fleet.release import FleetRelease, Round
from edge_sdk.fleet.scenario import DeviceClass, ReleaseSpec, TransferSpec
from edge_sdk.fleet.seeds import rng
from edge_sdk.release import BlobRef, TierChoice, choose_tier, tier_costs

FAILURES = ("budget_too_small", "storage_full", "offline_too_long", "too_slow", "train_failed")


@dataclass
class DeviceRound:
    """One row of the fleet table: one device in one release round (times in seconds of virtual time since the
    round was published, unless named ``*_at_s``)."""

    device: int
    round: int
    device_class: str
    link: str
    published_at_s: float
    tier: str | None = None
    payload_sha256: str | None = None
    graph_sha256: str | None = None
    notified_s: float | None = None
    online_s: float | None = None
    graph_cache_hit: bool | None = None
    bytes_down: int = 0
    bytes_manifest: int = 0  # channel record + release manifest (headers in bytes_overhead)
    bytes_blobs: int = 0  # distinct blob bytes of the tier the device needed (graph if not cached + payload)
    bytes_resent: int = 0  # blob bytes received more than once
    bytes_overhead: int = 0  # HTTP header bytes
    requests: int = 0
    drops: int = 0
    offline_interruptions: int = 0
    offline_wait_s: float = 0.0
    transfer_time_s: float | None = None  # the tier's blobs: first request to last byte
    fetch_time_s: float | None = None  # the whole fetch: channel record request to the tier's last byte
    verify_time_s: float | None = None
    train_steps: int | None = None
    train_time_s: float | None = None
    time_to_model_s: float | None = None
    ended_s: float | None = None  # when the round ended for this device: model ready, or the failure
    up_to_date: bool = False
    failure: str | None = None
    failure_detail: str | None = None
    train_key: str | None = None

    @staticmethod
    def columns() -> list[str]:
        return [f.name for f in fields(DeviceRound)]


@dataclass(frozen=True)
class Timing:
    """This machine's measured device times (seconds; the engine scales them by each class's compute factor):
    ``step_time_s[train_key]`` per training step; ``manifest_verify_s[manifest digest]`` reading a manifest
    (envelope, digest, signature); ``payload_verify_s[train_key]`` reading a payload (digest, signature);
    ``store_s`` one durable write into the device cache (a blob, or the channel state at the end of a fetch)."""

    step_time_s: Mapping[str, float]
    payload_verify_s: Mapping[str, float]
    manifest_verify_s: Mapping[str, float] = field(default_factory=dict)
    store_s: float = 0.0


@dataclass
class _Cache:
    complete: dict[str, int] = field(default_factory=dict)  # blob digest -> size held
    partial: dict[str, int] = field(default_factory=dict)  # blob digest -> bytes held of an unfinished blob
    model_payload: str | None = None


class _Fail(Exception):
    def __init__(self, reason: str, detail: str, at: float) -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail
        self.at = at  # virtual time of the failure


Event = tuple[int, int, float, str, int]  # device, round, t (absolute), event, bytes


def device_link(model: LinkModel, seed: int, device: int, dense: bool = False) -> LinkState:
    """Device ``device``'s realisation of ``model`` in the run seeded ``seed``."""
    return LinkState(model, rng(seed, "rate", device), rng(seed, "availability", device), rng(seed, "drops", device),
                     dense=dense)


class Engine:
    """Run the timeline of every device. ``device_class[d]``/``link_model[d]`` describe device ``d``."""

    def __init__(self, release: FleetRelease, spec: ReleaseSpec, transfer: TransferSpec, timing: Timing,
                 classes: Sequence[DeviceClass], class_index: np.ndarray, links: Mapping[str, LinkModel],
                 link_names: Sequence[str], link_index: np.ndarray, seed: int, trace: bool = False,
                 dense_links: bool = False) -> None:
        """``dense_links``: draw every second of each link's rate process (see :class:`LinkState`), so a link's
        realisation does not depend on which seconds are looked at (the live check replays the same link)."""
        self.release = release
        self.spec = spec
        self.transfer = transfer
        self.timing = timing
        self.classes = classes
        self.class_index = class_index
        self.links = links
        self.link_names = link_names
        self.link_index = link_index
        self.seed = seed
        self.trace = trace
        self.dense_links = dense_links
        self.events: list[Event] = []
        self._graphs = frozenset(t.graph.digest for t in release.tiers())

    # ------------------------------------------------------------------------------ driver
    def run(self, progress: Callable[[int], Any] | None = None) -> list[DeviceRound]:
        n = len(self.class_index)
        rows: list[list[DeviceRound]] = [[] for _ in range(n)]
        gens: list[Generator[float, None, None]] = []
        heap: list[tuple[float, int]] = []
        for d in range(n):
            gens.append(self._life(d, rows[d]))
            heap.append((0.0, d))
        heapq.heapify(heap)
        while heap:
            _, d = heapq.heappop(heap)
            try:
                t_next = next(gens[d])
            except StopIteration:
                if progress is not None:
                    progress(1)
                continue
            heapq.heappush(heap, (t_next, d))
        return [r for per in rows for r in per]

    def _log(self, d: int, r: int, t: float, what: str, nbytes: int = 0) -> None:
        if self.trace:
            self.events.append((d, r, t, what, nbytes))

    # ---------------------------------------------------------------------------- device
    def _life(self, d: int, out: list[DeviceRound]) -> Generator[float, None, None]:
        cls = self.classes[int(self.class_index[d])]
        lname = self.link_names[int(self.link_index[d])]
        link = device_link(self.links[lname], self.seed, d, dense=self.dense_links)
        backoff_rng = rng(self.seed, "backoff", d)
        cache = _Cache()
        shares_pick: str | None = None
        if self.spec.policy == "shares":
            names = [n for n, _ in self.spec.shares]
            w = np.array([s for _, s in self.spec.shares])
            shares_pick = names[int(rng(self.seed, "tier", d).choice(len(w), p=w / w.sum()))]
        for r, rnd in enumerate(self.release.rounds):
            pub = r * self.spec.period_s
            deadline = pub + self.spec.deadline_s
            row = DeviceRound(device=d, round=r, device_class=cls.name, link=lname, published_at_s=pub)
            out.append(row)
            poll = float(rng(self.seed, "poll", d, r).uniform(0.0, cls.poll_interval_s)) if cls.poll_interval_s else 0.0
            t = pub + poll
            row.notified_s = poll
            self._log(d, r, t, "notified")
            yield t
            try:
                t = yield from self._round(d, r, t, deadline, rnd, cls, link, backoff_rng, cache, row, shares_pick)
            except _Fail as f:
                row.failure, row.failure_detail = f.reason, f.detail
                t = f.at
                yield t
                self._log(d, r, t, "failed:" + f.reason)
            row.ended_s = t - pub
            if r + 1 < len(self.release.rounds):
                nxt = (r + 1) * self.spec.period_s
                yield nxt

    def _pick(self, rnd: Round, cls: DeviceClass, cache: _Cache, shares_pick: str | None, t: float) -> TierChoice:
        rel = rnd.manifest.release
        pol = self.spec.policy
        if pol == "best-fit":
            c = choose_tier(rel, cls.budget_bytes, cache.complete)
            if c is None:
                least = min(x.cost for x in tier_costs(rel, cache.complete))
                raise _Fail("budget_too_small", f"the cheapest tier needs {least} B, budget {cls.budget_bytes} B", t)
            return c
        costs = tier_costs(rel, cache.complete)
        if pol == "smallest":
            c = min(costs, key=lambda x: (x.cost, x.tier.name))
        else:
            want = self.spec.fixed_tier if pol == "fixed" else shares_pick
            c = next(x for x in costs if x.tier.name == want)
        if c.cost > cls.budget_bytes:
            raise _Fail("budget_too_small", f"tier {c.tier.name} needs {c.cost} B, budget {cls.budget_bytes} B", t)
        return c

    def _round(self, d: int, r: int, t: float, deadline: float, rnd: Round, cls: DeviceClass,
               link: LinkState, backoff_rng: np.random.Generator, cache: _Cache, row: DeviceRound,
               shares_pick: str | None) -> Generator[float, None, float]:
        pub = row.published_at_s
        if not link.online(t):
            t_on = link.next_online(t)
            if t_on >= deadline:
                row.offline_wait_s += deadline - t
                raise _Fail("offline_too_long", "never online before the deadline", deadline)
            row.offline_wait_s += t_on - t
            t = t_on
            yield t
        row.online_s = t - pub
        self._log(d, r, t, "online")
        # find the release: the channel record (never cached), then the manifest blob
        m = rnd.manifest
        t_fetch = t
        t = yield from self._fetch(d, r, t, deadline, BlobRef(f"channel:{self.release.channel}:{r}", rnd.channel_bytes),
                                   cls, link, backoff_rng, cache, row, keep=False, resumable=False)
        t = yield from self._fetch(d, r, t, deadline, BlobRef(m.digest, m.size), cls, link, backoff_rng, cache, row,
                                   keep=False)
        t += (self.timing.manifest_verify_s.get(m.digest, 0.0) + self.timing.store_s) * cls.compute_factor
        row.bytes_manifest = rnd.channel_bytes + m.size
        choice = self._pick(rnd, cls, cache, shares_pick, t)
        tier = rnd.tier(choice.tier.name)
        row.tier, row.payload_sha256, row.graph_sha256 = tier.name, tier.payload.hex, tier.graph.hex
        row.train_key, row.train_steps = tier.train_key, tier.train_steps
        row.graph_cache_hit = tier.graph.digest in cache.complete
        self._log(d, r, t, f"tier:{tier.name}")
        if cache.model_payload == tier.payload.digest and not choice.missing:
            row.up_to_date = True
            row.time_to_model_s = 0.0
            row.train_steps = 0
            self._log(d, r, t, "up_to_date")
            return t
        # storage: the old payload and model go; other cached graphs are evicted only if room is short
        mine = {b.digest for b in (tier.payload, tier.graph, *tier.extra)}
        cache.complete = {s: b for s, b in cache.complete.items() if s in self._graphs or s in mine}
        cache.partial = {s: b for s, b in cache.partial.items() if s in self._graphs or s in mine}
        cache.model_payload = None
        need = sum(b.size for b in (tier.payload, tier.graph, *tier.extra)) + tier.device_state_bytes
        others = [s for s in cache.complete if s not in mine]
        if need + sum(cache.complete[s] for s in others) > cls.storage_bytes:
            for s in others:
                del cache.complete[s]
            cache.partial = {s: b for s, b in cache.partial.items() if s in mine}
        if need > cls.storage_bytes:
            raise _Fail("storage_full", f"tier {tier.name} needs {need} B (graph + payload + checkpoint + model), "
                                        f"storage {cls.storage_bytes} B", t)
        row.bytes_blobs = choice.cost
        t_first = t
        for blob in choice.missing:
            t = yield from self._fetch(d, r, t, deadline, blob, cls, link, backoff_rng, cache, row)
        row.transfer_time_s = t - t_first
        verify = self.timing.payload_verify_s[tier.train_key] * cls.compute_factor  # the payload, as the fetch checks it
        row.verify_time_s = verify
        t += verify + self.timing.store_s * cls.compute_factor  # then the fetch records the channel state
        row.fetch_time_s = t - t_fetch
        train = tier.train_steps * self.timing.step_time_s[tier.train_key] * cls.compute_factor
        row.train_time_s = train
        t += train
        if t > deadline:
            raise _Fail("too_slow", f"model would be ready {t - pub:.0f} s after publication, after the deadline",
                        deadline)
        yield t
        cache.model_payload = tier.payload.digest
        row.time_to_model_s = t - pub
        self._log(d, r, t, "model_ready")
        return t

    def _deadline_fail(self, t_deadline: float, link: LinkState, row: DeviceRound) -> _Fail:
        window = t_deadline - row.published_at_s
        if not link.online(t_deadline) or row.offline_wait_s > 0.5 * window:
            return _Fail("offline_too_long", f"offline {row.offline_wait_s:.0f} s of the {window:.0f} s window",
                         t_deadline)
        return _Fail("too_slow", f"transfer not done in the {window:.0f} s window", t_deadline)

    def _fetch(self, d: int, r: int, t: float, deadline: float, blob: BlobRef, cls: DeviceClass, link: LinkState,
               backoff_rng: np.random.Generator, cache: _Cache, row: DeviceRound,
               keep: bool = True, resumable: bool = True) -> Generator[float, None, float]:
        """Download ``blob`` (resuming what the device holds of it); ``keep``: it goes into the blob cache;
        ``resumable=False``: read whole or not at all (the channel record), a broken attempt counts no progress."""
        tr = self.transfer
        have = cache.partial.get(blob.digest, 0)
        name = blob.digest.split(":")[-1][:12] if blob.digest.startswith("sha256:") else blob.digest.split(":")[0]
        fails = 0
        latency = link.model.latency_s
        while have < blob.size:
            if t >= deadline:
                raise self._deadline_fail(deadline, link, row)
            if not link.online(t):
                t_on = link.next_online(t)
                row.offline_wait_s += min(t_on, deadline) - t
                if t_on >= deadline:
                    raise self._deadline_fail(deadline, link, row)
                t = t_on
                yield t
                self._log(d, r, t, "online")
            # one request
            row.requests += 1
            row.bytes_overhead += tr.request_overhead_bytes
            row.bytes_down += tr.request_overhead_bytes
            up_until = link.online_until(t)
            if t + latency >= up_until:  # the link drops during the round trip
                t = min(up_until, deadline)
                row.offline_interruptions += 1
                yield t
                continue
            t += latency
            if t >= deadline:
                raise self._deadline_fail(deadline, link, row)
            yield t
            if (not cls.resume or not resumable) and have:
                row.bytes_resent += have
                have = 0
            want = blob.size - have
            cut = link.drop_point()
            target = want if cut is None else int(want * cut)
            self._log(d, r, t, f"request:{name}", have)
            got = 0.0
            why = "done"
            while got < target:
                if t >= deadline:
                    why = "deadline"
                    break
                if not link.online(t):
                    why = "offline"
                    break
                rate = link.rate_at(t)
                seg_end = min(link.rate_until(t), link.online_until(t), deadline)
                if rate > 0 and (seg_end - t) * rate >= target - got:
                    t += (target - got) / rate
                    got = float(target)
                else:
                    got += (seg_end - t) * rate
                    t = seg_end
                yield t
            if got >= target and cut is not None:
                why = "drop"
            delivered = int(target) if got >= target else int(math.floor(got))
            row.bytes_down += delivered
            have += delivered
            cache.partial[blob.digest] = have
            self._log(d, r, t, f"{why}:{name}", delivered)
            if have >= blob.size:
                break
            if why == "deadline":
                raise self._deadline_fail(deadline, link, row)
            if why == "offline":
                row.offline_interruptions += 1
                continue
            row.drops += 1
            # as the device fetch does: failures in a row that made no progress; full-jitter back-off
            fails = 0 if delivered > 0 and resumable else fails + 1
            if fails > tr.max_retries:  # the fetch gives up; the device fetches again at its next poll
                wait = cls.poll_interval_s or tr.backoff_max_s
                fails = 0
            else:
                wait = min(tr.backoff_max_s, tr.backoff_s * 2 ** (max(fails, 1) - 1)) * float(backoff_rng.random())
            t = min(t + wait, deadline)
            yield t
        cache.partial.pop(blob.digest, None)
        if keep:  # stored durably in the device cache before the next request
            cache.complete[blob.digest] = blob.size
            t += self.timing.store_s * cls.compute_factor
        self._log(d, r, t, f"complete:{name}", blob.size)
        return t

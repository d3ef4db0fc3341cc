"""Live check: a small fleet fetches the release for real from ``edge-sdk serve`` on loopback, each device's link
shaped on the client from its own link model, and the measured fetch times are compared with the simulated ones.

For up to :data:`MAX_LIVE_DEVICES` devices of the scenario, the release's current head (its last round) is
simulated and then fetched with edge-sdk's own device fetch (:func:`edge_sdk.device.fetch.Fetcher`), one thread
per device (at most :data:`LIVE_PARALLEL` at a time, so that the measurement is of the links and not of this
machine's two cores shared by 50 clients), against a real ``edge-sdk serve`` process (token auth, loopback). Both sides use the same link
realisation: the same per-second rate path (dense draws, :class:`~edge_sdk.fleet.links.LinkState`), the same drop
decisions per request, the same back-off draws; availability is forced on and poll delays to zero (the check
compares transfer behaviour, not hour-long outages).

Client-side shaping (:class:`ShapedLink`): before each request the client waits the link's round trip; the body
is read in chunks, and after each chunk the client sleeps until the link model says those bytes would have arrived
(a rate limiter fed by the per-second rate path); at a drop point it breaks the connection, and the fetch resumes
with HTTP Range after its back-off. Whatever the real stack adds (HTTP handling, loopback, hashing, fsync) shows up
as the difference: the report gives simulated vs measured time per device and the median relative error (goal:
within 10 %).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from edge_sdk.errors import ConfigError
from edge_sdk.fleet.links import Availability, LinkState
from edge_sdk.fleet.release import FleetRelease
from edge_sdk.fleet.scenario import Scenario

MAX_LIVE_DEVICES = 50
#: devices fetching at the same time: each simulated device has a CPU of its own, the live ones share this
#: machine's two cores with the server; more at once would measure this machine's contention, not the links
LIVE_PARALLEL = 2
SERVER_START_TIMEOUT_S = 60.0


def live_scenario(sc: Scenario, max_devices: int = MAX_LIVE_DEVICES) -> Scenario:
    """The scenario the live check simulates: at most ``max_devices`` devices, the release's last round only,
    every link always on, no poll delay, compute factor 1 (the fetches run on this machine)."""
    links = {n: replace(m, availability=Availability()) for n, m in sc.links.items()}
    # the live devices are this machine: its own compute and storage speed
    classes = tuple(replace(c, poll_interval_s=0.0, compute_factor=1.0) for c in sc.classes)
    rel = sc.release
    if rel.source == "store":
        rel = replace(rel, rounds=1)
    else:
        rel = replace(rel, rounds=1, tiers=tuple(replace(t, payloads=t.payloads[-1:], graphs=t.graphs[-1:])
                                                  for t in rel.tiers))
    return replace(sc, devices=min(sc.devices, max_devices), links=links, classes=classes, release=rel)


class ShapedLink:
    """A device's link on the client side of a real fetch: ``chunk()``/``consume(n)`` is the rate limiter
    interface of :class:`edge_sdk.device.fetch.Fetcher`; :meth:`request` is called before every HTTP request.

    Model time ``v`` (seconds since the fetch started) advances by the round trip per request and by the bytes at
    the per-second rates of ``link``; real time never runs behind it (the client sleeps), and when the real stack
    is slower, ``v`` catches up with the wall clock (so its overheads add up as they would on a device)."""

    def __init__(self, link: LinkState, sizes: dict[str, int], clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.link = link
        self.sizes = sizes
        self.clock, self.sleep = clock, sleep
        self.t0 = clock()
        self.v = 0.0
        self.left_before_drop: int | None = None  # bytes this request may still carry before it breaks
        self.requests = 0
        self.drops = 0
        self.behind = 0.0  # real seconds outside the shaped link: server, storage, verification, back-off
        self.unread = 0  # bytes of broken channel reads (received before the break, never handed to the client)

    def _sync(self) -> None:
        now = self.clock() - self.t0
        if now > self.v:
            self.behind += now - self.v
            self.v = now

    def _wait(self) -> None:
        lag = self.t0 + self.v - self.clock()
        if lag > 0:
            self.sleep(lag)

    def _advance(self, nbytes: float) -> None:
        """Model time for ``nbytes`` more bytes at the link's per-second rates."""
        left = float(nbytes)
        while left > 0:
            rate = self.link.rate_at(self.v)
            end = self.link.rate_until(self.v)
            if rate > 0 and (end - self.v) * rate >= left:
                self.v += left / rate
                return
            left -= (end - self.v) * rate
            self.v = end

    def request(self, want: int) -> int | None:
        """A new request for ``want`` bytes: wait the round trip, draw its drop point; returns the bytes after
        which it breaks (None: it does not)."""
        self._sync()
        self.requests += 1
        self.v += self.link.model.latency_s
        self._wait()
        cut = self.link.drop_point()
        self.left_before_drop = None if cut is None else int(want * cut)
        return self.left_before_drop

    def chunk(self) -> int:
        n = 16 * 1024
        if self.left_before_drop is not None:
            n = max(1, min(n, self.left_before_drop))
        return n

    def consume(self, n: int) -> None:
        self._sync()
        self._advance(n)
        self._wait()
        if self.left_before_drop is not None:
            self.left_before_drop -= n
            if self.left_before_drop <= 0:
                self.left_before_drop = None
                self.drops += 1
                raise ConnectionResetError("link model: connection dropped")


class _BackoffDraws:
    """Stands in for the fetcher's ``random.Random``: ``uniform(a, b)`` from the device's back-off stream, the
    draws the simulator makes (``cap * u``)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * float(self.rng.random())


@dataclass
class LiveDevice:
    device: int
    device_class: str
    link: str
    tier: str | None
    simulated_s: float | None
    measured_s: float | None
    simulated_bytes: int | None
    measured_bytes: int | None
    requests_sim: int
    requests_live: int
    drops_sim: int
    drops_live: int
    behind_s: float = 0.0
    error: str | None = None

    @property
    def rel_error(self) -> float | None:
        if self.simulated_s is None or self.measured_s is None or self.simulated_s <= 0:
            return None
        return (self.measured_s - self.simulated_s) / self.simulated_s


class _Server:
    """``edge-sdk serve`` as a child process on a free loopback port, with a read token for one channel."""

    def __init__(self, store: Path, channel: str, workdir: Path) -> None:
        from edge_sdk.serve.auth import add_token

        self.tokens = workdir / "tokens.json"
        self.token = add_token(self.tokens, "fleet-live", [f"read:{channel}"])
        ready = workdir / "ready.json"
        self.log = open(workdir / "serve.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edge_sdk.cli", "serve", "--store", str(store), "--host", "127.0.0.1", "--port",
             "0", "--tokens", str(self.tokens), "--ready-file", str(ready), "--access-log", str(workdir / "access.log"),
             "--shutdown-timeout", "2"], stdout=self.log, stderr=subprocess.STDOUT)
        t0 = time.monotonic()
        while not ready.exists():
            if self.proc.poll() is not None or time.monotonic() - t0 > SERVER_START_TIMEOUT_S:
                self.stop()
                raise ConfigError(f"edge-sdk serve did not start (see {workdir / 'serve.log'})")
            time.sleep(0.05)
        self.url = json.loads(ready.read_text())["url"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


def _warm_up(server: _Server, release: FleetRelease) -> None:
    """One unshaped GET of the channel and of every blob of the head round, not measured: the server hashes each
    blob the first time it serves it and both sides import and connect; the check measures the steady state."""
    import urllib3

    http = urllib3.PoolManager(retries=False)
    headers = {"Authorization": f"Bearer {server.token}", "Accept-Encoding": "identity"}
    rnd = release.rounds[-1]
    paths = [f"/v1/channels/{release.channel}", f"/v1/blobs/{rnd.manifest.digest}"]
    paths += [f"/v1/blobs/{b.digest}" for t in rnd.tiers for b in (t.payload, t.graph, *t.extra)]
    try:
        for p in dict.fromkeys(paths):
            r = http.request("GET", server.url + p, headers=headers, preload_content=True)
            if r.status != 200:
                raise ConfigError(f"live check: the server answered HTTP {r.status} for {p}")
    finally:
        http.clear()


def _fetch_one(d: int, row: Any, sc: Scenario, release: FleetRelease, url: str, token: str, cache: Path,
               trusted: list[str], link_name: str, dense_link: Callable[[int], LinkState]) -> LiveDevice:
    from edge_sdk.device.fetch import FetchConfig, Fetcher
    from edge_sdk.fleet.seeds import rng

    cls = next(c for c in sc.classes if c.name == row.device_class)
    rnd = release.rounds[-1]
    sizes = {b.digest: b.size for t in rnd.tiers for b in (t.payload, t.graph, *t.extra)}
    sizes[rnd.manifest.digest] = rnd.manifest.size
    shaper = ShapedLink(dense_link(d), sizes)
    cfg = FetchConfig(url=url, channel=release.channel, cache=cache, token=token, budget=cls.budget_bytes,
                      trusted_keys=tuple(trusted), tier=row.tier, retries=sc.transfer.max_retries,
                      backoff_base_s=sc.transfer.backoff_s, backoff_max_s=sc.transfer.backoff_max_s)
    f = Fetcher(cfg, limiter=shaper)
    f.rng = _BackoffDraws(rng(sc.seed, "backoff", d))  # type: ignore[assignment]
    real_get = f.http.get

    def shaped_get(path: str, headers: dict[str, str] | None = None) -> Any:
        if path.startswith("/v1/channels/"):
            # the channel record is read in one piece (not through the limiter): shape it here
            cut = shaper.request(rnd.channel_bytes)
            if cut is not None:
                shaper.unread += cut
                shaper._advance(cut)
                shaper._wait()
                shaper.drops += 1
                raise ConnectionResetError("link model: connection dropped")
            r = real_get(path, headers)
            shaper._sync()
            shaper._advance(rnd.channel_bytes)
            shaper._wait()
            return r
        digest = path.rsplit("/", 1)[-1].replace("%3A", ":")
        start = 0
        rng_hdr = (headers or {}).get("Range", "")
        if rng_hdr.startswith("bytes="):
            start = int(rng_hdr[6:].split("-")[0])
        if shaper.request(sizes.get(digest, 0) - start) == 0:  # breaks before its first byte
            shaper.left_before_drop = None
            shaper.drops += 1
            raise ConnectionResetError("link model: connection dropped")
        return real_get(path, headers)

    f.http.get = shaped_get  # type: ignore[method-assign]
    try:
        rep = f.run()
        measured, nbytes, err = rep.seconds, rep.bytes_on_wire + shaper.unread, None
    except Exception as exc:  # noqa: BLE001 - reported per device
        measured, nbytes, err = None, None, f"{type(exc).__name__}: {exc}"
    sim_bytes = None if row.failure else row.bytes_down - row.bytes_overhead
    return LiveDevice(d, row.device_class, link_name, row.tier, row.fetch_time_s, measured, sim_bytes, nbytes,
                      row.requests, shaper.requests, row.drops, shaper.drops, shaper.behind, err)


def live_check(sc: Scenario, release: FleetRelease, rows: list[Any], link_names: list[str],
               link_index: np.ndarray, workdir: Path | None = None) -> dict[str, Any]:
    """Fetch round ``rows`` (the simulated head round, one per device) for real and compare. Needs the ``serve``
    extra (Starlette + uvicorn)."""
    try:
        import edge_sdk.device.fetch  # noqa: F401
        import edge_sdk.serve  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"--live needs the server and the device fetch: pip install -e '.[serve]' ({exc})") from None
    from edge_sdk.fleet.engine import device_link

    tmp = Path(tempfile.mkdtemp(prefix="edge-sdk-fleet-live-", dir=workdir))
    trusted = [str(k) for k in sc.release.trusted_keys]
    def dense_link(d: int) -> LinkState:
        return device_link(sc.links[link_names[int(link_index[d])]], sc.seed, d, dense=True)

    server = _Server(release.store.root, release.channel, tmp)
    try:
        _warm_up(server, release)
        head = [r for r in rows if r.round == len(release.rounds) - 1]
        with ThreadPoolExecutor(max_workers=max(1, min(LIVE_PARALLEL, len(head)))) as pool:
            futs = [pool.submit(_fetch_one, r.device, r, sc, release, server.url, server.token,
                                tmp / f"dev{r.device}", trusted, link_names[int(link_index[r.device])], dense_link)
                    for r in head]
            devices = [f.result() for f in futs]
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    errs = [e for d in devices if (e := d.rel_error) is not None]
    med = float(np.median(errs)) if errs else None
    return {
        "devices": [{**d.__dict__, "rel_error": d.rel_error} for d in devices],
        "median_rel_error": med,
        "median_abs_rel_error": float(np.median(np.abs(errs))) if errs else None,
        "goal": "median relative error within 10%",
        "met": med is not None and abs(med) <= 0.10,
        "fetched": sum(d.error is None for d in devices),
        "failed": [d.__dict__ for d in devices if d.error is not None],
        "note": "availability forced on, poll delay 0; the release's head round; same link realisation, drop "
                "decisions and back-off draws on both sides",
    }


def live_text(live: dict[str, Any]) -> str:
    lines = ["live check: simulated vs measured fetch time (edge-sdk serve on loopback, links shaped on the client)",
             f"{'device':>6} {'class':14s} {'link':16s} {'tier':6s} {'sim s':>8} {'live s':>8} {'error':>7} "
             f"{'sim B':>8} {'live B':>8} {'req':>7} {'drops':>6} {'behind s':>8}"]
    for d in live["devices"]:
        e = d["rel_error"]
        lines.append(
            f"{d['device']:>6} {d['device_class'][:14]:14s} {d['link'][:16]:16s} {str(d['tier'])[:6]:6s} "
            f"{(d['simulated_s'] or 0):>8.3f} {(d['measured_s'] or 0):>8.3f} "
            f"{'-' if e is None else f'{100 * e:+.1f}%':>7} {d['simulated_bytes'] or 0:>8} {d['measured_bytes'] or 0:>8} "
            f"{d['requests_sim']:>3}/{d['requests_live']:<3} {d['drops_sim']:>2}/{d['drops_live']:<2} "
            f"{d['behind_s']:>8.3f}")
    med = live.get("median_rel_error")
    lines.append(f"median relative error {'-' if med is None else f'{100 * med:+.1f}%'} (goal within 10%: "
                 f"{'met' if live.get('met') else 'MISSED'}); {live['fetched']} of {len(live['devices'])} fetched")
    return "\n".join(lines)

"""Fleet scenarios: which devices, on which links, get which release (TOML; unknown keys are errors).

A scenario is a TOML file or a preset name (``fleet/presets/scenarios/<name>.toml``; :func:`preset_names`).
Every size, rate and duration carries its unit (``"8 KiB"``, ``"5 Mbit/s"``, ``"200 ms"``; parsed by
:mod:`edge_sdk.units`); a bare number where a unit is needed is an error. Paths are relative to the scenario
file's folder, or to the repository root when written ``repo:<path>``. docs/fleet.md lists every key; in short:

``[scenario]`` name, description, devices, seed. ``[release]`` source ("store" with store, channel, rounds; or
"files" with ``[[release.tier]]`` name, payload, graph), policy ("best-fit" | "smallest" | "fixed" | "shares"),
fixed_tier, shares, period, deadline, trusted_keys. ``[local_data]`` pool, samples. ``[compute]`` step_time, verify_time, store_time. ``[transfer]``
request_overhead, backoff, backoff_max, max_retries. ``[links.<name>]`` preset, rate {p10, p50, p90} or trace,
rho, latency, availability ("always", {on, off} or {windows = [[start, end], ...]}), drop_prob, description, source, target {mean, p10, p50, p90,
below_1mbps}. ``[[class]]`` name, share or count,
compute_factor, storage, budget, link or links {name = share}, resume, poll_interval.

Every error is a :class:`ScenarioError` (a :class:`edge_sdk.errors.ConfigError`) that names the file, the key
and the fix, in one line.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from edge_sdk.errors import ConfigError
from edge_sdk.fleet.links import Availability, LinkModel, LognormalRate, TraceStats, read_trace_csv
from edge_sdk.units import parse_duration, parse_rate, parse_size

T = TypeVar("T")

POLICIES = ("best-fit", "smallest", "fixed", "shares")
SOURCES = ("files", "store")
MAX_DEVICES = 10_000_000
#: the repository root, for ``repo:`` paths: $EDGE_SDK_REPO, else the checkout this package was installed from
REPO_ENV = "EDGE_SDK_REPO"


class ScenarioError(ConfigError):
    """A scenario file or preset that cannot be used (unknown key, wrong unit, missing file, ...)."""


# ------------------------------------------------------------------------------------------------ values
@dataclass(frozen=True)
class DeviceClass:
    """A kind of device. ``compute_factor``: its training step takes this many times the measured local ORT step
    time. ``storage_bytes``: room for the graph cache, payload, checkpoint and model; ``budget_bytes``: the most
    bytes it may download for one release. ``links``: (link name, share) pairs."""

    name: str
    share: float | None
    count: int | None
    compute_factor: float
    storage_bytes: int
    budget_bytes: int
    links: tuple[tuple[str, float], ...]
    resume: bool = True
    poll_interval_s: float = 0.0


@dataclass(frozen=True)
class TierSpec:
    """A tier of a ``files`` release: one payload per round (``payloads``) and its training graph(s)."""

    name: str
    payloads: tuple[Path, ...]
    graphs: tuple[Path, ...]


@dataclass(frozen=True)
class ReleaseSpec:
    """``source = "store"``: the last ``rounds`` releases of ``channel`` in the store folder ``store``;
    ``source = "files"``: ``tiers`` of payload + graph files, one release per round."""

    source: str
    tiers: tuple[TierSpec, ...]
    rounds: int
    period_s: float
    deadline_s: float
    policy: str = "best-fit"
    fixed_tier: str | None = None
    shares: tuple[tuple[str, float], ...] = ()
    trusted_keys: tuple[Path, ...] = ()
    store: Path | None = None
    channel: str | None = None


@dataclass(frozen=True)
class LocalDataSpec:
    """Each device evaluates on the ``samples`` drops of the shared ``pool`` nearest to its position."""

    pool: Path
    samples: int = 64


@dataclass(frozen=True)
class ComputeSpec:
    """This machine's compute rates that device times are scaled from (None = measure before the run):
    ``step_time_s`` seconds per training step, ``verify_time_s`` seconds to verify a manifest or a payload (digest,
    signature), ``store_time_s`` seconds per durable write into the device's release cache (a blob, or the channel
    state at the end of a fetch). Pin them to make runs on different machines or loads give identical timelines."""

    step_time_s: float | None = None
    verify_time_s: float | None = None
    store_time_s: float | None = None


@dataclass(frozen=True)
class TransferSpec:
    """HTTP-level costs and the device fetch's retry policy (defaults = ``edge-sdk device fetch``'s):
    ``request_overhead_bytes`` (response headers) per request; after a drop, a full-jitter back-off
    U(0, min(``backoff_max_s``, ``backoff_s`` * 2^(n-1))), ``n`` = failed attempts in a row without progress (at
    least 1); more than ``max_retries`` of them and the fetch gives up until the device's next poll (keeping what it
    has)."""

    request_overhead_bytes: int = 400
    backoff_s: float = 0.5
    backoff_max_s: float = 30.0
    max_retries: int = 8


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    devices: int
    seed: int
    classes: tuple[DeviceClass, ...]
    links: Mapping[str, LinkModel]
    release: ReleaseSpec
    local_data: LocalDataSpec
    compute: ComputeSpec = field(default_factory=ComputeSpec)
    transfer: TransferSpec = field(default_factory=TransferSpec)
    source: str = ""  # file or preset it came from
    raw: Mapping[str, Any] = field(default_factory=dict)  # the parsed TOML, for the run summary

    def with_devices(self, n: int) -> Scenario:
        """The same scenario with ``n`` devices (class counts scaled by largest remainder)."""
        if not 1 <= n <= MAX_DEVICES:
            raise ScenarioError(f"--devices must be in [1, {MAX_DEVICES}], got {n}")
        return replace(self, devices=int(n))

    def with_seed(self, seed: int) -> Scenario:
        return replace(self, seed=int(seed))

    def class_counts(self) -> list[int]:
        """Devices per class (sums to ``devices``): shares, or counts scaled to ``devices``."""
        weights = [c.share if c.share is not None else float(c.count or 0) for c in self.classes]
        total = sum(weights)
        exact = [w / total * self.devices for w in weights]
        counts = [int(math.floor(x)) for x in exact]
        rest = sorted(range(len(exact)), key=lambda i: (-(exact[i] - counts[i]), i))
        for i in rest[: self.devices - sum(counts)]:
            counts[i] += 1
        return counts


# ------------------------------------------------------------------------------------------- parsing
class _Table:
    """A TOML table read key by key; :meth:`done` refuses the keys nobody asked for."""

    def __init__(self, data: Any, where: str, err: Callable[[str], ScenarioError]) -> None:
        if not isinstance(data, dict):
            raise err(f"{where} must be a table, got {type(data).__name__}")
        self.data = data
        self.where = where
        self.err = err
        self.seen: set[str] = set()

    def get(self, key: str, conv: Callable[[Any, str], T], default: Any = ..., required: bool = False) -> T:
        self.seen.add(key)
        if key not in self.data:
            if required or default is ...:
                raise self.err(f"{self.where} needs the key {key!r}")
            return default  # type: ignore[no-any-return]
        try:
            return conv(self.data[key], f"{self.where} {key}")
        except ScenarioError:
            raise
        except ConfigError as exc:
            raise self.err(str(exc)) from None

    def has(self, key: str) -> bool:
        return key in self.data

    def done(self, allowed_extra: tuple[str, ...] = ()) -> None:
        unknown = sorted(set(self.data) - self.seen - set(allowed_extra))
        if unknown:
            known = sorted(self.seen | set(allowed_extra))
            raise self.err(f"{self.where}: unknown key {unknown[0]!r} (known keys: {', '.join(known)})")


def _str(v: Any, what: str) -> str:
    if not isinstance(v, str) or not v:
        raise ConfigError(f"{what} must be a non-empty string, got {v!r}")
    return v


def _int(lo: int, hi: int) -> Callable[[Any, str], int]:
    def conv(v: Any, what: str) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise ConfigError(f"{what} must be an integer in [{lo}, {hi}], got {v!r}")
        return v

    return conv


def _float(lo: float, hi: float, lo_open: bool = False) -> Callable[[Any, str], float]:
    def conv(v: Any, what: str) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ConfigError(f"{what} must be a number, got {v!r}")
        if v < lo or v > hi or (lo_open and v == lo):
            raise ConfigError(f"{what} must be in {'(' if lo_open else '['}{lo}, {hi}], got {v!r}")
        return float(v)

    return conv


def _bool(v: Any, what: str) -> bool:
    if not isinstance(v, bool):
        raise ConfigError(f"{what} must be true or false, got {v!r}")
    return v


def _size(v: Any, what: str) -> int:
    return parse_size(v, what)


def _duration(v: Any, what: str) -> float:
    return parse_duration(v, what)


def _measure_or(conv: Callable[[Any, str], float]) -> Callable[[Any, str], float | None]:
    def f(v: Any, what: str) -> float | None:
        return None if v == "measure" else conv(v, what)

    return f


def _windows(v: Any, what: str) -> tuple[tuple[float, float], ...]:
    if not isinstance(v, list) or not v or not all(isinstance(w, list) and len(w) == 2 for w in v):
        raise ConfigError(f"{what} must be a list of [start, end] pairs, e.g. [[\"0 s\", \"2 h\"], [\"3 h\", \"1 d\"]]")
    out = tuple((parse_duration(a, what), math.inf if b == "inf" else parse_duration(b, what)) for a, b in v)
    Availability(windows=out)  # validates order
    return out


def _shares(v: Any, what: str) -> tuple[tuple[str, float], ...]:
    if not isinstance(v, dict) or not v:
        raise ConfigError(f"{what} must be a table of name = share, e.g. {{ \"lte-good\" = 0.7, \"3g-driving\" = 0.3 }}")
    out = []
    for k, s in v.items():
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not (s > 0 and math.isfinite(s)):
            raise ConfigError(f"{what}: share of {k!r} must be a positive number, got {s!r}")
        out.append((str(k), float(s)))
    return tuple(out)


def repo_root() -> Path | None:
    """The edge-sdk checkout (folder holding ``datasets/``): $EDGE_SDK_REPO, else found above this package."""
    env = os.environ.get(REPO_ENV)
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "datasets").is_dir() and (parent / "pyproject.toml").is_file():
            return parent
    return None


def resolve_path(text: str, base: Path, what: str) -> Path:
    """``repo:<p>`` -> repository root / p; relative -> base / p; absolute stays."""
    if text.startswith("repo:"):
        root = repo_root()
        if root is None:
            raise ConfigError(f"{what}: {text!r} is relative to the edge-sdk repository, which was not found; "
                              f"set {REPO_ENV} to the checkout or give an absolute path")
        return root / text[len("repo:"):]
    p = Path(text).expanduser()
    return p if p.is_absolute() else base / p


def _link_presets() -> dict[str, Any]:
    text = resources.files("edge_sdk.fleet").joinpath("presets/links.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def _parse_link(name: str, data: Any, base: Path, err: Callable[[str], ScenarioError],
                presets: Mapping[str, Any], where: str) -> LinkModel:
    t = _Table(data, where, err)
    merged: dict[str, Any] = {}
    preset = t.get("preset", _str, None)
    if preset is not None:
        if preset not in presets:
            raise err(f"{where} preset: unknown link preset {preset!r}; known: {', '.join(sorted(presets))}")
        merged.update(presets[preset])
    merged.update({k: v for k, v in t.data.items() if k != "preset"})
    t = _Table(merged, where, err)
    t.get("description", _str, "")
    source = t.get("source", _str, "")
    target = None
    if t.has("target"):
        g = _Table(t.get("target", lambda v, w: v), f"{where} target", err)
        stats = {k: g.get(k, lambda v, w: parse_rate(v, w), required=True) for k in ("mean", "p10", "p50", "p90")}
        target = TraceStats(**stats, below_1mbps=g.get("below_1mbps", _float(0.0, 1.0), required=True))
        g.done()
    if t.has("rate") == t.has("trace"):
        raise err(f"{where}: give exactly one of rate = {{p10, p50, p90}} or trace = \"file.csv\"")
    rho = t.get("rho", _float(0.0, 0.999), 0.8)
    if t.has("rate"):
        r = _Table(t.get("rate", lambda v, w: v), f"{where} rate", err)
        q = [r.get(k, lambda v, w: parse_rate(v, w), required=True) for k in ("p10", "p50", "p90")]
        r.done()
        try:
            rate: Any = LognormalRate(q[0], q[1], q[2], rho)
        except ConfigError as exc:
            raise err(f"{where} rate: {exc}") from None
    else:
        path = resolve_path(t.get("trace", _str), base, f"{where} trace")
        try:
            rate = read_trace_csv(path)
        except ConfigError as exc:
            raise err(f"{where} trace: {exc}") from None
    latency = t.get("latency", _duration, 0.05)
    av_raw = t.get("availability", lambda v, w: v, "always")
    if av_raw == "always":
        avail = Availability()
    else:
        a = _Table(av_raw, f"{where} availability", err)
        if a.has("windows"):
            avail = Availability(windows=a.get("windows", _windows))
        else:
            on = a.get("on", _duration, required=True)
            off = a.get("off", _duration, required=True)
            if on <= 0:
                raise err(f"{where} availability on must be > 0 (or write availability = \"always\")")
            avail = Availability(on, off)
        a.done()
    drop = t.get("drop_prob", _float(0.0, 0.99), 0.0)
    t.done()
    try:
        return LinkModel(name, rate, latency, avail, drop, source=source, target=target)
    except ConfigError as exc:
        raise err(str(exc)) from None


def link_presets() -> dict[str, LinkModel]:
    """Every shipped link preset, parsed."""
    presets = _link_presets()

    def err(msg: str) -> ScenarioError:
        return ScenarioError(f"link presets: {msg}")

    return {n: _parse_link(n, d, Path("."), err, {}, f"[{n}]") for n, d in presets.items()}


def preset_names() -> list[str]:
    d = resources.files("edge_sdk.fleet").joinpath("presets/scenarios")
    return sorted(p.name[:-5] for p in d.iterdir() if p.name.endswith(".toml"))


def load_scenario(name_or_path: str | os.PathLike[str]) -> Scenario:
    """A scenario from a TOML file, or a shipped preset by name."""
    text = os.fspath(name_or_path)
    p = Path(text)
    if p.suffix == ".toml" or p.exists():
        if not p.is_file():
            raise ScenarioError(f"scenario {text!r}: no such file; presets: {', '.join(preset_names())}")
        try:
            raw = p.read_bytes()
        except OSError as exc:
            raise ScenarioError(f"scenario {p}: cannot read it ({exc.strerror})") from None
        return parse_scenario(raw, source=str(p), base=p.resolve().parent)
    if text not in preset_names():
        raise ScenarioError(f"unknown scenario {text!r}: not a file, and not a preset ({', '.join(preset_names())})")
    data = resources.files("edge_sdk.fleet").joinpath(f"presets/scenarios/{text}.toml").read_bytes()
    return parse_scenario(data, source=f"preset:{text}", base=Path("."))


MAX_SCENARIO_BYTES = 1 << 20


def parse_scenario(data: bytes, source: str = "<scenario>", base: Path = Path(".")) -> Scenario:
    """Parse and validate scenario TOML bytes; relative paths resolve against ``base``."""

    def err(msg: str) -> ScenarioError:
        return ScenarioError(f"scenario {source}: {msg}")

    if len(data) > MAX_SCENARIO_BYTES:
        raise err(f"file is {len(data)} bytes, more than the {MAX_SCENARIO_BYTES} a scenario may have")
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise err("not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise err(f"not valid TOML: {exc}") from None
    top = _Table(raw, "scenario file", err)

    sc = _Table(top.get("scenario", lambda v, w: v, required=True), "[scenario]", err)
    name = sc.get("name", _str, required=True)
    description = sc.get("description", _str, "")
    devices = sc.get("devices", _int(1, MAX_DEVICES), None)
    seed = sc.get("seed", _int(0, 2**63 - 1), 0)
    sc.done()

    presets = _link_presets()
    links: dict[str, LinkModel] = {}
    custom = top.get("links", lambda v, w: v, {})
    if not isinstance(custom, dict):
        raise err("[links] must be a table of link tables")
    for lname, ldata in custom.items():
        links[lname] = _parse_link(lname, ldata, base, err, presets, f"[links.{lname}]")

    def link_of(lname: str, where: str) -> None:
        if lname in links:
            return
        if lname in presets:
            links[lname] = _parse_link(lname, presets[lname], base, err, {}, f"link preset {lname!r}")
            return
        raise err(f"{where}: unknown link {lname!r}; define [links.{lname}] or use a preset: "
                  f"{', '.join(sorted(presets))}")

    classes_raw = top.get("class", lambda v, w: v, required=True)
    if not isinstance(classes_raw, list) or not classes_raw:
        raise err("needs at least one [[class]] table")
    classes = []
    for i, craw in enumerate(classes_raw):
        c = _Table(craw, f"[[class]] #{i + 1}", err)
        cname = c.get("name", _str, required=True)
        c.where = f"[[class]] {cname!r}"
        if c.has("share") == c.has("count"):
            raise err(f"{c.where}: give exactly one of share (a fraction of the fleet) or count (devices)")
        share = c.get("share", _float(0.0, 1e9, lo_open=True), None)
        count = c.get("count", _int(0, MAX_DEVICES), None)
        if c.has("link") == c.has("links"):
            raise err(f"{c.where}: give exactly one of link = \"name\" or links = {{ name = share, ... }}")
        link_shares = ((c.get("link", _str), 1.0),) if c.has("link") else c.get("links", _shares)
        for lname, _ in link_shares:
            link_of(lname, c.where)
        classes.append(DeviceClass(
            name=cname, share=share, count=count,
            compute_factor=c.get("compute_factor", _float(0.0, 1e6, lo_open=True), 1.0),
            storage_bytes=c.get("storage", _size, required=True),
            budget_bytes=c.get("budget", _size, required=True),
            links=tuple(link_shares),
            resume=c.get("resume", _bool, True),
            poll_interval_s=c.get("poll_interval", _duration, 0.0),
        ))
        c.done()
    names = [c.name for c in classes]
    if len(set(names)) != len(names):
        raise err(f"[[class]] names must be unique, got {names}")
    kinds = {c.share is None for c in classes}
    if len(kinds) > 1:
        raise err("[[class]]: use share in every class or count in every class, not both")
    if classes[0].share is None:
        total = sum(c.count or 0 for c in classes)
        if total == 0:
            raise err("[[class]] counts add up to 0 devices")
        if devices is not None and devices != total:
            raise err(f"[scenario] devices = {devices} but the class counts add up to {total}")
        devices = total
    elif devices is None:
        raise err("[scenario] needs devices = N when classes are given as shares")
    assert devices is not None

    release = _parse_release(top.get("release", lambda v, w: v, required=True), base, err)

    ld = _Table(top.get("local_data", lambda v, w: v, required=True), "[local_data]", err)
    local = LocalDataSpec(pool=resolve_path(ld.get("pool", _str, required=True), base, "[local_data] pool"),
                          samples=ld.get("samples", _int(1, 100_000), 64))
    ld.done()

    cp = _Table(top.get("compute", lambda v, w: v, {}), "[compute]", err)
    compute = ComputeSpec(cp.get("step_time", _measure_or(_duration), None),
                          cp.get("verify_time", _measure_or(_duration), None),
                          cp.get("store_time", _measure_or(_duration), None))
    if compute.step_time_s is not None and not compute.step_time_s > 0:
        raise err("[compute] step_time must be > 0 (or \"measure\")")
    if compute.verify_time_s is not None and compute.verify_time_s < 0:
        raise err("[compute] verify_time must be >= 0 (or \"measure\")")
    cp.done()

    tr = _Table(top.get("transfer", lambda v, w: v, {}), "[transfer]", err)
    transfer = TransferSpec(
        request_overhead_bytes=tr.get("request_overhead", _size, TransferSpec.request_overhead_bytes),
        backoff_s=tr.get("backoff", _duration, TransferSpec.backoff_s),
        backoff_max_s=tr.get("backoff_max", _duration, TransferSpec.backoff_max_s),
        max_retries=tr.get("max_retries", _int(1, 1000), TransferSpec.max_retries),
    )
    tr.done()
    top.done()
    return Scenario(name=name, description=description, devices=devices, seed=seed, classes=tuple(classes),
                    links=links, release=release, local_data=local, compute=compute, transfer=transfer,
                    source=source, raw=raw)


def _parse_release(data: Any, base: Path, err: Callable[[str], ScenarioError]) -> ReleaseSpec:
    r = _Table(data, "[release]", err)
    source = r.get("source", _str, "files")
    if source not in SOURCES:
        raise err(f"[release] source must be one of {SOURCES}, got {source!r}")
    policy = r.get("policy", _str, "best-fit")
    if policy not in POLICIES:
        raise err(f"[release] policy must be one of {POLICIES}, got {policy!r}")
    period = r.get("period", _duration, 86400.0)
    if period <= 0:
        raise err("[release] period must be > 0")
    deadline = r.get("deadline", _duration, period)
    if not 0 < deadline <= period:
        raise err(f"[release] deadline must be in (0, period = {period:g} s], got {deadline:g} s")
    keys = r.get("trusted_keys", lambda v, w: v, [])
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise err("[release] trusted_keys must be a list of public-key file paths")
    tiers: list[TierSpec] = []
    store: Path | None = None
    channel: str | None = None
    if source == "store":
        store = resolve_path(r.get("store", _str, required=True), base, "[release] store")
        channel = r.get("channel", _str, required=True)
        rounds = r.get("rounds", _int(1, 10_000), 1)
        if r.has("tier"):
            raise err("[release] source = \"store\" takes its tiers from the store's manifests; remove [[release.tier]]")
    else:
        tiers_raw = r.get("tier", lambda v, w: v, required=True)
        if not isinstance(tiers_raw, list) or not tiers_raw:
            raise err("[release] needs at least one [[release.tier]]")
        for i, traw in enumerate(tiers_raw):
            t = _Table(traw, f"[[release.tier]] #{i + 1}", err)
            tname = t.get("name", _str, required=True)
            t.where = f"[[release.tier]] {tname!r}"

            def paths(v: Any, what: str) -> tuple[Path, ...]:
                items = [v] if isinstance(v, str) else v
                if not isinstance(items, list) or not items or not all(isinstance(x, str) and x for x in items):
                    raise ConfigError(f"{what} must be a path or a list of paths (one per round)")
                return tuple(resolve_path(x, base, what) for x in items)

            payloads = t.get("payload", paths, required=True)
            graphs = t.get("graph", paths, required=True)
            t.done()
            tiers.append(TierSpec(tname, payloads, graphs))
        tnames = [ts.name for ts in tiers]
        if len(set(tnames)) != len(tnames):
            raise err(f"[[release.tier]] names must be unique, got {tnames}")
        lengths = ({len(ts.payloads) for ts in tiers} | {len(ts.graphs) for ts in tiers}) - {1}
        if len(lengths) > 1:
            raise err(f"[[release.tier]] per-round lists have different lengths {sorted(lengths)}")
        rounds = r.get("rounds", _int(1, 10_000), max(lengths, default=1))
        if any(len(ts.payloads) not in (1, rounds) or len(ts.graphs) not in (1, rounds) for ts in tiers):
            raise err(f"[release] rounds = {rounds} does not match the per-round payload lists")
    fixed = r.get("fixed_tier", _str, None)
    shares = r.get("shares", _shares, ())
    tnames = [ts.name for ts in tiers]
    if policy == "fixed" and (fixed is None or (tiers and fixed not in tnames)):
        raise err(f"[release] policy = \"fixed\" needs fixed_tier = a tier name{f' (one of {tnames})' if tiers else ''}")
    if policy != "fixed" and fixed is not None:
        raise err("[release] fixed_tier is only used with policy = \"fixed\"")
    if policy == "shares":
        if not shares or (tiers and any(n not in tnames for n, _ in shares)):
            raise err("[release] policy = \"shares\" needs shares = { tier = share } over the tier names")
    elif shares:
        raise err("[release] shares is only used with policy = \"shares\"")
    r.done()
    return ReleaseSpec(source=source, tiers=tuple(tiers), rounds=rounds, period_s=period, deadline_s=deadline,
                       policy=policy, fixed_tier=fixed, shares=shares,
                       trusted_keys=tuple(resolve_path(k, base, "[release] trusted_keys") for k in keys),
                       store=store, channel=channel)

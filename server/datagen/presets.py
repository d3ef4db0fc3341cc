"""Generator presets: TOML files that hold every parameter of the TR 38.901 beam-management generator.

One copy: ``datasets/3gpp/presets/*.toml`` in the repository. ``server/datagen/presets`` is a symbolic link to
that folder, so the package (``edge_sdk/server/datagen/presets/*.toml``, package data; a built wheel holds the
files themselves) and the repository read the same files. A preset is found by name or by path.

Every key is required and unknown keys are rejected (:class:`~edge_sdk.errors.ConfigError` naming the key), so a
preset cannot silently omit or misspell a parameter. Sources of the values: datasets/3gpp/README.md.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from edge_sdk.errors import ConfigError

#: the shipped presets (in a checkout: a link to datasets/3gpp/presets)
PRESET_DIR = Path(__file__).parent / "presets"
#: longest BM-Case2 trajectory (positions per spatially consistent snapshot)
MAX_TRACK_STEPS = 512


@dataclass(frozen=True)
class ScenarioCfg:
    """TR 38.901 deployment (Table 7.2-1) and UE drop parameters."""

    model: str  # "uma" | "umi"
    spec_version: str
    carrier_frequency_hz: float
    isd_m: float
    min_bs_ut_dist_m: float
    bs_height_m: float
    ut_height_m: float
    indoor_probability: float
    o2i_model: str  # "low" | "high"
    enable_shadow_fading: bool
    ue_speed_kmh: float
    ue_orientation: str  # "random" | "facing_bs"
    bs_downtilt_deg: float


@dataclass(frozen=True)
class LinkCfg:
    """Link budget: per-RE transmit power and (optional) per-RE noise."""

    tx_power_dbm: float
    n_subcarriers: int
    subcarrier_spacing_hz: float
    ue_noise_figure_db: float
    thermal_noise_dbm_per_hz: float
    include_noise: bool

    @property
    def re_power_dbm(self) -> float:
        """Transmit power per resource element, dBm: P_tx - 10 log10(N_sc)."""
        return self.tx_power_dbm - 10.0 * math.log10(self.n_subcarriers)

    @property
    def re_noise_dbm(self) -> float:
        """Noise power per resource element at the UE, dBm: -174 + 10 log10(SCS) + NF."""
        return self.thermal_noise_dbm_per_hz + 10.0 * math.log10(self.subcarrier_spacing_hz) + self.ue_noise_figure_db


@dataclass(frozen=True)
class GnbArrayCfg:
    """gNB panel (TR 38.901 Sec. 7.3, single polarization)."""

    rows: int
    cols: int
    spacing_wavelengths: float
    element_pattern: str  # "38.901"


@dataclass(frozen=True)
class GnbBeamsCfg:
    """Set A DFT grid: ``n_az`` azimuths (uniform in sin) x ``zenith_deg`` rows."""

    n_az: int
    sin_az_max: float
    zenith_deg: tuple[float, ...]


@dataclass(frozen=True)
class UeArrayCfg:
    """UE panels and element pattern (TR 38.802 Table A.2.1-8 when ``element_pattern == "38.802"``)."""

    n_panels: int
    rows: int
    cols: int
    spacing_wavelengths: float
    element_pattern: str  # "38.802" | "38.901" | "omni"
    element_hpbw_deg: float
    element_gain_dbi: float
    element_sla_db: float
    element_max_att_db: float


@dataclass(frozen=True)
class UeBeamsCfg:
    """Rx DFT beams per UE panel (uniform in sin of azimuth, fixed zenith)."""

    n_beams_per_panel: int
    sin_az_max: float
    zenith_deg: float


@dataclass(frozen=True)
class TrajectoryCfg:
    """BM-Case2 UE mobility (TR 38.843) and the channel time-evolution simplification."""

    speed_kmh: float
    time_step_s: float
    steps_per_trajectory: int
    segment_mean_s: float
    heading_change_max_deg: float
    time_evolution: str  # "procedure_a" | "spatial_consistency" (see BeamChannel.track)
    blockage: str  # "none" | "A-portrait" | "A-landscape" (TR 38.901 Sec. 7.6.4.1 blockage model A)


@dataclass(frozen=True)
class Preset:
    """A complete generator configuration (one TOML file)."""

    name: str
    description: str
    case: str  # "case1" | "case2"
    scenario: ScenarioCfg
    link: LinkCfg
    gnb_array: GnbArrayCfg
    gnb_beams: GnbBeamsCfg
    ue_array: UeArrayCfg
    ue_beams: UeBeamsCfg
    trajectory: TrajectoryCfg | None = None

    @property
    def n_tx(self) -> int:
        """Set A size."""
        return self.gnb_beams.n_az * len(self.gnb_beams.zenith_deg)

    @property
    def n_rx(self) -> int:
        """Rx beams over all UE panels."""
        return self.ue_array.n_panels * self.ue_beams.n_beams_per_panel

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-serialisable; tuples become lists)."""
        d = asdict(self)
        if d["trajectory"] is None:
            del d["trajectory"]
        d["gnb_beams"]["zenith_deg"] = list(d["gnb_beams"]["zenith_deg"])
        return d


_SECTIONS = {
    "scenario": ScenarioCfg,
    "link": LinkCfg,
    "gnb_array": GnbArrayCfg,
    "gnb_beams": GnbBeamsCfg,
    "ue_array": UeArrayCfg,
    "ue_beams": UeBeamsCfg,
    "trajectory": TrajectoryCfg,
}
_TOP = ("name", "description", "case")
_CHOICES = {
    ("scenario", "model"): ("uma", "umi"),
    ("scenario", "o2i_model"): ("low", "high"),
    ("scenario", "ue_orientation"): ("random", "facing_bs"),
    ("scenario", "spec_version"): ("16.1", "19.2"),
    ("gnb_array", "element_pattern"): ("38.901",),
    ("ue_array", "element_pattern"): ("38.802", "38.901", "omni"),
    ("trajectory", "blockage"): ("none", "A-portrait", "A-landscape"),
    ("trajectory", "time_evolution"): ("procedure_a", "spatial_consistency"),
}


def _coerce(where: str, value: Any, typ: Any) -> Any:
    """Check ``value`` against the annotation string ``typ`` of a dataclass field."""
    t = str(typ)
    if t == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"preset key {where} must be true/false, got {value!r}")
        return value
    if t == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"preset key {where} must be an integer, got {value!r}")
        return value
    if t == "float":
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ConfigError(f"preset key {where} must be a finite number, got {value!r}")
        return float(value)
    if t == "str":
        if not isinstance(value, str):
            raise ConfigError(f"preset key {where} must be a string, got {value!r}")
        return value
    if t == "tuple[float, ...]":
        if not isinstance(value, list) or not value:
            raise ConfigError(f"preset key {where} must be a non-empty list of numbers, got {value!r}")
        return tuple(_coerce(f"{where}[{i}]", v, "float") for i, v in enumerate(value))
    raise AssertionError(t)  # pragma: no cover - static table


def _section(name: str, raw: Any, cls: type) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"preset section [{name}] must be a table")
    known = {f.name: f.type for f in fields(cls)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {unknown} in preset section [{name}]; allowed keys: {sorted(known)} (check the spelling)"
        )
    missing = sorted(set(known) - set(raw))
    if missing:
        raise ConfigError(f"preset section [{name}] is missing key(s) {missing}; every parameter must be given")
    vals = {k: _coerce(f"{name}.{k}", raw[k], known[k]) for k in known}
    for (sec, key), choices in _CHOICES.items():
        if sec == name and vals[key] not in choices:
            raise ConfigError(f"preset key {name}.{key} = {vals[key]!r} is not one of {choices}")
    return cls(**vals)


def _validate(p: Preset) -> None:
    s, g, u = p.scenario, p.gnb_beams, p.ue_beams
    if not 0.0 <= s.indoor_probability <= 1.0:
        raise ConfigError(f"scenario.indoor_probability must be in [0, 1], got {s.indoor_probability}")
    positive = {
        "scenario.carrier_frequency_hz": s.carrier_frequency_hz,
        "scenario.isd_m": s.isd_m,
        "scenario.bs_height_m": s.bs_height_m,
        "scenario.ut_height_m": s.ut_height_m,
        "link.n_subcarriers": p.link.n_subcarriers,
        "link.subcarrier_spacing_hz": p.link.subcarrier_spacing_hz,
        "gnb_array.rows": p.gnb_array.rows,
        "gnb_array.cols": p.gnb_array.cols,
        "gnb_array.spacing_wavelengths": p.gnb_array.spacing_wavelengths,
        "gnb_beams.n_az": g.n_az,
        "ue_array.n_panels": p.ue_array.n_panels,
        "ue_array.rows": p.ue_array.rows,
        "ue_array.cols": p.ue_array.cols,
        "ue_array.spacing_wavelengths": p.ue_array.spacing_wavelengths,
        "ue_beams.n_beams_per_panel": u.n_beams_per_panel,
    }
    for k, v in positive.items():
        if v <= 0:
            raise ConfigError(f"preset key {k} must be > 0, got {v}")
    if not 0 <= s.min_bs_ut_dist_m < s.isd_m / 2:
        raise ConfigError("scenario.min_bs_ut_dist_m must be in [0, isd_m/2)")
    if p.ue_array.n_panels not in (1, 2):
        raise ConfigError("ue_array.n_panels must be 1 or 2 (two panels are modelled back to back)")
    for k, v in (("gnb_beams.sin_az_max", g.sin_az_max), ("ue_beams.sin_az_max", u.sin_az_max)):
        if not 0.0 <= v <= 1.0:
            raise ConfigError(f"preset key {k} must be in [0, 1], got {v}")
    for z in (*g.zenith_deg, u.zenith_deg):
        if not 0.0 < z < 180.0:
            raise ConfigError(f"beam zenith angles must be in (0, 180) deg, got {z}")
    if p.n_tx < 2 or p.n_tx > 1024 or p.n_rx > 256:
        raise ConfigError(f"preset gives {p.n_tx} Tx x {p.n_rx} Rx beams; supported 2..1024 Tx, <= 256 Rx")
    if p.case == "case2":
        t = p.trajectory
        assert t is not None
        for k in ("speed_kmh", "time_step_s", "segment_mean_s"):
            if getattr(t, k) <= 0:
                raise ConfigError(f"preset key trajectory.{k} must be > 0")
        if s.indoor_probability != 0.0:
            raise ConfigError(
                "BM-Case2 presets must set scenario.indoor_probability = 0.0 (trajectories are outdoor; the "
                "time evolution models no O2I loss)"
            )
        if not 2 <= t.steps_per_trajectory <= MAX_TRACK_STEPS:
            raise ConfigError(
                f"trajectory.steps_per_trajectory must be in [2, {MAX_TRACK_STEPS}] (one trajectory is one "
                "spatially consistent snapshot: Sionna factorises a T x T correlation matrix per track)"
            )
        if not 0 <= t.heading_change_max_deg <= 180:
            raise ConfigError("trajectory.heading_change_max_deg must be in [0, 180]")


def parse_preset(raw: dict[str, Any], source: str = "<dict>") -> Preset:
    """Build a :class:`Preset` from a parsed TOML dict; raises :class:`ConfigError` on any problem."""
    if not isinstance(raw, dict):
        raise ConfigError(f"preset {source} must be a TOML table")
    allowed = set(_TOP) | set(_SECTIONS)
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in preset {source}; allowed top-level keys: {sorted(allowed)}")
    for k in _TOP:
        if not isinstance(raw.get(k), str):
            raise ConfigError(f"preset {source} needs a string {k!r}")
    case = raw["case"]
    if case not in ("case1", "case2"):
        raise ConfigError(f"preset {source}: case must be 'case1' or 'case2', got {case!r}")
    need = [s for s in _SECTIONS if s != "trajectory"] + (["trajectory"] if case == "case2" else [])
    if case == "case1" and "trajectory" in raw:
        raise ConfigError(f"preset {source}: [trajectory] is only allowed for case = 'case2'")
    missing = [s for s in need if s not in raw]
    if missing:
        raise ConfigError(f"preset {source} is missing section(s) {missing}")
    secs = {s: _section(s, raw[s], _SECTIONS[s]) for s in need}
    p = Preset(name=raw["name"], description=raw["description"], case=case, **secs)
    _validate(p)
    return p


def preset_names() -> list[str]:
    """Names of the shipped presets."""
    return sorted(f.stem for f in PRESET_DIR.glob("*.toml"))


def preset_path(name_or_path: str | Path) -> Path:
    """Resolve a preset name (``uma-fr2-case1``) or a path to a ``.toml`` file."""
    s = str(name_or_path)
    p = Path(s)
    if s.endswith(".toml") or p.exists():
        if not p.is_file():
            raise ConfigError(f"preset file {s} does not exist")
        return p
    cand = PRESET_DIR / f"{s}.toml"
    if "/" not in s and cand.is_file():
        return cand
    raise ConfigError(f"unknown preset {s!r}; known presets: {preset_names()} (or give a path to a .toml file)")


def load_preset(name_or_path: str | Path) -> Preset:
    """Load and validate a preset by name or path (raises :class:`ConfigError`)."""
    path = preset_path(name_or_path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"preset {path} is not valid TOML: {exc}") from None
    return parse_preset(raw, str(path))


# --- run arguments of a generation, validated without torch (the parent of a sharded run imports only this
# module: torch + Sionna are ~3 s of start-up that only the workers pay, in parallel; server/datagen/shards.py)


def check_device_name(device: str) -> str:
    """``device`` must be ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (whether it exists is checked by
    :func:`.generate.resolve_device` where the rows are made); returns it unchanged."""
    if isinstance(device, str) and (device in ("auto", "cpu", "cuda")
                                    or (device.startswith("cuda:") and device[5:].isdigit())):
        return device
    raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")


def normalise_args(p: Preset, samples: int, seed: int, batch: int) -> int:
    """Validate the run arguments; returns the effective chunk size (BM-Case2: whole trajectories)."""
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ConfigError(f"samples must be a positive integer, got {samples!r}")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ConfigError(f"batch must be a positive integer, got {batch!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    if p.case == "case2":
        assert p.trajectory is not None
        steps = p.trajectory.steps_per_trajectory
        if samples % steps:
            raise ConfigError(
                f"BM-Case2 samples must be a multiple of steps_per_trajectory={steps} (rows = trajectories x "
                f"steps); e.g. --samples {max(1, samples // steps) * steps}"
            )
        batch = max(steps, batch - batch % steps)
    return batch

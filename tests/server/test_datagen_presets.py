"""Preset loading: shipped presets parse, every key is required, unknown keys are rejected, copies agree."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path

import pytest

pytest.importorskip("torch")

from edge_sdk.errors import ConfigError  # noqa: E402
from edge_sdk.server.datagen import presets as P  # noqa: E402

NAMES = ["uma-fr2-case1", "uma-fr2-case2", "umi-fr2-case1", "uma-fr2-case1-64beams", "uma-fr2-case2-60kmh",
         "uma-fr2-case2-90kmh", "uma-fr2-case2-drops"]


def _raw(name: str) -> dict:
    return tomllib.loads((P.PRESET_DIR / f"{name}.toml").read_text())


@pytest.mark.parametrize("name", NAMES)
def test_shipped_presets_load(name: str) -> None:
    p = P.load_preset(name)
    assert p.name == name
    assert p.n_rx == 8
    assert p.n_tx == (64 if "64" in name else 32)
    assert abs(p.link.re_power_dbm - 11.80) < 0.01  # 40 dBm - 10 log10(660)
    assert abs(p.link.re_noise_dbm - (-113.2)) < 0.05  # -174 + 10 log10(120e3) + 10
    assert (p.trajectory is not None) == (p.case == "case2")


@pytest.mark.parametrize("name", NAMES)
def test_every_key_is_used(name: str) -> None:
    """Every TOML key maps to a dataclass field and round-trips through to_dict()."""
    raw = _raw(name)
    d = P.load_preset(name).to_dict()
    assert set(raw) == set(d)
    for sec, val in raw.items():
        if isinstance(val, dict):
            assert set(val) == set(d[sec]), sec
            for k, v in val.items():
                assert d[sec][k] == v, (sec, k)


def test_unknown_key_rejected() -> None:
    raw = _raw("uma-fr2-case1")
    raw["scenario"]["isd"] = 200.0
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['isd'\].*\[scenario\]"):
        P.parse_preset(raw)
    raw = _raw("uma-fr2-case1")
    raw["extra_section"] = {}
    with pytest.raises(ConfigError, match="unknown key"):
        P.parse_preset(raw)


def test_missing_key_and_bad_values_rejected() -> None:
    raw = _raw("uma-fr2-case1")
    del raw["link"]["tx_power_dbm"]
    with pytest.raises(ConfigError, match="missing key.*tx_power_dbm"):
        P.parse_preset(raw)
    for sec, key, bad, msg in [
        ("scenario", "indoor_probability", 1.5, "indoor_probability"),
        ("scenario", "model", "rma", "not one of"),
        ("gnb_beams", "zenith_deg", [], "non-empty list"),
        ("gnb_array", "rows", 2.5, "integer"),
        ("link", "include_noise", 1, "true/false"),
    ]:
        raw = copy.deepcopy(_raw("uma-fr2-case1"))
        raw[sec][key] = bad
        with pytest.raises(ConfigError, match=msg):
            P.parse_preset(raw)
    raw = _raw("uma-fr2-case1")
    raw["case"] = "case2"
    with pytest.raises(ConfigError, match="missing section"):
        P.parse_preset(raw)
    raw = _raw("uma-fr2-case2")
    raw["scenario"]["indoor_probability"] = 0.8
    with pytest.raises(ConfigError, match="outdoor"):
        P.parse_preset(raw)


def test_unknown_name_and_path(tmp_path) -> None:
    with pytest.raises(ConfigError, match="unknown preset 'nope'.*uma-fr2-case1"):
        P.load_preset("nope")
    f = tmp_path / "x.toml"
    f.write_text("name = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        P.load_preset(f)
    f.write_text((P.PRESET_DIR / "umi-fr2-case1.toml").read_text())
    assert P.load_preset(str(f)).scenario.model == "umi"


def test_one_copy_of_the_presets() -> None:
    """The package's preset folder is the repository's datasets/3gpp/presets (a link), not a second copy."""
    repo = Path(__file__).resolve().parents[2] / "datasets" / "3gpp" / "presets"
    assert P.PRESET_DIR.resolve() == repo.resolve()
    assert {f"{n}.toml" for n in NAMES} <= {f.name for f in repo.glob("*.toml")}
    assert set(P.preset_names()) == {f.stem for f in repo.glob("*.toml")}
    assert not list(P.PRESET_DIR.parent.glob("presets_*.toml"))

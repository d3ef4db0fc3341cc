"""The torch-free name list (edge_sdk.catalog) that the CLI offers and the docs show equals the server's
registries: registering a plug-in without listing it (or the reverse) fails here."""

from __future__ import annotations

import click
import pytest

pytest.importorskip("torch")

from edge_sdk import catalog  # noqa: E402
from edge_sdk.server.adq import METHODS as ADQ_METHODS  # noqa: E402
from edge_sdk.server.adq.allocation import ALLOCATORS  # noqa: E402
from edge_sdk.server.adq.pruning import PRUNERS  # noqa: E402
from edge_sdk.server.distill import BASELINES, MATCHERS, method_names, resolve_method  # noqa: E402
from edge_sdk.server.torch_quant import QUANTIZERS  # noqa: E402


def test_catalog_equals_the_registries():
    assert tuple(method_names()) == catalog.DISTILL_METHODS
    # every plug-in module registers exactly the names the catalog says it does (items() imports them all)
    assert [n for n, _ in MATCHERS.items()] == list(catalog.DISTILL_HOSTS)
    assert [n for n, _ in BASELINES.items()] == sorted(catalog.DISTILL_BASELINES)
    assert tuple(MATCHERS.names()) == catalog.DISTILL_HOSTS
    assert all(resolve_method(a) == t and t in method_names() for a, t in catalog.DISTILL_ALIASES.items())
    assert tuple(ADQ_METHODS.names()) == catalog.QUANTIZE_METHODS
    assert tuple(QUANTIZERS.names()) == tuple(sorted((*catalog.QUANTIZERS, *catalog.V2_QUANTIZERS)))
    assert tuple(PRUNERS.names()) == catalog.PRUNERS
    assert tuple(ALLOCATORS.names()) == catalog.ALLOCATIONS


def _choices(cmd: click.Command, name: str) -> set[str]:
    (opt,) = [p for p in cmd.params if p.name == name]
    assert isinstance(opt.type, click.Choice)
    return set(opt.type.choices)


def test_cli_choices_come_from_the_catalog():
    from edge_sdk.cli.distill_cmd import cli as distill
    from edge_sdk.cli.quantize_cmd import cli as quantize

    assert _choices(distill, "method") == {*catalog.DISTILL_METHODS, *catalog.DISTILL_ALIASES, *catalog.DISTILL_SEARCH}
    assert _choices(distill, "quantizer") == {*catalog.QUANTIZERS, *catalog.V2_QUANTIZERS, *catalog.RAW_KINDS}
    assert _choices(quantize, "method") == set(catalog.QUANTIZE_METHODS)
    assert _choices(quantize, "prune") == set(catalog.PRUNERS)
    assert _choices(quantize, "allocation") == set(catalog.ALLOCATIONS)


def test_every_host_is_a_matcher_and_registered_once():
    from edge_sdk.server.distill.base import Matcher

    assert all(issubclass(cls, Matcher) and cls.name == name for name, cls in MATCHERS.items())
    with pytest.raises(Exception, match="registered twice"):
        MATCHERS.add("dm", MATCHERS.get("dm"))


def test_a_run_loads_only_the_plug_ins_it_uses():
    """The registries import a host's or baseline's module on first use: resolving and running the lookup of
    ``quadd`` (QuADD-MTT) loads mtt.py and none of the other hosts or the coreset baselines (checked in a fresh
    interpreter)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from edge_sdk.server.distill.family import method_fn\n"
        "method_fn('quadd')\n"
        "print(sorted(m for m in sys.modules if m.startswith('edge_sdk.server.distill.') or m == 'edge_sdk.server.coresets'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = eval(out.strip().splitlines()[-1])
    assert "edge_sdk.server.distill.mtt" in loaded
    for unused in ("dc", "dm", "kip", "baselines", "coreset_methods"):
        assert f"edge_sdk.server.distill.{unused}" not in loaded
    assert "edge_sdk.server.coresets" not in loaded


def test_registry_imports_a_plug_in_on_first_lookup(tmp_path, monkeypatch):
    from edge_sdk.errors import ConfigError
    from edge_sdk.registry import Registry

    reg: Registry[int] = Registry("widget", modules={"a": "plug_a", "b": "plug_b"})
    (tmp_path / "plug_a.py").write_text("from test_reg_target import REG\nREG.add('a', 1)\n")
    (tmp_path / "plug_b.py").write_text("# registers nothing\n")
    (tmp_path / "test_reg_target.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    import test_reg_target

    test_reg_target.REG = reg  # type: ignore[attr-defined]
    assert reg.names() == ["a", "b"] and "a" in reg and len(reg) == 2  # nothing imported yet
    assert reg.get("a") == 1
    with pytest.raises(ConfigError, match="did not register"):
        reg.get("b")
    with pytest.raises(ConfigError, match="unknown widget 'c'; available: a, b"):
        reg.get("c")

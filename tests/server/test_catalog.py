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
from edge_sdk.server.distill import MATCHERS, method_names, resolve_method  # noqa: E402
from edge_sdk.server.torch_quant import QUANTIZERS  # noqa: E402


def test_catalog_equals_the_registries():
    assert tuple(method_names()) == catalog.DISTILL_METHODS
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

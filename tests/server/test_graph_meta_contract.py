"""The server's graph self-description (TrainGraphSpec.to_meta) is what the device's schema (edge_sdk.graphmeta)
accepts, with the same naming rules, for every optimizer and kind of group."""

from __future__ import annotations

import pytest
from edge_sdk.server.onnx_export import layout

from edge_sdk import codecs, graphmeta
from edge_sdk.modelspec import ModelSpec


def test_constants_are_the_same():
    assert (layout.GRAPH_FORMAT, layout.GRAPH_VERSION, layout.META_KEY) == (
        graphmeta.GRAPH_FORMAT, graphmeta.SUPPORTED_VERSIONS[-1], graphmeta.META_KEY)
    assert layout.HYPER_NAMES == graphmeta.HYPER_NAMES and layout.STATE_SUFFIXES == graphmeta.STATE_SUFFIXES
    assert tuple(layout.OPTIMIZERS) == graphmeta.OPTIMIZERS and tuple(layout.ROLES) == graphmeta.ROLES


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("soft", [False, True])
def test_server_meta_parses_on_the_device(optimizer, soft):
    model = ModelSpec(input_dim=6, num_classes=5, hidden=(7,))
    groups = [layout.GraphGroup(f"g{i}", kind, codecs.ALLOWED_BITS[kind][-1], 6 if kind != "none" else 6,
                                per_feature=(kind == "uniform_clip"))
              for i, kind in enumerate(codecs.QUANTIZER_KINDS)]
    if soft:
        groups.append(layout.GraphGroup("soft", "codebook", 2, 5, role="soft_labels"))
    spec = layout.TrainGraphSpec(model=model, groups=tuple(groups), optimizer=optimizer)
    gm = graphmeta.GraphMeta.from_json(spec.meta_json())
    assert gm.model == model and gm.optimizer == optimizer and gm.has_soft == soft
    assert list(gm.inputs) == spec.input_names() == gm.expected_inputs()
    assert list(gm.outputs) == spec.output_names() == gm.expected_outputs()

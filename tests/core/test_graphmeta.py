"""edge_sdk.graphmeta: the graph self-description the server writes (TrainGraphSpec.to_meta) is what the device's
schema (GraphMeta) accepts, with the same naming rules, for every optimizer, variant and kind of group."""

from __future__ import annotations

import pytest

from edge_sdk import codecs, graphmeta
from edge_sdk.modelspec import ModelSpec


def test_versions_and_variants():
    assert graphmeta.SUPPORTED_VERSIONS == (1, 2) and graphmeta.GRAPH_VERSION == 2
    assert graphmeta.VERSION_VARIANT == {1: "step", 2: "epoch"}
    assert set(graphmeta.VARIANTS) == set(graphmeta.VARIANT_VERSIONS)


@pytest.mark.parametrize("variant", ["step", "epoch"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("smoothing", [False, True])
def test_server_meta_parses_on_the_device(optimizer, soft, variant, smoothing):
    model = ModelSpec(input_dim=6, num_classes=5, hidden=(7,))
    groups = [graphmeta.GraphGroup(f"g{i}", kind, codecs.ALLOWED_BITS[kind][-1], 6 if kind != "none" else 6,
                                per_feature=(kind == "uniform_clip"))
              for i, kind in enumerate(codecs.QUANTIZER_KINDS)]
    if soft:
        groups.append(graphmeta.GraphGroup("soft", "codebook", 2, 5, role="soft_labels"))
    spec = graphmeta.TrainGraphSpec(model=model, groups=tuple(groups), optimizer=optimizer, variant=variant,
                                    label_smoothing=smoothing)
    gm = graphmeta.GraphMeta.from_json(spec.meta_json())
    assert gm.variant == variant and gm.label_smoothing == smoothing
    assert ("label_smoothing" in gm.inputs) == smoothing == ("label_smoothing" in spec.to_meta())
    assert gm.model == model and gm.optimizer == optimizer and gm.has_soft == soft
    assert list(gm.inputs) == spec.input_names() == gm.expected_inputs()
    assert list(gm.outputs) == spec.output_names() == gm.expected_outputs()


def test_label_smoothing_key_is_optional_typed_and_matches_the_inputs():
    """Graphs without label smoothing keep the 0.2 description (no key); the key must be a bool and the inputs must
    follow it (a graph that says it smooths labels but lacks the input, or the reverse, is refused)."""
    import json

    from edge_sdk.errors import SchemaError

    model = ModelSpec(input_dim=6, num_classes=5, hidden=(7,))
    groups = (graphmeta.GraphGroup("a", "codebook", 4, 6),)
    plain = graphmeta.TrainGraphSpec(model=model, groups=groups, optimizer="adam", variant="epoch").to_meta()
    smooth = graphmeta.TrainGraphSpec(model=model, groups=groups, optimizer="adam", variant="epoch",
                                      label_smoothing=True).to_meta()
    assert "label_smoothing" not in plain and smooth["label_smoothing"] is True
    with pytest.raises(SchemaError, match="label_smoothing"):
        graphmeta.GraphMeta.from_json(json.dumps(dict(smooth, label_smoothing="yes")))
    with pytest.raises(SchemaError, match="naming rules"):
        graphmeta.GraphMeta.from_json(json.dumps(dict(plain, label_smoothing=True)))
    with pytest.raises(SchemaError, match="naming rules"):
        graphmeta.GraphMeta.from_json(json.dumps({k: v for k, v in smooth.items() if k != "label_smoothing"}))


def test_epoch_meta_fields_are_checked():
    """A version-2 description must carry variant/theta_size/per_step_hyper, with the model's parameter count;
    a version-1 description must not."""
    import json

    from edge_sdk.errors import SchemaError

    model = ModelSpec(input_dim=6, num_classes=5, hidden=(7,))
    groups = (graphmeta.GraphGroup("a", "codebook", 4, 6),)
    meta = graphmeta.TrainGraphSpec(model=model, groups=groups, optimizer="adam", variant="epoch").to_meta()
    for key, bad in (("theta_size", model.num_params() + 1), ("variant", "step"), ("per_step_hyper", ["lr"])):
        with pytest.raises(SchemaError, match=key):
            graphmeta.GraphMeta.from_json(json.dumps(dict(meta, **{key: bad})))
    with pytest.raises(SchemaError, match="lacks"):
        graphmeta.GraphMeta.from_json(json.dumps({k: v for k, v in meta.items() if k != "theta_size"}))
    v1 = graphmeta.TrainGraphSpec(model=model, groups=groups, optimizer="adam", variant="step").to_meta()
    with pytest.raises(SchemaError, match="unknown"):
        graphmeta.GraphMeta.from_json(json.dumps(dict(v1, variant="step")))
    with pytest.raises(SchemaError, match="naming rules"):  # v1 names under a v2 header
        graphmeta.GraphMeta.from_json(json.dumps(dict(meta, inputs=v1["inputs"])))

"""edge_sdk.modelspec: ModelSpec (seeded init, batch order) and TrainRecipe (validation, the stored form,
schedules and the batch rule)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_sdk.errors import ConfigError, SchemaError
from edge_sdk.modelspec import RECIPE_VERSION, ModelSpec, TrainRecipe, epoch_order, init_params, iter_batches


def test_init_is_deterministic_and_bounded() -> None:
    spec = ModelSpec(input_dim=8, num_classes=32, hidden=(16, 16))
    a, b, c = init_params(spec, 1), init_params(spec, 1), init_params(spec, 2)
    assert list(a) == [n for n, _ in spec.param_shapes()]
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
        assert a[k].dtype == np.float32
    assert not np.array_equal(a["fc0.weight"], c["fc0.weight"])
    assert np.abs(a["fc0.weight"]).max() <= 1 / np.sqrt(8)
    assert np.abs(a["fc1.bias"]).max() <= 1 / np.sqrt(16)
    assert spec.num_params() == sum(v.size for v in a.values())


def test_convnet_shapes_and_roundtrip() -> None:
    spec = ModelSpec(kind="convnet", in_shape=(1, 8, 8), num_classes=10, width=8, depth=2)
    p = init_params(spec, 0)
    assert p["fc.weight"].shape == (10, 8 * 2 * 2)
    assert np.all(p["norm0.weight"] == 1) and np.all(p["norm1.bias"] == 0)
    assert ModelSpec.from_dict(spec.to_dict()) == spec


def test_bad_specs() -> None:
    with pytest.raises(ConfigError):
        ModelSpec(kind="resnet")
    with pytest.raises(ConfigError):
        ModelSpec(kind="convnet")
    with pytest.raises(ConfigError):
        ModelSpec.from_dict({"kind": "mlp"})


def test_epoch_order_is_a_seeded_permutation() -> None:
    o = epoch_order(100, 3, 0)
    assert sorted(o.tolist()) == list(range(100))
    np.testing.assert_array_equal(o, epoch_order(100, 3, 0))
    assert not np.array_equal(o, epoch_order(100, 3, 1))


# --- TrainRecipe ---

recipes = st.builds(
    TrainRecipe,
    optimizer=st.sampled_from(["sgd", "adam"]),
    lr=st.floats(1e-6, 10.0),
    schedule=st.sampled_from(["constant", "cosine", "step"]),
    steps=st.integers(1, 10**6),
    batch_size=st.integers(1, 4096),
    momentum=st.floats(0.0, 1.0, exclude_max=True),
    weight_decay=st.floats(0.0, 1.0),
    beta1=st.floats(0.0, 0.999),
    beta2=st.floats(0.0, 0.9999),
    eps=st.floats(1e-12, 1.0),
    decay_every=st.integers(1, 10**6),
    gamma=st.floats(0.0, 10.0, exclude_min=True),
    soft_weight=st.floats(0.0, 1.0),
)


@settings(max_examples=200, deadline=None)
@given(recipes)
def test_stored_form_round_trips_through_json(r):
    d = r.to_dict()
    assert d["version"] == RECIPE_VERSION
    assert TrainRecipe.from_dict(json.loads(json.dumps(d))) == r
    stored = r.to_payload()
    assert TrainRecipe.from_dict(json.loads(json.dumps(stored))) == r
    assert set(stored) <= set(d) and stored["version"] == RECIPE_VERSION


def test_stored_form_keeps_only_what_differs():
    assert TrainRecipe().to_payload() == {"version": 1}
    assert TrainRecipe(steps=3000, optimizer="adam").to_payload() == {"version": 1, "steps": 3000, "optimizer": "adam"}


def test_label_smoothing_is_stored_only_when_used():
    """label_smoothing 0 (the default) leaves the stored form, and so the payload bytes, as edge-sdk 0.2 wrote them;
    a recipe that smooths labels stores the key, which a 0.2 runtime refuses as unknown instead of ignoring."""
    assert "label_smoothing" not in TrainRecipe(steps=3000).to_payload()
    r = TrainRecipe(optimizer="adam", label_smoothing=0.2)
    assert r.to_payload()["label_smoothing"] == 0.2 and TrainRecipe.from_dict(r.to_payload()) == r
    assert TrainRecipe.from_dict({"version": 1}).label_smoothing == 0.0


def test_defaults_are_the_server_evaluation_recipe():
    r = TrainRecipe()
    assert (r.optimizer, r.lr, r.schedule, r.steps, r.batch_size, r.momentum, r.weight_decay) == (
        "sgd", 0.05, "constant", 2000, 128, 0.9, 5e-4)
    a = TrainRecipe.defaults("adam")
    assert a.optimizer == "adam" and a.lr == 1e-3 and a.weight_decay == 0.0


@pytest.mark.parametrize("kw,msg", [
    ({"optimizer": "rmsprop"}, "optimizer"),
    ({"schedule": "linear"}, "schedule"),
    ({"steps": 0}, "steps"),
    ({"steps": 2.5}, "integer"),
    ({"steps": True}, "integer"),
    ({"batch_size": 1 << 21}, "batch_size"),
    ({"lr": 0.0}, "lr"),
    ({"lr": math.inf}, "finite"),
    ({"lr": "0.1"}, "recipe.lr must be a number"),
    ({"gamma": 0.0}, "recipe.gamma must be > 0"),
    ({"momentum": 1.0}, "recipe.momentum must be < 1"),
    ({"momentum": 1.5}, "momentum"),
    ({"beta2": 1.0}, "beta2"),
    ({"eps": 0.0}, "eps"),
    ({"weight_decay": -1.0}, "weight_decay"),
    ({"soft_weight": 2.0}, "soft_weight"),
    ({"label_smoothing": 1.0}, "recipe.label_smoothing must be < 1"),
    ({"label_smoothing": -0.1}, "label_smoothing"),
    ({"decay_every": 0}, "decay_every"),
    ({"optimizer": 3}, "string"),
])
def test_invalid_values_are_config_errors(kw, msg):
    with pytest.raises(ConfigError, match=msg):
        TrainRecipe(**kw)


@pytest.mark.parametrize("d,msg", [
    ({"epochs": 3}, "task.train has no 'version' and key"),
    ({"version": 2}, "task.train.version 2"),
    ({"version": True}, "version True"),
    ({"version": 1, "epochs": 3}, "task.train has unknown key"),
    ({"version": 1, "batch_size": "64"}, "task.train.batch_size must be an integer"),
    ({"version": 1, "batch_size": True}, "task.train.batch_size must be an integer"),
    ("sgd", "JSON object"),
    (None, "JSON object"),
])
def test_from_dict_rejects(d, msg):
    """Every rejection is a SchemaError (a ConfigError) naming the field by its path."""
    with pytest.raises(SchemaError, match=msg):
        TrainRecipe.from_dict(d)


def test_overrides_and_epochs():
    r = TrainRecipe(batch_size=100)
    assert r.with_overrides(lr=None, steps=7).steps == 7 and r.with_overrides(lr=None).lr == r.lr
    with pytest.raises(ConfigError, match="unknown recipe fields"):
        r.with_overrides(epochs=3)
    assert r.steps_per_epoch(250) == 3 and r.for_epochs(4, 250).steps == 12
    assert TrainRecipe(steps=7, batch_size=100).epochs(250) == 3
    with pytest.raises(ConfigError):
        r.for_epochs(0, 250)
    with pytest.raises(ConfigError):
        r.steps_per_epoch(0)


def test_schedules():
    assert TrainRecipe(lr=0.2).lr_at(1999) == 0.2
    c = TrainRecipe(lr=0.2, schedule="cosine", steps=10)
    assert c.lr_at(0) == pytest.approx(0.2) and c.lr_at(5) == pytest.approx(0.1) and c.lr_at(9) < 0.01
    s = TrainRecipe(lr=0.2, schedule="step", decay_every=3, gamma=0.1)
    assert [round(s.lr_at(t), 6) for t in range(7)] == [0.2, 0.2, 0.2, 0.02, 0.02, 0.02, 0.002]


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 60), st.integers(1, 16), st.integers(0, 5), st.integers(0, 40), st.integers(0, 40))
def test_iter_batches_is_the_epoch_order_cut_into_batches(n, bs, seed, a, b):
    start, stop = min(a, b), max(a, b)
    per_epoch = -(-n // bs)
    full = [idx for _, _, idx in iter_batches(n, bs, seed, 0, stop)]
    part = list(iter_batches(n, bs, seed, start, stop))
    assert [t for t, _, _ in part] == list(range(start, stop))
    for t, e, idx in part:
        assert e == t // per_epoch
        np.testing.assert_array_equal(idx, full[t])
        k = t % per_epoch
        np.testing.assert_array_equal(idx, epoch_order(n, seed, e)[k * bs:(k + 1) * bs])


def test_unversioned_recipe_of_0_1_0_servers_still_reads():
    legacy = {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 0.0005, "batch_size": 128,
              "schedule": "constant", "steps": 2000}
    assert TrainRecipe.from_dict(legacy) == TrainRecipe()
    assert TrainRecipe.from_dict({}) == TrainRecipe()

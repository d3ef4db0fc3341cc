from __future__ import annotations

import numpy as np
import pytest

from edge_sdk.errors import ConfigError
from edge_sdk.modelspec import ModelSpec, epoch_order, init_params


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

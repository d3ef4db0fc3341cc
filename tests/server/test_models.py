"""server/models.py: functional forward == nn.Module == functional_call; init == init_params."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from edge_sdk.modelspec import ModelSpec, init_params  # noqa: E402
from edge_sdk.server.models import SpecModel, features, forward, head_names, init_torch_params  # noqa: E402

MLP = ModelSpec(kind="mlp", input_dim=8, num_classes=5, hidden=(16, 12))
CNN = ModelSpec(kind="convnet", input_dim=48, num_classes=4, in_shape=(3, 4, 4), width=6, depth=2)


@pytest.mark.parametrize("spec", [MLP, CNN], ids=["mlp", "convnet"])
def test_init_and_forward_agree(spec):
    p = init_torch_params(spec, 3)
    ref = init_params(spec, 3)
    assert list(p) == [n for n, _ in spec.param_shapes()]
    for k in ref:
        np.testing.assert_array_equal(p[k].numpy(), ref[k])
    m = SpecModel(spec, 3)
    assert list(m.state_dict()) == list(ref)
    x = torch.randn(5, spec.input_dim)
    y = forward(spec, p, x)
    assert y.shape == (5, spec.num_classes)
    torch.testing.assert_close(m(x), y)
    p2 = {k: v + 0.01 for k, v in p.items()}
    torch.testing.assert_close(torch.func.functional_call(m, p2, (x,)), forward(spec, p2, x))
    assert not torch.allclose(forward(spec, p2, x), y)


def test_mlp_matches_manual_numpy():
    p = init_params(MLP, 0)
    x = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    h = np.maximum(x @ p["fc0.weight"].T + p["fc0.bias"], 0)
    h = np.maximum(h @ p["fc1.weight"].T + p["fc1.bias"], 0)
    out = h @ p["fc2.weight"].T + p["fc2.bias"]
    got = forward(MLP, init_torch_params(MLP, 0), torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, out, rtol=1e-5, atol=1e-5)
    assert head_names(MLP) == ("fc2.weight", "fc2.bias")


def test_convnet_is_per_sample_and_accepts_flat_inputs():
    p = init_torch_params(CNN, 1)
    x = torch.randn(6, 3, 4, 4)
    full = forward(CNN, p, x)
    single = forward(CNN, p, x[2:3])
    torch.testing.assert_close(full[2:3], single)  # no BatchNorm: a sample does not depend on its batch
    torch.testing.assert_close(forward(CNN, p, x.reshape(6, -1)), full)
    assert features(CNN, p, x).shape == (6, 6 * 1 * 1)


def test_grad_through_functional_forward():
    p = init_torch_params(MLP, 0, requires_grad=True)
    x = torch.randn(4, 8, requires_grad=True)
    g = torch.func.grad(lambda pp: forward(MLP, pp, x).sum())(p)
    assert set(g) == set(p)
    forward(MLP, p, x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0

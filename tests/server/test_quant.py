"""Torch quantizers (server/torch_quant.py): equal to edge_sdk.codecs, STE gradients, hard forward."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from edge_sdk import codecs  # noqa: E402
from edge_sdk.errors import ConfigError  # noqa: E402
from edge_sdk.server.torch_quant import (  # noqa: E402
    QUANTIZERS,
    allowed_bits,
    apot_magnitudes,
    make_quantizer,
    quantizer_kind,
)

CASES = [("uniform", b, pf) for b in allowed_bits("uniform") for pf in (False, True)]
CASES += [("codebook", b, False) for b in allowed_bits("codebook")]
CASES += [("apot", b, False) for b in allowed_bits("apot")]
CASES += [(k, b, False) for k in ("affine_set", "affine_feature", "affine_sample") for b in allowed_bits(k)]


def _x(seed=0, n=64, d=7):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g) * torch.linspace(0.5, 3.0, d)


@pytest.mark.parametrize("name,bits,pf", CASES)
def test_torch_equals_codecs(name, bits, pf):
    x = _x()
    q = make_quantizer(name, bits, x, per_feature=pf)
    with torch.no_grad():  # move the params away from their data-fitted init, include values outside the range
        for p in q.parameters():
            p.mul_(0.8)
    xt = torch.cat([x, 5 * x[:4]])
    y = q(xt).detach().numpy()
    codes, params = q.encode(xt)
    assert codes.dtype == np.uint8 and codes.max() < (1 << bits)
    ref = codecs.dequantize(*codecs.quantize(xt.numpy(), q.kind, bits, q.export_params())[:1], q.kind, bits, params)
    np.testing.assert_array_equal(y, ref)
    assert q.kind == quantizer_kind(name)


@pytest.mark.parametrize("name,bits", [("uniform", 2), ("uniform", 4), ("codebook", 2), ("apot", 3)])
def test_forward_is_hard_rounding(name, bits):
    x = _x(1)
    q = make_quantizer(name, bits, x)
    y = q(x).detach()
    levels = torch.unique(y)
    assert len(levels) <= (1 << bits)
    if name == "uniform":
        a = q.export_params()["alpha"][0]
        qm = codecs.q_max(bits)
        grid = a * np.arange(-qm, qm + 1, dtype=np.float32) / qm
        # every output is (to float rounding) a grid point and the nearest one to clip(x)
        xc = np.clip(x.numpy(), -a, a)
        nearest = grid[np.abs(xc[..., None] - grid).argmin(-1)]
        np.testing.assert_allclose(y.numpy(), nearest, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name,bits", [("uniform", 2), ("uniform", 3), ("codebook", 2), ("apot", 3)])
def test_ste_gradient_one_inside_zero_outside(name, bits):
    x = _x(2)
    q = make_quantizer(name, bits, x)
    if name == "uniform":
        lo, hi = -float(q.export_params()["alpha"][0]), float(q.export_params()["alpha"][0])
    else:
        lv = q.export_params()["levels"]
        lo, hi = float(lv.min()), float(lv.max())
    xs = torch.tensor([[lo * 3, lo * 0.5, 0.1 * hi, hi * 0.99, hi * 2.0]], requires_grad=True)
    q(xs).sum().backward()
    np.testing.assert_array_equal(xs.grad.numpy(), np.array([[0, 1, 1, 1, 0]], np.float32))


def test_quantizer_params_receive_gradients():
    x = _x(3)
    for name, bits in (("uniform", 3), ("codebook", 2), ("apot", 3)):
        q = make_quantizer(name, bits, x)
        ((q(x) - x) ** 2).sum().backward()
        g = [p.grad for p in q.parameters()]
        assert g and all(gi is not None and torch.isfinite(gi).all() and gi.abs().sum() > 0 for gi in g)


def test_learned_codebook_reduces_error_vs_uniform_at_low_bits():
    x = _x(4, n=2000, d=4)
    for bits in (2, 3):
        u = make_quantizer("uniform", bits, x)
        c = make_quantizer("codebook", bits, x)
        eu = float(((u(x) - x) ** 2).mean().detach())
        ec = float(((c(x) - x) ** 2).mean().detach())
        assert ec <= eu


def test_apot_levels():
    m = apot_magnitudes(3)
    np.testing.assert_allclose(np.sort(m), [0, 0.25, 0.5, 1.0])
    assert len(apot_magnitudes(5)) == 16 and apot_magnitudes(5).max() == 1.0
    assert allowed_bits("apot") == (3, 5, 7)
    with pytest.raises(ConfigError, match="multiple of the group size"):
        apot_magnitudes(4)


def test_bad_arguments():
    x = _x()
    with pytest.raises(ConfigError, match="unknown quantizer"):
        make_quantizer("nope", 2, x)
    with pytest.raises(codecs.CodecError):
        make_quantizer("uniform", 1, x)
    with pytest.raises(ConfigError):
        make_quantizer("codebook", 2, x, per_feature=True)
    assert set(QUANTIZERS) == {"uniform", "apot", "codebook", "affine_set", "affine_feature", "affine_sample"}


def test_affine_ste_gradients():
    """Affine set/feature: gradient 1 to x inside [lo, hi], 0 outside; lo and hi learn; bit-exact with codecs."""
    x = _x(3)
    q = make_quantizer("affine_feature", 3, x * 0.5)
    xt = x.clone().requires_grad_(True)
    q(xt).sum().backward()
    lo, hi = q.export_params()["lo"], q.export_params()["hi"]
    inside = (x.numpy() >= lo) & (x.numpy() <= hi)
    np.testing.assert_array_equal(xt.grad.numpy(), inside.astype(np.float32))
    assert q.lo.grad is not None and q.hi.grad is not None
    # per-sample ranges come from the rows themselves: every row's min and max decode exactly
    qs = make_quantizer("affine_sample", 2, x)
    y = qs(x).detach().numpy()
    np.testing.assert_array_equal(y.min(1), x.numpy().min(1))

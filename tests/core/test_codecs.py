"""edge_sdk.codecs: the meaning of every code (hand cases + hypothesis properties)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edge_sdk.codecs import ALLOWED_BITS, CodecError, dequantize, label_bits, param_shapes, q_max, quantize

finite = st.floats(-1e3, 1e3, allow_nan=False, width=32)


def test_hand_symmetric_per_sample_4bit() -> None:
    x = np.array([[1.0, -0.6, 0.0, 0.25]], np.float32)
    codes, p = quantize(x, "symmetric_per_sample", 4, None)
    assert q_max(4) == 7
    assert p["scale"][0] == pytest.approx(1.0 / 7)
    # round(x / s) = [7, -4.2 -> -4, 0, 1.75 -> 2]; offset-binary code = q + 7
    assert codes.tolist() == [[14, 3, 7, 9]]
    np.testing.assert_allclose(dequantize(codes, "symmetric_per_sample", 4, p), [[1.0, -4 / 7, 0.0, 2 / 7]], rtol=1e-6, atol=1e-7)


def test_hand_uniform_clip_and_codebook() -> None:
    x = np.array([[2.0, -0.4, 0.1]], np.float32)
    codes, p = quantize(x, "uniform_clip", 2, {"alpha": np.array([1.0], np.float32)})
    assert codes.tolist() == [[2, 1, 1]]  # Q = 1: levels {-1, 0, 1}; 2.0 clipped to 1
    np.testing.assert_array_equal(dequantize(codes, "uniform_clip", 2, p), [[1.0, 0.0, 0.0]])
    lv = np.array([0.5, -1.0], np.float32)
    codes, p = quantize(x, "codebook", 1, {"levels": lv})
    assert codes.tolist() == [[0, 1, 0]]
    np.testing.assert_array_equal(dequantize(codes, "codebook", 1, p), [[0.5, -1.0, 0.5]])


def test_zero_sample_has_zero_scale_and_decodes_to_zero() -> None:
    x = np.zeros((2, 3), np.float32)
    codes, p = quantize(x, "symmetric_per_sample", 3, None)
    assert np.all(p["scale"] == 0)
    assert np.all(dequantize(codes, "symmetric_per_sample", 3, p) == 0)


@pytest.mark.parametrize("kind,bits", [("symmetric_per_sample", 1), ("uniform_clip", 9), ("codebook", 0), ("bogus", 4)])
def test_bad_kind_or_width_is_a_codec_error(kind: str, bits: int) -> None:
    with pytest.raises(CodecError):
        quantize(np.zeros((1, 1), np.float32), kind, bits, {})


def test_param_shapes_and_label_bits() -> None:
    assert param_shapes("symmetric_per_sample", 4, 10, 8) == {"scale": (10,)}
    assert param_shapes("uniform_clip", 4, 10, 8, per_feature=True) == {"alpha": (8,)}
    assert param_shapes("codebook", 3, 10, 8) == {"levels": (8,)}
    assert [label_bits(c) for c in (1, 2, 3, 4, 5, 32, 33, 256, 257)] == [0, 1, 2, 2, 3, 5, 6, 8, 9]


@settings(max_examples=60, deadline=None)
@given(
    bits=st.integers(2, 8),
    x=hnp.arrays(np.float32, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=12), elements=finite),
)
def test_symmetric_error_bounded_by_half_step(bits: int, x: np.ndarray) -> None:
    codes, p = quantize(x, "symmetric_per_sample", bits, None)
    assert codes.max() <= 2 * q_max(bits)
    err = np.abs(dequantize(codes, "symmetric_per_sample", bits, p) - x)
    assert np.all(err <= p["scale"][:, None] / 2 * (1 + 1e-4) + 1e-30)


@settings(max_examples=60, deadline=None)
@given(
    bits=st.integers(1, 8),
    x=hnp.arrays(np.float32, (5, 7), elements=finite),
    seed=st.integers(0, 2**16),
)
def test_codebook_picks_nearest_level(bits: int, x: np.ndarray, seed: int) -> None:
    levels = np.random.default_rng(seed).normal(size=1 << bits).astype(np.float32)
    codes, p = quantize(x, "codebook", bits, {"levels": levels})
    xhat = dequantize(codes, "codebook", bits, p)
    best = np.abs(x[..., None] - levels).min(-1)
    np.testing.assert_allclose(np.abs(xhat - x), best, rtol=1e-6, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(bits=st.integers(2, 8), x=hnp.arrays(np.float32, (4, 6), elements=finite))
def test_uniform_clip_idempotent(bits: int, x: np.ndarray) -> None:
    alpha = np.array([3.0], np.float32)
    c1, p = quantize(x, "uniform_clip", bits, {"alpha": alpha})
    c2, _ = quantize(dequantize(c1, "uniform_clip", bits, p), "uniform_clip", bits, {"alpha": alpha})
    np.testing.assert_array_equal(c1, c2)
    assert set(ALLOWED_BITS["uniform_clip"]) == set(range(2, 9))


AFFINE = ("affine_set", "affine_feature", "affine_sample")


def test_hand_affine_feature_2bit() -> None:
    # one-signed beam-like rows: per-feature range [-3, 0] -> levels {-3, -2, -1, 0}, every code used
    x = np.array([[0.0, -3.0], [-1.2, -0.4], [-3.0, 0.0]], np.float32)
    codes, p = quantize(x, "affine_feature", 2, None)
    assert p["lo"].tolist() == [-3.0, -3.0] and p["hi"].tolist() == [0.0, 0.0]
    assert codes.tolist() == [[3, 0], [2, 3], [0, 3]]
    np.testing.assert_array_equal(dequantize(codes, "affine_feature", 2, p), [[0, -3], [-1, 0], [-3, 0]])


def test_affine_param_shapes_and_rules() -> None:
    assert param_shapes("affine_set", 3, 10, 8) == {"lo": (1,), "hi": (1,)}
    assert param_shapes("affine_feature", 3, 10, 8) == {"lo": (8,), "hi": (8,)}
    assert param_shapes("affine_sample", 3, 10, 8) == {"lo": (10,), "hi": (10,)}
    from edge_sdk.codecs import code_max, param_problem

    assert code_max("affine_sample", 1) == 1 and code_max("affine_set", 8) == 255
    assert param_problem("affine_set", 2, {"lo": np.array([1.0], np.float32), "hi": np.array([0.0], np.float32)})
    assert param_problem("affine_set", 2, {"lo": np.array([np.nan], np.float32), "hi": np.array([0.0], np.float32)})
    big = np.float32(3e38)
    assert param_problem("affine_set", 2, {"lo": np.array([-big]), "hi": np.array([big])})
    with pytest.raises(CodecError):
        quantize(np.zeros((2, 3), np.float32), "affine_feature", 2, {"lo": np.zeros(2, np.float32), "hi": np.ones(2, np.float32)})


def test_affine_constant_rows_decode_exactly() -> None:
    x = np.full((3, 4), -2.5, np.float32)
    for kind in AFFINE:
        codes, p = quantize(x, kind, 3, None)
        assert np.all(codes == 0)
        np.testing.assert_array_equal(dequantize(codes, kind, 3, p), x)


@settings(max_examples=80, deadline=None)
@given(
    kind=st.sampled_from(AFFINE),
    bits=st.integers(1, 8),
    x=hnp.arrays(np.float32, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=12), elements=finite),
)
def test_affine_error_bounded_by_half_step_and_idempotent(kind: str, bits: int, x: np.ndarray) -> None:
    from edge_sdk.codecs import affine_step

    codes, p = quantize(x, kind, bits, None)
    assert codes.max() <= (1 << bits) - 1
    xhat = dequantize(codes, kind, bits, p)
    axis_shape = (-1, 1) if kind == "affine_sample" else (1, -1)
    step = affine_step(p["lo"], p["hi"], bits).reshape(axis_shape)
    assert np.all(np.abs(xhat - x) <= step / 2 * (1 + 1e-3) + 1e-3 * np.abs(x) * 2**-20 + 1e-30 + 4e-7 * np.abs(x))
    c2, _ = quantize(xhat, kind, bits, p)
    np.testing.assert_array_equal(c2, codes)


def test_affine_dequantize_float32_order() -> None:
    """x_hat = lo + u * ((hi - lo) / L), every step one float32 operation (the spec's order)."""
    rng = np.random.default_rng(3)
    lo = rng.normal(size=7).astype(np.float32)
    hi = lo + rng.random(7).astype(np.float32) * 5
    codes = rng.integers(0, 32, (9, 7)).astype(np.uint8)
    out = dequantize(codes, "affine_feature", 5, {"lo": lo, "hi": hi})
    s = np.float32(hi - lo) / np.float32(31)
    want = lo[None] + codes.astype(np.float32) * s[None]
    assert want.dtype == np.float32
    np.testing.assert_array_equal(out, want)

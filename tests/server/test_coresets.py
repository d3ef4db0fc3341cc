"""server/coresets.py: the equal-byte selection baselines (random, k-means, k-medoids, herding)."""

import numpy as np
import pytest

from edge_sdk.errors import ConfigError
from edge_sdk.server.coresets import SELECTORS, kmeans, select


def _data(seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, 400)
    X = (rng.normal(size=(400, 5)) + y[:, None] * 3).astype(np.float32)
    return X, y


@pytest.mark.parametrize("method", sorted(SELECTORS))
def test_counts_classes_and_determinism(method):
    X, y = _data()
    counts = np.array([5, 0, 7, 3])
    r1, l1 = select(method, X, y, counts, seed=3)
    r2, l2 = select(method, X, y, counts, seed=3)
    assert r1.shape == (15, 5) and r1.dtype == np.float32
    assert l1.tolist() == [0] * 5 + [2] * 7 + [3] * 3
    np.testing.assert_array_equal(r1, r2)
    np.testing.assert_array_equal(l1, l2)
    if method in ("random", "kmedoids", "herding"):  # real rows of the right class, no repeats
        for row, lab in zip(r1, l1, strict=True):
            hits = np.flatnonzero((X == row).all(1))
            assert hits.size and np.all(y[hits] == lab)
        assert len({r.tobytes() for r in r1}) == 15


def test_kmeans_finds_separated_clusters():
    rng = np.random.default_rng(1)
    centres = np.array([[0, 0], [10, 0], [0, 10]], np.float32)
    X = np.concatenate([c + 0.1 * rng.normal(size=(50, 2)) for c in centres]).astype(np.float32)
    C = kmeans(X, 3, rng)
    d = np.abs(C[:, None] - centres[None]).sum(-1).min(0)
    assert np.all(d < 0.2)


def test_herding_mean_is_closer_than_random():
    X, y = _data(2)
    counts = np.array([10, 10, 10, 10])
    h, _ = select("herding", X, y, counts, 0)
    r, _ = select("random", X, y, counts, 0)
    err = lambda S: np.abs(S[:10].mean(0) - X[y == 0].mean(0)).sum()  # noqa: E731
    assert err(h) < err(r)


def test_unknown_method_and_missing_class():
    X, y = _data()
    with pytest.raises(ConfigError, match="unknown selection"):
        select("nope", X, y, np.array([1, 1, 1, 1]), 0)
    with pytest.raises(ConfigError, match="no training rows"):
        select("random", X, y, np.array([1, 1, 1, 1, 2]), 0)

"""server/images.py: restricted CIFAR unpickler on fabricated batches; digits split."""

import os
import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from edge_sdk.errors import DatasetError  # noqa: E402
from edge_sdk.server.images import load_cifar, load_digits_split, read_cifar_batch  # noqa: E402


def _batch(path, n, seed, label_key=b"labels", classes=10):
    rng = np.random.default_rng(seed)
    obj = {b"batch_label": b"fabricated", label_key: [int(v) for v in rng.integers(0, classes, n)],
           b"data": rng.integers(0, 256, (n, 3072)).astype(np.uint8), b"filenames": [b"x.png"] * n}
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)
    return obj


def test_read_fabricated_cifar10(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    objs = [_batch(root / f"data_batch_{i}", 4, i) for i in range(1, 6)]
    _batch(root / "test_batch", 3, 9)
    b = read_cifar_batch(root / "data_batch_1")
    assert b["data"].shape == (4, 3, 32, 32) and b["data"].dtype == np.uint8
    np.testing.assert_array_equal(b["data"].reshape(4, -1), objs[0][b"data"])
    xtr, ytr, xte, yte, c = load_cifar(tmp_path, "cifar10")
    assert xtr.shape == (20, 3, 32, 32) and xte.shape == (3, 3, 32, 32) and c == 10 and xtr.dtype == np.float32
    np.testing.assert_array_equal(ytr[:4], objs[0][b"labels"])


def test_read_fabricated_cifar100(tmp_path):
    root = tmp_path / "cifar-100-python"
    root.mkdir()
    _batch(root / "train", 5, 0, b"fine_labels", 100)
    _batch(root / "test", 2, 1, b"fine_labels", 100)
    xtr, ytr, xte, yte, c = load_cifar(root, "cifar100")
    assert c == 100 and xtr.shape[0] == 5 and yte.shape == (2,)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_refuses_malicious_pickle(tmp_path):
    p = tmp_path / "data_batch_1"
    with open(p, "wb") as f:
        pickle.dump({b"data": _Evil(), b"labels": [0]}, f, protocol=2)
    with pytest.raises(DatasetError, match="refusing to unpickle"):
        read_cifar_batch(p)


@pytest.mark.parametrize("obj,msg", [([1, 2], "expected a dict"), ({b"labels": [1]}, "no 'data'"),
                                     ({b"data": np.zeros((2, 3072), np.uint8)}, "labels"),
                                     ({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]}, "uint8 \\[N, 3072\\]"),
                                     ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "2 images but 1")])
def test_bad_batches(tmp_path, obj, msg):
    p = tmp_path / "b"
    with open(p, "wb") as f:
        pickle.dump(obj, f, protocol=2)
    with pytest.raises(DatasetError, match=msg):
        read_cifar_batch(p)


def test_missing_and_garbage(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        read_cifar_batch(tmp_path / "nope")
    (tmp_path / "g").write_bytes(b"\x00garbage")
    with pytest.raises(DatasetError, match="not a readable"):
        read_cifar_batch(tmp_path / "g")
    with pytest.raises(DatasetError, match="missing CIFAR"):
        load_cifar(tmp_path, "cifar10")
    with pytest.raises(DatasetError, match="unknown CIFAR"):
        load_cifar(tmp_path, "cifar7")


def test_digits_split_deterministic_and_stratified():
    a = load_digits_split(seed=0)
    b = load_digits_split(seed=0)
    for u, v in zip(a[:4], b[:4], strict=True):
        np.testing.assert_array_equal(u, v)
    xtr, ytr, xte, yte, c = a
    assert xtr.shape[1:] == (1, 8, 8) and c == 10 and len(ytr) + len(yte) == 1797
    assert set(np.unique(yte)) == set(range(10))
    assert abs(len(yte) / 1797 - 0.3) < 0.01

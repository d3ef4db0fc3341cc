"""Image datasets for distillation experiments: sklearn digits (offline) and CIFAR-10/100 python batches.

Nothing is downloaded. CIFAR must already be on disk in the "python version" layout
(``cifar-10-batches-py/{data_batch_1..5,test_batch}`` or ``cifar-100-python/{train,test}``).

SECURITY: the CIFAR python format is a *pickle*. Unpickling untrusted bytes can execute arbitrary code.
:func:`read_cifar_batch` therefore uses a restricted ``pickle.Unpickler`` whose ``find_class`` allows only
the numpy reconstruction helpers an ndarray pickle needs (``numpy.core.multiarray._reconstruct``,
``numpy.ndarray``, ``numpy.dtype``, and their ``numpy._core`` aliases); any other global (``os.system``,
``builtins.eval``, ...) raises :class:`edge_sdk.errors.DatasetError`. Still only load files you trust.

Arrays returned: ``X`` float32 ``[N, C, H, W]`` in raw units (digits 0..16, CIFAR 0..255), ``y`` int64 ``[N]``.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np

from edge_sdk.errors import DatasetError

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),
}

#: refuse batch files larger than this (a CIFAR batch is ~31 MB; CIFAR-100 train ~155 MB)
MAX_BATCH_BYTES = 512 * 1024 * 1024


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):  # noqa: D102
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise DatasetError(
            f"refusing to unpickle global {module}.{name}: CIFAR batch files only contain numpy arrays, "
            "lists and dicts (is this really a CIFAR python batch?)"
        )


def read_cifar_batch(path: str | os.PathLike) -> dict:
    """Read one CIFAR python batch file with the restricted unpickler; returns ``{"data", "labels"}``.

    ``data`` uint8 ``[N, 3, 32, 32]``; ``labels`` int64 ``[N]`` (``labels`` for CIFAR-10,
    ``fine_labels`` for CIFAR-100).
    """
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"CIFAR batch file {p} not found; pass the folder that holds the extracted python batches")
    size = p.stat().st_size
    if size > MAX_BATCH_BYTES:
        raise DatasetError(f"{p} is {size} bytes, larger than any CIFAR batch ({MAX_BATCH_BYTES}); refusing")
    raw = p.read_bytes()
    try:
        obj = _RestrictedUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except DatasetError:
        raise
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file
        raise DatasetError(f"{p} is not a readable CIFAR python batch: {exc}") from exc
    if not isinstance(obj, dict):
        raise DatasetError(f"{p}: expected a dict, got {type(obj).__name__}")
    obj = {(k.decode() if isinstance(k, bytes) else k): v for k, v in obj.items()}
    if "data" not in obj:
        raise DatasetError(f"{p}: no 'data' entry")
    lab_key = "labels" if "labels" in obj else "fine_labels" if "fine_labels" in obj else None
    if lab_key is None:
        raise DatasetError(f"{p}: no 'labels' / 'fine_labels' entry")
    data = np.asarray(obj["data"])
    labels = np.asarray(obj[lab_key], dtype=np.int64).reshape(-1)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DatasetError(f"{p}: data must be uint8 [N, 3072], got {data.dtype} {data.shape}")
    if data.shape[0] != labels.shape[0]:
        raise DatasetError(f"{p}: {data.shape[0]} images but {labels.shape[0]} labels")
    return {"data": data.reshape(-1, 3, 32, 32), "labels": labels}


def load_cifar(root: str | os.PathLike, which: str = "cifar10") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """``(X_train, y_train, X_test, y_test, num_classes)`` from extracted python batches under ``root``.

    ``root`` may be the batch folder itself or its parent.
    """
    root = Path(root)
    if which == "cifar10":
        folder = root if (root / "test_batch").exists() else root / "cifar-10-batches-py"
        train_files = [folder / f"data_batch_{i}" for i in range(1, 6)]
        test_files = [folder / "test_batch"]
        num_classes = 10
    elif which == "cifar100":
        folder = root if (root / "test").exists() and (root / "train").exists() else root / "cifar-100-python"
        train_files, test_files, num_classes = [folder / "train"], [folder / "test"], 100
    else:
        raise DatasetError(f"unknown CIFAR variant {which!r}; use 'cifar10' or 'cifar100'")
    missing = [str(f) for f in train_files + test_files if not f.is_file()]
    if missing:
        raise DatasetError(f"missing CIFAR batch files: {missing}")

    def cat(files):
        bs = [read_cifar_batch(f) for f in files]
        return (np.concatenate([b["data"] for b in bs]).astype(np.float32),
                np.concatenate([b["labels"] for b in bs]))

    xtr, ytr = cat(train_files)
    xte, yte = cat(test_files)
    for arr in (ytr, yte):
        if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
            raise DatasetError(f"labels outside [0, {num_classes})")
    return xtr, ytr, xte, yte, num_classes


def load_digits_split(test_fraction: float = 0.3, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """sklearn digits (1,797 8x8 images, 10 classes, values 0..16) split stratified into train/test.

    Returns ``(X_train [N,1,8,8], y_train, X_test, y_test, 10)``; the split is deterministic in ``seed``.
    """
    from sklearn.datasets import load_digits

    d = load_digits()
    X = d.images.astype(np.float32)[:, None]
    y = d.target.astype(np.int64)
    rng = np.random.Generator(np.random.PCG64(seed))
    test_idx = []
    for c in range(10):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        test_idx.append(idx[: int(round(len(idx) * test_fraction))])
    te = np.sort(np.concatenate(test_idx))
    mask = np.ones(len(y), bool)
    mask[te] = False
    return X[mask], y[mask], X[te], y[te], 10

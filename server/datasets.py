"""Load a training + test task as flat float32 tensors: beam HDF5 + task spec, sklearn digits, CIFAR.

API::

    from edge_sdk.server.datasets import TaskData, load_task, load_beam, load_digits, load_cifar_task
    data = load_task("digits")                                   # or "cifar10:/path", "cifar100:/path"
    data = load_beam("train.h5", "test.h5", task_spec=None)      # BeamTaskSpec() defaults, fitted on train
    data.X_train [N, D] float32, data.y_train int64 [N], data.X_test, data.y_test,
    data.rsrp_test [Nt, C] float32 dBm or None, data.num_classes, data.spec (ModelSpec), data.task (dict for
    the payload header), data.full_float32_bytes (N * D * 4: the "1x" reference of every compression ratio)

Normalisation. Images: ``x' = (x - mean) / std`` with one scalar mean/std of the training set (stored in
``task["normalization"]``), so the symmetric quantizers see zero-centred data; images are flattened to
``D = C*H*W`` in (C, H, W) order and the ConvNet reshapes them. Beam: whatever ``BeamTaskSpec.inputs``
produces (its own fitted normalisation, recorded in ``BeamTaskSpec.to_dict()``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge_sdk.errors import ConfigError, DatasetError
from edge_sdk.modelspec import ModelSpec


@dataclass(frozen=True)
class TaskData:
    """A classification task as flat arrays (shapes in the module docstring). Immutable: derive a changed copy
    with ``dataclasses.replace`` (e.g. another ``task`` dict), never assign to a field."""

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    spec: ModelSpec
    task: dict[str, Any]
    rsrp_test: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for nm in ("X_train", "X_test"):
            a = getattr(self, nm)
            if a.ndim != 2 or a.dtype != np.float32:
                raise DatasetError(f"{nm} must be float32 [N, D], got {a.dtype} {a.shape}")
        if self.X_train.shape[0] != self.y_train.shape[0] or self.X_test.shape[0] != self.y_test.shape[0]:
            raise DatasetError("inputs and labels disagree in length")
        if self.X_train.shape[1] != self.X_test.shape[1]:
            raise DatasetError("train and test inputs have different widths")
        if self.X_train.shape[0] == 0:
            raise DatasetError("the training set is empty")

    @property
    def dim(self) -> int:
        return int(self.X_train.shape[1])

    @property
    def full_float32_bytes(self) -> int:
        """Bytes of the full training inputs stored as float32 (labels not counted)."""
        return int(self.X_train.shape[0] * self.X_train.shape[1] * 4)

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.y_train, minlength=self.num_classes)


def _image_task(name, xtr, ytr, xte, yte, num_classes, width, depth) -> TaskData:
    mean = float(xtr.mean())
    std = float(xtr.std()) or 1.0
    shape = tuple(int(s) for s in xtr.shape[1:])
    f = lambda a: ((a - mean) / std).reshape(a.shape[0], -1).astype(np.float32)  # noqa: E731
    spec = ModelSpec(kind="convnet", input_dim=int(np.prod(shape)), num_classes=num_classes, in_shape=shape,
                     width=width, depth=depth)
    task = {"kind": "image", "dataset": name, "shape": list(shape),
            "normalization": {"mean": mean, "std": std}, "model": spec.to_dict()}
    return TaskData(name, f(xtr), ytr.astype(np.int64), f(xte), yte.astype(np.int64), num_classes, spec, task)


def load_digits(width: int = 32, depth: int = 2, seed: int = 0) -> TaskData:
    """sklearn digits, 70/30 stratified split, ConvNet(width, depth) on 1x8x8 (8 -> 4 -> 2 with depth 2)."""
    from edge_sdk.server.images import load_digits_split

    return _image_task("digits", *load_digits_split(seed=seed), width=width, depth=depth)


def load_cifar_task(root: str | os.PathLike, which: str = "cifar10", width: int = 128, depth: int = 3) -> TaskData:
    """CIFAR-10/100 from extracted python batches under ``root`` (see images.py for the pickle caveat)."""
    from edge_sdk.server.images import load_cifar

    return _image_task(which, *load_cifar(root, which), width=width, depth=depth)


def load_beam(train_path: str | os.PathLike, test_path: str | os.PathLike, task_spec: dict | None = None,
              hidden: tuple[int, ...] | None = None, model: str | None = None) -> TaskData:
    """Beam task from two schema-v1 HDF5 files (edge_sdk.beam) and a ``BeamTaskSpec`` dict.

    The task spec is fitted on the training file (normalisation) and stored fitted in ``task["beam"]``.
    ``model`` (default: ``"mlp"`` for BM-Case1, ``"gru"`` for BM-Case2): ``"mlp"`` = MLP ``input_dim -> hidden
    -> n_tx`` (hidden default (128, 128)); ``"gru"`` (BM-Case2 only) = the temporal model of
    :mod:`edge_sdk.server.case2` (GRU over the K measurement instants, hidden default (128,), with the residual
    start at sample-and-hold of the latest measurement).
    """
    try:
        from edge_sdk.beam.h5reader import SERVER_DATA, read_beam_h5
        from edge_sdk.beam.taskspec import BeamTaskSpec
    except ImportError as exc:  # pragma: no cover - only while edge_sdk.beam is incomplete
        raise ConfigError(f"beam data support is not available in this install: {exc}") from exc
    tr = read_beam_h5(train_path, **SERVER_DATA.kwargs())  # the operator's own data: stitched shards allowed
    te = read_beam_h5(test_path, **SERVER_DATA.kwargs())
    spec_b = BeamTaskSpec.from_dict(task_spec) if task_spec else BeamTaskSpec()
    fitted = spec_b.fit(tr)
    spec_b = fitted if fitted is not None else spec_b
    xtr = np.ascontiguousarray(spec_b.inputs(tr), np.float32)
    ytr = np.asarray(spec_b.labels(tr), np.int64)
    xte = np.ascontiguousarray(spec_b.inputs(te), np.float32)
    yte = np.asarray(spec_b.labels(te), np.int64)
    rte = np.asarray(spec_b.target_rsrp(te), np.float32)
    num_classes = int(rte.shape[1])
    kind = model or ("gru" if spec_b.case == "case2" else "mlp")
    if kind == "gru":
        if spec_b.case != "case2":
            raise ConfigError("model 'gru' (temporal) needs a BM-Case2 task spec (case='case2', history K)")
        from edge_sdk.server.case2 import Candidate

        spec = Candidate("gru", tuple(hidden or (128,)), norm=spec_b.norm).model_spec(spec_b)
    elif kind == "mlp":
        spec = ModelSpec(kind="mlp", input_dim=int(xtr.shape[1]), num_classes=num_classes,
                         hidden=tuple(hidden or (128, 128)))
    else:
        raise ConfigError(f"unknown beam model {kind!r}; use 'mlp' or 'gru'")
    task = {"kind": "beam", "beam": spec_b.to_dict(), "model": spec.to_dict()}
    extra = {"input_constraint": "max_zero"} if getattr(spec_b, "norm", None) == "per_sample_max" else {}
    return TaskData("beam", xtr, ytr, xte, yte, num_classes, spec, task, rsrp_test=rte, extra=extra)


def load_task(name: str, **kw: Any) -> TaskData:
    """``"digits"``, ``"cifar10:PATH"`` or ``"cifar100:PATH"``."""
    if name == "digits":
        return load_digits(**kw)
    if name.startswith(("cifar10:", "cifar100:")):
        which, path = name.split(":", 1)
        return load_cifar_task(path, which, **kw)
    raise ConfigError(f"unknown dataset {name!r}; use 'digits', 'cifar10:PATH' or 'cifar100:PATH' (or --data/--test for beam)")

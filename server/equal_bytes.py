"""Strong simple baselines at equal bytes (issue #11): real rows picked by a selector, stored with a quantizer,
as many as fit the byte budget of a payload file.

API::

    from edge_sdk.server.equal_bytes import BASELINE_QUANTIZERS, payload_bytes, max_rows, build_baseline
    n = max_rows(budget_bytes, "affine_feature", 4, data, recipe=recipe)        # rows that fit the file budget
    cs = build_baseline(fit, "kmeans", "affine_feature", 4, n, seed=0)         # CompactSet (decoded rows cs.X)

Bytes are those of the **payload format v2 file** (``edge_sdk.payload.payload_size_v2``, exact): lean binary
header naming the task blob by digest, the stored recipe, labels as class counts, and (``signed=True``, the
default) the Ed25519 trailer of a release. Nothing else travels per payload; the task blob and the graph are
cached by digest on the device (docs/payload-format.md "Version 2.0").

Selectors (``edge_sdk.server.coresets``): ``random`` (stratified random real rows), ``kmeans`` (per-class
k-means centroids), ``kmedoids``, ``herding``. Rows are split over the classes in proportion to the class prior
(``allocate_per_class(..., "proportional")``: the beam classes are imbalanced and the test set shares the
training prior). Quantizers (:data:`BASELINE_QUANTIZERS`): ``float16``; ``affine_feature`` (min/max per
feature) and ``codebook`` (Lloyd levels over all values), fitted to the selected rows, no learning.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from edge_sdk import codecs
from edge_sdk.errors import ConfigError
from edge_sdk.modelspec import TrainRecipe
from edge_sdk.server.budget import allocate_per_class, option_kind
from edge_sdk.server.coresets import select
from edge_sdk.server.datasets import TaskData
from edge_sdk.server.payload_io import CompactSet, Storage, compact_float, compact_from_quantizer
from edge_sdk.server.torch_quant import make_quantizer

#: a v2 payload names its task blob by SHA-256
TASK_DIGEST_BYTES = 32
#: (quantizer, bits) options every selector is tried with
BASELINE_QUANTIZERS: tuple[tuple[str, int], ...] = (
    ("float16", 16),
    *(("affine_feature", b) for b in (2, 3, 4, 5, 6, 8)),
    *(("codebook", b) for b in (2, 3, 4)),
)


def payload_bytes(kind: str, bits: int, n: int, d: int, num_classes: int, *, recipe: TrainRecipe | None = None,
                  signed: bool = True) -> int:
    """Exact size in bytes of the v2 payload file holding ``n`` rows of ``d`` values stored as ``kind``/``bits``."""
    from edge_sdk.payload import payload_size_v2

    lay = Storage(kind, bits).layouts(n, d, num_classes)
    return int(payload_size_v2(lay, num_classes, task_digest=bytes(TASK_DIGEST_BYTES),
                               recipe=recipe.to_payload() if recipe is not None else None, signed=signed))


def max_rows(budget: int, quantizer: str, bits: int, data: TaskData, *, recipe: TrainRecipe | None = None,
             signed: bool = True) -> int:
    """The largest row count (>= one per present class, <= the training rows) whose v2 file fits ``budget``
    bytes; 0 when not even one row per class fits."""
    kind = option_kind(quantizer)
    codecs.check_kind_bits(kind, bits)
    classes = int(np.count_nonzero(np.bincount(data.y_train, minlength=data.num_classes)))
    hi = int(data.X_train.shape[0])

    def fits(n: int) -> bool:
        return payload_bytes(kind, bits, n, data.dim, data.num_classes, recipe=recipe, signed=signed) <= budget

    if not fits(classes):
        return 0
    lo = classes
    while lo < hi:  # the size grows with n: largest n that fits
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def class_counts(y: np.ndarray, n: int, num_classes: int) -> np.ndarray:
    """``n`` rows split over the present classes of ``y`` in proportion to their frequency -> counts int [C]."""
    counts = np.bincount(np.asarray(y, np.int64), minlength=num_classes)
    present = np.flatnonzero(counts)
    out = np.zeros(num_classes, np.int64)
    out[present] = allocate_per_class(n, counts[present].tolist(), "proportional")
    return out


def build_baseline(fit: TaskData, selection: str, quantizer: str, bits: int, n: int, seed: int = 0) -> CompactSet:
    """``n`` rows of ``fit``'s training set chosen by ``selection``, stored with ``quantizer`` at ``bits``."""
    if n < 1:
        raise ConfigError(f"the baseline needs at least one row, got n={n}")
    Xs, ys = select(selection, fit.X_train, fit.y_train, class_counts(fit.y_train, n, fit.num_classes), seed)
    if quantizer in codecs.RAW_KINDS:
        return compact_float(Xs, ys, quantizer)
    q = make_quantizer(quantizer, bits, torch.from_numpy(Xs))
    return compact_from_quantizer(Xs, ys, q)


def describe(selection: str, quantizer: str, bits: int) -> dict[str, Any]:
    return {"selection": selection, "quantizer": quantizer, "bits": bits}

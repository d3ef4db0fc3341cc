"""Payload groups held in memory as graph feeds, and batch assembly.

Sample index: the ``samples`` groups with bits > 0, concatenated in payload order (global index ``0..N-1``,
as ``Payload.samples()``); ``soft_labels`` groups partition the same index range. A batch is a set of global
indices; it is sorted ascending and split by group, so the rows fed for group k (and the labels, and the soft
targets) follow the same global order. The loss is a mean over rows, so the order inside a batch does not
change the step (up to float summation order).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_sdk.errors import DeviceError


@dataclass
class GroupFeed:
    """One graph group: ``data`` = packed uint8 [n, row_bytes] or raw float32 [n, D]; per-row and fixed params."""

    k: int
    role: str
    kind: str
    data: np.ndarray
    row_params: dict[str, np.ndarray]  # name -> [n] (symmetric_per_sample scale, affine_sample lo/hi)
    fixed_params: dict[str, np.ndarray]  # alpha / levels / affine_set, affine_feature lo/hi
    offset: int  # first global index

    @property
    def n(self) -> int:
        return int(self.data.shape[0])

    def feed(self, sel: np.ndarray) -> dict[str, np.ndarray]:
        """Feeds for the rows ``sel`` (sorted, unique local indices; all rows are fed without a copy)."""
        key = "values" if self.kind in ("float16", "float32") else "packed"
        if sel.size == self.n:  # every row, in order (sel is sorted and unique)
            out = {f"g{self.k}.{key}": self.data}
            out.update({f"g{self.k}.{n}": v for n, v in self.row_params.items()})
            out.update({f"g{self.k}.{n}": v for n, v in self.fixed_params.items()})
            return out
        out = {f"g{self.k}.{key}": np.ascontiguousarray(self.data[sel])}
        out.update({f"g{self.k}.{n}": np.ascontiguousarray(v[sel]) for n, v in self.row_params.items()})
        out.update({f"g{self.k}.{n}": v for n, v in self.fixed_params.items()})
        return out


class PayloadData:
    """Feeds for every group of a read payload (``edge_sdk.payload.Payload``)."""

    def __init__(self, payload: Any) -> None:
        self.groups: list[GroupFeed] = []
        labels: list[np.ndarray] = []
        off = {"samples": 0, "soft_labels": 0}
        has_labels = True
        for k, gv in enumerate(payload.groups):
            if gv.kind == "none" or gv.bits == 0:
                continue
            if gv.kind in ("float16", "float32"):
                data = np.asarray(gv.values(), np.float32)
            else:
                data = np.array(gv.packed_rows(), np.uint8)  # copy out of the memory map
            params = {n: np.asarray(v, np.float32) for n, v in gv.params().items()}
            per_row = gv.kind in ("symmetric_per_sample", "affine_sample")  # one value per row: fed sliced
            row = {n: v.reshape(-1) for n, v in params.items() if per_row}
            fixed = {n: v for n, v in params.items() if not per_row}
            self.groups.append(GroupFeed(k, gv.role, gv.kind, data, row, fixed, off[gv.role]))
            off[gv.role] += gv.n
            if gv.role == "samples":
                lab = gv.labels()
                if lab is None:
                    has_labels = False
                    lab = np.zeros(gv.n, np.int64)
                labels.append(np.asarray(lab, np.int64))
        self.n = off["samples"]
        if self.n == 0:
            raise DeviceError("payload has no samples to train on (no 'samples' group with bits > 0)")
        if off["soft_labels"] not in (0, self.n):
            raise DeviceError(f"soft labels cover {off['soft_labels']} rows, samples {self.n}: they must align")
        self.has_soft = off["soft_labels"] > 0
        self.has_hard_labels = has_labels
        if not has_labels and not self.has_soft:
            raise DeviceError("payload has neither hard labels nor soft labels: nothing to train against")
        self.labels = np.concatenate(labels)
        nc = int(payload.num_classes)
        if self.labels.size and (self.labels.min() < 0 or self.labels.max() >= nc):
            raise DeviceError(f"labels outside [0, {nc})")

    def batch_feed(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        """Feeds for the global sample indices ``idx`` (any order, no repeats; sorted here)."""
        idx = np.sort(np.asarray(idx, np.int64))
        feed: dict[str, np.ndarray] = {}
        for g in self.groups:
            lo = np.searchsorted(idx, g.offset)
            hi = np.searchsorted(idx, g.offset + g.n)
            feed.update(g.feed(idx[lo:hi] - g.offset))
        feed["labels"] = self.labels[idx]
        return feed

"""The fleet's devices: class, link and local data of each, drawn from seeds (run, device).

Local data: every device stands at the position of one drop of the shared pool (a beam HDF5 file, e.g. the
reference test set), drawn uniformly, and evaluates on the ``samples`` pool drops nearest to it (2-D distance,
the anchor drop included). Devices close to each other share measurements, devices in other parts of the cell
see other LOS/NLOS and indoor mixes, so the fleet's KPIs are a distribution. The pool is read once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_sdk.errors import ConfigError, EdgeSdkError
from edge_sdk.fleet.scenario import Scenario
from edge_sdk.fleet.seeds import rng


@dataclass(frozen=True)
class Population:
    """``class_index`` int32 [N]; ``link_index`` int32 [N] into ``link_names``; ``anchor`` int64 [N] pool row
    where the device stands; ``local`` int32 [N, K] its local pool rows (sorted by distance)."""

    class_index: np.ndarray
    link_names: tuple[str, ...]
    link_index: np.ndarray
    anchor: np.ndarray
    local: np.ndarray

    @property
    def n(self) -> int:
        return int(self.class_index.shape[0])


def read_pool_positions(path: Path) -> np.ndarray:
    """UE (x, y) positions of the pool, float64 [M, 2] (metres)."""
    from edge_sdk.beam.h5reader import read_beam_h5

    try:
        ds = read_beam_h5(path)
    except FileNotFoundError:
        raise ConfigError(f"[local_data] pool {path}: no such file; give a beam HDF5 file (e.g. "
                          "repo:datasets/3gpp/reference/test.h5)") from None
    except EdgeSdkError as exc:
        raise ConfigError(f"[local_data] pool {path}: {exc}") from None
    return np.asarray(ds.ue_pos[:, :2], np.float64)


def nearest_rows(pos: np.ndarray, anchors: np.ndarray, k: int) -> np.ndarray:
    """For each anchor row, the ``k`` pool rows nearest to it (ties to the lower row), int32 [len(anchors), k]."""
    out = np.empty((len(anchors), k), np.int32)
    uniq, inv = np.unique(anchors, return_inverse=True)
    for j, a in enumerate(uniq):
        d = np.sum((pos - pos[a]) ** 2, axis=1)
        order = np.argsort(d, kind="stable")[:k]
        out[inv == j] = order.astype(np.int32)
    return out


def build_population(sc: Scenario, pool_positions: np.ndarray) -> Population:
    n = sc.devices
    counts = sc.class_counts()
    classes = np.repeat(np.arange(len(sc.classes), dtype=np.int32), counts)
    classes = classes[rng(sc.seed, "class").permutation(n)]
    link_names = tuple(sorted({name for c in sc.classes for name, _ in c.links}))
    lidx = {name: i for i, name in enumerate(link_names)}
    link_index = np.empty(n, np.int32)
    for d in range(n):
        c = sc.classes[int(classes[d])]
        if len(c.links) == 1:
            link_index[d] = lidx[c.links[0][0]]
        else:
            w = np.array([s for _, s in c.links], np.float64)
            link_index[d] = lidx[c.links[int(rng(sc.seed, "link", d).choice(len(w), p=w / w.sum()))][0]]
    m = len(pool_positions)
    k = sc.local_data.samples
    if k > m:
        raise ConfigError(f"[local_data] samples = {k} but the pool {sc.local_data.pool} has only {m} drops")
    anchor = np.array([rng(sc.seed, "place", d).integers(m) for d in range(n)], np.int64)
    return Population(classes, link_names, link_index, anchor, nearest_rows(pool_positions, anchor, k))

"""Fixtures shared by the test folders (torch-free: they also run in the device-only venv).

``release_files``: a small two-tier beam release on disk, made from the pre-exported device fixture
(tests/device/data/beam_adam): tier ``big`` = that payload (512 samples), tier ``small`` = its first 64 samples
per group; both name the same training graph, and each has the report.json the server would write beside it.
``release_files_v2``: the same two tiers as payloads of format v2, each with the task blob (``task.json``, the
same blob for both) beside it, as ``edge-sdk distill --payload-format 2`` writes them.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from v2files import v2_payload

DEVICE_DATA = Path(__file__).resolve().parent / "device" / "data" / "beam_adam"


@dataclass
class ReleaseFiles:
    root: Path
    big: Path  # payload of tier "big"
    small: Path  # payload of tier "small"
    graph: Path
    local_h5: Path


def _report(payload: Path, top1: float, spec: str) -> None:
    size = payload.stat().st_size
    rep = {"schema": "edge-sdk.report/1", "budget": {"spec": spec, "bytes": None}, "compression": 65536 / size,
           "payload": {"path": str(payload), "bytes": size, "sha256": hashlib.sha256(payload.read_bytes()).hexdigest()},
           "kpis": {"top1": {"mean": top1, "std": 0.01, "per_seed": [top1]},
                    "rsrp_diff_mean": {"mean": 1.5, "std": 0.1, "per_seed": [1.5]}}}
    (payload.parent / "report.json").write_text(json.dumps(rep))


def subset_payload(src: Path, dst: Path, k: int, signing_key=None) -> Path:
    """The first ``k`` samples of every group of ``src`` as a new payload naming the same graph (same task)."""
    from edge_sdk.payload import SampleGroup, read_payload, write_payload

    with read_payload(src) as p:
        groups = []
        for g in p.groups:
            params = {n: (v[:k] if v.ndim and v.shape[0] == g.n else v) for n, v in g.params().items()}
            groups.append(SampleGroup(name=g.name, kind=g.kind, bits=g.bits, data=np.array(g.codes()[:k]),
                                      params=params, labels=np.array(g.labels()[:k]), role=g.role))
        write_payload(dst, groups, num_classes=p.num_classes, task=dict(p.task), provenance=dict(p.provenance),
                      graph=dict(p.graph), signing_key=signing_key)
    return dst


def make_release_files_v2(root: Path) -> ReleaseFiles:
    big_dir, small_dir = root / "big", root / "small"
    for d in (big_dir, small_dir):
        d.mkdir(parents=True)
        shutil.copy(DEVICE_DATA / "graph.onnx", d / "graph.onnx")
    v2_payload(DEVICE_DATA / "payload.bin", big_dir / "payload.epl")
    v2_payload(DEVICE_DATA / "payload.bin", small_dir / "payload.epl", 64)
    _report(big_dir / "payload.epl", 0.62, "4KiB")
    _report(small_dir / "payload.epl", 0.55, "1KiB")
    return ReleaseFiles(root, big_dir / "payload.epl", small_dir / "payload.epl", big_dir / "graph.onnx",
                        DEVICE_DATA / "local.h5")


def make_release_files(root: Path) -> ReleaseFiles:
    big_dir, small_dir = root / "big", root / "small"
    big_dir.mkdir(parents=True)
    small_dir.mkdir(parents=True)
    shutil.copy(DEVICE_DATA / "payload.bin", big_dir / "payload.epl")
    shutil.copy(DEVICE_DATA / "graph.onnx", big_dir / "graph.onnx")
    shutil.copy(DEVICE_DATA / "graph.onnx", small_dir / "graph.onnx")
    subset_payload(big_dir / "payload.epl", small_dir / "payload.epl", 64)
    _report(big_dir / "payload.epl", 0.62, "4KiB")
    _report(small_dir / "payload.epl", 0.55, "1KiB")
    return ReleaseFiles(root, big_dir / "payload.epl", small_dir / "payload.epl", big_dir / "graph.onnx",
                        DEVICE_DATA / "local.h5")


@pytest.fixture
def release_files(tmp_path: Path) -> ReleaseFiles:
    return make_release_files(tmp_path / "release-src")


@pytest.fixture
def release_files_v2(tmp_path: Path) -> ReleaseFiles:
    return make_release_files_v2(tmp_path / "release-src-v2")

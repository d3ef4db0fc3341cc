"""Evaluate an inference model on the device's local beam measurements with the beam KPIs.

``features = BeamTaskSpec.inputs(ds)`` (task spec from the payload header or the model's metadata), scores =
model logits ``[N, n_tx]``, KPIs from :func:`edge_sdk.beam.kpis.beam_kpis` against
``BeamTaskSpec.target_rsrp(ds)`` (Top-K accuracy, Top-1 within 1 dB, RSRP difference; TR 38.843 Sec. 6.3).
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import onnxruntime as ort

from edge_sdk.beam.h5guard import H5ReadOptions
from edge_sdk.errors import DeviceError


def inference_session(model: bytes | str | os.PathLike[str], threads: int = 1) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    src = model if isinstance(model, bytes) else os.fspath(model)
    try:
        return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise DeviceError(f"onnxruntime cannot load the model: {exc}") from exc


def predict(sess: ort.InferenceSession, x: np.ndarray, batch: int = 4096) -> np.ndarray:
    """Logits float32 [N, C] for features float32 [N, D]."""
    name = sess.get_inputs()[0].name
    outs = [sess.run(None, {name: np.ascontiguousarray(x[s: s + batch], np.float32)})[0]
            for s in range(0, len(x), batch)]
    return np.concatenate(outs) if outs else np.zeros((0, 0), np.float32)


def task_of_model(sess: ort.InferenceSession) -> dict[str, Any] | None:
    raw = sess.get_modelmeta().custom_metadata_map.get("edge_sdk.task")
    return json.loads(raw) if raw else None


def check_eval_data(data_path: str | os.PathLike[str], h5: H5ReadOptions | None = None) -> int:
    """Validate the metadata and storage of the HDF5 file ``data_path`` without reading its values (no rows,
    compression bombs, links out of the file: docs/dataset-hdf5.md); returns its row count. ``device train
    --eval`` runs this before training, so a bad file costs no training time."""
    from edge_sdk.beam.h5reader import open_beam_h5

    with open_beam_h5(data_path, **(h5 or H5ReadOptions()).kwargs()) as f:
        return f.n


def evaluate_beam(model: bytes | str | os.PathLike[str], data_path: str | os.PathLike[str],
                  task: dict[str, Any] | None = None, h5: H5ReadOptions | None = None) -> dict[str, float]:
    """Beam KPIs of ``model`` on the HDF5 file ``data_path`` (read as ``h5`` allows, default
    :class:`H5ReadOptions`); ``task`` defaults to the model's own metadata."""
    from edge_sdk.beam.h5reader import read_beam_h5
    from edge_sdk.beam.kpis import beam_kpis
    from edge_sdk.beam.taskspec import BeamTaskSpec

    sess = inference_session(model)
    task = task or task_of_model(sess)
    if not task or task.get("kind") != "beam" or "beam" not in task:
        raise DeviceError("no beam task spec: pass --task-from PAYLOAD (the model's metadata has none)")
    spec = BeamTaskSpec.from_dict(task["beam"])
    ds = read_beam_h5(data_path, **(h5 or H5ReadOptions()).kwargs())
    x = spec.inputs(ds)
    r = spec.target_rsrp(ds)
    in_dim = sess.get_inputs()[0].shape[1]
    if isinstance(in_dim, int) and x.shape[1] != in_dim:
        raise DeviceError(f"task gives {x.shape[1]} input features, the model expects {in_dim}")
    kpis = beam_kpis(predict(sess, x), r)
    return {**{k: float(v) for k, v in kpis.items()}, "n": int(len(x))}

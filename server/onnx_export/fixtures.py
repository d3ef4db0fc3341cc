"""Small, deterministic payload + training graph + local-measurement bundles for device tests, benchmarks and
demos (synthetic beam data from :mod:`edge_sdk.beam.synthetic`; the device tests ship the output of
``tools/make_device_fixtures.py`` under tests/device/data/ because the device venv has no torch).

A bundle directory holds ``payload.bin`` (names ``graph.onnx`` by digest), ``graph.onnx`` and ``local.h5`` (the
device's own measurements for evaluation).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_sdk import codecs
from edge_sdk.modelspec import ModelSpec, TrainRecipe


@dataclass(frozen=True)
class BundleSpec:
    """What a bundle holds. ``layout``: "two" = codebook(4) + symmetric_per_sample(5) sample groups;
    "soft" = one uniform_clip(6) sample group + a codebook(4) soft-label group; "float32" = raw values."""

    n_train: int = 512
    n_local: int = 256
    hidden: tuple[int, ...] = (32,)
    optimizer: str = "adam"
    layout: str = "two"
    seed: int = 1
    #: TrainRecipe fields (besides ``optimizer``); ``epochs`` is turned into ``steps`` for ``n_train`` samples
    train: tuple[tuple[str, Any], ...] = (("epochs", 3), ("batch_size", 64), ("lr", 3e-3))
    variant: str = "epoch"  # training-graph variant (docs/onnx-graph.md): "epoch" (v2) or "step" (v1)


def _levels(x: np.ndarray, bits: int) -> np.ndarray:
    qs = (np.arange(1 << bits) + 0.5) / (1 << bits)
    return np.quantile(x.reshape(-1), qs).astype(np.float32)


def make_bundle(out_dir: str | Path, spec: BundleSpec = BundleSpec()) -> dict[str, Any]:
    """Write ``payload.bin``, ``graph.onnx``, ``local.h5`` into ``out_dir``; returns sizes and digests."""
    from edge_sdk.beam.h5writer import write_beam_h5
    from edge_sdk.beam.synthetic import make_synthetic_beam_dataset
    from edge_sdk.beam.taskspec import BeamTaskSpec
    from edge_sdk.payload import SampleGroup, write_payload
    from edge_sdk.server.onnx_export.export import write_graph_for_payload

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ds = make_synthetic_beam_dataset(spec.n_train, seed=spec.seed)
    local = make_synthetic_beam_dataset(spec.n_local, seed=spec.seed + 1000)
    task_spec = BeamTaskSpec.default().fit(ds)
    x = task_spec.inputs(ds)
    y = task_spec.labels(ds)
    model = ModelSpec(kind="mlp", input_dim=int(x.shape[1]), num_classes=task_spec.num_classes,
                      hidden=tuple(spec.hidden))
    groups: list[SampleGroup] = []
    if spec.layout == "two":
        h = len(x) // 2
        lv = _levels(x[:h], 4)
        c0, p0 = codecs.quantize(x[:h], "codebook", 4, {"levels": lv})
        c1, p1 = codecs.quantize(x[h:], "symmetric_per_sample", 5)
        groups = [SampleGroup("cb4", "codebook", 4, data=c0, params=p0, labels=y[:h]),
                  SampleGroup("sym5", "symmetric_per_sample", 5, data=c1, params=p1, labels=y[h:])]
    elif spec.layout == "soft":
        alpha = np.abs(x).max(axis=0).astype(np.float32) + 1e-3
        c0, p0 = codecs.quantize(x, "uniform_clip", 6, {"alpha": alpha})
        onehot = np.eye(model.num_classes, dtype=np.float32)[y]
        soft = 4.0 * onehot  # soft-label rows are logits (targets = softmax(row))
        lv = np.linspace(-1, 4, 16).astype(np.float32)
        c1, p1 = codecs.quantize(soft, "codebook", 4, {"levels": lv})
        groups = [SampleGroup("uc6", "uniform_clip", 6, data=c0, params=p0, labels=y),
                  SampleGroup("soft", "codebook", 4, data=c1, params=p1, role="soft_labels")]
    elif spec.layout == "float32":
        groups = [SampleGroup("f32", "float32", 32, data=x.astype(np.float32), labels=y)]
    else:
        raise ValueError(f"unknown bundle layout {spec.layout!r}")
    info = write_graph_for_payload(groups, model, spec.optimizer, out / "graph.onnx", variant=spec.variant)
    train = dict(spec.train)
    epochs = int(train.pop("epochs", 1))
    recipe = TrainRecipe.defaults(spec.optimizer).with_overrides(**train)
    recipe = recipe.for_epochs(epochs, sum(g.layout().n for g in groups if g.role == "samples"))
    task = {"kind": "beam", "beam": task_spec.to_dict(), "model": model.to_dict(), "train": recipe.to_payload()}
    pinfo = write_payload(out / "payload.bin", groups, num_classes=model.num_classes, task=task,
                          provenance={"generator": "edge_sdk.server.onnx_export.fixtures", "layout": spec.layout},
                          graph=info.digest())
    write_beam_h5(out / "local.h5", local)
    return {"payload_bytes": pinfo.size, "graph_bytes": info.size, "graph_sha256": info.sha256,
            "payload_sha256": pinfo.sha256, "model": model.to_dict(), "n_train": len(x)}

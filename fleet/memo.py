"""The training memo: identical (payload digest, graph digest, training config) give bit-identical models (the
device runtime trains deterministically on one ORT thread from the payload's seed), so a fleet trains each such
key once and every device that received that tier evaluates the same model on its own local data.

In memory for one run; with a folder (``--memo-dir DIR``) also across runs: one ``<sha256 of key>.onnx`` (the
inference model) + ``.json`` (key, steps, final loss, wall seconds, onnxruntime version) per key, written
atomically. A file from another onnxruntime version is not reused.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from edge_sdk.atomic import atomic_write_bytes, atomic_write_text
from edge_sdk.fleet.work import TrainResult


def _ort_version() -> str:
    import onnxruntime

    return str(onnxruntime.__version__)


class Memo:
    def __init__(self, folder: Path | None = None) -> None:
        self.folder = Path(folder) if folder is not None else None
        self._mem: dict[str, TrainResult] = {}
        self.hits = 0

    def _stem(self, key: str) -> Path:
        assert self.folder is not None
        return self.folder / hashlib.sha256(key.encode()).hexdigest()

    def get(self, key: str) -> TrainResult | None:
        if key in self._mem:
            self.hits += 1
            return self._mem[key]
        if self.folder is None:
            return None
        stem = self._stem(key)
        try:
            meta = json.loads(stem.with_suffix(".json").read_text())
            model = stem.with_suffix(".onnx").read_bytes()
        except (OSError, ValueError):
            return None
        if meta.get("key") != key or meta.get("onnxruntime") != _ort_version() or \
                hashlib.sha256(model).hexdigest() != meta.get("model_sha256"):
            return None
        res = TrainResult(key, model, int(meta["steps"]), meta.get("final_loss"), float(meta["wall_s"]))
        self._mem[key] = res
        self.hits += 1
        return res

    def put(self, res: TrainResult) -> None:
        if res.model is None:
            return
        self._mem[res.key] = res
        if self.folder is None:
            return
        stem = self._stem(res.key)
        atomic_write_bytes(stem.with_suffix(".onnx"), res.model, make_parents=True)
        atomic_write_text(stem.with_suffix(".json"), json.dumps(
            {"key": res.key, "steps": res.steps, "final_loss": res.final_loss, "wall_s": res.wall_s,
             "onnxruntime": _ort_version(), "model_sha256": hashlib.sha256(res.model).hexdigest()}, sort_keys=True))

"""``report.json``: the result record written by ``edge-sdk distill`` and ``edge-sdk quantize``.

API (shared with server/adq)::

    from edge_sdk.server.report import build_report, validate_report, write_report, SCHEMA_ID
    rep = build_report(command="distill", method="quadd-dm", config={...}, budget={...}, payload_path=path,
                       data=task_data, eval_result=res, timings={"build_s": 12.3}, extra={...})
    write_report(out_dir / "report.json", rep)     # validates, then writes atomically
    validate_report(json.load(open(p)))            # raises ConfigError listing every problem

Schema (``schema == "edge-sdk.report/1"``; documented field by field in docs/report-schema.md):
``schema, command, method, config, budget {bytes, spec, compression_target}, dataset {name, n_train, n_test, dim,
num_classes, model}, payload {path, bytes, sha256}, payload_bytes, full_float32_bytes, compression,
kpis {name: {mean, std, per_seed}}, eval {config, seeds}, seeds, timings {..._s}, versions, created_utc,
extra``.  ``payload_bytes`` is the size of the file on disk; ``compression = full_float32_bytes /
payload_bytes``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import time
from pathlib import Path
from typing import Any

from edge_sdk.atomic import atomic_write_bytes
from edge_sdk.errors import ConfigError

SCHEMA_ID = "edge-sdk.report/1"

#: field -> expected python type(s) of the top-level report
_TOP: dict[str, tuple[type, ...]] = {
    "schema": (str,),
    "command": (str,),
    "method": (str,),
    "config": (dict,),
    "budget": (dict,),
    "dataset": (dict,),
    "payload": (dict,),
    "payload_bytes": (int,),
    "full_float32_bytes": (int,),
    "compression": (float, int),
    "kpis": (dict,),
    "eval": (dict,),
    "seeds": (list,),
    "timings": (dict,),
    "versions": (dict,),
    "created_utc": (str,),
    "extra": (dict,),
}


def library_versions() -> dict[str, str]:
    """Versions of python and the libraries a result depends on."""
    import numpy

    from edge_sdk._version import __version__

    out = {"python": platform.python_version(), "edge_sdk": __version__, "numpy": numpy.__version__}
    for mod in ("torch", "h5py", "onnx", "onnxruntime", "sklearn"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - optional libraries
            pass
    return out


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def dataset_block(data: Any) -> dict[str, Any]:
    """The report's ``dataset`` block of a ``TaskData``: name, sizes, classes and the model spec."""
    return {"name": data.name, "n_train": int(data.X_train.shape[0]), "n_test": int(data.X_test.shape[0]),
            "dim": int(data.X_train.shape[1]), "num_classes": int(data.num_classes), "model": data.spec.to_dict()}


def build_report(*, command: str, method: str, config: dict[str, Any], budget: dict[str, Any],
                 payload_path: str | os.PathLike, data: Any, eval_result: Any, timings: dict[str, float],
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Assemble a report; ``payload_bytes`` is measured on disk, ``dataset`` and ``full_float32_bytes`` come from
    ``data`` (a ``TaskData``) and ``kpis`` from ``eval_result`` (an :class:`edge_sdk.server.train_eval.EvalResult`)."""
    full_float32_bytes = int(data.full_float32_bytes)
    dataset = dataset_block(data)
    p = Path(payload_path)
    size = p.stat().st_size
    rep = {
        "schema": SCHEMA_ID,
        "command": command,
        "method": method,
        "config": config,
        "budget": {"bytes": budget.get("bytes"), "spec": budget.get("spec"),
                   "compression_target": budget.get("compression_target")},
        "dataset": dataset,
        "payload": {"path": str(p), "bytes": size, "sha256": file_sha256(p)},
        "payload_bytes": size,
        "full_float32_bytes": int(full_float32_bytes),
        "compression": float(full_float32_bytes) / size,
        "kpis": eval_result.kpis(),
        "eval": {"config": eval_result.config, "seeds": list(eval_result.seeds), "seconds": eval_result.seconds},
        "seeds": list(eval_result.seeds),
        "timings": {k: float(v) for k, v in timings.items()},
        "versions": library_versions(),
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "extra": extra or {},
    }
    validate_report(rep)
    return rep


def validate_report(rep: Any) -> None:
    """Raise :class:`ConfigError` naming every field that breaks the schema."""
    errs: list[str] = []
    if not isinstance(rep, dict):
        raise ConfigError("report must be a JSON object")
    for k, types in _TOP.items():
        if k not in rep:
            errs.append(f"missing field {k!r}")
        elif not isinstance(rep[k], types) or isinstance(rep[k], bool):
            errs.append(f"field {k!r} must be {'/'.join(t.__name__ for t in types)}, got {type(rep[k]).__name__}")
    if errs:
        raise ConfigError("invalid report.json: " + "; ".join(errs))
    if rep["schema"] != SCHEMA_ID:
        errs.append(f"schema must be {SCHEMA_ID!r}, got {rep['schema']!r}")
    if rep["command"] not in ("distill", "quantize"):
        errs.append("command must be 'distill' or 'quantize'")
    if rep["payload_bytes"] <= 0:
        errs.append("payload_bytes must be > 0")
    if rep["payload"].get("bytes") != rep["payload_bytes"]:
        errs.append("payload.bytes must equal payload_bytes")
    b = rep["budget"].get("bytes")
    if b is not None and (not isinstance(b, int) or rep["payload_bytes"] > b):
        errs.append(f"payload_bytes {rep['payload_bytes']} exceeds budget.bytes {b}")
    if rep["full_float32_bytes"] > 0 and not math.isclose(
        rep["compression"], rep["full_float32_bytes"] / max(rep["payload_bytes"], 1), rel_tol=1e-9
    ):
        errs.append("compression must equal full_float32_bytes / payload_bytes")
    if len(rep["seeds"]) < 1:
        errs.append("seeds must not be empty")
    if not rep["kpis"]:
        errs.append("kpis must not be empty")
    for name, v in rep["kpis"].items():
        if not isinstance(v, dict) or not {"mean", "std", "per_seed"} <= set(v):
            errs.append(f"kpis[{name!r}] needs mean, std, per_seed")
            continue
        if len(v["per_seed"]) != len(rep["seeds"]):
            errs.append(f"kpis[{name!r}].per_seed has {len(v['per_seed'])} values for {len(rep['seeds'])} seeds")
        if not all(isinstance(x, (int, float)) and math.isfinite(x) for x in [v["mean"], v["std"], *v["per_seed"]]):
            errs.append(f"kpis[{name!r}] has a non-finite value")
    for k in ("name", "n_train", "n_test", "dim", "num_classes", "model"):
        if k not in rep["dataset"]:
            errs.append(f"dataset.{k} is missing")
    for k, v in rep["timings"].items():
        if not k.endswith("_s") or not isinstance(v, (int, float)):
            errs.append(f"timings[{k!r}] must be a number of seconds named *_s")
    if errs:
        raise ConfigError("invalid report.json: " + "; ".join(errs))


def write_report(path: str | os.PathLike, rep: dict[str, Any]) -> None:
    """Validate and atomically write ``rep`` as indented JSON."""
    validate_report(rep)
    atomic_write_bytes(path, (json.dumps(rep, indent=2, sort_keys=False) + "\n").encode(), make_parents=True)

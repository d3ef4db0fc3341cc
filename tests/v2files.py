"""Test helper (torch-free, also in the device-only venvs): a v1 payload rewritten in payload format v2 with its
task blob beside it, as `edge-sdk distill --payload-format 2` writes them. Import it as ``from v2files import
v2_payload`` (tests/ is on the test path)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def v2_payload(src: Path, dst: Path, k: int | None = None, signing_key=None, recipe_overrides=None) -> Path:
    """The first ``k`` samples (all: None) of every group of the v1 payload ``src`` as a payload of format v2 at
    ``dst``, with its task blob written beside it as ``task.json`` (task spec + graph digest of ``src``);
    ``recipe_overrides``: recipe fields to change (e.g. ``{"label_smoothing": 0.1}``)."""
    from edge_sdk.payload import SampleGroup, read_payload, write_payload_v2
    from edge_sdk.payload.taskblob import TASK_BLOB_NAME, write_task_blob

    with read_payload(src) as p:
        groups = []
        for g in p.groups:
            n = g.n if k is None else k
            params = {a: (v[:n] if v.ndim and v.shape[0] == g.n else v) for a, v in g.params().items()}
            groups.append(SampleGroup(name=g.name, kind=g.kind, bits=g.bits, data=np.array(g.codes()[:n]),
                                      params=params, labels=np.array(g.labels()[:n]), role=g.role))
        task, graph, classes = dict(p.task), dict(p.graph), p.num_classes
    recipe = {**task.pop("train"), **(recipe_overrides or {})}
    blob = write_task_blob(dst.parent / TASK_BLOB_NAME, task, graph)
    write_payload_v2(dst, groups, classes, task_digest=blob.digest, recipe=recipe, signing_key=signing_key)
    return dst

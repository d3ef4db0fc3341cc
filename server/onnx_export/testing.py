"""Independent references for checking a training graph: a numpy bit packer, random group data, feeding an
ONNX Runtime session, and eager torch training with ``torch.nn`` + ``torch.optim`` + ``F.cross_entropy``.

Nothing here shares code with :mod:`.step`: the eager reference uses torch's own modules, loss and optimizers,
so a parity test against it checks the exported graph (unpack, dequantize, loss, gradients, update).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_sdk import codecs
from edge_sdk.graphmeta import STATE_SUFFIXES, GraphGroup, TrainGraphSpec
from edge_sdk.modelspec import ModelSpec


def pack_rows_reference(codes: np.ndarray, bits: int) -> np.ndarray:
    """uint8 codes [N, D] -> packed [N, ceil(D*bits/8)] (value i at stream bits [i*b,(i+1)*b), LSB first)."""
    n, d = codes.shape
    bitmat = ((codes[:, :, None].astype(np.uint16) >> np.arange(bits)) & 1).astype(np.uint8).reshape(n, d * bits)
    pad = (-d * bits) % 8
    bitmat = np.concatenate([bitmat, np.zeros((n, pad), np.uint8)], axis=1)
    return np.packbits(bitmat, axis=1, bitorder="little")


@dataclass
class GroupBatch:
    """One group's rows of a batch: codes/values, their params, and the graph feed."""

    feed: dict[str, np.ndarray]
    x: np.ndarray  # dequantized float32 [B_k, D] (numpy codecs)


def random_group_batch(k: int, g: GraphGroup, b: int, rng: np.random.Generator,
                       params: dict[str, np.ndarray] | None = None) -> GroupBatch:
    """Random codes (full range, so packed bytes >= 128 occur) for group ``k`` with ``b`` rows."""
    if g.raw:
        v = rng.standard_normal((b, g.d)).astype(np.float32)
        if g.kind == "float16":
            v = v.astype(np.float16).astype(np.float32)
        return GroupBatch({f"g{k}.values": v}, v)
    codes = rng.integers(0, 1 << g.bits, (b, g.d)).astype(np.uint8)
    if g.kind in ("symmetric_per_sample", "uniform_clip"):
        codes = np.minimum(codes, 2 * g.q).astype(np.uint8)  # codes live in [0, 2Q]
    params = dict(params or {})
    if g.kind == "symmetric_per_sample":
        params = {"scale": rng.uniform(0.05, 2.0, b).astype(np.float32)}
    elif g.kind == "uniform_clip" and "alpha" not in params:
        params = {"alpha": rng.uniform(0.5, 3.0, g.d if g.per_feature else 1).astype(np.float32)}
    elif g.kind == "codebook" and "levels" not in params:
        params = {"levels": rng.standard_normal(1 << g.bits).astype(np.float32)}
    elif g.kind in codecs.AFFINE_KINDS and ("lo" not in params or g.kind == "affine_sample"):
        m = {"affine_set": 1, "affine_feature": g.d, "affine_sample": b}[g.kind]
        lo = rng.uniform(-6.0, 0.0, m).astype(np.float32)
        params = {"lo": lo, "hi": (lo + rng.uniform(0.0, 4.0, m)).astype(np.float32)}
    feed = {f"g{k}.packed": pack_rows_reference(codes, g.bits)}
    feed.update({f"g{k}.{n}": v for n, v in params.items()})
    x = codecs.dequantize(codes, g.kind, g.bits, params) if b else np.zeros((0, g.d), np.float32)
    return GroupBatch(feed, x.astype(np.float32))


def init_state(spec: TrainGraphSpec, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {f"{n}.{s}": np.zeros_like(params[n]) for n in spec.param_names() for s in STATE_SUFFIXES[spec.optimizer]}


class EagerReference:
    """Eager torch training of the same MLP with ``torch.optim.SGD``/``Adam`` and ``F.cross_entropy``."""

    def __init__(self, model: ModelSpec, params: dict[str, np.ndarray], optimizer: str, hp: dict[str, float]):
        import torch

        dims = [model.input_dim, *model.hidden, model.num_classes]
        layers: list[Any] = []
        for i in range(len(dims) - 1):
            layers.append(torch.nn.Linear(dims[i], dims[i + 1]))
            if i < len(dims) - 2:
                layers.append(torch.nn.ReLU())
        self.net = torch.nn.Sequential(*layers)
        self.linears = [m for m in self.net if isinstance(m, torch.nn.Linear)]
        with torch.no_grad():
            for i, lin in enumerate(self.linears):
                lin.weight.copy_(torch.from_numpy(params[f"fc{i}.weight"]))
                lin.bias.copy_(torch.from_numpy(params[f"fc{i}.bias"]))
        self.opt: torch.optim.Optimizer
        if optimizer == "sgd":
            self.opt = torch.optim.SGD(self.net.parameters(), lr=hp["lr"], momentum=hp["momentum"],
                                       weight_decay=hp["weight_decay"])
        else:
            self.opt = torch.optim.Adam(self.net.parameters(), lr=hp["lr"], betas=(hp["beta1"], hp["beta2"]),
                                        eps=hp["eps"], weight_decay=hp["weight_decay"], foreach=False)

    def step(self, x: np.ndarray, y: np.ndarray, soft: np.ndarray | None = None, soft_weight: float = 0.0,
             lr: float | None = None, label_smoothing: float = 0.0) -> float:
        import torch
        import torch.nn.functional as F

        if lr is not None:
            for group in self.opt.param_groups:
                group["lr"] = lr
        self.opt.zero_grad()
        z = self.net(torch.from_numpy(x))
        loss = F.cross_entropy(z, torch.from_numpy(y), label_smoothing=label_smoothing)
        if soft is not None:
            sl = F.cross_entropy(z, torch.softmax(torch.from_numpy(soft), 1))  # soft-target CE, rows = logits
            loss = (1 - soft_weight) * loss + soft_weight * sl
        loss.backward()
        self.opt.step()
        return float(loss.detach())

    def params(self) -> dict[str, np.ndarray]:
        out = {}
        for i, lin in enumerate(self.linears):
            out[f"fc{i}.weight"] = lin.weight.detach().numpy().copy()
            out[f"fc{i}.bias"] = lin.bias.detach().numpy().copy()
        return out


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    """||a - b|| / max(||b||, tiny) (Frobenius)."""
    num = float(np.linalg.norm(np.asarray(a, np.float64) - b))
    return num / max(float(np.linalg.norm(np.asarray(b, np.float64))), 1e-30)


def _source_key(spec: TrainGraphSpec) -> str:
    import hashlib
    from pathlib import Path

    import torch

    h = hashlib.sha256(spec.meta_json().encode())
    h.update(str(spec.debug_features).encode())
    h.update(torch.__version__.encode())
    from edge_sdk import graphmeta
    from edge_sdk.server import models

    here = Path(__file__).parent
    # models.py: the gru forward; graphmeta.py: the graph's layout (input names, groups)
    for path in (here / "step.py", here / "epoch.py", here / "export.py", Path(models.__file__),
                 Path(graphmeta.__file__)):
        h.update(path.read_bytes())
    return h.hexdigest()[:24]


def cached_training_graph(spec: TrainGraphSpec, cache_dir: str | None = None) -> bytes:
    """Export ``spec`` once per machine (keyed by spec + exporter sources + torch version); parallel test
    workers wait on a file lock instead of exporting twice. Cache dir: ``$EDGE_SDK_GRAPH_CACHE`` or
    ``<tmp>/edge-sdk-graph-cache-<uid>``."""
    import fcntl
    import os
    import tempfile
    from pathlib import Path

    from edge_sdk.server.onnx_export.export import _atomic_write, training_graph_bytes

    root = Path(cache_dir or os.environ.get("EDGE_SDK_GRAPH_CACHE")
                or Path(tempfile.gettempdir()) / f"edge-sdk-graph-cache-{os.getuid()}")
    root.mkdir(parents=True, exist_ok=True)
    key = _source_key(spec)
    path = root / f"{key}.onnx"
    with open(root / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():
            return path.read_bytes()
        data = training_graph_bytes(spec)
        _atomic_write(path, data)
        return data

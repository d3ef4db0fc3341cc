"""On-device training: payload + training graph -> trained MLP, with checkpoint/resume and beam KPIs.

Flow (docs/device.md): verify the payload (content digest; Ed25519 signature when trusted keys are given) ->
check the graph bytes against the payload's graph digest -> initial parameters from
``edge_sdk.modelspec.init_params(model, seed)`` (the device never receives weights) -> for each epoch, batches
in ``epoch_order(N, seed, epoch)`` order (last batch may be smaller) -> one graph run per batch -> atomic
checkpoint after every epoch (format v1, ``edge_sdk.device.checkpoint``) -> standalone inference ONNX with the
weights as initializers. An epoch graph (format v2, the default export) takes a whole epoch's steps in one or a few
``run()`` calls, a step graph (v1) one step per call (:mod:`edge_sdk.device.executor`). Everything the device reads is validated before anything is allocated: the payload, the
task spec (``edge_sdk.schema.TaskSpec``, the beam task, the model spec), the graph's self-description against the
graph itself, the estimated training memory against ``TrainLimits`` (docs/device.md, "What the device validates").

Learning-rate schedule (per optimizer step ``t = 0..T-1``, ``T`` = epochs x batches per epoch):
``cosine``: ``lr_t = lr * 0.5 * (1 + cos(pi * t / T))``; ``step``: ``lr * gamma ** (epoch // step_epochs)``;
``constant``: ``lr``. Adam's bias-correction step count is ``t + 1``.
"""

from __future__ import annotations

import json
import math
import os
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
from edge_sdk.device.checkpoint import CHECKPOINT_NAME, read_checkpoint, write_checkpoint
from edge_sdk.device.data import PayloadData
from edge_sdk.device.executor import DECODE_BUDGET_BYTES, make_executor
from edge_sdk.device.graph import TrainGraph, check_groups, load_train_graph
from edge_sdk.device.onnx_mlp import mlp_inference_model

from edge_sdk.atomic import atomic_write_bytes
from edge_sdk.errors import CheckpointError, ConfigError, DeviceError
from edge_sdk.modelspec import ModelSpec, epoch_order, init_params
from edge_sdk.schema import TaskSpec, TrainLimits

SCHEDULES = ("cosine", "step", "constant")
CHECKPOINT = CHECKPOINT_NAME
OLD_CHECKPOINTS = ("checkpoint.npz",)  # before checkpoint format v1: refused with a message
MAX_HISTORY = 100_000


#: schema bounds of the recipe values a payload (or the caller) gives: ints (lo, hi); floats (lo, hi, lo_open,
#: hi_open; None = unbounded, finite). Generous for real recipes; they stop a crafted payload from training
#: forever or allocating a batch the device cannot hold (the memory bound itself is TrainLimits). A learning
#: rate that makes training diverge is a run-time DeviceError ("loss became ...").
TRAIN_BOUNDS: dict[str, tuple[Any, ...]] = {
    "epochs": (1, 100_000), "batch_size": (1, 1 << 20), "step_epochs": (1, 100_000), "seed": (0, 2**63 - 1),
    "threads": (1, 1024), "steps": (1, 1 << 40),
    "lr": (0.0, None, True, False), "gamma": (0.0, None, True, False), "momentum": (0.0, 1.0, False, True),
    "beta1": (0.0, 1.0, False, True), "beta2": (0.0, 1.0, False, True), "eps": (0.0, 1.0, True, False),
    "weight_decay": (0.0, None, False, False), "soft_weight": (0.0, 1.0, False, False),
}


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters. Defaults are overridden by the payload task's ``train`` dict, then by the
    caller. ``lr`` etc. are fed to the graph as inputs (nothing is baked into the graph)."""

    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3
    schedule: str = "cosine"
    step_epochs: int = 10
    gamma: float = 0.1
    momentum: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    soft_weight: float = 1.0
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError("epochs and batch_size must be >= 1")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"lr must be a positive finite number, got {self.lr}")
        if not 0.0 <= self.soft_weight <= 1.0:
            raise ConfigError("soft_weight must be in [0, 1]")

    @classmethod
    def from_task(cls, task: dict[str, Any], **overrides: Any) -> TrainConfig:
        """Defaults <- ``task["train"]`` <- non-None ``overrides``; every value type- and range-checked
        (:data:`TRAIN_BOUNDS`, SchemaError naming ``task.train.<key>``); the server's informational keys
        ``optimizer`` and ``steps`` are checked and otherwise ignored."""
        from edge_sdk.schema import as_float, as_int, as_str, check_keys, expect_dict

        def check(k: str, v: Any, where: str) -> None:
            if k in ("schedule", "optimizer"):
                as_str(v, where, SCHEDULES if k == "schedule" else ("sgd", "adam"))
            elif len(TRAIN_BOUNDS[k]) == 2:
                as_int(v, where, *TRAIN_BOUNDS[k])
            else:
                lo, hi, lo_open, hi_open = TRAIN_BOUNDS[k]
                as_float(v, where, lo, hi, lo_open=lo_open, hi_open=hi_open)

        names = {f.name for f in fields(cls)}
        train = expect_dict(task.get("train") or {}, "task.train")
        check_keys(train, "task.train", (), names | {"optimizer", "steps"})
        for k, v in train.items():
            check(k, v, f"task.train.{k}")
        unknown = sorted(k for k, v in overrides.items() if v is not None and k not in names)
        if unknown:
            raise ConfigError(f"unknown training option(s) {unknown}; known: {sorted(names)}")
        given = {k: v for k, v in overrides.items() if v is not None}
        for k, v in given.items():
            check(k, v, f"option {k}")
        base = {k: v for k, v in train.items() if k in names} | given
        return cls(**base)

    def lr_at(self, t: int, total: int, epoch: int) -> float:
        """Learning rate of optimizer step ``t`` (0-based) of ``total``, in epoch ``epoch``."""
        if self.schedule == "cosine":
            return self.lr * 0.5 * (1.0 + math.cos(math.pi * t / max(total, 1)))
        if self.schedule == "step":
            return self.lr * self.gamma ** (epoch // max(self.step_epochs, 1))
        return self.lr


def peak_rss_mb() -> float:
    """Peak resident set size of this process, MiB.

    Linux: ``VmHWM`` of /proc/self/status (the high-water mark of this process image; ``ru_maxrss`` would
    carry over the parent's peak across fork+exec). Elsewhere: ``getrusage(RUSAGE_SELF).ru_maxrss``
    (KiB on Linux/BSD, bytes on macOS)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024.0 * 1024.0) if sys.platform == "darwin" else rss / 1024.0


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write_bytes(path, data, make_parents=True)


@dataclass
class TrainState:
    params: dict[str, np.ndarray]
    state: dict[str, np.ndarray]
    epoch: int = 0  # epochs finished
    step: int = 0  # optimizer steps taken
    history: list[dict[str, float]] | None = None


class Trainer:
    """Train the payload's model with its graph. ``trusted_keys``: Ed25519 public keys (paths, PEM bytes or key
    objects) the payload signature must verify against; ``require_signature`` refuses unsigned payloads."""

    def __init__(self, payload_path: str | os.PathLike[str], graph_path: str | os.PathLike[str],
                 config: TrainConfig | None = None, *, trusted_keys: Any = None, require_signature: bool = False,
                 limits: TrainLimits | None = None, train_graph: TrainGraph | None = None,
                 **overrides: Any) -> None:
        """``train_graph``: an already loaded graph session to reuse (e.g. one per worker in a fleet simulation);
        it must be the graph the payload names (digest and size are checked) and ``graph_path`` is not read.
        ``limits``: the device's memory bound (default :class:`~edge_sdk.schema.TrainLimits`)."""
        from edge_sdk.beam.taskspec import BeamTaskSpec
        from edge_sdk.payload import read_payload

        self.payload_path = Path(payload_path)
        self.graph_path = Path(graph_path)
        self.limits = limits or TrainLimits()
        self.payload = read_payload(self.payload_path, trusted_keys=trusted_keys or None,
                                    require_signature=require_signature)
        if self.payload.graph is None:
            raise DeviceError("payload names no training graph (export it with a graph digest)")
        self.task = dict(self.payload.task or {})
        spec = TaskSpec.from_dict(self.task)  # the envelope, then each part with its own schema
        if spec.beam is not None:
            BeamTaskSpec.from_dict(spec.beam, "task.beam")
        task_model = ModelSpec.from_dict(spec.model, "task.model") if spec.model is not None else None
        self.config = config if config is not None else TrainConfig.from_task(self.task, **overrides)
        if config is not None and overrides:
            self.config = replace(config, **{k: v for k, v in overrides.items() if v is not None})
        if train_graph is not None:
            want = self.payload.graph
            if (str(want.get("sha256", "")).lower(), int(want.get("size", -1))) != (train_graph.sha256, train_graph.size):
                raise DeviceError("the given training graph is not the one the payload names (sha256/size differ)")
            self.graph: TrainGraph = train_graph
        else:
            gsize = self.graph_path.stat().st_size
            if gsize != self.payload.graph["size"]:
                raise DeviceError(f"graph does not match the payload: {self.graph_path} is {gsize} bytes, the "
                                  f"payload names a graph of {self.payload.graph['size']} bytes (sha256 "
                                  f"{self.payload.graph['sha256']}); use the graph exported together with this payload")
            self.graph = load_train_graph(self.graph_path.read_bytes(), self.payload.graph, threads=self.config.threads)
        if task_model is not None and task_model != self.graph.model:
            raise DeviceError("the payload's task model differs from the graph's model")
        self.memory = self.limits.check(self.graph.model, self.config.batch_size, self.graph.optimizer)
        check_groups(self.graph, self.payload.groups, self.payload.num_classes)
        self.data = PayloadData(self.payload)
        if self.data.has_soft != self.graph.has_soft:
            raise DeviceError("soft-label groups of payload and graph disagree")
        self.bytes_received = int(self.payload.size) + int(self.graph.size)
        # the epoch graph decodes the rows of many batches per run: within what the memory bound leaves
        decode_budget = min(DECODE_BUDGET_BYTES, max(0, self.limits.max_train_memory - self.memory.total))
        self.executor = make_executor(self.graph, self.data, decode_budget)
        self.steps_per_epoch = -(-self.data.n // self.config.batch_size)
        self.total_steps = self.steps_per_epoch * self.config.epochs

    # ------------------------------------------------------------------------------------ state
    def initial_state(self) -> TrainState:
        params = init_params(self.graph.model, self.config.seed)
        state = {n: np.zeros_like(params[n.rsplit(".", 1)[0]]) for n in self.graph.state_names}
        return TrainState(params=params, state=state, history=[])

    def _ckpt_meta(self) -> dict[str, Any]:
        cfg = asdict(self.config)
        cfg.pop("epochs")
        cfg.pop("threads")
        return {"payload_sha256": self.payload.sha256, "graph_sha256": self.graph.sha256, "config": cfg,
                "epochs_total": self.config.epochs}

    def _ckpt_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes = dict(self.graph.model.param_shapes())
        out = {f"p:{n}": tuple(shapes[n]) for n in self.graph.param_names}
        out.update({f"s:{n}": tuple(shapes[n.rsplit(".", 1)[0]]) for n in self.graph.state_names})
        return out

    def save_checkpoint(self, path: Path, st: TrainState) -> None:
        """Checkpoint format v1 (``edge_sdk.device.checkpoint``), written atomically: a kill leaves the previous
        checkpoint intact."""
        arrays = {f"p:{k}": v for k, v in st.params.items()} | {f"s:{k}": v for k, v in st.state.items()}
        meta = self._ckpt_meta() | {"epoch": st.epoch, "step": st.step, "history": st.history or []}
        write_checkpoint(path, meta, arrays)

    def load_checkpoint(self, path: Path) -> TrainState:
        """Read and check a checkpoint against this payload, graph and config (CheckpointError otherwise)."""
        meta, arrays = read_checkpoint(path, self._ckpt_shapes())
        want = self._ckpt_meta()
        if set(meta) != set(want) | {"epoch", "step", "history"}:
            raise CheckpointError(f"checkpoint {path} header has keys {sorted(meta)}; delete it to start over")
        for key in ("payload_sha256", "graph_sha256", "config"):
            if meta[key] != want[key]:
                raise CheckpointError(f"checkpoint {path} was made with a different {key.split('_')[0]}; "
                                      "delete it or drop --resume")
        epoch, step, history = meta["epoch"], meta["step"], meta["history"]
        ok = (isinstance(epoch, int) and not isinstance(epoch, bool) and 0 <= epoch <= self.config.epochs
              and isinstance(step, int) and not isinstance(step, bool) and 0 <= step <= self.total_steps
              and isinstance(history, list) and len(history) <= MAX_HISTORY
              and all(isinstance(h, dict) and set(h) == {"epoch", "loss"} and isinstance(h["epoch"], int)
                      and isinstance(h["loss"], (int, float)) for h in history))
        if not ok:
            raise CheckpointError(f"checkpoint {path} has an invalid epoch/step/history for this run "
                                  f"({self.config.epochs} epochs, {self.total_steps} steps); delete it to start over")
        params = {k[2:]: v for k, v in arrays.items() if k.startswith("p:")}
        state = {k[2:]: v for k, v in arrays.items() if k.startswith("s:")}
        return TrainState(params, state, epoch, step, list(history))

    # --------------------------------------------------------------------------------- training
    def _hyper(self, t: int, epoch: int) -> dict[str, np.ndarray]:
        c = self.config
        vals = {"lr": c.lr_at(t, self.total_steps, epoch), "momentum": c.momentum, "weight_decay": c.weight_decay,
                "beta1": c.beta1, "beta2": c.beta2, "eps": c.eps, "step": float(t + 1)}
        out = {h: np.asarray(vals[h], np.float32) for h in self.graph.hyper}
        if self.graph.has_soft:
            out["soft_weight"] = np.asarray(c.soft_weight if self.data.has_hard_labels else 1.0, np.float32)
        return out

    def train_epoch(self, st: TrainState, progress: Callable[[int], Any] | None = None) -> float:
        """One epoch in ``epoch_order``; updates ``st`` in place; returns the mean loss. The steps run through
        the executor of the graph's variant (:mod:`edge_sdk.device.executor`): K steps per ``run()`` for an
        epoch graph (format v2), one per ``run()`` for a step graph (v1)."""
        order = epoch_order(self.data.n, self.config.seed, st.epoch)
        bs = self.config.batch_size
        batches = [np.sort(order[s: s + bs]) for s in range(0, self.data.n, bs)]
        hypers = [self._hyper(st.step + i, st.epoch) for i in range(len(batches))]
        st.params, st.state, losses = self.executor.run(st.params, st.state, batches, hypers, first_step=st.step,
                                                        progress=progress)
        st.step += len(batches)
        st.epoch += 1
        mean = float(np.mean(losses))
        (st.history if st.history is not None else []).append({"epoch": st.epoch, "loss": mean})
        return mean

    def train(self, out_dir: str | os.PathLike[str] | None = None, resume: bool = False, progress: bool = False,
              stop_after_epochs: int | None = None) -> TrainState:
        """Train ``config.epochs`` epochs; checkpoint to ``out_dir/checkpoint.npz`` after each; with ``resume``
        continue from it. ``stop_after_epochs`` ends early (for tests / budgets) after that many epochs total."""
        ckpt = Path(out_dir) / CHECKPOINT if out_dir is not None else None
        if resume and ckpt is not None and not ckpt.exists():
            old = [Path(out_dir or ".") / n for n in OLD_CHECKPOINTS if (Path(out_dir or ".") / n).exists()]
            if old:
                raise CheckpointError(f"{old[0]} is a checkpoint of an older format this edge-sdk does not read; "
                                      "delete it (or drop --resume) to start over")
        st = self.load_checkpoint(ckpt) if (resume and ckpt is not None and ckpt.exists()) else self.initial_state()
        end = self.config.epochs if stop_after_epochs is None else min(self.config.epochs, stop_after_epochs)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=self.total_steps, initial=st.step, unit="step", desc="device train")
        t0 = time.perf_counter()
        step0 = st.step
        try:
            while st.epoch < end:
                loss = self.train_epoch(st, bar.update if bar is not None else None)
                if bar is not None:
                    bar.set_postfix(epoch=st.epoch, loss=f"{loss:.4f}")
                if ckpt is not None:
                    self.save_checkpoint(ckpt, st)
        finally:
            if bar is not None:
                bar.close()
        self.train_seconds = time.perf_counter() - t0
        self.steps_run = st.step - step0
        return st

    # ---------------------------------------------------------------------------- model export
    def model_bytes(self, params: dict[str, np.ndarray]) -> bytes:
        return mlp_inference_model(self.graph.model, params,
                                   {"edge_sdk.payload_sha256": self.payload.sha256,
                                    "edge_sdk.task": json.dumps(self.task, sort_keys=True)})

    def export_model(self, path: str | os.PathLike[str], params: dict[str, np.ndarray]) -> int:
        data = self.model_bytes(params)
        _atomic_write_bytes(Path(path), data)
        return len(data)

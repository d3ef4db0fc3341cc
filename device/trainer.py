"""On-device training: payload + training graph -> trained MLP, with checkpoint/resume and beam KPIs.

Flow (docs/device.md): verify the payload (content digest; Ed25519 signature when trusted keys are given) ->
check the graph bytes against the payload's graph digest -> the training recipe from the payload
(``task["train"]``, an :class:`edge_sdk.modelspec.TrainRecipe`; overrides only when the caller gives them) ->
initial parameters from ``edge_sdk.modelspec.init_params(model, seed)`` (the device never receives weights) ->
exactly ``recipe.steps`` updates, batches and learning rates from :mod:`edge_sdk.modelspec` (``iter_batches``,
``TrainRecipe.lr_at``) -> the updates run through the executor of the graph's variant (an epoch graph, format v2,
the default export, takes many steps per ``run()`` call; a step graph, v1, one per call:
:mod:`edge_sdk.device.graph`) -> atomic checkpoint after every epoch and at the end (format v1,
``edge_sdk.device.checkpoint``) -> standalone inference ONNX with the weights as initializers.
Everything the device reads is validated before anything is allocated: the payload, the task spec
(``edge_sdk.schema.TaskSpec``, the beam task, the model spec, the recipe with ``edge_sdk.modelspec.RECIPE_BOUNDS``),
the graph's self-description against the graph itself, the estimated training memory against ``TrainLimits``
(docs/device.md, "What the device validates").

With no overrides the device repeats the server's evaluation run of the same seed update for update (the
server trains with the same recipe, init, batch order and optimizer in torch; edge_sdk.server.train_eval).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_sdk.atomic import atomic_write_bytes
from edge_sdk.device.checkpoint import CHECKPOINT_NAME, read_checkpoint, write_checkpoint
from edge_sdk.device.evaluate import mlp_inference_model
from edge_sdk.device.graph import (
    DECODE_BUDGET_BYTES,
    PayloadData,
    TrainGraph,
    check_groups,
    load_train_graph,
    make_executor,
)
from edge_sdk.errors import CheckpointError, ConfigError, DeviceError
from edge_sdk.modelspec import ModelSpec, TrainRecipe, init_params, iter_batches
from edge_sdk.schema import TaskSpec, TrainLimits, as_int

CHECKPOINT = CHECKPOINT_NAME
OLD_CHECKPOINTS = ("checkpoint.npz",)  # before checkpoint format v1: refused with a message
MAX_HISTORY = 100_000
MAX_SEED = 2**63 - 1
MAX_THREADS = 1024


@dataclass(frozen=True)
class TrainConfig:
    """What the device runs: a training ``recipe`` plus the run's ``seed`` (init and batch order) and
    onnxruntime ``threads``. Build it with :func:`resolve_config` (payload recipe <- overrides)."""

    recipe: TrainRecipe = TrainRecipe()
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.recipe, TrainRecipe):
            raise ConfigError(f"TrainConfig.recipe must be a TrainRecipe, got {type(self.recipe).__name__}")
        as_int(self.seed, "seed", 0, MAX_SEED)
        as_int(self.threads, "threads", 1, MAX_THREADS)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form (``recipe`` in its stored form); :meth:`from_dict` reads it back."""
        return {"recipe": self.recipe.to_dict(), "seed": self.seed, "threads": self.threads}

    @classmethod
    def from_dict(cls, d: Any, where: str = "config") -> TrainConfig:
        """Strict inverse of :meth:`to_dict` (SchemaError naming the field otherwise)."""
        from edge_sdk.schema import check_keys, expect_dict

        d = expect_dict(d, where)
        check_keys(d, where, ("recipe",), ("seed", "threads"))
        return cls(TrainRecipe.from_dict(d["recipe"], f"{where}.recipe"), d.get("seed", 0), d.get("threads", 1))


def payload_recipe(task: dict[str, Any], optimizer: str) -> TrainRecipe:
    """The payload's recipe (``task["train"]``), or ``TrainRecipe.defaults(optimizer)`` when it carries none.
    A malformed recipe is a :class:`~edge_sdk.errors.SchemaError` naming the field (``task.train.<key>``)."""
    if task.get("train") is None:
        return TrainRecipe.defaults(optimizer)
    return TrainRecipe.from_dict(task["train"], "task.train")


def resolve_config(task: dict[str, Any], n: int, graph_optimizer: str, base: TrainConfig | None = None, *,
                   epochs: int | None = None, steps: int | None = None, seed: int | None = None,
                   threads: int | None = None, **recipe_overrides: Any) -> TrainConfig:
    """The run's config: ``base`` (default: the payload's recipe, seed 0, 1 thread) <- non-None overrides.

    ``epochs`` sets ``steps = epochs * ceil(n / batch_size)`` (after a ``batch_size`` override); ``steps`` and
    ``epochs`` exclude each other. The recipe's optimizer must be the graph's (``graph_optimizer``)."""
    if epochs is not None and steps is not None:
        raise ConfigError("give --steps or --epochs, not both")
    base = base if base is not None else TrainConfig(payload_recipe(task, graph_optimizer))
    recipe = base.recipe.with_overrides(steps=steps, **recipe_overrides)
    if epochs is not None:
        recipe = recipe.for_epochs(epochs, n)
    if recipe.optimizer != graph_optimizer:
        raise DeviceError(f"the recipe trains with {recipe.optimizer!r} but the graph implements {graph_optimizer!r}; "
                          "use the graph exported together with this payload")
    return TrainConfig(recipe, base.seed if seed is None else seed, base.threads if threads is None else threads)


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


@dataclass
class TrainState:
    """Parameters and optimizer state after ``step`` updates (``epoch`` = epochs started, the last one may be
    partial); ``history`` holds one ``{"epoch", "step", "loss"}`` row per finished or final epoch."""

    params: dict[str, np.ndarray]
    state: dict[str, np.ndarray]
    epoch: int = 0
    step: int = 0
    history: list[dict[str, float]] | None = None


def _valid_history(history: Any) -> bool:
    return (isinstance(history, list) and len(history) <= MAX_HISTORY
            and all(isinstance(h, dict) and set(h) == {"epoch", "step", "loss"}
                    and all(isinstance(h[k], int) and not isinstance(h[k], bool) for k in ("epoch", "step"))
                    and isinstance(h["loss"], (int, float)) and not isinstance(h["loss"], bool) for h in history))


class Trainer:
    """Train the payload's model with its graph. ``trusted_keys``: Ed25519 public keys (paths, PEM bytes or key
    objects) the payload signature must verify against; ``require_signature`` refuses unsigned payloads.
    ``config`` / ``overrides`` (``epochs``, ``steps``, ``seed``, ``threads`` and any :class:`TrainRecipe` field):
    see :func:`resolve_config`; with neither, the payload's recipe is followed exactly."""

    def __init__(self, payload_path: str | os.PathLike[str], graph_path: str | os.PathLike[str],
                 config: TrainConfig | None = None, *, trusted_keys: Any = None, require_signature: bool = False,
                 limits: TrainLimits | None = None, train_graph: TrainGraph | None = None,
                 task_blob: str | os.PathLike[str] | None = None, **overrides: Any) -> None:
        """``train_graph``: an already loaded graph session to reuse (e.g. one per worker in a fleet simulation);
        it must be the graph the payload names (digest and size are checked) and ``graph_path`` is not read.
        ``task_blob``: the task blob of a v2 payload (default: found beside the payload, or by digest in the store
        or device cache the payload lies in; :func:`edge_sdk.payload.taskblob.find_task_blob`).
        ``limits``: the device's memory bound (default :class:`~edge_sdk.schema.TrainLimits`)."""
        from edge_sdk.beam.taskspec import BeamTaskSpec
        from edge_sdk.payload import read_payload

        self.payload_path = Path(payload_path)
        self.graph_path = Path(graph_path)
        self.limits = limits or TrainLimits()
        self.payload = read_payload(self.payload_path, trusted_keys=trusted_keys or None,
                                    require_signature=require_signature, task_blob=task_blob)
        if self.payload.graph is None:
            raise DeviceError("payload names no training graph (export it with a graph digest)")
        self.task = dict(self.payload.task or {})
        spec = TaskSpec.from_dict(self.task)  # the envelope, then each part with its own schema
        if spec.beam is not None:
            BeamTaskSpec.from_dict(spec.beam, "task.beam")
        task_model = ModelSpec.from_dict(spec.model, "task.model") if spec.model is not None else None
        if spec.train is not None:  # the recipe's schema before anything is loaded (the optimizer check follows)
            TrainRecipe.from_dict(spec.train, "task.train")
        threads = overrides.get("threads") or (config.threads if config is not None else 1)
        as_int(threads, "threads", 1, MAX_THREADS)
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
            self.graph = load_train_graph(self.graph_path.read_bytes(), self.payload.graph, threads=threads)
        if task_model is not None and task_model != self.graph.model:
            raise DeviceError("the payload's task model differs from the graph's model")
        check_groups(self.graph, self.payload.groups, self.payload.num_classes)
        self.data = PayloadData(self.payload)
        if self.data.has_soft != self.graph.has_soft:
            raise DeviceError("soft-label groups of payload and graph disagree")
        self.config = resolve_config(self.task, self.data.n, self.graph.optimizer, config, **overrides)
        if self.config.recipe.label_smoothing > 0 and not self.graph.has_label_smoothing:
            raise DeviceError(f"the recipe smooths labels (label_smoothing {self.config.recipe.label_smoothing:g}) "
                              "but the training graph has no label_smoothing input; use the graph exported with "
                              "this payload (edge-sdk >= 0.3.0), or train with --label-smoothing 0")
        self.memory = self.limits.check(self.graph.model, self.config.recipe.batch_size, self.graph.optimizer)
        self.bytes_received = int(self.payload.size) + int(self.graph.size)
        # the epoch graph decodes the rows of many batches per run: within what the memory bound leaves
        decode_budget = min(DECODE_BUDGET_BYTES, max(0, self.limits.max_train_memory - self.memory.total))
        self.executor = make_executor(self.graph, self.data, decode_budget)
        self.steps_per_epoch = self.config.recipe.steps_per_epoch(self.data.n)
        self.total_steps = self.config.recipe.steps

    # ------------------------------------------------------------------------------------ state
    def initial_state(self) -> TrainState:
        params = init_params(self.graph.model, self.config.seed)
        state = {n: np.zeros_like(params[n.rsplit(".", 1)[0]]) for n in self.graph.state_names}
        return TrainState(params=params, state=state, history=[])

    def _ckpt_meta(self) -> dict[str, Any]:
        """What a checkpoint must agree on to be resumed: payload, graph, recipe (except ``steps``, so a run
        can be extended) and seed."""
        recipe = self.config.recipe.to_dict()
        recipe.pop("steps")
        return {"payload_sha256": self.payload.sha256, "graph_sha256": self.graph.sha256,
                "config": {"recipe": recipe, "seed": self.config.seed}, "steps_total": self.total_steps}

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
        """Read and check a checkpoint against this payload, graph and config (CheckpointError otherwise). A run
        can be resumed at any step, and extended (``steps`` may grow; everything else must match)."""
        meta, arrays = read_checkpoint(path, self._ckpt_shapes())
        want = self._ckpt_meta()
        if set(meta) != set(want) | {"epoch", "step", "history"}:
            raise CheckpointError(f"checkpoint {path} header has keys {sorted(meta)}; delete it to start over")
        have = dict(meta)
        if isinstance(have["config"], dict) and isinstance(have["config"].get("recipe"), dict):
            # checkpoints of edge-sdk < 0.3 predate the recipe field label_smoothing: theirs is the default, 0
            have["config"] = {**have["config"], "recipe": {"label_smoothing": 0.0, **have["config"]["recipe"]}}
        for key in ("payload_sha256", "graph_sha256", "config"):
            if have[key] != want[key]:
                raise CheckpointError(f"checkpoint {path} was made with a different {key.split('_')[0]}; "
                                      "delete it or drop --resume")
        epoch, step, history = meta["epoch"], meta["step"], meta["history"]
        max_epochs = self.config.recipe.epochs(self.data.n)
        ok = (isinstance(epoch, int) and not isinstance(epoch, bool) and 0 <= epoch <= max_epochs
              and isinstance(step, int) and not isinstance(step, bool) and 0 <= step <= self.total_steps
              and _valid_history(history))
        if not ok:
            raise CheckpointError(f"checkpoint {path} has an invalid epoch/step/history for this run "
                                  f"({max_epochs} epochs, {self.total_steps} steps); delete it to start over")
        params = {k[2:]: v for k, v in arrays.items() if k.startswith("p:")}
        state = {k[2:]: v for k, v in arrays.items() if k.startswith("s:")}
        return TrainState(params, state, epoch, step, list(history))

    # --------------------------------------------------------------------------------- training
    def _hyper(self, t: int) -> dict[str, np.ndarray]:
        r = self.config.recipe
        vals = {"lr": r.lr_at(t), "momentum": r.momentum, "weight_decay": r.weight_decay,
                "beta1": r.beta1, "beta2": r.beta2, "eps": r.eps, "step": float(t + 1)}
        out = {h: np.asarray(vals[h], np.float32) for h in self.graph.hyper}
        if self.graph.has_soft:
            out["soft_weight"] = np.asarray(r.soft_weight if self.data.has_hard_labels else 1.0, np.float32)
        if self.graph.has_label_smoothing:
            out["label_smoothing"] = np.asarray(r.label_smoothing, np.float32)
        return out

    def run_steps(self, st: TrainState, stop: int, progress: Callable[[int], Any] | None = None,
                  on_epoch_end: Callable[[TrainState], Any] | None = None) -> None:
        """Updates ``st.step .. stop-1`` (edge_sdk.modelspec batch rule, each batch's indices sorted) through the
        executor of the graph's variant, one epoch (or the rest of it) per call; updates ``st`` in place. After the
        last update of every epoch, and after update ``stop - 1``, a history row is added and ``on_epoch_end(st)``
        is called."""
        spe = self.steps_per_epoch
        r = self.config.recipe
        while st.step < stop:
            end = min(stop, (st.step // spe + 1) * spe)
            items = list(iter_batches(self.data.n, r.batch_size, self.config.seed, st.step, end))
            batches = [np.sort(idx) for _, _, idx in items]
            hypers = [self._hyper(t) for t, _, _ in items]
            st.params, st.state, losses = self.executor.run(st.params, st.state, batches, hypers, first_step=st.step,
                                                            progress=progress)
            st.step = end
            st.epoch = items[-1][1] + 1
            if st.history is None:
                st.history = []
            st.history.append({"epoch": st.epoch, "step": st.step, "loss": float(np.mean(losses))})
            if on_epoch_end is not None:
                on_epoch_end(st)

    def train_epoch(self, st: TrainState, progress: Callable[[int], Any] | None = None) -> float:
        """The rest of the current epoch (not capped by ``recipe.steps``: for measurements and step-wise use;
        :meth:`train` runs the recipe); returns its mean loss."""
        stop = (st.step // self.steps_per_epoch + 1) * self.steps_per_epoch
        self.run_steps(st, stop, progress)
        return float(st.history[-1]["loss"])  # type: ignore[index]

    def train(self, out_dir: str | os.PathLike[str] | None = None, resume: bool = False, progress: bool = False,
              stop_after_epochs: int | None = None) -> TrainState:
        """Run the recipe (``recipe.steps`` updates); checkpoint to ``out_dir/checkpoint.safetensors`` after each epoch
        and at the end; with ``resume`` continue from it (at any step). ``stop_after_epochs`` ends early (for
        tests / budgets) after that many epochs' worth of updates in total."""
        ckpt = Path(out_dir) / CHECKPOINT if out_dir is not None else None
        if resume and ckpt is not None and not ckpt.exists():
            old = [Path(out_dir or ".") / n for n in OLD_CHECKPOINTS if (Path(out_dir or ".") / n).exists()]
            if old:
                raise CheckpointError(f"{old[0]} is a checkpoint of an older format this edge-sdk does not read; "
                                      "delete it (or drop --resume) to start over")
        st = self.load_checkpoint(ckpt) if (resume and ckpt is not None and ckpt.exists()) else self.initial_state()
        end = self.total_steps
        if stop_after_epochs is not None:
            end = min(end, stop_after_epochs * self.steps_per_epoch)
        bar = None
        if progress:
            from edge_sdk.progress import progress_bar

            bar = progress_bar(total=self.total_steps, initial=st.step, unit="step", desc="device train")
        t0 = time.perf_counter()
        step0 = st.step

        def epoch_end(s: TrainState) -> None:
            if bar is not None:
                bar.set_postfix(epoch=s.epoch, loss=f"{s.history[-1]['loss']:.4f}")  # type: ignore[index]
            if ckpt is not None:
                self.save_checkpoint(ckpt, s)

        try:
            if st.step < end:
                self.run_steps(st, end, bar.update if bar is not None else None, epoch_end)
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
        atomic_write_bytes(path, data, make_parents=True)
        return len(data)

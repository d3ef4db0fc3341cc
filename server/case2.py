"""BM-Case2 temporal beam prediction: data splits, recipe selection on validation, and evaluation vs baselines.

API (used by ``tools/case2_eval.py``, which makes the dataset card's BM-Case2 tables)::

    from edge_sdk.server.case2 import Candidate, Recipe, split_by_trajectory, task_arrays, select, train
    tr, val = split_by_trajectory(train_ds, val_share=0.2, seed=0)       # whole trajectories to validation
    splits = Splits(BeamTaskSpec(case="case2", ...), tr, val, test_ds)     # task specs fitted on tr, cached
    best, table = select(default_candidates(), splits)                   # recipe search on validation only
    res = evaluate(best, splits, seeds=(1, 2, 3))                        # test KPIs, mean / std of 3 seeds

Protocol (every number in the card follows it):

* training trajectories are split into train / validation **by trajectory** (windows of one trajectory never sit
  on both sides); the test file is another run (other seed) and is only touched by the final evaluation;
* a candidate = model (kind ``mlp`` or ``gru``, widths) + recipe (Adam, learning rate, weight decay, label
  smoothing, batch, at most ``max_epochs`` with early stopping: ``patience`` epochs without a better validation
  Top-1). :func:`select` trains every candidate once (seed 0) and ranks them by validation Top-1;
* the chosen candidate is retrained with seeds 1, 2, 3; each run keeps the epoch with the best validation Top-1
  and is scored once on the test set (mean and std of the 3 runs reported);
* models start from ``init_params(model_spec, seed)`` (the contract the device uses) and batches follow
  ``epoch_order(N, seed, epoch)``; the loss is cross-entropy on the Top-1 label of the target instant.

**Pre-trained spatial model** (optional, ``Candidate.features`` ``"spatial"`` / ``"spatial+setb"``): a BM-Case1
MLP (Set B at one instant -> Set A Top-1 at that instant) is trained once on cheap *independent drops* of the same
scenario / arrays / codebooks (:func:`train_spatial`, e.g. preset ``uma-fr2-case2-drops``) and frozen; the
temporal model then sees, per history step, that model's Set A log-probabilities (:func:`spatial_features`),
optionally with the step's normalised Set B RSRP. The GRU on ``"spatial"`` starts at "hold the spatial model's
inference of the latest period" (its skip maps the latest step's log-probabilities to their classes).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from edge_sdk.beam.dataset import BeamDataset
from edge_sdk.beam.kpis import beam_kpis, topk_predictions
from edge_sdk.beam.taskspec import BeamTaskSpec
from edge_sdk.errors import ConfigError, DatasetError
from edge_sdk.modelspec import ModelSpec, epoch_order
from edge_sdk.server.models import forward, init_torch_params

#: logit gain of the residual start: the inputs are in units of the fitted scale (about 8 dB), so 1 dB of RSRP
#: difference is about 1.2 logits
SKIP_GAIN = 10.0
#: spatial features: Set A log-probabilities clipped at -LOGP_FLOOR and divided by SKIP_GAIN (so values lie in
#: [-LOGP_FLOOR / SKIP_GAIN, 0] and the GRU's skip start with gain SKIP_GAIN reproduces the clipped log-probabilities)
LOGP_FLOOR = 20.0
FEATURES = ("setb", "spatial", "spatial+setb")


@dataclass(frozen=True)
class Recipe:
    """Adam training with early stopping on the validation Top-1."""

    lr: float = 1e-3
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    #: 0: cross-entropy on the Top-1 label; T > 0: cross-entropy on soft targets softmax(RSRP_target / T dB)
    #: (the future beam pattern instead of its noisy argmax)
    soft_temperature_db: float = 0.0
    batch_size: int = 512
    max_epochs: int = 40
    patience: int = 6

    def __post_init__(self) -> None:
        if not (self.lr > 0 and self.batch_size >= 1 and self.max_epochs >= 1 and self.patience >= 1):
            raise ConfigError(f"invalid recipe {self}")


@dataclass(frozen=True)
class Candidate:
    """A model kind + widths + recipe; ``model_spec(task)`` builds the ModelSpec for a task."""

    kind: str
    hidden: tuple[int, ...]
    recipe: Recipe = field(default_factory=Recipe)
    norm: str = "per_sample_max"  # BeamTaskSpec input normalisation (per_sample_max dB or rel_linear)
    #: per-step inputs: "setb" (the task's normalised Set B RSRP), "spatial" (the pre-trained spatial model's Set A
    #: log-probabilities, :func:`spatial_features`) or "spatial+setb" (both, concatenated per step)
    features: str = "setb"

    def __post_init__(self) -> None:
        if self.features not in FEATURES:
            raise ConfigError(f"features must be one of {FEATURES}, got {self.features!r}")

    def step_width(self, task: BeamTaskSpec) -> int:
        """Features per history step F."""
        return {"setb": task.n_setb, "spatial": task.n_tx, "spatial+setb": task.n_tx + task.n_setb}[self.features]

    def model_spec(self, task: BeamTaskSpec) -> ModelSpec:
        f = self.step_width(task)
        if self.kind == "gru":  # residual start at the latest step (see ModelSpec and the module docstring)
            classes: tuple[int, ...] = ()
            if self.features == "setb" and task.is_subset:  # hold the best measured beam
                classes = tuple(int(c) for c in task.resolved_setb())
            elif self.features == "spatial":  # hold the spatial model's inference of the latest period
                classes = tuple(range(task.n_tx))
            return ModelSpec(kind="gru", input_dim=task.history * f, num_classes=task.num_classes,
                             hidden=self.hidden, in_shape=(task.history, f), skip_classes=classes,
                             skip_gain=SKIP_GAIN if classes else 0.0)
        return ModelSpec(kind=self.kind, input_dim=task.history * f, num_classes=task.num_classes, hidden=self.hidden)

    def label(self) -> str:
        r = self.recipe
        return (f"{self.kind}{'-'.join(map(str, self.hidden))} "
                + ("" if self.features == "setb" else f"[{self.features}] ")
                + f"{self.norm} lr={r.lr:g} wd={r.weight_decay:g}"
                + (f" ls={r.label_smoothing:g}" if r.label_smoothing else "")
                + (f" T={r.soft_temperature_db:g}" if r.soft_temperature_db else ""))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "hidden": list(self.hidden), "norm": self.norm, "features": self.features,
                "recipe": asdict(self.recipe)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Candidate:
        """The inverse of :meth:`to_dict` (e.g. a chosen candidate read back from a cached result)."""
        try:
            return cls(str(d["kind"]), tuple(int(h) for h in d["hidden"]), Recipe(**d["recipe"]), norm=str(d["norm"]),
                       features=str(d.get("features", "setb")))
        except (KeyError, TypeError) as e:
            raise ConfigError(f"not a candidate record ({e}): {d!r}") from e


@dataclass
class Arrays:
    """Model inputs ``x`` [M, D] float32, labels ``y`` [M] int64, ideal Set A RSRP at the target ``rsrp`` [M, n_tx]."""

    x: np.ndarray
    y: np.ndarray
    rsrp: np.ndarray


@dataclass
class Fit:
    """A trained model: parameters of the best validation epoch, that epoch (1-based), its validation Top-1,
    the per-epoch validation Top-1 and the wall time."""

    params: dict[str, torch.Tensor]
    epochs: int
    val_top1: float
    curve: list[float]
    seconds: float


def split_by_trajectory(ds: BeamDataset, val_share: float = 0.2, seed: int = 0) -> tuple[BeamDataset, BeamDataset]:
    """(train, validation) of a BM-Case2 dataset, whole trajectories to each side (a seeded draw)."""
    if ds.traj_id is None:
        raise DatasetError("a BM-Case2 dataset (traj_id) is needed")
    if not 0.0 < val_share < 1.0:
        raise ConfigError("val_share must be in (0, 1)")
    ids = np.unique(ds.traj_id)
    rng = np.random.Generator(np.random.PCG64([int(seed), 0xCA5E2]))
    val_ids = rng.choice(ids, size=max(1, int(round(val_share * len(ids)))), replace=False)
    is_val = np.isin(ds.traj_id, val_ids)
    return ds.subset(~is_val), ds.subset(is_val)


def task_arrays(spec: BeamTaskSpec, ds: BeamDataset) -> Arrays:
    """The examples of ``ds`` under ``spec`` (inputs, Top-1 labels, target RSRP for the KPIs)."""
    return Arrays(np.ascontiguousarray(spec.inputs(ds), np.float32), np.asarray(spec.labels(ds), np.int64),
                  np.asarray(spec.target_rsrp(ds), np.float32))


@torch.no_grad()
def scores(spec: ModelSpec, params: dict[str, torch.Tensor], x: np.ndarray, batch: int = 8192) -> np.ndarray:
    """Logits float32 [M, n_tx]."""
    out = [forward(spec, params, torch.from_numpy(x[s:s + batch])).numpy() for s in range(0, len(x), batch)]
    return np.concatenate(out) if out else np.zeros((0, spec.num_classes), np.float32)


def _top1(spec: ModelSpec, params: dict[str, torch.Tensor], a: Arrays) -> float:
    return float((scores(spec, params, a.x).argmax(1) == a.y).mean())


def train(mspec: ModelSpec, tr: Arrays, val: Arrays, recipe: Recipe, seed: int) -> Fit:
    """Adam from ``init_params(mspec, seed)`` with early stopping on the validation Top-1 (module docstring)."""
    t0 = time.perf_counter()
    params = init_torch_params(mspec, seed, requires_grad=True)
    opt = torch.optim.Adam(params.values(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    x, y = torch.from_numpy(tr.x), torch.from_numpy(tr.y)
    target: torch.Tensor = y
    if recipe.soft_temperature_db > 0:
        r = torch.from_numpy(tr.rsrp)
        target = torch.softmax((r - r.max(dim=1, keepdim=True).values) / recipe.soft_temperature_db, dim=1)
    best_params = {k: v.detach().clone() for k, v in params.items()}
    best, best_ep = _top1(mspec, params, val), 0  # epoch 0: the initial model (the residual start) may win
    curve = [best]
    for ep in range(recipe.max_epochs):
        order = torch.from_numpy(epoch_order(len(x), seed, ep))
        for s in range(0, len(x), recipe.batch_size):
            idx = order[s:s + recipe.batch_size]
            loss = F.cross_entropy(forward(mspec, params, x[idx]), target[idx],
                                   label_smoothing=recipe.label_smoothing)
            opt.zero_grad()
            loss.backward()
            opt.step()
        acc = _top1(mspec, params, val)
        curve.append(acc)
        if acc > best:
            best, best_ep = acc, ep + 1
            best_params = {k: v.detach().clone() for k, v in params.items()}
        elif ep + 1 - best_ep >= recipe.patience:
            break
    return Fit(best_params, best_ep, best, curve, time.perf_counter() - t0)


class Splits:
    """Train / validation / test datasets of one setting; task specs (per input normalisation, fitted on the
    train part) and their example arrays are built once and cached. ``spatial``: the frozen pre-trained spatial
    model that candidates with ``features`` "spatial" / "spatial+setb" need."""

    def __init__(self, base: BeamTaskSpec, train: BeamDataset, val: BeamDataset, test: BeamDataset,
                 spatial: Spatial | None = None) -> None:
        self.base = base
        self.data = {"train": train, "val": val, "test": test}
        self.spatial = spatial
        self._specs: dict[str, BeamTaskSpec] = {}
        self._arrays: dict[tuple[str, str, str], Arrays] = {}

    def spec(self, norm: str) -> BeamTaskSpec:
        if norm not in self._specs:
            self._specs[norm] = replace(self.base, norm=norm, offset_db=None, scale_db=None,
                                        fitted=False).fit(self.data["train"])
        return self._specs[norm]

    def arrays(self, norm: str, part: str, features: str = "setb") -> Arrays:
        k = (norm, part, features)
        if k not in self._arrays:
            task, ds = self.spec(norm), self.data[part]
            a = task_arrays(task, ds)
            if features != "setb":
                if self.spatial is None:
                    raise ConfigError(f"features {features!r} need a pre-trained spatial model (train_spatial)")
                a.x = spatial_features(self.spatial, task, ds, with_setb=features == "spatial+setb")
            self._arrays[k] = a
        return self._arrays[k]

    def candidate_arrays(self, c: Candidate, part: str) -> Arrays:
        return self.arrays(c.norm, part, c.features)


def select(candidates: list[Candidate], splits: Splits, seed: int = 0) -> tuple[Candidate, list[dict[str, Any]]]:
    """Train each candidate once (``seed``) and rank by validation Top-1; returns the best and the table."""
    if not candidates:
        raise ConfigError("no candidates to select from")
    rows: list[dict[str, Any]] = []
    fits: list[float] = []
    for c in candidates:
        task = splits.spec(c.norm)
        fit = train(c.model_spec(task), splits.candidate_arrays(c, "train"), splits.candidate_arrays(c, "val"),
                    c.recipe, seed)
        rows.append({"candidate": c.label(), "spec": c.to_dict(), "val_top1": fit.val_top1, "epochs": fit.epochs,
                     "seconds": round(fit.seconds, 1)})
        fits.append(float(fit.val_top1))
    order = sorted(range(len(rows)), key=lambda i: -float(fits[i]))
    return candidates[order[0]], [rows[i] for i in order]


def evaluate(c: Candidate, splits: Splits, seeds: tuple[int, ...] = (1, 2, 3),
             predictions: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """Retrain ``c`` with ``seeds`` and report test KPIs per seed, mean and std (population).

    Training is deterministic on CPU (fixed init and batch order per seed), so the same ``c``, seeds and train /
    validation data give the same models whatever the test set. ``predictions``: if given, ``predictions["top1"]``
    receives the predicted Top-1 beam per seed and test window, int64 [len(seeds), M]."""
    task = splits.spec(c.norm)
    mspec = c.model_spec(task)
    tr, val, te = (splits.candidate_arrays(c, p) for p in ("train", "val", "test"))
    per, preds = [], []
    for s in seeds:
        fit = train(mspec, tr, val, c.recipe, s)
        out = scores(mspec, fit.params, te.x)
        preds.append(topk_predictions(out, 1)[:, 0])
        k = beam_kpis(out, te.rsrp)
        per.append({**k, "seed": s, "epochs": fit.epochs, "val_top1": fit.val_top1})
    if predictions is not None:
        predictions["top1"] = np.stack(preds).astype(np.int64)
    keys = [k for k in per[0] if k not in ("seed", "n")]
    return {"candidate": c.to_dict(), "label": c.label(), "params": mspec.num_params(), "task": task.to_dict(),
            "per_seed": per, "mean": {k: float(np.mean([p[k] for p in per])) for k in keys},
            "std": {k: float(np.std([p[k] for p in per])) for k in keys}, "n_test": int(len(te.y))}


def cluster_bootstrap(correct: dict[str, np.ndarray], cluster: np.ndarray, diffs: tuple[tuple[str, str], ...] = (),
                      n_boot: int = 10_000, level: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Percentile bootstrap over clusters (e.g. trajectories) of accuracies and paired accuracy differences.

    ``correct[name]``: float [M], per test window the share of correct predictions (0/1, or the mean over
    seeds); ``cluster``: [M] the window's cluster id (windows of one trajectory are strongly correlated, so the
    trajectory, not the window, is the independent unit). Each of ``n_boot`` resamples draws the clusters with
    replacement and every method is scored on the same resample (paired), as sum of correct / number of windows.
    ``diffs``: pairs (a, b) whose difference a - b is reported. Returns ``{"acc": {name: {point, lo, hi}},
    "diff": {"a-b": {point, lo, hi}}, "n_boot", "level", "clusters", "windows"}`` (fractions, not percent)."""
    cluster = np.asarray(cluster)
    if cluster.ndim != 1 or not correct:
        raise ConfigError("cluster_bootstrap needs per-window correctness arrays and a 1-D cluster id array")
    if n_boot < 1 or not 0.0 < level < 1.0:
        raise ConfigError("n_boot must be >= 1 and level in (0, 1)")
    for name, v in correct.items():
        if np.shape(v) != cluster.shape:
            raise ConfigError(f"correct[{name!r}] has shape {np.shape(v)}, the cluster ids {cluster.shape}")
    for a, b in diffs:
        if a not in correct or b not in correct:
            raise ConfigError(f"unknown method in difference {a}-{b}")
    ids, inv = np.unique(cluster, return_inverse=True)
    n_c = len(ids)
    size = np.bincount(inv, minlength=n_c).astype(np.float64)  # windows per cluster
    sums = {k: np.bincount(inv, weights=np.asarray(v, np.float64), minlength=n_c) for k, v in correct.items()}
    rng = np.random.Generator(np.random.PCG64([int(seed), 0xB0075]))
    w = np.zeros((n_boot, n_c))
    for i in range(0, n_boot, 1000):  # resample weights: how often each cluster is drawn, [B, C]
        w[i:i + 1000] = rng.multinomial(n_c, np.full(n_c, 1.0 / n_c), size=min(1000, n_boot - i))
    denom = w @ size
    boot = {k: (w @ s) / denom for k, s in sums.items()}
    q = (100 * (1 - level) / 2, 100 * (1 + level) / 2)

    def ci(point: float, b: np.ndarray) -> dict[str, float]:
        lo, hi = np.percentile(b, q)
        return {"point": float(point), "lo": float(lo), "hi": float(hi)}

    point = {k: float(s.sum() / size.sum()) for k, s in sums.items()}
    return {"acc": {k: ci(point[k], boot[k]) for k in correct},
            "diff": {f"{a}-{b}": ci(point[a] - point[b], boot[a] - boot[b]) for a, b in diffs},
            "n_boot": int(n_boot), "level": float(level), "clusters": int(n_c), "windows": int(cluster.size)}


def default_candidates(max_epochs: int = 40, patience: int = 6,
                       lrs: tuple[float, ...] = (1e-3, 3e-3)) -> list[Candidate]:
    """The grid searched on validation, per model kind: MLP 256-256 (kind mlp) and GRU-128 with the residual
    start (kind gru); input normalisation per-sample-max dB or relative linear power; Adam learning rates
    ``lrs`` (default 1e-3 / 3e-3); at most ``max_epochs`` with early stopping after ``patience``."""
    out = []
    for kind, hidden in (("mlp", (256, 256)), ("gru", (128,))):
        for norm in ("per_sample_max", "rel_linear"):
            for lr in lrs:
                out.append(Candidate(kind, hidden, Recipe(lr=lr, max_epochs=max_epochs, patience=patience),
                                     norm=norm))
    return out


def first_trajectories(ds: BeamDataset, n: int | None) -> BeamDataset:
    """The rows of the first ``n`` trajectories (by id) of a BM-Case2 dataset; all of them when ``n`` is None."""
    if n is None:
        return ds
    if ds.traj_id is None:
        raise DatasetError("a BM-Case2 dataset (traj_id) is needed")
    if n < 1:
        raise ConfigError("the number of trajectories must be >= 1")
    keep = np.unique(ds.traj_id)[:n]
    return ds.subset(np.isin(ds.traj_id, keep))


def with_recipe(c: Candidate, **kw: Any) -> Candidate:
    """``c`` with recipe fields replaced."""
    return replace(c, recipe=replace(c.recipe, **kw))


# ---------------------------------------------------------------------------------------------- spatial pre-training
@dataclass
class Spatial:
    """A frozen BM-Case1 spatial model: Set B RSRP at one instant -> Set A logits at that instant.

    ``task``: its Case1 :class:`BeamTaskSpec` (normalisation fitted on the training drops); ``model``: an MLP
    ModelSpec ``[N, n_b] -> [N, n_tx]``; ``params``: its trained parameters; ``fit``: the training record (best
    validation epoch and Top-1 on the held-out drops)."""

    task: BeamTaskSpec
    model: ModelSpec
    params: dict[str, torch.Tensor]
    fit: Fit

    def log_probs(self, setb_rsrp_dbm: np.ndarray) -> np.ndarray:
        """Set A log-probabilities float32 [N, n_tx] from Set B measurements [N, n_b] dBm (one instant each)."""
        logits = torch.from_numpy(scores(self.model, self.params, self.task.inputs_from_measurements(setb_rsrp_dbm)))
        return F.log_softmax(logits, dim=1).numpy()

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Parameters as numpy arrays (e.g. for ``np.savez``)."""
        return {k: v.detach().numpy() for k, v in self.params.items()}


def drop_validation_mask(n: int, val_share: float = 0.1, seed: int = 0) -> np.ndarray:
    """bool [n]: the drops :func:`train_spatial` holds out for early stopping (a seeded random row split)."""
    if not 0.0 < val_share < 1.0:
        raise ConfigError("val_share must be in (0, 1)")
    rng = np.random.Generator(np.random.PCG64([int(seed), 0x5BA7]))
    is_val = np.zeros(n, bool)
    is_val[rng.choice(n, size=max(1, int(round(val_share * n))), replace=False)] = True
    return is_val


def train_spatial(drops: BeamDataset, template: BeamTaskSpec, hidden: tuple[int, ...] = (256, 256),
                  recipe: Recipe | None = None, val_share: float = 0.1, seed: int = 0,
                  case2_rows: tuple[BeamDataset, BeamDataset] | None = None,
                  labels: np.ndarray | None = None) -> Spatial:
    """Train the spatial model on independent drops (a BM-Case1 dataset of the Case2 configuration).

    ``template``: the Case2 task whose Set B (size, indices, Rx mode) the spatial model must measure; the drops
    are split at random into train / validation (``val_share``; drops are independent, so a row split is a clean
    one), the Case1 spec's per-sample-max normalisation is fitted on the train part, and :func:`train` keeps the
    epoch with the best validation Top-1.

    ``case2_rows = (train, validation)`` (the temporal task's own trajectory-wise split): every row (instant) of the
    training trajectories is added to the training examples (labels: the Top-1 at that instant), and early
    stopping uses every row of the validation trajectories instead of held-out drops (the target distribution:
    channels moved by the time evolution, not only fresh drops).

    ``labels`` (int [N], Set A indices): the drops' training targets instead of their stored instantaneous Top-1,
    e.g. the Top-1 of the fading-free local mean (:func:`edge_sdk.server.datagen.local_mean.drops_local_mean`,
    ``.argmax(1)``): a beam held for a period meets an independent small-scale fading draw, so the beam worth
    inferring is the best of the local mean. The held-out drops are scored against the same targets."""
    if drops.traj_id is not None:
        raise DatasetError("the spatial model is pre-trained on independent drops (a BM-Case1 dataset), "
                           "got a BM-Case2 dataset")
    if drops.n_tx != template.n_tx:
        raise DatasetError(f"the drops have {drops.n_tx} Tx beams, the task {template.n_tx}")
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (drops.n,) or labels.dtype.kind not in "iu":
            raise ConfigError(f"labels must be integers of shape ({drops.n},) (one per drop), got {labels.dtype} "
                              f"{labels.shape}")
        if drops.n and (labels.min() < 0 or labels.max() >= drops.n_tx):
            raise ConfigError(f"labels must be Set A indices in [0, {drops.n_tx})")
        drops = replace(drops, label=labels.astype(drops.label.dtype))
    is_val = drop_validation_mask(drops.n, val_share, seed)
    tr, val = drops.subset(~is_val), drops.subset(is_val)
    task = BeamTaskSpec(n_tx=template.n_tx, setb=template.setb, setb_indices=template.setb_indices,
                        rx_mode=template.rx_mode, rx_index=template.rx_index, rx_seed=template.rx_seed,
                        rsrp_quant_db=template.rsrp_quant_db).fit(tr)
    model = ModelSpec(kind="mlp", input_dim=task.input_dim, num_classes=task.num_classes, hidden=hidden)
    tr_a, val_a = task_arrays(task, tr), task_arrays(task, val)
    if case2_rows is not None:
        extra = task_arrays(task, case2_rows[0])
        tr_a = Arrays(*(np.concatenate([getattr(tr_a, f), getattr(extra, f)]) for f in ("x", "y", "rsrp")))
        val_a = task_arrays(task, case2_rows[1])
    fit = train(model, tr_a, val_a, recipe or Recipe(), seed)
    return Spatial(task, model, fit.params, fit)


#: preset entries that describe trajectories or name the preset, not the channel / arrays / codebooks; the UE speed
#: only sets the velocity vector of a drop, and a BM-Case1 snapshot at t = 0 has no Doppler term, so drops of one
#: configuration serve every Case2 speed
_NOT_CONFIG = ("name", "description", "case", "trajectory", "scenario.ue_speed_kmh")


def check_same_configuration(drops_preset: dict[str, Any], case2_preset: dict[str, Any]) -> None:
    """DatasetError unless the drops were generated with the Case2 data's scenario, link, arrays and codebooks:
    the generator presets (``BeamDataset.preset``) are equal outside ``_NOT_CONFIG``."""
    def flat(p: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in p.items():
            out.update({f"{k}.{kk}": vv for kk, vv in v.items()} if isinstance(v, dict) else {k: v})
        return {k: v for k, v in out.items() if k not in _NOT_CONFIG and k.split(".")[0] not in _NOT_CONFIG}

    a, b = flat(drops_preset), flat(case2_preset)
    if not a or not b:
        raise DatasetError("both datasets need their generator preset (attribute 'preset') to be compared")
    diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    if diff:
        raise DatasetError(f"the drops' preset differs from the Case2 data's in {diff}; generate the drops with "
                           "the Case2 preset's configuration (e.g. uma-fr2-case2-drops for uma-fr2-case2)")


def check_spatial(sp: Spatial, task: BeamTaskSpec) -> None:
    """ConfigError unless the spatial model measures exactly the Set B of the Case2 ``task``."""
    same = (sp.task.n_tx == task.n_tx and sp.task.rx_mode == task.rx_mode and sp.task.rx_index == task.rx_index
            and np.array_equal(sp.task.resolved_setb(), task.resolved_setb()))
    if not same:
        raise ConfigError(f"the spatial model measures Set B {sp.task.resolved_setb().tolist()} ({sp.task.rx_mode} "
                          f"Rx) of {sp.task.n_tx} beams, the task {task.resolved_setb().tolist()} "
                          f"({task.rx_mode} Rx) of {task.n_tx}; pre-train it for this Set B")


def spatial_features(sp: Spatial, task: BeamTaskSpec, ds: BeamDataset, with_setb: bool = False) -> np.ndarray:
    """Per-step features of the Case2 windows of ``ds``: float32 [M, K * F], steps oldest first.

    Per step: the spatial model's Set A log-probabilities from that step's Set B measurements, clipped at
    ``-LOGP_FLOOR`` and divided by ``SKIP_GAIN`` (F = n_tx); with ``with_setb`` followed by the step's inputs under
    ``task`` (its normalisation; F = n_tx + n_b)."""
    check_spatial(sp, task)
    m, _ = task._window_measurements(ds)  # [M, K, n_b] dBm
    n, k, nb = m.shape
    lp = np.maximum(sp.log_probs(m.reshape(n * k, nb)), -LOGP_FLOOR) / SKIP_GAIN
    feats = lp.reshape(n, k, task.n_tx)
    if with_setb:
        feats = np.concatenate([feats, task.inputs_from_measurements(m).reshape(n, k, nb)], axis=2)
    return np.ascontiguousarray(feats.reshape(n, -1), np.float32)


def spatial_baseline_scores(sp: Spatial, task: BeamTaskSpec, ds: BeamDataset, last: int = 1) -> np.ndarray:
    """Non-temporal baselines from the spatial model, scores [M, n_tx]: the mean of its log-probabilities over
    the ``last`` latest periods of each window (``last = 1``: "sample-and-hold of the inferred Set A beam";
    ``last = K``: mean over the window)."""
    if not 1 <= last <= task.history:
        raise ConfigError(f"last must be in [1, K={task.history}]")
    return period_log_probs([sp], task, ds)[0][:, -last:].mean(axis=1)


#: 2-D gNB-UE distance bins of :func:`spatial_breakdown`, metres (upper edges; the last bin is open)
DISTANCE_BINS_M = (50.0, 75.0, 100.0, 125.0)
#: trajectory time-step bins of :func:`spatial_breakdown` (upper edges of ``t_index``; the last bin is open)
STEP_BINS = (1, 25, 50, 75)


def _bin_names(edges: tuple[float, ...], unit: str) -> list[str]:
    lo = (0.0, *edges)
    return [f"[{a:g}, {b:g}) {unit}" for a, b in zip(lo, edges, strict=False)] + [f">= {edges[-1]:g} {unit}"]


def spatial_breakdown(sp: Spatial, ds: BeamDataset) -> dict[str, Any]:
    """The spatial model's Top-1 at the same instant on every row of ``ds`` (drops or trajectory rows), overall
    and split by what the files record: LOS / NLOS, indoor / outdoor, 2-D distance (:data:`DISTANCE_BINS_M`) and,
    for BM-Case2 rows, the time step along the trajectory (:data:`STEP_BINS`; ``t_index`` 0 is the trajectory's
    initial drop). Returns ``{"n", "top1", "by": {feature: {bin: {"n", "top1", "share"}}}}`` (fractions)."""
    ok = np.zeros(ds.n, bool)
    for s in range(0, ds.n, 65536):  # chunks: a whole file's inputs need not sit in memory at once
        part = ds.subset(slice(s, s + 65536))
        ok[s:s + part.n] = scores(sp.model, sp.params, sp.task.inputs(part)).argmax(1) == part.label
    groups: dict[str, tuple[np.ndarray, list[str]]] = {
        "los": (np.where(np.asarray(ds.los, bool), 0, 1), ["LOS", "NLOS"]),
        "indoor": (np.where(np.asarray(ds.indoor, bool), 0, 1), ["indoor", "outdoor"]),
        "distance": (np.digitize(np.asarray(ds.d2d, np.float64), DISTANCE_BINS_M), _bin_names(DISTANCE_BINS_M, "m")),
    }
    if ds.t_index is not None:
        groups["step"] = (np.digitize(np.asarray(ds.t_index), STEP_BINS), _bin_names(STEP_BINS, "steps"))
    by: dict[str, dict[str, dict[str, float]]] = {}
    for name, (idx, labels) in groups.items():
        by[name] = {lab: {"n": int((idx == i).sum()), "share": float((idx == i).mean()),
                          "top1": float(ok[idx == i].mean()) if (idx == i).any() else float("nan")}
                    for i, lab in enumerate(labels)}
    return {"n": int(ds.n), "top1": float(ok.mean()) if ds.n else float("nan"), "by": by}


# ---------------------------------------------------------------------------------------------- pooling over periods
@dataclass(frozen=True)
class Pooling:
    """A log-linear temporal head over frozen spatial models (no other trainable part).

    Scores of a window, float [M, n_tx]: ``sum_s weights[s] * sum_j decay**j * logp_s(t - j)`` over the spatial
    models ``s`` and the periods ``j = 0 .. K-1`` back from the latest (``logp``: the clipped log-probabilities of
    :func:`spatial_features`). ``decay = 0`` with one weight is "hold the spatial model's latest inference". Pooling
    several models is an ensemble; pooling periods averages the small-scale fading of the inputs (independent from
    one period to the next at 30 GHz) against the drift of the beam."""

    weights: tuple[float, ...]
    decay: float = 0.0

    def __post_init__(self) -> None:
        if not self.weights or any(not (w >= 0 and np.isfinite(w)) for w in self.weights) or not any(self.weights):
            raise ConfigError(f"pooling weights must be finite, >= 0 and not all 0, got {self.weights}")
        if not 0.0 <= self.decay <= 1.0:
            raise ConfigError(f"pooling decay must be in [0, 1], got {self.decay}")


def period_log_probs(spatials: list[Spatial], task: BeamTaskSpec, ds: BeamDataset) -> np.ndarray:
    """Clipped log-probabilities of every spatial model at every period of the windows: float32
    [S, M, K, n_tx], periods oldest first."""
    return np.stack([spatial_features(sp, task, ds).reshape(-1, task.history, task.n_tx) * SKIP_GAIN
                     for sp in spatials])


def rotation_phase(t_index: np.ndarray, period_steps: int, n_phases: int) -> np.ndarray:
    """Phase of a rotating Set B at track steps ``t_index``: int64 ``(t // period_steps) % n_phases`` (the gNB
    cycles through the phases' patterns one per period, in sync for every UE)."""
    return (np.asarray(t_index, np.int64) // period_steps) % n_phases


def phase_task(task: BeamTaskSpec, sp: Spatial) -> BeamTaskSpec:
    """``task`` measuring the Set B of the phase model ``sp`` (its own ``resolved_setb()``); Rx mode and
    impairments stay ``task``'s."""
    return replace(task, setb="explicit", setb_indices=tuple(int(i) for i in sp.task.resolved_setb()))


def rotating_period_log_probs(spatial_sets: list[list[Spatial]], task: BeamTaskSpec, ds: BeamDataset) -> np.ndarray:
    """:func:`period_log_probs` under a rotating Set B: float32 [S, M, K, n_tx], periods oldest first.

    ``spatial_sets[s]`` holds one frozen spatial model per phase of the rotation (``len`` phases); a measurement at
    track step ``t`` uses phase :func:`rotation_phase` and is read by that phase's model on that phase's beams
    (:func:`phase_task`, best Rx beam). ``task`` gives the windows (K, F, period); its own Set B is unused."""
    if not spatial_sets or any(not ms for ms in spatial_sets):
        raise ConfigError("rotating_period_log_probs needs at least one set of per-phase spatial models")
    if task.rx_mode != "best":
        raise ConfigError(f"the rotating Set B is measured with the best Rx beam, the task has rx_mode={task.rx_mode!r}")
    _, win, _ = task._case2_rows(ds)
    assert ds.t_index is not None
    out = np.zeros((len(spatial_sets), win.shape[0], win.shape[1], task.n_tx), np.float32)
    for s, models in enumerate(spatial_sets):
        for sp in models:
            if sp.task.n_tx != task.n_tx or sp.task.rx_mode != "best":
                raise ConfigError(f"a phase model has {sp.task.n_tx} Tx beams / rx_mode {sp.task.rx_mode!r}; the "
                                  f"task {task.n_tx} / 'best'")
        phase = rotation_phase(ds.t_index, task.period_steps, len(models))[win]  # [M, K]
        for q, sp in enumerate(models):
            sel = phase == q
            if sel.any():
                m = phase_task(task, sp).measurements(ds)[win[sel]]  # [#sel, n_b] dBm
                out[s][sel] = np.maximum(sp.log_probs(m), -LOGP_FLOOR)
    return out


def pooling_scores(logp: np.ndarray, pool: Pooling) -> np.ndarray:
    """Scores [M, n_tx] of :class:`Pooling` from :func:`period_log_probs` ``logp`` [S, M, K, n_tx]."""
    s, _, k, _ = logp.shape
    if len(pool.weights) != s:
        raise ConfigError(f"pooling has {len(pool.weights)} weights for {s} spatial models")
    per_period = np.asarray([pool.decay ** (k - 1 - i) for i in range(k)], np.float64)  # oldest first
    return np.einsum("s,smkn,k->mn", np.asarray(pool.weights, np.float64), logp.astype(np.float64), per_period)


def fit_pooling(logp: np.ndarray, labels: np.ndarray, weight_grid: tuple[float, ...] = (0.0, 0.5, 1.0),
                decays: tuple[float, ...] = (0.0, 0.25, 0.5)) -> tuple[Pooling, list[dict[str, Any]]]:
    """The :class:`Pooling` with the best Top-1 on (training) windows: a grid over one weight per spatial model
    (``weight_grid``, not all 0) and ``decays``. Ties go to the earlier grid entry (fewer models, less pooling).
    Returns (pooling, table of every entry with its Top-1)."""
    import itertools

    table = []
    best: tuple[float, Pooling] | None = None
    for ws in itertools.product(weight_grid, repeat=logp.shape[0]):
        if not any(ws):
            continue
        for d in decays:
            pool = Pooling(tuple(float(w) for w in ws), float(d))
            acc = float(np.mean(pooling_scores(logp, pool).argmax(1) == labels))
            table.append({"weights": list(pool.weights), "decay": pool.decay, "top1": acc})
            if best is None or acc > best[0]:
                best = (acc, pool)
    assert best is not None
    return best[1], table

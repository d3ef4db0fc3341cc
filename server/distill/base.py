"""Shared pieces of every distillation method: config, result, registries, the matcher base class, real-data
sampling, initialisation, the operating point.

API (the product's entry point is ``edge_sdk.server.pipeline.run``; this is the family's own)::

    from edge_sdk.server.distill import distill, choose_point, DistillConfig, method_names
    res = distill(data, DistillConfig(method="quadd-dm", quantizer="uniform", bits=2, iterations=300), budget=16384)
    res.compact  (payload_io.CompactSet: the groups to write + decoded values X [N, D], labels, soft labels)
    res.point    (budget.OperatingPoint), res.losses (list of floats, one per iteration), res.seconds, res.info

Method names (:func:`method_names`; one file per host or baseline, each registered in a :class:`Registry`):

* ``dm``, ``dc``, ``mtt``: plain dataset distillation, synthetic set stored as ``float32`` (or
  ``float16``) -- "DD at float32 with fewer samples";
* ``quadd-dm``, ``quadd-dc``, ``quadd-mtt``: QuADD -- the differentiable quantizer (``quantizer``,
  ``bits``) sits inside the matching loss and is learned jointly with the synthetic data;
  ``quadd`` is an alias of ``quadd-mtt`` (the paper's main host, and the best host measured on the beam
  data; DM is much cheaper for ConvNets on a CPU);
* ``ptq-dm``, ``ptq-dc``, ``ptq-mtt``: DD in float at the *same* operating point as QuADD (same
  ``ipc``, ``bits``), then post-training quantization (threshold / codebook fitted to the final set);
* ``random``: a random real subset per class at the operating point (float32 or quantized);
* ``full``: the whole training set (float32, or quantized with ``quantizer``/``bits``, e.g. 8-bit) --
  the 1x reference; it ignores the budget (it cannot fit a compressed one).

A host is a :class:`Matcher` subclass registered in ``MATCHERS`` (``@MATCHERS.register("dm")``); it gives the
three methods ``<host>``, ``quadd-<host>``, ``ptq-<host>`` (the host loop of :mod:`.family` runs it in each
storage mode).
A baseline is a function ``fn(ctx) -> (CompactSet, losses, info)`` registered in ``BASELINES``.

Budget -> operating point (:func:`choose_point`): ``ipc`` is the largest that fits ``budget`` bytes for
``(quantizer, bits)`` (``budget.plan``, every byte of the payload counted by a ``PayloadCost``), unless
``config.ipc`` is set (then it must fit, else ConfigError).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from edge_sdk import codecs
from edge_sdk.catalog import DISTILL_ALIASES, DISTILL_BASELINES, DISTILL_HOSTS, LABEL_SOURCES
from edge_sdk.errors import ConfigError
from edge_sdk.payload import make_provenance
from edge_sdk.registry import Registry
from edge_sdk.server.budget import OperatingPoint, allocate_per_class, option_kind, plan
from edge_sdk.server.datasets import TaskData
from edge_sdk.server.models import features, head_names, init_torch_params
from edge_sdk.server.payload_io import CompactSet, PayloadCost, SoftStorage, Storage

RAW = ("float32", "float16")
#: storage modes of a host: plain float DD, QuADD (quantizer in the loop), DD then post-training quantization
MODES = ("plain", "quadd", "ptq")


@dataclass(frozen=True)
class DistillConfig:
    """One config for every method (fields a method does not use are ignored and stay in the report).
    ``family``: the pipeline family that runs it (``edge_sdk.server.pipeline.FAMILY_MODULES``)."""

    family: ClassVar[str] = "distill"

    method: str = "quadd-mtt"
    quantizer: str = "codebook"  # uniform | apot | codebook | float32 | float16
    bits: int | None = None  # None: 3 for quantizers, 32/16 for raw kinds
    search_bits: bool = False  # --bits auto: sweet-spot search over AUTO_BITS with short proxy runs
    per_feature: bool = False  # uniform quantizer: one alpha per feature instead of per set
    ipc: int | None = None  # None: the largest that fits the budget
    iterations: int = 300
    lr_data: float = 0.01  # Adam on the synthetic values (normalised units)
    lr_quant: float = 0.005  # Adam on the quantizer parameters
    batch_real: int = 64  # real samples per class per iteration
    init: str = "auto"  # auto | greedy (gradient-diversity) | random real samples -- see init_synthetic
    class_alloc: str = "auto"  # auto | balanced (ipc per class) | proportional (class prior) -- resolve_class_alloc
    select: str = "auto"  # auto | none | val: keep the checkpoint with the best held-out Top-1 (resolve_select)
    val_frac: float = 0.1  # select="val": stratified share of the training set held out (never distilled)
    val_every: int = 50  # select="val": checkpoint every this many iterations (and at 0 and the end)
    val_seeds: int = 2  # select="val": proxy trainings (seeds cfg.seed + i) averaged per checkpoint
    seed: int = 0
    device: str = "cpu"
    soft_labels: bool = False  # mtt only: learn soft-label logits (stored & counted in the budget)
    soft_bits: int = 8
    labels: str = "data"  # data | teacher: file the stored rows under a teacher's class (server/teacher.py)
    teacher_members: int = 3  # labels="teacher": models in the teacher ensemble
    teacher_steps: int = 16000  # labels="teacher": training steps of each member (teacher.TEACHER_RECIPE)
    # dc
    dc_net_steps: int = 5
    dc_model_every: int = 10
    # mtt
    mtt_experts: int = 4
    mtt_expert_epochs: int = 12
    mtt_expert_lr: float = 0.05
    mtt_expert_batch: int = 128
    mtt_syn_steps: int = 20
    mtt_expert_span: int = 2
    mtt_max_start: int = 8
    mtt_syn_batch: int = 256
    mtt_lr_lr: float = 1e-4

    def __post_init__(self) -> None:
        if self.labels not in LABEL_SOURCES:
            raise ConfigError(f"labels must be one of {LABEL_SOURCES}, got {self.labels!r}")
        if self.labels == "teacher" and self.soft_labels:
            raise ConfigError("teacher labels replace hard labels; drop --soft-labels or use --labels data")
        if self.teacher_steps < 1:
            raise ConfigError(f"teacher_steps must be >= 1, got {self.teacher_steps}")

    def resolved_bits(self) -> int:
        if self.bits is not None:
            return int(self.bits)
        if self.quantizer in RAW:
            return codecs.RAW_KINDS[self.quantizer]
        return 3

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["bits"] = self.resolved_bits()
        return d

    def storage(self) -> Storage:
        """How the set is stored (payload kind, bits, per-feature thresholds, soft labels)."""
        quantizer, bits = quant_options(self)
        mtt = resolve_method(self.method).endswith("mtt")
        soft = SoftStorage("uniform_clip", self.soft_bits) if self.soft_labels and mtt else None
        return Storage(option_kind(quantizer), bits, self.per_feature, soft)

    def provenance_extra(self) -> dict[str, Any]:
        """Fields of the payload provenance besides method and seed (``edge_sdk.payload.make_provenance``): the
        label source when the rows carry teacher labels (a reader can tell measured from predicted labels)."""
        return {"labels": "teacher"} if self.labels == "teacher" else {}


@dataclass(frozen=True)
class DistillResult:
    compact: CompactSet
    point: OperatingPoint
    losses: list[float]
    seconds: float
    config: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)


MethodFn = Callable[["Context"], tuple[CompactSet, list[float], dict[str, Any]]]


class Matcher:
    """Base class of a distillation host (DM, DC, MTT): the matching loss between the real data and the synthetic
    values the model sees. Built once per run as ``cls(ctx, S0)`` (``S0``: the initial synthetic set [N, D]).

    Subclasses implement :meth:`loss`; the other hooks have defaults. ``balanced_only``: the host needs the same
    number of synthetic samples per class (checked before the loop starts)."""

    name: str = "matcher"
    balanced_only: bool = False

    def __init__(self, ctx: Context, S0: Tensor) -> None:
        if self.balanced_only:
            ctx.require_balanced(self.name.upper())
        self.ctx = ctx

    def loss(self, Sq: Tensor, it: int) -> Tensor:
        """The host's matching loss for the (quantized) synthetic values ``Sq`` [N, D] at iteration ``it``."""
        raise NotImplementedError

    def param_groups(self) -> list[dict[str, Any]]:
        """Extra learnables for the Adam optimizer (e.g. MTT's step size, soft labels)."""
        return []

    def soft(self) -> Tensor | None:
        """Learned soft-label logits [N, C], or None."""
        return None

    def info(self) -> dict[str, Any]:
        """Details for the report (``method_info``)."""
        return {"host": self.name}


#: distillation hosts (Matcher subclasses) by name; each gives the methods <host>, quadd-<host>, ptq-<host>.
#: Each host's module is imported the first time the host is used (a QuADD-MTT run never loads DC, DM or KIP)
MATCHERS: Registry[type[Matcher]] = Registry(
    "distillation host", modules={h: f"edge_sdk.server.distill.{h}" for h in DISTILL_HOSTS})
#: baselines (random real subset, full data, coreset selections) by name, imported on first use like the hosts
BASELINES: Registry[MethodFn] = Registry(
    "distillation baseline", modules={b: f"edge_sdk.server.distill.{m}" for b, m in DISTILL_BASELINES.items()})


def method_names() -> list[str]:
    """Every distillation method name (registries; the CLI's list is ``edge_sdk.catalog.DISTILL_METHODS``)."""
    return sorted([*BASELINES.names(), *(f"{p}{h}" for h in MATCHERS.names() for p in ("", "quadd-", "ptq-"))])


def split_method(name: str) -> tuple[str, str | None]:
    """``(mode, host)`` of a canonical method name: ``("quadd", "mtt")``; baselines give ``(name, None)``."""
    for prefix in ("quadd-", "ptq-"):
        if name.startswith(prefix) and name[len(prefix):] in MATCHERS:
            return prefix[:-1], name[len(prefix):]
    if name in MATCHERS:
        return "plain", name
    return name, None


#: ``class_alloc="auto"`` picks ``proportional`` when the largest present class has at least this many times
#: the samples of the smallest (beam reference data: 942 / 62 = 15x; sklearn digits: 1.1x stays balanced)
IMBALANCE_RATIO = 2.0


def resolve_class_alloc(mode: str, method: str, class_counts: np.ndarray) -> str:
    """``auto`` -> ``proportional`` for imbalanced training sets (max/min class count >= ``IMBALANCE_RATIO``)
    with a method that supports it (MTT hosts, ``random``), else ``balanced``. Explicit modes pass through.

    Why: the synthetic set's class frequencies become the device model's prior; with equal samples per class
    the model under-predicts the frequent beams (measured in docs/distillation.md)."""
    if mode != "auto":
        return mode
    c = np.asarray(class_counts)
    imbalanced = c.size > 0 and c.min() > 0 and c.max() / c.min() >= IMBALANCE_RATIO
    host = split_method(method)[1]
    balanced_only = host is not None and MATCHERS.get(host).balanced_only
    return "proportional" if imbalanced and not balanced_only else "balanced"


@dataclass
class Context:
    """What a method function receives: data, config, operating point, device tensors, RNG, progress flag.
    Fields after ``val`` are derived in ``__post_init__`` (never set from outside)."""

    data: TaskData
    cfg: DistillConfig
    point: OperatingPoint
    device: torch.device
    X: Tensor  # real training inputs [N, D] on device
    y: Tensor  # [N]
    classes: np.ndarray  # present classes, ascending
    gen: torch.Generator = field(repr=False, default=None)  # type: ignore[assignment]
    #: select="val": held-out real (X [M, D] float32, y [M] int64) taken out of ``data`` before distilling
    val: tuple[np.ndarray, np.ndarray] | None = None
    progress: bool = False
    #: synthetic samples per present class (sums to ``point.n``; ``full``: the real class counts)
    syn_counts: np.ndarray = field(init=False, repr=False)
    class_alloc: str = field(init=False)
    init: str = field(init=False)

    def __post_init__(self) -> None:
        self.gen = torch.Generator(device="cpu").manual_seed(self.cfg.seed)
        counts = np.bincount(self.data.y_train, minlength=self.data.num_classes)[self.classes]
        order = np.argsort(self.data.y_train, kind="stable")
        starts = np.concatenate([[0], np.cumsum(np.bincount(self.data.y_train, minlength=self.data.num_classes))])
        self._counts = torch.from_numpy(counts)
        self._starts = torch.from_numpy(starts[self.classes])
        self._order = torch.from_numpy(order).to(self.device)
        mode = resolve_class_alloc(self.cfg.class_alloc, self.cfg.method, counts)
        self.syn_counts = (np.asarray(allocate_per_class(self.point.n, counts.tolist(), mode))
                           if self.point.ipc > 0 else counts.copy())
        self.class_alloc = mode
        #: resolved init: ``auto`` -> ``random`` with proportional allocation (a class-prior-matched real
        #: subset; measured better than greedy on the beam data), else ``greedy``
        self.init = self.cfg.init if self.cfg.init != "auto" else ("random" if mode == "proportional" else "greedy")

    @property
    def balanced(self) -> bool:
        """True when every present class has ``point.ipc`` synthetic samples."""
        return bool(np.all(self.syn_counts == self.point.ipc))

    def require_balanced(self, what: str) -> None:
        if not self.balanced:
            raise ConfigError(f"{what} needs the same number of samples per class; use class_alloc='balanced'")

    def sample_real(self, k: int) -> tuple[Tensor, Tensor]:
        """``k`` random real samples per present class (with replacement): X [C', k, D], y [C', k]."""
        r = torch.rand(len(self.classes), k, generator=self.gen)
        pos = self._starts[:, None] + (r * self._counts[:, None]).long()
        idx = self._order[pos.to(self.device)]
        return self.X[idx], self.y[idx]

    def syn_labels(self) -> Tensor:
        """Labels of the synthetic set: class-major, ``syn_counts[i]`` for present class ``i``: [N]."""
        return torch.from_numpy(np.repeat(self.classes, self.syn_counts)).to(self.device)

    def random_params(self, salt: int) -> dict[str, Tensor]:
        """Fresh ``init_params`` network (seeded by config seed and ``salt``)."""
        return init_torch_params(self.data.spec, self.cfg.seed * 1_000_003 + salt, self.device)


def _greedy_pick(g_dir: Tensor, h_dir: Tensor, k: int) -> Tensor:
    """Greedy max-diversity selection of ``k`` rows: start at the sample most similar to the class mean
    gradient, then repeatedly add the candidate whose largest cosine similarity to the chosen set is the
    smallest. Cosine of last-layer gradients ``(p - y) h^T`` factorises: cos = cos(p-y, p'-y') cos(h, h')."""
    sim = (g_dir @ g_dir.T) * (h_dir @ h_dir.T)  # [M, M]
    first = int(torch.argmax(sim.mean(1)))
    chosen = [first]
    maxsim = sim[first].clone()
    maxsim[first] = float("inf")
    for _ in range(k - 1):
        j = int(torch.argmin(maxsim))
        chosen.append(j)
        maxsim = torch.maximum(maxsim, sim[j])
        maxsim[j] = float("inf")
    return torch.tensor(chosen, dtype=torch.long)


def init_synthetic(ctx: Context, max_candidates: int = 1024) -> Tensor:
    """Initial synthetic set [N, D]: ``ctx.syn_counts[i]`` real samples of present class ``i`` (class-major).

    ``init="greedy"``: per class, greedy diversity by cosine similarity of the last-layer gradients of
    the cross-entropy loss under the ``init_params(spec, seed)`` network (QuADD's initialisation), among at
    most ``max_candidates`` random samples of the class. ``init="random"``: uniform random samples.
    ``init="auto"`` (default): ``random`` when the classes are allocated proportionally, else ``greedy``.
    A class with fewer real samples than ``ipc`` repeats them with Gaussian jitter (0.05 x feature std).
    """
    cfg, data = ctx.cfg, ctx.data
    rng = np.random.Generator(np.random.PCG64(cfg.seed))
    params = ctx.random_params(0) if ctx.init == "greedy" else None
    wname, bname = head_names(data.spec)
    rows = []
    std = ctx.X.std(0, keepdim=True)
    for c, ipc in zip(ctx.classes, ctx.syn_counts.tolist(), strict=True):
        idx = np.flatnonzero(data.y_train == c)
        cand = rng.permutation(idx)[:max_candidates] if len(idx) > max_candidates else rng.permutation(idx)
        k = min(ipc, len(cand))
        if ctx.init == "greedy" and k > 1:
            assert params is not None
            with torch.no_grad():
                xb = ctx.X[torch.from_numpy(cand).to(ctx.device)]
                h = features(data.spec, params, xb)
                p = torch.softmax(F.linear(h, params[wname], params[bname]), 1)
                p[:, int(c)] -= 1.0
                g = F.normalize(p, dim=1)
                hn = F.normalize(torch.cat([h, torch.ones_like(h[:, :1])], 1), dim=1)  # bias grad = (p - y)
                pick = cand[_greedy_pick(g, hn, k).cpu().numpy()]
        elif ctx.init in ("greedy", "random"):
            pick = cand[:k]
        else:
            raise ConfigError(f"unknown init {ctx.init!r}; use 'auto', 'greedy' or 'random'")
        xs = ctx.X[torch.from_numpy(pick).to(ctx.device)]
        if ipc > k:
            extra = xs[torch.from_numpy(rng.integers(0, k, ipc - k)).to(ctx.device)]
            noise = torch.from_numpy(rng.standard_normal(extra.shape).astype(np.float32)).to(ctx.device)
            xs = torch.cat([xs, extra + 0.05 * std * noise])
        rows.append(xs)
    return torch.cat(rows).clone()


def quant_options(cfg: DistillConfig) -> tuple[str, int]:
    """``(quantizer, bits)`` of a config, checked against the quantizer's allowed widths."""
    bits = cfg.resolved_bits()
    if cfg.quantizer in RAW:
        if bits != codecs.RAW_KINDS[cfg.quantizer]:
            raise ConfigError(f"{cfg.quantizer} stores {codecs.RAW_KINDS[cfg.quantizer]} bits, not {bits}")
    else:
        from edge_sdk.server.torch_quant import allowed_bits

        if bits not in allowed_bits(cfg.quantizer):
            raise ConfigError(f"quantizer {cfg.quantizer!r} supports bits {list(allowed_bits(cfg.quantizer))}, got {bits}")
    return cfg.quantizer, bits


def resolve_method(name: str) -> str:
    """Canonical method name (``quadd`` -> ``quadd-mtt``); an unknown name is a ConfigError listing the known."""
    name = DISTILL_ALIASES.get(name, name)
    if name not in method_names():
        raise ConfigError(f"unknown distillation method {name!r}; available: "
                          f"{', '.join(sorted([*method_names(), *DISTILL_ALIASES]))}")
    return name


def default_cost(data: TaskData, cfg: DistillConfig) -> PayloadCost:
    """The payload cost of a set written without the pipeline (no graph): ``data.task`` and the core's provenance."""
    return PayloadCost(num_classes=data.num_classes, task=data.task,
                       provenance=make_provenance(resolve_method(cfg.method), seed=int(cfg.seed), dataset=data.name))


def choose_point(data: TaskData, cfg: DistillConfig, budget: int | None, cost: PayloadCost) -> OperatingPoint:
    """Operating point for ``cfg`` under ``budget`` bytes, every byte of the payload counted by ``cost`` (header,
    task, provenance, graph digest). ``full`` ignores the budget."""
    quantizer, _ = quant_options(cfg)
    method = resolve_method(cfg.method)
    classes = np.flatnonzero(np.bincount(data.y_train, minlength=data.num_classes))
    storage = cfg.storage()
    if method == "full":
        n = data.X_train.shape[0]
        storage = Storage(storage.kind, storage.bits, storage.per_feature)
        return OperatingPoint(0, n, quantizer, storage, cost.size(storage.layouts(n, data.dim, data.num_classes)))
    if method.startswith("quadd") and quantizer in RAW:
        raise ConfigError(f"{method} needs a quantizer (uniform, apot, codebook), not {quantizer}")
    if budget is None and cfg.ipc is None:
        raise ConfigError(f"method {method} needs a byte budget (--budget / --compression) or an explicit ipc")
    if cfg.ipc is not None:
        n = cfg.ipc * len(classes)
        size = cost.size(storage.layouts(n, data.dim, data.num_classes))
        if budget is not None and size > budget:
            raise ConfigError(f"ipc={cfg.ipc} at {storage.bits} bits needs {size} bytes > budget {budget}; "
                              "lower ipc or bits")
        return OperatingPoint(cfg.ipc, n, quantizer, storage, size)
    assert budget is not None
    pts = plan(budget, options=[(quantizer, storage)], n_classes_present=len(classes), d=data.dim, cost=cost)
    if not pts:
        raise ConfigError(
            f"budget {budget} bytes cannot hold one sample per class ({len(classes)} classes) at {storage.bits} bits "
            f"with {quantizer}; raise the budget or lower the bit width"
        )
    return pts[0]


def resolve_select(mode: str, method: str) -> str:
    """``auto`` -> ``val`` for the MTT hosts (cheap MLP proxy trainings; on the beam data the best number of
    distillation iterations depends on the budget, see docs/distillation.md), ``none`` for everything else
    (DM/DC on ConvNets: each proxy training is expensive; ``full``/``random`` have no iterations)."""
    if mode not in ("auto", "none", "val"):
        raise ConfigError(f"unknown select {mode!r}; use 'auto', 'none' or 'val'")
    if method in ("full", "random"):
        return "none"
    if mode == "auto":
        return "val" if method.endswith("mtt") else "none"
    return mode


def split_validation(data: TaskData, frac: float, seed: int) -> tuple[TaskData, tuple[np.ndarray, np.ndarray]]:
    """Stratified hold-out: ``round(frac * n_c)`` samples of every class (at least one class sample stays in
    the fit part) -> (TaskData without them, (X_val [M, D], y_val [M])). The test set is never used."""
    if not 0.0 < frac < 0.5:
        raise ConfigError(f"val_frac must be in (0, 0.5), got {frac}")
    rng = np.random.Generator(np.random.PCG64(seed + 424242))
    hold = []
    for c in np.unique(data.y_train):
        idx = np.flatnonzero(data.y_train == c)
        k = min(int(round(frac * len(idx))), len(idx) - 1)
        hold.append(rng.permutation(idx)[:k])
    h = np.sort(np.concatenate(hold))
    keep = np.setdiff1d(np.arange(data.y_train.shape[0]), h)
    fit = replace(data, X_train=data.X_train[keep], y_train=data.y_train[keep])
    return fit, (data.X_train[h], data.y_train[h])

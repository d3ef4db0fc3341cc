"""(d) ADQ on beam data at 16x (lean budget): per-sample quantizer kinds (symmetric v1 with float16 scale;
affine min/max per sample with compact params: `hi` constant 0 on per-sample-max beam rows is stored once,
`lo` on an 8-bit linear grid) vs per-feature affine; allocations: uniform width, fixed (random halves),
ADQ (most sensitive half gets more bits), and coverage variants that choose the KEPT rows by class-stratified
sampling across sensitivity quantiles (not the hardest) and then give the more sensitive kept half more bits.
Validation split only."""
import math
import sys

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
import numpy as np
import torch
import torch.nn.functional as F
from common import Recipe, load, mlp, save, top1, train
from compact import f16, prop_counts

torch.set_num_threads(1)
b = load()
ratio = float(sys.argv[1]) if len(sys.argv) > 1 else 16
budget = int(b.full_bytes // ratio) - 160
X, y = b.X, b.y
N, D = X.shape
R = Recipe("adam", 3e-3, 6000, schedule="cosine")
LB = 5 / 8  # packed label bytes per row


def q_sym(Xs, bits):
    Q = (1 << (bits - 1)) - 1
    s = f16(np.abs(Xs).max(1) / Q)
    ss = np.where(s > 0, s, 1)[:, None]
    return (np.clip(np.rint(Xs / ss), -Q, Q) * ss).astype(np.float32)


def q_aff_samp(Xs, bits, lo_grid=True):
    L = (1 << bits) - 1
    lo, hi = Xs.min(1), Xs.max(1)
    if lo_grid:  # lo on an 8-bit linear grid between its min and max (round DOWN so every value stays >= lo)
        a, c = lo.min(), lo.max()
        step = (c - a) / 255 if c > a else 1.0
        lo = a + np.floor((lo - a) / step) * step
    else:
        lo = f16(lo)
    hi = hi if np.all(hi == hi[0]) else f16(hi)
    st = np.where(hi > lo, (hi - lo) / L, 1.0)[:, None]
    return (lo[:, None] + np.rint((np.clip(Xs, lo[:, None], hi[:, None]) - lo[:, None]) / st) * st).astype(np.float32)


def q_aff_feat(Xs, bits, lo, hi):
    L = (1 << bits) - 1
    st = (hi - lo) / L
    return (lo + np.rint((np.clip(Xs, lo, hi) - lo) / st) * st).astype(np.float32)


KINDS = {  # per-row param bytes, fixed param bytes, quantize fn(Xs, bits)
    "sym-f16": (2, 0, q_sym),
    "aff-samp-u8": (1, 8, q_aff_samp),
    "aff-samp-f16": (2, 4, lambda Xs, b_: q_aff_samp(Xs, b_, lo_grid=False)),
    "aff-feat": (0, 4 * D, lambda Xs, b_: q_aff_feat(Xs, b_, f16(X.min(0)), f16(X.max(0)))),
}


def row_bytes(kind, bits):
    return math.ceil(D * bits / 8) + KINDS[kind][0] + LB


# ---------------------------------------------------------------- sensitivity (reference model, per-sample grads)
ref, _ = train(b.spec, X, y, 7, Recipe("adam", 3e-3, 3000, schedule="cosine"))
ref = [p.detach() for p in ref]


def per_sample_grads(Xs):
    from torch.func import grad, vmap

    def loss(params, x, t):
        return F.cross_entropy(mlp(list(params), x[None]), t[None])

    g = vmap(grad(loss), in_dims=(None, 0, 0))(tuple(ref), torch.from_numpy(Xs), torch.from_numpy(y))
    return torch.cat([gg.reshape(len(Xs), -1) for gg in g], 1)


def sensitivity(kind, bits):
    g0 = per_sample_grads(X)
    g1 = per_sample_grads(KINDS[kind][2](X, bits))
    return (1 - F.cosine_similarity(g0, g1, dim=1, eps=1e-12)).numpy()


def strat_sample(k, rng, S=None, bins=10):
    """class-proportional sample of k rows; with S: inside each class, equal shares of sensitivity quantile bins."""
    alloc = prop_counts(y, k)
    idx = []
    for c, kc in enumerate(alloc):
        ic = np.flatnonzero(y == c)
        if S is None or kc < bins:
            idx.append(rng.permutation(ic)[:kc])
            continue
        order = ic[np.argsort(S[ic])]
        parts = np.array_split(order, bins)
        per = np.full(bins, kc // bins)
        per[: kc % bins] += 1
        idx.append(np.concatenate([rng.permutation(p)[:m] for p, m in zip(parts, per, strict=False)]))
    return np.concatenate(idx)


def evaluate(Xd, yd):
    return [top1(train(b.spec, Xd, yd, s, R)[0], b.Xv, b.yv) for s in (0, 1)]


rows = []
rng = np.random.Generator(np.random.PCG64(3))
for kind in KINDS:
    fixed = KINDS[kind][1]
    S = sensitivity(kind, 2)
    # uniform: one width, as many class-stratified random rows as fit
    for bits in (2, 3, 4):
        n = int((budget - fixed) // row_bytes(kind, bits))
        n = min(n, N)
        idx = strat_sample(n, rng)
        acc = evaluate(KINDS[kind][2](X[idx], bits), y[idx])
        rows.append({"kind": kind, "alloc": "uniform", "widths": [bits], "n": n, "val": acc})
        print(rows[-1], flush=True)
    # two groups over a kept set of n rows: (bh, bl), bl >= 2; n the most rows that fit
    for bh, bl in ((3, 2), (4, 2), (4, 3)):
        n = int((budget - fixed) // ((row_bytes(kind, bh) + row_bytes(kind, bl)) / 2))
        n = min(n, N)
        for alloc in ("fixed", "adq", "adq-cover", "fixed-cover", "adq-drop-hardest"):
            if alloc in ("fixed", "adq"):
                kept = strat_sample(n, rng)  # stratified random kept set
            elif alloc == "adq-drop-hardest":
                kept = np.argsort(-S)[:n]  # the paper's drop rule: keep the most sensitive
            else:
                kept = strat_sample(n, rng, S)  # coverage of sensitivity quantiles
            if alloc.startswith("adq"):
                order = kept[np.argsort(-S[kept])]
            else:
                order = rng.permutation(kept)
            hi_idx, lo_idx = order[: (n + 1) // 2], order[(n + 1) // 2:]
            Xd = np.concatenate([KINDS[kind][2](X[hi_idx], bh), KINDS[kind][2](X[lo_idx], bl)])
            yd = np.concatenate([y[hi_idx], y[lo_idx]])
            acc = evaluate(Xd, yd)
            rows.append({"kind": kind, "alloc": alloc, "widths": [bh, bl], "n": n, "val": acc})
            print(rows[-1], flush=True)
    save(f"d_adq_{int(ratio)}x", {"budget_data_bytes": budget, "recipe": R.to_dict(), "rows": rows})

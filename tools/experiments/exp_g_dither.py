"""Low-bit inputs: dithered dequantization on the device (uniform noise inside the quantization bin, optionally
followed by re-applying the per-sample-max normalisation), and class-sorted labels (labels stored as per-class
counts: +bytes for samples). 180x lean budget, random class-proportional rows, validation split only."""
import sys

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
import numpy as np
import torch
from common import Recipe, load, save, top1, train
from compact import f16, fit_n, select_rows

torch.set_num_threads(1)
b = load()
ratio = float(sys.argv[1]) if len(sys.argv) > 1 else 180
budget = int(b.full_bytes // ratio) - 160
R = Recipe("adam", 3e-3, 3000, schedule="cosine")


def affine_codes(X, bits, lo, hi):
    L = (1 << bits) - 1
    step = (hi - lo) / L
    codes = np.rint((np.clip(X, lo, hi) - lo) / step)
    return codes, step


def lloyd_feat(X, bits):
    """per-feature Lloyd codebooks: levels [D, L]."""
    L = 1 << bits
    levs = []
    for j in range(X.shape[1]):
        v = X[:, j]
        lev = np.quantile(v, (np.arange(L) + 0.5) / L)
        for _ in range(25):
            mids = (lev[1:] + lev[:-1]) / 2
            a = np.searchsorted(mids, v)
            for i in range(L):
                if np.any(a == i):
                    lev[i] = v[a == i].mean()
            lev = np.sort(lev)
        levs.append(f16(lev))
    return np.stack(levs)


rows = []
for q in ("aff-feat", "lloyd-feat"):
    for bits in (1, 2, 3, 4):
        for sorted_labels in (False, True):
            name = "aff-feat" if q == "aff-feat" else "codebook"
            n = fit_n(budget, name, bits, sorted_labels=sorted_labels)
            if q == "lloyd-feat":
                n = int((budget - 2 * 8 * (1 << bits) - (64 if sorted_labels else 0)) // ((bits * 8 + 7) // 8 + (0 if sorted_labels else 5 / 8)))
            Xs, ys = select_rows("random", b.X, b.y, n, seed=1)
            if q == "aff-feat":
                lo, hi = f16(Xs.min(0)), f16(Xs.max(0))
                codes, step = affine_codes(Xs, bits, lo, hi)
                Xd = (lo + codes * step).astype(np.float32)
                lo_e = torch.from_numpy(np.maximum(Xd - step / 2, lo).astype(np.float32))
                hi_e = torch.from_numpy(np.minimum(Xd + step / 2, hi).astype(np.float32))
            else:
                lev = lloyd_feat(Xs, bits)
                Xd = np.zeros_like(Xs)
                lo_a = np.zeros_like(Xs)
                hi_a = np.zeros_like(Xs)
                for j in range(8):
                    mids = (lev[j, 1:] + lev[j, :-1]) / 2
                    a = np.searchsorted(mids, Xs[:, j])
                    Xd[:, j] = lev[j, a]
                    edges = np.concatenate([[Xs[:, j].min()], mids, [Xs[:, j].max()]])
                    lo_a[:, j], hi_a[:, j] = edges[a], edges[a + 1]
                lo_e, hi_e = torch.from_numpy(lo_a.astype(np.float32)), torch.from_numpy(hi_a.astype(np.float32))
            gen = torch.Generator().manual_seed(0)

            def dither(xb, idx, t, renorm=False, gen=gen, lo_e=lo_e, hi_e=hi_e):
                u = torch.rand(xb.shape, generator=gen)
                x = lo_e[idx] + u * (hi_e[idx] - lo_e[idx])
                return x - x.amax(1, keepdim=True) if renorm else x

            for mode, aug in (("none", None), ("dither", lambda x, i, t: dither(x, i, t)),
                              ("dither_renorm", lambda x, i, t: dither(x, i, t, True))):
                acc = [top1(train(b.spec, Xd, ys, s, R, augment=aug)[0], b.Xv, b.yv) for s in (0, 1)]
                rows.append({"q": q, "bits": bits, "sorted_labels": sorted_labels, "n": n, "mode": mode, "val": acc})
                print(q, bits, sorted_labels, n, mode, round(float(np.mean(acc)), 4), flush=True)
save(f"g_dither_{int(ratio)}x", {"rows": rows, "recipe": R.to_dict(), "budget_data_bytes": budget})

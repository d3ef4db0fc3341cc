"""(a) Recipe landscape on the validation split (training data only): full data and two class-proportional
random subsets (the sizes of a 4-bit set at 36x and a 2-bit set at 180x). Constant-lr runs give a validation
curve (early stopping -> a step count); cosine runs are scored at their end. No test set is touched."""
import sys

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
import numpy as np
import torch
from common import Recipe, load, save, top1, train

torch.set_num_threads(1)
b = load()


def prop_subset(n, seed):
    from edge_sdk.server.budget import allocate_per_class
    rng = np.random.Generator(np.random.PCG64(seed))
    counts = np.bincount(b.y, minlength=32)
    alloc = allocate_per_class(n, counts.tolist(), "proportional")
    idx = np.concatenate([rng.permutation(np.flatnonzero(b.y == c))[:k] for c, k in enumerate(alloc)])
    return b.X[idx], b.y[idx]


sets = {"full": (b.X, b.y), "rand2300": prop_subset(2300, 1), "rand700": prop_subset(700, 1)}
which = sys.argv[1:] or list(sets)
const = [("adam", 3e-4), ("adam", 1e-3), ("adam", 3e-3), ("adam", 1e-2), ("sgd", 0.01), ("sgd", 0.03), ("sgd", 0.1)]
cos = [("adam", lr, T) for lr in (1e-3, 3e-3, 1e-2) for T in (3000, 6000, 12000)]
extra = [Recipe("adam", 3e-3, 12000, label_smoothing=0.1), Recipe("adam", 3e-3, 12000, weight_decay=1e-4)]
for name in which:
    X, y = sets[name]
    rows = []
    for seed in (0, 1):
        for opt, lr in const:
            r = Recipe(opt, lr, 12000)
            _, curve = train(b.spec, X, y, seed, r, 250, b.Xv, b.yv)
            rows.append({"recipe": r.to_dict(), "seed": seed, "curve": curve})
        for r in extra:
            _, curve = train(b.spec, X, y, seed, r, 250, b.Xv, b.yv)
            rows.append({"recipe": r.to_dict(), "seed": seed, "curve": curve})
        for opt, lr, T in cos:
            r = Recipe(opt, lr, T, schedule="cosine")
            p, _ = train(b.spec, X, y, seed, r)
            rows.append({"recipe": r.to_dict(), "seed": seed, "curve": [(T, top1(p, b.Xv, b.yv))]})
        print(name, seed, flush=True)
    save(f"a_recipe_{name}", {"n": int(len(y)), "rows": rows})

"""(c) Equal-byte simple baselines: selection (random / kmeans / kmedoid / herding) x quantizer x bits under a
lean (overhead-free) data budget; every set trained with a 2-recipe mini search, scored on the validation
split (training data only). Usage: exp_c_baselines.py RATIO [selections...]"""
import sys

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
import numpy as np
import torch
from common import Recipe, load, save, top1, train
from compact import fit_n, quantize, select_rows

torch.set_num_threads(1)
b = load()
ratio = float(sys.argv[1])
sels = sys.argv[2:] or ["random", "kmeans"]
LEAN = 160
budget = int(b.full_bytes // ratio) - LEAN
recipes = [Recipe("adam", 3e-3, 3000, schedule="cosine"), Recipe("adam", 1e-3, 8000, schedule="cosine")]
QSETS = {"all": ("aff-feat", "aff-feat-mse", "codebook", "sym-feat", "aff-set"), "main": ("aff-feat", "codebook")}
qset = "main" if ratio < 100 else "all"
QS = [("float16", 16), ("float32", 32)] + [(q, bits) for q in QSETS[qset] for bits in (1, 2, 3, 4, 5, 6, 8)]
rows = []
for sel in sels:
    for q, bits in QS:
        if q == "sym-feat" and bits < 2:
            continue
        n = fit_n(budget, q, bits)
        if n < 32 or n > len(b.y):
            continue
        Xs, ys = select_rows(sel, b.X, b.y, n, seed=1)
        Xq, _ = quantize(q, Xs, bits)
        res = []
        for r in recipes:
            res.append([top1(train(b.spec, Xq, ys, s, r)[0], b.Xv, b.yv) for s in (0, 1)])
        rows.append({"sel": sel, "q": q, "bits": bits, "n": n, "val": res})
        print(sel, q, bits, n, [round(float(np.mean(x)), 4) for x in res], flush=True)
    save(f"c_baselines_{int(ratio)}x", {"budget_data_bytes": budget, "recipes": [r.to_dict() for r in recipes], "rows": rows})

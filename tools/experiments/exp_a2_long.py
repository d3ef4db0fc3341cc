"""(a) continued: the full-data baseline keeps improving at 12k steps; longer cosine runs on the validation split."""
import sys

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
import torch
from common import Recipe, load, save, top1, train

torch.set_num_threads(1)
b = load()
rows = []
for seed in (0, 1):
    for lr in (3e-3, 1e-2):
        for T in (12000, 24000):
            for ls in (0.0, 0.1):
                r = Recipe("adam", lr, T, schedule="cosine", label_smoothing=ls)
                p, _ = train(b.spec, b.X, b.y, seed, r)
                rows.append({"recipe": r.to_dict(), "seed": seed, "curve": [(T, top1(p, b.Xv, b.yv))]})
                print(rows[-1], flush=True)
save("a2_long_full", {"n": int(len(b.y)), "rows": rows})

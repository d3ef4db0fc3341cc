"""Teacher relabelling: a compact set's hard labels replaced by the argmax of a full-data teacher evaluated at
the *decoded* (quantized) inputs. Zero extra bytes. Validation split only."""
import sys

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
import numpy as np
import torch
from common import Recipe, load, mlp, save, top1, train
from compact import quantize, select_rows

torch.set_num_threads(1)
b = load()
teacher, _ = train(b.spec, b.X, b.y, 100, Recipe("adam", 1e-2, 6000, schedule="cosine"))
print("teacher val", top1(teacher, b.Xv, b.yv), flush=True)


def tlabel(X):
    with torch.no_grad():
        return mlp(teacher, torch.from_numpy(np.ascontiguousarray(X, np.float32))).argmax(1).numpy()


rows = []
recipes = [Recipe("adam", 3e-3, 3000, schedule="cosine"), Recipe("adam", 1e-3, 6000, schedule="cosine")]
for n in (700, 1200, 2300, 4000):
    Xr, yr = select_rows("random", b.X, b.y, n, seed=1)
    for qname, bits in (("float32", 32), ("aff-feat", 4), ("aff-feat", 3), ("aff-feat", 2)):
        Xq, _ = quantize(qname, Xr, bits)
        labels = {"true": yr, "teacher_real": tlabel(Xr), "teacher_dec": tlabel(Xq)}
        for lname, yl in labels.items():
            for ri, r in enumerate(recipes):
                accs = [top1(train(b.spec, Xq, yl, s, r)[0], b.Xv, b.yv) for s in (0, 1)]
                rows.append({"n": n, "q": qname, "bits": bits, "labels": lname, "recipe": ri, "val": accs})
                print(n, qname, bits, lname, ri, np.mean(accs), flush=True)
save("b_teacher", {"rows": rows, "recipes": [r.to_dict() for r in recipes]})

import json
import sys

import numpy as np

d = json.load(open(sys.argv[1]))
best = {}
for r in d["rows"]:
    m = max(float(np.mean(v)) for v in r["val"])
    k = (r["sel"], r["q"])
    if k not in best or m > best[k][0]:
        best[k] = (m, r["bits"], r["n"])
for k, v in sorted(best.items(), key=lambda kv: -kv[1][0]):
    print(k, f"val {v[0]:.4f} bits {v[1]} n {v[2]}")

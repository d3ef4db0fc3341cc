import json
import sys
from collections import defaultdict

import numpy as np

for name in sys.argv[1:]:
    d = json.load(open(f"tools/experiments/results/a_recipe_{name}.json"))
    print(f"== {name} n={d['n']}")
    agg = defaultdict(list)
    for r in d["rows"]:
        rc = r["recipe"]
        key = (rc["optimizer"], rc["lr"], rc["schedule"], rc["steps"] if rc["schedule"] == "cosine" else 0, rc["label_smoothing"], rc["weight_decay"])
        agg[key].append(r["curve"])
    for key, curves in sorted(agg.items()):
        if key[2] == "cosine":
            print(key, f"end {np.mean([c[-1][1] for c in curves]):.4f}")
        else:
            steps = [s for s, _ in curves[0]]
            m = np.mean([[v for _, v in c] for c in curves], 0)
            i = int(m.argmax())
            # smoothed over 3 points
            sm = np.convolve(m, np.ones(3) / 3, mode="same")
            j = int(sm[1:-1].argmax()) + 1
            at = {s: m[steps.index(s)] for s in (2000, 4000, 8000)}
            print(key, f"best {m[i]:.4f} @{steps[i]}  smooth-best {sm[j]:.4f} @{steps[j]}  @2000 {at[2000]:.4f} "
                  f"@4000 {at[4000]:.4f} @8000 {at[8000]:.4f} @12000 {m[-1]:.4f}")

import json, sys
import numpy as np
from collections import defaultdict
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
            print(key, "end %.4f" % np.mean([c[-1][1] for c in curves]))
        else:
            steps = [s for s, _ in curves[0]]
            m = np.mean([[v for _, v in c] for c in curves], 0)
            i = int(m.argmax())
            # smoothed over 3 points
            sm = np.convolve(m, np.ones(3) / 3, mode="same")
            j = int(sm[1:-1].argmax()) + 1
            print(key, "best %.4f @%d  smooth-best %.4f @%d  @2000 %.4f @4000 %.4f @8000 %.4f @12000 %.4f" % (
                m[i], steps[i], sm[j], steps[j], m[steps.index(2000)], m[steps.index(4000)], m[steps.index(8000)], m[-1]))

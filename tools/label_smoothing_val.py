"""Label smoothing on the sets ``--method auto`` ships, on validation splits of the training data only (issue #11).

    .venv/bin/python tools/label_smoothing_val.py --splits 0,1 --out bench-results/label-smoothing-val.json

For each split seed: the stratified 15 % validation split of the training set (``protocol.split_train_val``), a
teacher ensemble trained on that split's fit part (``server/teacher.py`` defaults), and per row count the per-class
k-means rows of the fit part stored as a 4-bit codebook with teacher labels (what ``edge-sdk distill`` chose at 36x,
2,592 rows, and 180x, 448 rows, in ``make demo``). Each set is trained with Adam 3e-3, cosine, weight decay 1e-3,
``--steps`` updates and label smoothing epsilon in ``--eps`` (0 = plain cross-entropy), seeds 0 and 1, and scored
on that split's validation rows. The test set is never read. Prints a table and writes JSON; this is where the
label-smoothing stage of ``server/distill/auto.py`` (epsilons 0.1 and 0.2, chosen per set on validation) comes from.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", default=str(REPO / "datasets/3gpp/reference/train.h5"))
    ap.add_argument("--test", default=str(REPO / "datasets/3gpp/reference/test.h5"),
                    help="needed by the loader for the task spec; its rows are not used")
    ap.add_argument("--splits", default="0,1", help="validation split seeds")
    ap.add_argument("--rows", default="448:3000,8000;2592:8000",
                    help="ROWS:STEPS[,STEPS] per set, ';'-separated (default: the 180x and 36x sets of make demo)")
    ap.add_argument("--eps", default="0,0.05,0.1,0.2", help="label-smoothing epsilons")
    ap.add_argument("--seeds", default="0,1", help="training seeds per setting")
    ap.add_argument("--out", default=str(REPO / "bench-results" / "label-smoothing-val.json"))
    a = ap.parse_args(argv)

    import numpy as np
    import torch

    from edge_sdk.atomic import atomic_path
    from edge_sdk.modelspec import TrainRecipe
    from edge_sdk.server.coresets import select
    from edge_sdk.server.datasets import load_beam
    from edge_sdk.server.equal_bytes import class_counts
    from edge_sdk.server.payload_io import compact_from_quantizer
    from edge_sdk.server.protocol import ProtocolConfig, split_train_val, val_top1
    from edge_sdk.server.teacher import train_teacher
    from edge_sdk.server.torch_quant import make_quantizer
    from edge_sdk.server.train_eval import train_model

    torch.set_num_threads(1)
    data = load_beam(a.train, a.test)
    spec, c = data.spec, data.spec.num_classes
    seeds = [int(s) for s in a.seeds.split(",")]
    eps_list = [float(e) for e in a.eps.split(",")]
    sets = [(int(r), [int(s) for s in steps.split(",")]) for r, steps in (x.split(":") for x in a.rows.split(";"))]
    rows: list[dict] = []
    t0 = time.perf_counter()
    for split in (int(s) for s in a.splits.split(",")):
        fit, (Xv, yv) = split_train_val(data, ProtocolConfig(split_seed=split))
        teacher = train_teacher(fit)
        for n, steps_list in sets:
            Xs, ys = select("kmeans", fit.X_train, fit.y_train, class_counts(fit.y_train, n, c), 0)
            cs = compact_from_quantizer(Xs, ys, make_quantizer("codebook", 4, torch.from_numpy(Xs)))
            X = cs.X.astype(np.float32)
            y = teacher.labels(X)
            for steps in steps_list:
                for eps in eps_list:
                    r = TrainRecipe(optimizer="adam", lr=3e-3, schedule="cosine", steps=steps, batch_size=128,
                                    weight_decay=1e-3, label_smoothing=eps)
                    vals = [val_top1(spec, train_model(spec, X, y, s, r), Xv, yv) for s in seeds]
                    rows.append({"split": split, "rows": n, "steps": steps, "label_smoothing": eps,
                                 "val_top1": vals, "mean": float(np.mean(vals))})
                    print(f"split {split} rows {n} steps {steps} eps {eps:g}: val {np.mean(vals):.4f}", flush=True)
    print("\n| split | rows | steps | " + " | ".join(f"eps {e:g}" for e in eps_list) + " |")
    print("|---" * (3 + len(eps_list)) + "|")
    for key in dict.fromkeys((r["split"], r["rows"], r["steps"]) for r in rows):
        means = [next(r["mean"] for r in rows if (r["split"], r["rows"], r["steps"]) == key and
                      r["label_smoothing"] == e) for e in eps_list]
        print(f"| {key[0]} | {key[1]} | {key[2]} | " + " | ".join(f"{m:.4f}" for m in means) + " |")
    out = Path(a.out)
    with atomic_path(out, make_parents=True) as tmp:
        Path(tmp).write_text(json.dumps({"command": " ".join(sys.argv), "seeds": seeds, "rows": rows,
                                         "seconds": time.perf_counter() - t0}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("EDGE_SDK_PROGRESS", "off")
    raise SystemExit(main())

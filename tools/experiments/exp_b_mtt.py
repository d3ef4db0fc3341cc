"""(b) Why held-out accuracy falls once trajectory matching starts, on the beam data.

A stand-alone QuADD-MTT loop (same loss as server/distill/mtt.py: student unrolled `syn_steps` SGD steps
from expert epoch t, matched to epoch t+span, normalised), with the knobs that may be at fault:
lr of the synthetic data (Adam), initialisation (random real rows / per-class k-means), expert count/length.
Every `every` iterations the decoded set is scored on the validation split (training data only) with the
tuned recipe; also logged: how far rows moved (RMS distance to their initial row, in units of the
median nearest-neighbour distance of the real rows) and the fraction of stored codes that changed.
Usage: exp_b_mtt.py RATIO TAG  (configs chosen by TAG below)."""
import math
import sys
import time

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
import numpy as np
import torch
import torch.nn.functional as F
from common import Recipe, _params, load, mlp, save, top1, train
from compact import fit_n, select_rows

from edge_sdk.modelspec import epoch_order
from edge_sdk.server.torch_quant import make_quantizer

torch.set_num_threads(1)
b = load()
ratio, tag = float(sys.argv[1]), sys.argv[2]
LEAN = 160
budget = int(b.full_bytes // ratio) - LEAN
EVAL = Recipe("adam", 3e-3, 3000, schedule="cosine")
Xr = torch.from_numpy(b.X)
yr = torch.from_numpy(b.y)

# median NN distance among real rows (a natural unit for "how far a row moved")
sub = b.X[np.random.Generator(np.random.PCG64(0)).permutation(len(b.X))[:2000]]
dd = ((sub[:, None] - sub[None]) ** 2).sum(-1)
np.fill_diagonal(dd, np.inf)
NN = float(np.median(np.sqrt(dd.min(1))))


def experts(n_exp, epochs, lr=0.05, bs=128):
    trajs = []
    for e in range(n_exp):
        p = _params(b.spec, 1000 + e)
        snaps = [torch.cat([q.detach().reshape(-1) for q in p])]
        for ep in range(epochs):
            order = torch.from_numpy(epoch_order(len(b.y), 1000 + e, ep))
            for s in range(0, len(b.y), bs):
                idx = order[s:s + bs]
                g = torch.autograd.grad(F.cross_entropy(mlp(p, Xr[idx]), yr[idx]), p)
                with torch.no_grad():
                    for q, gg in zip(p, g, strict=False):
                        q.sub_(lr * gg)
            snaps.append(torch.cat([q.detach().reshape(-1) for q in p]))
        trajs.append(torch.stack(snaps))
    return trajs


shapes = [tuple(a.shape) for a in _params(b.spec, 0)]
sizes = [int(np.prod(s)) for s in shapes]


def unflat(t):
    return [x.view(s) for x, s in zip(torch.split(t, sizes), shapes, strict=False)]


def run(cfg):
    rng = np.random.Generator(np.random.PCG64(cfg["seed"]))
    n = fit_n(budget, "codebook", cfg["bits"])
    X0, y0 = select_rows(cfg["init"], b.X, b.y, n, seed=1)
    X0 = X0 - X0.max(1, keepdims=True)  # real manifold: max entry 0
    S = torch.nn.Parameter(torch.from_numpy(X0.copy()))
    ys = torch.from_numpy(y0)
    q = make_quantizer("codebook", cfg["bits"], S.detach())
    log_lr = torch.nn.Parameter(torch.tensor(math.log(cfg["expert_lr"])))
    opt = torch.optim.Adam([{"params": [S], "lr": cfg["lr_data"]}, {"params": list(q.parameters()), "lr": cfg["lr_quant"]},
                            {"params": [log_lr], "lr": 1e-4}])
    trajs = experts(cfg["experts"], cfg["epochs"], cfg["expert_lr"])
    codes0, _ = q.encode(torch.from_numpy(X0))
    log = []

    def score(it):
        with torch.no_grad():
            Sc = S - S.amax(1, keepdim=True)
            Xd = q(Sc).numpy()
            codes, _ = q.encode(Sc)
        acc = [top1(train(b.spec, Xd, y0, s, EVAL)[0], b.Xv, b.yv) for s in (0, 1)]
        mv = np.sqrt(((Sc.numpy() - X0) ** 2).sum(1))
        log.append({"it": it, "val": float(np.mean(acc)), "move_rms_nn": float(np.sqrt((mv ** 2).mean()) / NN),
                    "move_median_nn": float(np.median(mv) / NN), "codes_changed": float((codes != codes0).mean()),
                    "rows_changed": float((codes != codes0).any(1).mean()), "lr_syn": float(log_lr.exp())})
        print(cfg["name"], log[-1], flush=True)

    t0 = time.time()
    for it in range(cfg["iters"] + 1):
        if it % cfg["every"] == 0:
            score(it)
        if it == cfg["iters"]:
            break
        traj = trajs[int(rng.integers(len(trajs)))]
        t = int(rng.integers(0, cfg["max_start"] + 1))
        start, target = traj[t], traj[t + cfg["span"]]
        theta = start.clone().requires_grad_(True)
        Sq = q(S - S.amax(1, keepdim=True))
        bs = min(n, 256)
        perm = torch.from_numpy(rng.permutation(n))
        pos = 0
        for _ in range(cfg["syn_steps"]):
            if pos + bs > n:
                perm, pos = torch.from_numpy(rng.permutation(n)), 0
            idx = perm[pos:pos + bs]
            pos += bs
            ce = F.cross_entropy(mlp(unflat(theta), Sq[idx]), ys[idx])
            g = torch.autograd.grad(ce, theta, create_graph=True)[0]
            theta = theta - log_lr.exp() * g
        loss = ((theta - target) ** 2).sum() / ((start - target) ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {"cfg": cfg, "n": n, "log": log, "seconds": time.time() - t0}


base = dict(bits=4, init="random", lr_data=0.01, lr_quant=0.005, expert_lr=0.05, experts=4, epochs=12, max_start=8,
            span=2, syn_steps=20, iters=300, every=50, seed=0)
CONFIGS = {
    "lr": [dict(base, name="lr0.01"), dict(base, name="lr0.003", lr_data=0.003), dict(base, name="lr0.001", lr_data=0.001)],
    "init": [dict(base, name="km-lr0.01", init="kmeans"), dict(base, name="km-lr0.001", init="kmeans", lr_data=0.001)],
    "bits2": [dict(base, name="b2-lr0.01", bits=2), dict(base, name="b2-lr0.001", bits=2, lr_data=0.001),
              dict(base, name="b2-km-lr0.001", bits=2, init="kmeans", lr_data=0.001)],
}
out = [run(c) for c in CONFIGS[tag]]
save(f"b_mtt_{int(ratio)}x_{tag}", {"budget_data_bytes": budget, "nn_unit": NN, "eval": EVAL.to_dict(), "runs": out})

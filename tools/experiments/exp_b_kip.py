"""(b) Kernel-inducing-point distillation (KIP, Nguyen et al. 2021) with the MLP's NTK, QuADD-style: the
synthetic rows go through the straight-through quantizer inside the loss. A KRR predictor on the decoded
synthetic set must predict the real rows (targets: one-hot labels or a teacher's probabilities). Hard labels
of the synthetic rows stay fixed (they are stored as 5-bit labels). Validation split only.
Usage: exp_b_kip.py RATIO TAG"""
import sys
import time

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
import numpy as np
import torch
import torch.nn.functional as F
from common import Recipe, load, mlp, save, top1, train
from compact import fit_n, select_rows
from kernels import ntk

from edge_sdk.server.torch_quant import make_quantizer, ste_round

torch.set_num_threads(1)
b = load()
ratio, tag = float(sys.argv[1]), sys.argv[2]
budget = int(b.full_bytes // ratio) - 160
EVAL = Recipe("adam", 3e-3, 3000, schedule="cosine")
Xr = torch.from_numpy(b.X)
yr = torch.from_numpy(b.y)
sub = b.X[np.random.Generator(np.random.PCG64(0)).permutation(len(b.X))[:2000]]
dd = ((sub[:, None] - sub[None]) ** 2).sum(-1)
np.fill_diagonal(dd, np.inf)
NN = float(np.median(np.sqrt(dd.min(1))))
teacher, _ = train(b.spec, b.X, b.y, 100, Recipe("adam", 1e-2, 6000, schedule="cosine"))
with torch.no_grad():
    P_teacher = torch.softmax(mlp(teacher, Xr), 1)


class AffFeat(torch.nn.Module):
    """per-feature affine min/max STE quantizer: x_hat = lo + round((clip(x) - lo)/step) * step."""

    def __init__(self, bits, x0):
        super().__init__()
        self.L = (1 << bits) - 1
        self.lo = torch.nn.Parameter(x0.min(0).values.clone())
        self.hi = torch.nn.Parameter(x0.max(0).values.clone())

    def forward(self, x):
        lo, hi = self.lo, torch.maximum(self.hi, self.lo + 1e-3)
        step = (hi - lo) / self.L
        xc = torch.maximum(torch.minimum(x, hi), lo)
        return lo + ste_round((xc - lo) / step) * step

    def codes(self, x):
        with torch.no_grad():
            lo, hi = self.lo, torch.maximum(self.hi, self.lo + 1e-3)
            return torch.round((torch.clamp(x, lo, hi) - lo) / ((hi - lo) / self.L)).numpy()


def run(cfg):
    rng = np.random.Generator(np.random.PCG64(cfg["seed"]))
    qname, bits = cfg["q"], cfg["bits"]
    n = fit_n(budget, "codebook" if qname == "codebook" else "aff-feat", bits, sorted_labels=cfg.get("sorted_labels", False))
    X0, y0 = select_rows(cfg["init"], b.X, b.y, n, seed=1)
    X0 = X0 - X0.max(1, keepdims=True)
    S = torch.nn.Parameter(torch.from_numpy(X0.copy()))
    Ys = F.one_hot(torch.from_numpy(y0), 32).float()
    q = make_quantizer("codebook", bits, S.detach()) if qname == "codebook" else AffFeat(bits, S.detach())
    enc = (lambda x: q.encode(x)[0]) if qname == "codebook" else q.codes
    codes0 = enc(torch.from_numpy(X0))
    opt = torch.optim.Adam([{"params": [S], "lr": cfg["lr_data"]}, {"params": list(q.parameters()), "lr": cfg["lr_quant"]}])
    log = []

    def score(it):
        with torch.no_grad():
            Sc = S - S.amax(1, keepdim=True)
            Xd = q(Sc).numpy()
            codes = enc(Sc)
        acc = [top1(train(b.spec, Xd, y0, s, EVAL)[0], b.Xv, b.yv) for s in (0, 1)]
        if cfg.get("relabel"):
            with torch.no_grad():
                yt = mlp(teacher, torch.from_numpy(Xd)).argmax(1).numpy()
            acc_rl = [top1(train(b.spec, Xd, yt, s, EVAL)[0], b.Xv, b.yv) for s in (0, 1)]
        mv = np.sqrt(((Sc.numpy() - X0) ** 2).sum(1))
        log.append({"it": it, "val": float(np.mean(acc)), "move_rms_nn": float(np.sqrt((mv ** 2).mean()) / NN),
                    "codes_changed": float((codes != codes0).mean()), "rows_changed": float((codes != codes0).any(1).mean())})
        if cfg.get("relabel"):
            log[-1]["val_teacher_relabel"] = float(np.mean(acc_rl))
        print(cfg["name"], log[-1], flush=True)

    t0 = time.time()
    for it in range(cfg["iters"] + 1):
        if it % cfg["every"] == 0:
            score(it)
        if it == cfg["iters"]:
            break
        idx = torch.from_numpy(rng.integers(0, len(b.y), cfg["target_batch"]))
        Xt = Xr[idx]
        Yt = P_teacher[idx] if cfg["target"] == "teacher" else F.one_hot(yr[idx], 32).float()
        Sq = q(S - S.amax(1, keepdim=True))
        Yb = Ys
        m = cfg.get("support", 0)
        if m and m < n:
            sidx = torch.from_numpy(rng.permutation(n)[:m])
            Sq, Yb = Sq[sidx], Ys[sidx]
        Kss = ntk(Sq, Sq)
        Kts = ntk(Xt, Sq)
        lam = cfg["reg"] * Kss.diagonal().mean()
        alpha = torch.linalg.solve(Kss + lam * torch.eye(Sq.shape[0]), Yb)
        loss = ((Kts @ alpha - Yt) ** 2).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {"cfg": cfg, "n": n, "log": log, "seconds": time.time() - t0}


base = dict(q="codebook", bits=4, init="kmeans", lr_data=0.003, lr_quant=0.001, target="teacher", reg=1e-2,
            target_batch=1024, iters=300, every=50, seed=0)
CONFIGS = {
    "a": [dict(base, name="kip-cb4-km-teacher"), dict(base, name="kip-cb4-km-onehot", target="onehot"),
          dict(base, name="kip-cb4-rand-teacher", init="random"), dict(base, name="kip-cb4-km-teacher-lr0.01", lr_data=0.01)],
    "b": [dict(base, name="kip-aff3-km-teacher", q="aff", bits=3), dict(base, name="kip-cb4-km-teacher-reg1e-3", reg=1e-3),
          dict(base, name="kip-cb4-km-teacher-reg1e-1", reg=1e-1), dict(base, name="kip-cb3-km-teacher", bits=3)],
}
CONFIGS["c"] = [dict(base, name="kip-cb4-km-teacher-sup512", support=512), dict(base, name="kip-cb4-km-teacher-lr0.01-600", lr_data=0.01, iters=600, every=100)]
CONFIGS["36a"] = [dict(base, name="kip36-cb4-km-teacher-sup512", support=512), dict(base, name="kip36-cb4-km-teacher-sup512-lr0.01", support=512, lr_data=0.01),
                  dict(base, name="kip36-cb3-km-teacher-sup512", bits=3, support=512)]
CONFIGS["d"] = [dict(base, name="kip-cb4-km-sorted-relabel-600", sorted_labels=True, relabel=True, iters=600, every=100),
                 dict(base, name="kip-cb3-km-sorted-relabel-600", bits=3, sorted_labels=True, relabel=True, iters=600, every=100)]
out = [run(c) for c in CONFIGS[tag]]
save(f"b_kip_{int(ratio)}x_{tag}", {"budget_data_bytes": budget, "nn_unit": NN, "eval": EVAL.to_dict(), "runs": out})

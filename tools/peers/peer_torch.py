"""Eager PyTorch: ``nn.Linear``/``ReLU``, ``F.cross_entropy``, ``torch.optim.SGD``/``Adam`` — what a practitioner
writes first. Threads: ``torch.set_num_threads``."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

OPTIMIZERS = {"sgd", "adam"}
UNSUPPORTED_WHY: dict[str, str] = {}


def make_net(data: Any) -> torch.nn.Sequential:
    layers: list[torch.nn.Module] = []
    lp = data.layer_params()
    for i, (w, b) in enumerate(lp):
        lin = torch.nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(w))
            lin.bias.copy_(torch.from_numpy(b))
        layers.append(lin)
        if i < len(lp) - 1:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def make_optimizer(params: Any, case: dict[str, Any]) -> torch.optim.Optimizer:
    hp = case["hp"]
    if case["optimizer"] == "sgd":
        return torch.optim.SGD(params, lr=hp["lr"], momentum=hp["momentum"], weight_decay=hp["weight_decay"])
    return torch.optim.Adam(params, lr=hp["lr"], betas=(hp["beta1"], hp["beta2"]), eps=hp["eps"],
                            weight_decay=hp["weight_decay"])


class Trainer:
    def __init__(self, case: dict[str, Any], data: Any) -> None:
        torch.set_num_threads(int(case["threads"]))
        self.data = data
        self.net = make_net(data)
        self.opt = make_optimizer(self.net.parameters(), case)
        self.batches = [tuple(torch.from_numpy(a) for a in data.batch(s)) for s in range(len(data.batches))]
        self.info = {"torch": torch.__version__, "threads": torch.get_num_threads()}

    def run(self, ids: list[int]) -> list[float]:
        losses = []
        for s in ids:
            x, y = self.batches[s % len(self.batches)]
            self.opt.zero_grad()
            loss = F.cross_entropy(self.net(x), y)
            loss.backward()
            self.opt.step()
            losses.append(loss.item())
        return losses


def build(cases: list[dict[str, Any]]) -> None:  # nothing to build
    del cases


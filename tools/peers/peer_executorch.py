"""ExecuTorch training (``executorch`` 1.5.1 with torch 2.13): the MLP + ``F.cross_entropy`` exported with
``torch.export``, ``_export_forward_backward`` adds the backward, ``to_edge(...).to_executorch()`` lowers it to
the portable kernels; ``_load_for_executorch_for_training_from_buffer`` runs ``forward_backward`` and
``get_sgd_optimizer`` applies SGD with momentum. The program buffer must stay alive while the module lives.
Fixed shapes: one program per batch size. Threads: ``_unsafe_reset_threadpool`` (the portable kernels are
single-threaded, so "all threads" changes nothing). ExecuTorch ships only an SGD optimizer: no Adam.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

OPTIMIZERS = {"sgd"}
UNSUPPORTED_WHY = {"adam": "ExecuTorch's training extension ships only an SGD optimizer (get_sgd_optimizer)"}


def _net(data: Any) -> Any:
    import torch

    layers: list[Any] = []
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


def build(cases: list[dict[str, Any]]) -> None:
    import torch
    import torch.nn.functional as F
    import worker
    from executorch.exir import to_edge
    from torch.export.experimental import _export_forward_backward

    class WithLoss(torch.nn.Module):
        def __init__(self, net: Any) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: Any, y: Any) -> Any:
            z = self.net(x)
            return F.cross_entropy(z, y), z.detach().argmax(dim=1)

    done: set[str] = set()
    for case in cases:
        out = Path(case["artifact"])
        if str(out) in done or (out / "model.pte").exists():
            continue
        done.add(str(out))
        out.mkdir(parents=True, exist_ok=True)
        data = worker.Data.load(case)
        x, y = data.batch(0)
        ep = torch.export.export(WithLoss(_net(data)), (torch.from_numpy(x), torch.from_numpy(y)), strict=True)
        ep = _export_forward_backward(ep)
        (out / "model.pte").write_bytes(to_edge(ep).to_executorch().buffer)


class Trainer:
    def __init__(self, case: dict[str, Any], data: Any) -> None:
        import torch
        from executorch.extension.training import (
            _load_for_executorch_for_training_from_buffer,
            get_sgd_optimizer,
        )

        try:
            from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool

            _unsafe_reset_threadpool(int(case["threads"]))
        except (ImportError, RuntimeError):
            pass
        torch.set_num_threads(int(case["threads"]))
        self.buffer = (Path(case["artifact"]) / "model.pte").read_bytes()  # must outlive the module
        self.module = _load_for_executorch_for_training_from_buffer(self.buffer)
        self.batches = [tuple(torch.from_numpy(a) for a in data.batch(s)) for s in range(len(data.batches))]
        # the module exposes its parameters only after a first forward_backward (no update is applied)
        self.module.forward_backward("forward", self.batches[0])
        hp = case["hp"]
        self.opt = get_sgd_optimizer(self.module.named_parameters(), hp["lr"], hp["momentum"], 0.0,
                                     hp["weight_decay"], False)
        self.info = {"pte_bytes": len(self.buffer)}

    def run(self, ids: list[int]) -> list[float]:
        losses = []
        for s in ids:
            x, y = self.batches[s % len(self.batches)]
            out = self.module.forward_backward("forward", (x, y))
            self.opt.step(self.module.named_gradients())
            losses.append(float(out[0]))
        return losses

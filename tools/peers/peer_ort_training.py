"""onnxruntime-training 1.19.2 (the last release with training): the forward MLP exported with the TorchScript
ONNX exporter, ``artifacts.generate_artifacts`` adds the loss (``CrossEntropyLoss``), its gradient graph (with
``com.microsoft`` gradient kernels) and an optimizer model; ``Module``/``Optimizer`` train it. Threads:
``SessionOptions.intra_op_num_threads``.

Optimizers: ``AdamW`` with weight decay 0 and bias correction is torch's Adam (``adam_mode=1`` puts eps outside
the bias correction: a 1e-8 difference, inside the parity tolerance). ``OptimType.SGD`` builds
``SGDOptimizerV2``, which has no momentum, and the runtime's ``Optimizer`` keeps no state for a custom one: SGD
with momentum is not available.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

OPTIMIZERS = {"adam"}
UNSUPPORTED_WHY = {"sgd": "onnxruntime-training's SGD (SGDOptimizerV2) has no momentum; its Optimizer keeps "
                          "state only for AdamW"}


def build(cases: list[dict[str, Any]]) -> None:
    import onnx
    import torch
    import worker
    from onnxruntime.training import artifacts, onnxblock

    done: set[str] = set()
    for case in cases:
        out = Path(case["artifact"])
        if str(out) in done:
            continue
        done.add(str(out))
        out.mkdir(parents=True, exist_ok=True)
        data = worker.Data.load(case)
        lp = data.layer_params()
        layers: list[torch.nn.Module] = []
        for i, (w, b) in enumerate(lp):
            lin = torch.nn.Linear(w.shape[1], w.shape[0])
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(w))
                lin.bias.copy_(torch.from_numpy(b))
            layers.append(lin)
            if i < len(lp) - 1:
                layers.append(torch.nn.ReLU())
        net = torch.nn.Sequential(*layers)
        fwd = out / "forward.onnx"
        x = torch.zeros((case["batch"], lp[0][0].shape[1]))
        torch.onnx.export(net, (x,), str(fwd), dynamo=False, export_params=True, do_constant_folding=False,
                          training=torch.onnx.TrainingMode.TRAINING, input_names=["x"], output_names=["logits"],
                          dynamic_axes={"x": {0: "B"}, "logits": {0: "B"}}, opset_version=17)
        model = onnx.load(str(fwd))
        names = [t.name for t in model.graph.initializer]
        hp = case["hp"]
        opt = onnxblock.optim.AdamW(betas=(hp["beta1"], hp["beta2"]), eps=hp["eps"], weight_decay=0.0)
        artifacts.generate_artifacts(model, requires_grad=names, frozen_params=[],
                                     loss=artifacts.LossType.CrossEntropyLoss, optimizer=opt,
                                     artifact_directory=str(out))


class Trainer:
    def __init__(self, case: dict[str, Any], data: Any) -> None:
        import onnxruntime
        from onnxruntime.training.api import CheckpointState, Module, Optimizer

        art = Path(case["artifact"])
        so = onnxruntime.SessionOptions()
        so.intra_op_num_threads = int(case["threads"])
        so.inter_op_num_threads = 1
        self.state = CheckpointState.load_checkpoint(str(art / "checkpoint"))
        self.module = Module(str(art / "training_model.onnx"), self.state, str(art / "eval_model.onnx"),
                             device="cpu", session_options=so)
        self.opt = Optimizer(str(art / "optimizer_model.onnx"), self.module)
        self.opt.set_learning_rate(float(case["hp"]["lr"]))
        self.module.train()
        self.batches = [(x, y.astype(np.int64)) for x, y in (data.batch(s) for s in range(len(data.batches)))]
        self.info = {"onnxruntime-training": onnxruntime.__version__, "pid": os.getpid()}

    def run(self, ids: list[int]) -> list[float]:
        losses = []
        for s in ids:
            x, y = self.batches[s % len(self.batches)]
            loss = self.module(x, y)
            self.opt.step()
            self.module.lazy_reset_grad()
            losses.append(float(loss))
        return losses

"""LiteRT (``ai-edge-litert``): a ``tf.Module`` whose ``train(x, y)`` signature computes the MLP's forward, loss and
a **hand-written backward** (the same formulas as edge-sdk's epoch graph: ``dz = (softmax - onehot)/B``,
``dW = h^T dh``, ``dh_in = dh W^T * [h_in > 0]``) and applies SGD with momentum or Adam with ``assign`` ops on
resource variables; converted once with ``tensorflow-cpu`` (``TFLiteConverter``, builtin ops only, resource
variables enabled) in the ``litert-build`` venv; trained with ``ai_edge_litert.interpreter`` in the ``litert``
venv, which holds only the runtime. A ``GradientTape`` model would need Flex ops the runtime cannot run. The
model has fixed shapes: one ``.tflite`` per batch size. Threads: ``Interpreter(num_threads=...)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

OPTIMIZERS = {"sgd", "adam"}
UNSUPPORTED_WHY: dict[str, str] = {}


def build(cases: list[dict[str, Any]]) -> None:
    import tensorflow as tf
    import worker

    class Net(tf.Module):
        def __init__(self, case: dict[str, Any], data: Any) -> None:
            super().__init__()
            hp = case["hp"]
            self.opt = case["optimizer"]
            self.hp = {k: float(v) for k, v in hp.items()}
            lp = data.layer_params()
            self.ws = [tf.Variable(np.ascontiguousarray(w.T)) for w, _ in lp]  # [in, out]
            self.bs = [tf.Variable(b) for _, b in lp]
            shapes = [v.shape for pair in zip(self.ws, self.bs, strict=True) for v in pair]
            self.m = [tf.Variable(tf.zeros(s)) for s in shapes]
            self.v = [tf.Variable(tf.zeros(s)) for s in shapes] if self.opt == "adam" else []
            self.t = tf.Variable(0.0)
            self.batch, self.dim = int(case["batch"]), int(lp[0][0].shape[1])
            self.classes = int(lp[-1][0].shape[0])
            spec = [tf.TensorSpec([self.batch, self.dim], tf.float32), tf.TensorSpec([self.batch], tf.int32)]
            self.train = tf.function(self._train, input_signature=spec)

        def _train(self, x: Any, y: Any) -> dict[str, Any]:
            n = len(self.ws)
            hs = [x]
            h = x
            for i in range(n):
                h = tf.matmul(h, self.ws[i]) + self.bs[i]
                if i < n - 1:
                    h = tf.nn.relu(h)
                hs.append(h)
            logp = tf.nn.log_softmax(h)
            onehot = tf.one_hot(y, self.classes, dtype=tf.float32)
            inv_b = 1.0 / float(self.batch)
            loss = -tf.reduce_sum(logp * onehot) * inv_b
            dh = (tf.exp(logp) - onehot) * inv_b
            grads: list[Any] = [None] * (2 * n)
            for i in reversed(range(n)):
                grads[2 * i] = tf.matmul(hs[i], dh, transpose_a=True)
                grads[2 * i + 1] = tf.reduce_sum(dh, axis=0)
                if i > 0:
                    dh = tf.matmul(dh, self.ws[i], transpose_b=True) * tf.cast(hs[i] > 0, tf.float32)
            params = [v for pair in zip(self.ws, self.bs, strict=True) for v in pair]
            hp = self.hp
            if self.opt == "sgd":
                for p, g, buf in zip(params, grads, self.m, strict=True):
                    g = g + hp["weight_decay"] * p
                    buf.assign(hp["momentum"] * buf + g)
                    p.assign_sub(hp["lr"] * buf)
            else:
                t = self.t.assign_add(1.0)
                bc1 = 1.0 - tf.pow(hp["beta1"], t)
                bc2 = 1.0 - tf.pow(hp["beta2"], t)
                step = hp["lr"] / bc1
                for p, g, m, v in zip(params, grads, self.m, self.v, strict=True):
                    g = g + hp["weight_decay"] * p
                    m.assign(hp["beta1"] * m + (1.0 - hp["beta1"]) * g)
                    v.assign(hp["beta2"] * v + (1.0 - hp["beta2"]) * g * g)
                    p.assign_sub(step * m / (tf.sqrt(v) / tf.sqrt(bc2) + hp["eps"]))
            return {"loss": loss}

    done: set[str] = set()
    for case in cases:
        out = Path(case["artifact"])
        if str(out) in done or (out / "model.tflite").exists():
            continue
        done.add(str(out))
        out.mkdir(parents=True, exist_ok=True)
        net = Net(case, worker.Data.load(case))
        sm = out / "saved"
        tf.saved_model.save(net, str(sm), signatures={"train": net.train.get_concrete_function()})
        conv = tf.lite.TFLiteConverter.from_saved_model(str(sm), signature_keys=["train"])
        conv.experimental_enable_resource_variables = True
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        (out / "model.tflite").write_bytes(conv.convert())


class Trainer:
    def __init__(self, case: dict[str, Any], data: Any) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.model = (Path(case["artifact"]) / "model.tflite").read_bytes()
        self.interp = Interpreter(model_content=self.model, num_threads=int(case["threads"]))
        self.runner = self.interp.get_signature_runner("train")
        self.batches = [(x, y.astype(np.int32)) for x, y in (data.batch(s) for s in range(len(data.batches)))]
        self.info = {"tflite_bytes": len(self.model)}

    def run(self, ids: list[int]) -> list[float]:
        losses = []
        for s in ids:
            x, y = self.batches[s % len(self.batches)]
            losses.append(float(self.runner(x=x, y=y)["loss"]))
        return losses

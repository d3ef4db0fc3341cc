"""edge-sdk on stock onnxruntime, run exactly as the device trainer runs it: the payload (4-bit codebook, the
rows packed) and its training graph are loaded by ``edge_sdk.device`` (base install, no torch) and the steps go
through ``edge_sdk.device.graph`` — the epoch graph (format v2, default) takes all the steps of one call in
one ``run()``, decoding the rows in the graph; ``case["graph_variant"] == "step"`` runs the format-v1 graph
(one ``run()`` per step), the state before issue #15. Threads: onnxruntime ``intra_op_num_threads``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

OPTIMIZERS = {"sgd", "adam"}
UNSUPPORTED_WHY: dict[str, str] = {}


class Trainer:
    def __init__(self, case: dict[str, Any], data: Any) -> None:
        import onnxruntime

        from edge_sdk.device.graph import PayloadData, load_train_graph, make_executor
        from edge_sdk.payload import read_payload

        payload = read_payload(case["payload"])
        self.graph = load_train_graph(Path(case["graph"]).read_bytes(), payload.graph, threads=int(case["threads"]))
        self.executor = make_executor(self.graph, PayloadData(payload))
        self.data = data
        self.params = {k: v.copy() for k, v in data.params.items()}
        self.state = {n: np.zeros_like(self.params[n.rsplit(".", 1)[0]]) for n in self.graph.state_names}
        hp = case["hp"]
        self.fixed = {h: np.asarray(hp[h], np.float32) for h in self.graph.hyper if h not in ("lr", "step")}
        self.lr = np.asarray(hp["lr"], np.float32)
        self.t = 0
        self.info = {"onnxruntime": onnxruntime.__version__, "graph_variant": self.graph.variant,
                     "graph_bytes": self.graph.size, "payload_bytes": int(payload.size)}

    def run(self, ids: list[int]) -> list[float]:
        batches = [self.data.batches[s % len(self.data.batches)] for s in ids]
        hypers = []
        for i in range(len(ids)):
            hp = dict(self.fixed, lr=self.lr)
            if "step" in self.graph.hyper:
                hp["step"] = np.asarray(self.t + i + 1, np.float32)
            hypers.append(hp)
        self.params, self.state, losses = self.executor.run(self.params, self.state, batches, hypers,
                                                            first_step=self.t)
        self.t += len(ids)
        return [float(v) for v in losses]

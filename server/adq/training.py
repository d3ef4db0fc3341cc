"""Adapters from ADQ to the shared server models and evaluation protocol.

* models: ``edge_sdk.server.models`` (``SpecModel``, ``forward``; parameters from ``init_params``);
* training: ``edge_sdk.server.train_eval.train_model`` (one run of an ``edge_sdk.modelspec.TrainRecipe``, batch
  order ``epoch_order``) — the same recipe every method is evaluated with. ADQ's reference model and the EL2N
  scoring models are trained with it for ``epochs`` passes, i.e. ``epochs * ceil(N / batch_size)`` updates.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from edge_sdk.modelspec import ModelSpec, TrainRecipe
from edge_sdk.server.models import SpecModel
from edge_sdk.server.train_eval import predict, train_model


def train_params(spec: ModelSpec, x: np.ndarray, y: np.ndarray, epochs: int, seed: int,
                 recipe: TrainRecipe) -> dict[str, torch.Tensor]:
    """Parameters after ``epochs`` passes of the shared recipe (``epochs == 0``: ``init_params``)."""
    from edge_sdk.server.models import init_torch_params

    if epochs <= 0:
        return init_torch_params(spec, seed)
    return train_model(spec, x, y, seed, recipe.for_epochs(int(epochs), len(y)))


def as_module(spec: ModelSpec, params: dict[str, torch.Tensor]) -> nn.Module:
    """A frozen ``SpecModel`` holding ``params`` (for ``torch.func.functional_call``)."""
    m = SpecModel(spec, 0)
    with torch.no_grad():
        for name, p in m.named_parameters():
            p.copy_(params[name])
            p.requires_grad_(False)
    return m.eval()


def logits(spec: ModelSpec, params: dict[str, torch.Tensor], x: np.ndarray) -> np.ndarray:
    """Logits float32 [N, C]."""
    return predict(spec, params, np.asarray(x, np.float32))

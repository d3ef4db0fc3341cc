"""``edge-sdk export-graph``: export the ONNX dequantize-and-train graph for a payload (server side, torch).

The graph depends only on the payload's group layout (kinds, widths, widths of rows, roles), the model spec,
the optimizer and the graph variant; the batch size is a dynamic graph dimension. See docs/onnx-graph.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("export-graph")
@click.option("--payload", "payload", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="payload whose groups the graph consumes (its task.model gives the model spec)")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--optimizer", type=click.Choice(["sgd", "adam"]), default=None,
              help="default: the optimizer of the payload's training recipe (task.train), else sgd")
@click.option("--variant", type=click.Choice(["epoch", "step"]), default=None,
              help="epoch: K steps per run, rows decoded once per run (format v2, fastest; the default for an "
                   "MLP); step: one step per run (format v1: the default for other model kinds, and for device "
                   "runtimes older than the epoch format)")
@click.option("--model", "model_json", default=None,
              help='model spec JSON overriding task.model, e.g. \'{"kind":"mlp","input_dim":8,"num_classes":32,"hidden":[64]}\'')
def cli(payload: Path, out: Path, optimizer: str | None, variant: str | None, model_json: str | None) -> None:
    """Export the training graph for PAYLOAD to OUT; prints its sha256/size and whether PAYLOAD names it."""
    from edge_sdk.errors import ConfigError
    from edge_sdk.graphmeta import default_variant
    from edge_sdk.modelspec import ModelSpec, TrainRecipe
    from edge_sdk.payload import read_payload
    from edge_sdk.server.onnx_export.export import write_graph_for_payload

    with read_payload(payload) as p:
        task = dict(p.task or {})
        try:
            model_d = json.loads(model_json) if model_json else task.get("model")
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--model is not valid JSON: {exc}") from exc
        if not model_d:
            raise ConfigError("the payload's task has no 'model' spec; pass --model JSON")
        spec = ModelSpec.from_dict(model_d)
        recipe = TrainRecipe.from_dict(task["train"]) if task.get("train") is not None else TrainRecipe()
        opt = optimizer or recipe.optimizer
        variant = variant or default_variant(spec)
        info = write_graph_for_payload(p, spec, opt, out, variant=variant)
        named = p.graph
    match = named is not None and named.get("sha256") == info.sha256 and int(named.get("size", -1)) == info.size
    click.echo(json.dumps({"graph": str(info.path), "sha256": info.sha256, "size": info.size,
                           "optimizer": opt, "variant": variant, "payload_names_this_graph": match}, indent=1))

"""``edge-sdk device``: train on a payload with its ONNX graph, evaluate a trained model (numpy + onnxruntime;
never imports torch or edge_sdk.server). See docs/device.md."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edge_sdk.atomic import atomic_write_text


def _write_json(path: Path, obj: object) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=True) + "\n", make_parents=True)


@click.group("device")
def cli() -> None:
    """On-device training and evaluation (numpy + onnxruntime only)."""


@cli.command("train")
@click.option("--payload", "payload", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--graph", "graph", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="training graph named by the payload's graph digest")
@click.option("--eval", "eval_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="local beam measurements (HDF5) to evaluate the trained model on")
@click.option("--steps", type=int, default=None,
              help="override the payload recipe's number of updates (default: follow the payload's recipe exactly)")
@click.option("--epochs", type=int, default=None, help="train this many whole epochs instead of the recipe's steps")
@click.option("--batch-size", type=int, default=None, help="override the recipe's batch size")
@click.option("--lr", type=float, default=None, help="override the recipe's learning rate")
@click.option("--schedule", type=click.Choice(["constant", "cosine", "step"]), default=None,
              help="override the recipe's learning-rate schedule")
@click.option("--seed", type=int, default=None, help="init/batch-order seed (default 0: the server's first evaluation seed)")
@click.option("--soft-weight", type=float, default=None,
              help="override the recipe's loss weight of the soft labels (payloads with soft labels)")
@click.option("--threads", type=int, default=1, show_default=True, help="onnxruntime intra-op threads")
@click.option("--resume", is_flag=True, help="continue from OUT/checkpoint.npz")
@click.option("--trusted-key", "trusted_keys", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Ed25519 public key the payload signature must verify against (repeatable); "
                   "giving one makes a signature mandatory")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--quiet", is_flag=True, help="no progress bar")
def train_cmd(payload: Path, graph: Path, eval_path: Path | None, steps: int | None, epochs: int | None,
              batch_size: int | None, lr: float | None, schedule: str | None, seed: int | None,
              soft_weight: float | None, threads: int, resume: bool, trusted_keys: tuple[str, ...], out_dir: Path,
              quiet: bool) -> None:
    """Train the payload's model with GRAPH, following the payload's training recipe (override it with the
    flags); write OUT/model.onnx and OUT/report.json."""
    import time

    from edge_sdk.device.evaluate import evaluate_beam
    from edge_sdk.device.trainer import Trainer, peak_rss_mb

    t0 = time.perf_counter()
    tr = Trainer(payload, graph, trusted_keys=list(trusted_keys) or None, require_signature=bool(trusted_keys),
                 steps=steps, epochs=epochs, batch_size=batch_size, lr=lr, schedule=schedule, seed=seed,
                 soft_weight=soft_weight, threads=threads)
    st = tr.train(out_dir, resume=resume, progress=not quiet)
    model_bytes = tr.export_model(out_dir / "model.onnx", st.params)
    kpis = evaluate_beam(out_dir / "model.onnx", eval_path, tr.task) if eval_path is not None else None
    report = {
        "kpis": kpis,
        "epochs": st.epoch,
        "steps": st.step,
        "steps_per_s": (tr.steps_run / tr.train_seconds) if tr.steps_run else None,
        "train_seconds": tr.train_seconds,
        "wall_seconds": time.perf_counter() - t0,
        "peak_rss_mb": peak_rss_mb(),
        "bytes_received": tr.bytes_received,
        "payload_bytes": int(tr.payload.size),
        "graph_bytes": int(tr.graph.size),
        "model_bytes": model_bytes,
        "payload_sha256": tr.payload.sha256,
        "graph_sha256": tr.graph.sha256,
        "signature_status": tr.payload.signature_status,
        "config": tr.config.to_dict(),
        "history": st.history,
    }
    _write_json(out_dir / "report.json", report)
    line = f"trained {st.step} steps ({st.epoch} epochs), loss {st.history[-1]['loss']:.4f}" if st.history else ""
    if kpis:
        line += f", top1 {kpis['top1']:.4f}"
    click.echo(f"{line}; wrote {out_dir / 'model.onnx'} and {out_dir / 'report.json'}")


@cli.command("eval")
@click.option("--model", "model", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--data", "data", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--task-from", "task_from", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="payload whose task spec defines the inputs (default: the model's own metadata)")
def eval_cmd(model: Path, data: Path, task_from: Path | None) -> None:
    """Print beam KPIs (JSON) of MODEL on the local measurements DATA."""
    from edge_sdk.device.evaluate import evaluate_beam

    task = None
    if task_from is not None:
        from edge_sdk.payload import read_payload

        with read_payload(task_from) as p:
            task = dict(p.task)
    click.echo(json.dumps(evaluate_beam(model, data, task), indent=1, sort_keys=True))

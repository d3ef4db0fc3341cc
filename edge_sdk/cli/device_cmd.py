"""``edge-sdk device``: fetch a release from a server, train on a payload with its ONNX graph, evaluate a trained
model (numpy + onnxruntime + urllib3; never imports torch or edge_sdk.server). See docs/device.md and
docs/transfer.md ("Device fetch")."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edge_sdk.atomic import atomic_write_text
from edge_sdk.beam.h5reader import H5ReadOptions
from edge_sdk.cli.options import h5_read_options


def _write_json(path: Path, obj: object) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=True) + "\n", make_parents=True)


@click.group("device")
def cli() -> None:
    """On-device training and evaluation (numpy + onnxruntime only)."""


@cli.command("fetch")
@click.option("--url", required=True, help="server base URL, e.g. https://releases.example:8080")
@click.option("--channel", required=True, help="channel to resolve, e.g. beam-uma/stable")
@click.option("--cache", "cache", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="device cache folder (created on first use)")
@click.option("--token-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="file whose first line is the bearer token")
@click.option("--budget", default=None, help="byte budget for this download, e.g. 8KiB, 16kB, 20000 (default: none)")
@click.option("--trusted-key", "trusted_keys", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Ed25519 public key the manifest must be signed by (repeatable); giving one makes it mandatory")
@click.option("--max-rate", default=None,
              help="cap on the download rate: bytes per second (65536) or with a unit (64KiB/s, 2Mbit/s)")
@click.option("--ca-cert", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="PEM CA certificate to verify an https server with (e.g. a self-signed one)")
@click.option("--tier", default=None, help="take this tier instead of the best one that fits")
@click.option("--retries", default=8, show_default=True, type=click.IntRange(0, 1000),
              help="consecutive failed attempts without progress before giving up")
@click.option("--allow-downgrade", is_flag=True, help="accept a release older than the one this cache already took")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              help="where to write the JSON report (default: CACHE/last-fetch.json)")
@click.option("--quiet", is_flag=True, help="print only the summary")
def fetch_cmd(url: str, channel: str, cache: Path, token_file: Path | None, budget: str | None,
              trusted_keys: tuple[str, ...], max_rate: str | None, ca_cert: Path | None, tier: str | None, retries: int,
              allow_downgrade: bool, report_path: Path | None, quiet: bool) -> None:
    """Resolve CHANNEL, verify its manifest, pick the best tier that fits --budget, download the missing blobs
    (resuming, verifying, rate-capped) into CACHE; print and write a JSON report."""
    import re

    from edge_sdk.device.fetch import FetchConfig, fetch_release, stderr_log
    from edge_sdk.errors import ConfigError
    from edge_sdk.units import parse_bytes, parse_rate

    token = None
    if token_file is not None:
        with open(token_file, encoding="utf-8", errors="replace") as f:
            token = f.read(4096).strip().splitlines()[0].strip() if token_file.stat().st_size else ""
        if not token:
            raise ConfigError(f"{token_file} holds no token")
    rate = None
    if max_rate is not None:
        rate = float(max_rate) if re.fullmatch(r"\s*\d+(\.\d+)?\s*", max_rate) else parse_rate(max_rate, "--max-rate")
        if not rate > 0:
            raise ConfigError("--max-rate must be > 0")
    cfg = FetchConfig(url=url, channel=channel, cache=cache, token=token,
                      budget=parse_bytes(budget, "--budget") if budget is not None else None,
                      trusted_keys=trusted_keys, max_rate=rate, ca_cert=ca_cert, tier=tier, retries=retries,
                      allow_downgrade=allow_downgrade)
    rep = fetch_release(cfg, log=None if quiet else stderr_log)
    _write_json(report_path or cache / "last-fetch.json", rep.to_json())
    click.echo(f"fetched tier {rep.tier} of release {rep.release} (signature {rep.signature}): "
               f"{rep.bytes_on_wire:,} B on the wire, {rep.bytes_needed:,} B needed, {rep.bytes_resumed:,} B resumed, "
               f"{rep.bytes_saved_by_cache:,} B saved by the cache, {rep.retries} retries, {rep.seconds:.2f} s")
    click.echo(f"payload {rep.payload}\ngraph {rep.graph}" + (f"\ntask {rep.task}" if rep.task else ""))


@cli.command("train")
@click.option("--payload", "payload", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="payload file (or use --release)")
@click.option("--graph", "graph", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="training graph named by the payload's graph digest (or use --release)")
@click.option("--release", "release", type=click.Path(exists=True, path_type=Path),
              help="a device cache (the release `device fetch` took) or a manifest file inside one")
@click.option("--channel", default=None, help="with --release CACHE holding several channels: which one")
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
@click.option("--label-smoothing", type=float, default=None,
              help="override the recipe's label-smoothing epsilon (0 = plain cross-entropy; > 0 needs a graph "
                   "exported with label smoothing)")
@click.option("--threads", type=int, default=1, show_default=True, help="onnxruntime intra-op threads")
@click.option("--resume", is_flag=True, help="continue from OUT/checkpoint.safetensors")
@click.option("--max-train-memory", "max_train_memory", default="1GiB", show_default=True, metavar="SIZE",
              help="refuse models whose estimated training memory (parameters, gradients, optimizer state, "
                   "activations of a batch) is above this size; raise it on a device that has the memory")
@click.option("--trusted-key", "trusted_keys", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Ed25519 public key the payload signature must verify against (repeatable); "
                   "giving one makes a signature mandatory")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--quiet", is_flag=True, help="no progress bar")
@h5_read_options
def train_cmd(payload: Path | None, graph: Path | None, release: Path | None, channel: str | None,
              eval_path: Path | None, steps: int | None, epochs: int | None, batch_size: int | None,
              lr: float | None, schedule: str | None, seed: int | None, soft_weight: float | None,
              label_smoothing: float | None, threads: int,
              resume: bool, max_train_memory: str, trusted_keys: tuple[str, ...], out_dir: Path,
              quiet: bool, h5: H5ReadOptions) -> None:
    """Train the payload's model with GRAPH (or the fetched --release), following the payload's training recipe
    (override it with the flags); write OUT/model.onnx and OUT/report.json."""
    import time

    from edge_sdk.errors import ConfigError

    release_info = None
    if release is not None:
        if payload is not None or graph is not None:
            raise ConfigError("give either --release or --payload with --graph, not both")
        from edge_sdk.device.cache import resolve_release

        payload, graph, release_info = resolve_release(release, channel, trusted_keys=list(trusted_keys) or None)
    elif payload is None or graph is None:
        raise ConfigError("give --payload and --graph, or --release CACHE_DIR")

    from edge_sdk.device.evaluate import check_eval_data, evaluate_beam
    from edge_sdk.device.trainer import Trainer, peak_rss_mb
    from edge_sdk.schema import TrainLimits
    from edge_sdk.units import parse_size

    t0 = time.perf_counter()
    limits = TrainLimits(max_train_memory=parse_size(max_train_memory, "--max-train-memory"))
    if eval_path is not None:  # a bad evaluation file is refused before training, not after
        check_eval_data(eval_path, h5)
    # from a release, the signed manifest pins the payload by digest (checked again by resolve_release), so the
    # payload itself need not be signed; its own signature is still verified when it has one
    tr = Trainer(payload, graph, trusted_keys=list(trusted_keys) or None,
                 require_signature=bool(trusted_keys) and release_info is None, limits=limits,
                 steps=steps, epochs=epochs, batch_size=batch_size, lr=lr, schedule=schedule, seed=seed,
                 soft_weight=soft_weight, label_smoothing=label_smoothing, threads=threads,
                 task_blob=release_info.get("task") if release_info is not None else None)
    st = tr.train(out_dir, resume=resume, progress=not quiet)
    model_bytes = tr.export_model(out_dir / "model.onnx", st.params)
    kpis = evaluate_beam(out_dir / "model.onnx", eval_path, tr.task, h5) if eval_path is not None else None
    report = {
        "kpis": kpis,
        "epochs": st.epoch,
        "steps": st.step,
        "steps_per_s": (tr.steps_run / tr.train_seconds) if tr.steps_run else None,
        "train_seconds": tr.train_seconds,
        "wall_seconds": time.perf_counter() - t0,
        "peak_rss_mb": peak_rss_mb(),
        "train_memory_estimate_bytes": tr.memory.total,
        "bytes_received": tr.bytes_received,
        "payload_bytes": int(tr.payload.size),
        "graph_bytes": int(tr.graph.size),
        "model_bytes": model_bytes,
        "payload_sha256": tr.payload.sha256,
        "graph_sha256": tr.graph.sha256,
        "signature_status": tr.payload.signature_status,
        "config": tr.config.to_dict(),
        "history": st.history,
        "release": release_info,
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
@h5_read_options
def eval_cmd(model: Path, data: Path, task_from: Path | None, h5: H5ReadOptions) -> None:
    """Print beam KPIs (JSON) of MODEL on the local measurements DATA."""
    from edge_sdk.device.evaluate import evaluate_beam

    task = None
    if task_from is not None:
        from edge_sdk.payload import read_payload

        with read_payload(task_from) as p:
            task = dict(p.task)
    click.echo(json.dumps(evaluate_beam(model, data, task, h5), indent=1, sort_keys=True))

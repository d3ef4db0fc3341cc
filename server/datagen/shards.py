"""Sharded generation: one HDF5 file per shard on a local process pool or a Ray cluster, stitched by a VDS.

``generate_sharded(preset, samples, seed, out, shards=K, backend="local" | "ray")`` splits the run's chunks
(``batch`` rows each, chunk k seeded by ``chunk_seed(seed, k)``) into K contiguous ranges. Shard i writes its
range with :func:`generate_dataset` (``rows=(start, stop)``) into ``<out stem>.shard<i>-of<K>.h5`` next to
``out`` -- one writer per file, as h5py has no MPI -- and :func:`edge_sdk.beam.h5writer.stitch_shards` writes ``out``
as a virtual dataset over the shards. Consequences:

* **deterministic per (seed, shard)**, and the stitched file holds exactly the rows of the unsharded run with the
  same seed/batch (for any K; tested);
* **resumable per shard**: with ``resume=True`` complete shards are kept (checked against this run), unfinished
  ones continue from their ``.partial`` file, missing ones start;
* ``backend="local"``: a ``spawn`` process pool of ``workers`` processes (default: min(K, CPUs)), one torch
  thread each; each worker imports torch and Sionna once (~3 s on one core), takes shards until none is left and
  exits without the interpreter's teardown (:func:`_local_worker_init`). The parent process never imports torch
  or Sionna (it plans, validates and stitches), so the workers' start-up, paid in parallel, is the only one on
  the run's critical path (tools/bench_datagen_shards.py measures it);
* ``backend="ray"``: one Ray task per shard (``num_cpus=1``; ``num_gpus=gpus_per_shard`` when the run uses CUDA),
  on the cluster at ``ray_address`` or on a private local cluster (``workers`` CPUs, its own temporary folder, no
  dashboard) that is shut down afterwards. Ray needs the fleet extra (``pip install -e '.[fleet]'`` in a
  checkout, docs/install.md; the same Ray as the fleet simulator, no extra of its own). On a multi-machine
  cluster ``out`` must be on a file system every node sees.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_sdk.errors import ConfigError, DatasetError
from edge_sdk.server.datagen.presets import Preset, check_device_name, load_preset, normalise_args

BACKENDS = ("local", "ray")
MAX_SHARDS = 4096


@dataclass(frozen=True)
class ShardJob:
    """One shard: rows ``[start, stop)`` of the run into ``path`` (everything a worker needs, picklable)."""

    index: int
    count: int
    start: int
    stop: int
    path: str
    preset: dict[str, Any]
    samples: int
    seed: int
    batch: int
    device: str
    resume: bool
    overwrite: bool
    threads: int = 1


@dataclass
class ShardedResult:
    """Outcome of :func:`generate_sharded`: the stitched file, its shards, rows, new rows, wall seconds."""

    path: Path
    shards: list[Path]
    n: int
    n_new: int
    seconds: float
    backend: str
    workers: int

    @property
    def samples_per_s(self) -> float:
        """New rows per wall-clock second of the whole call (workers' start-up and stitching included)."""
        return self.n_new / self.seconds if self.seconds > 0 else float("nan")


def shard_path(out: Path, index: int, count: int) -> Path:
    """``data.h5`` -> ``data.shard003of016.h5`` (same directory)."""
    width = max(3, len(str(count)))
    return out.with_name(f"{out.stem}.shard{index:0{width}d}of{count:0{width}d}.h5")


def plan_shards(samples: int, batch: int, shards: int) -> list[tuple[int, int]]:
    """Row ranges of ``shards`` contiguous shards on chunk boundaries (chunks split as evenly as possible)."""
    n_chunks = -(-samples // batch)
    if not 1 <= shards <= min(n_chunks, MAX_SHARDS):
        raise ConfigError(
            f"--shards must be in [1, {min(n_chunks, MAX_SHARDS)}]: the run has {n_chunks} chunks of {batch} rows "
            f"(lower --batch or --shards)"
        )
    bounds = [(i * n_chunks) // shards for i in range(shards + 1)]
    return [(bounds[i] * batch, min(bounds[i + 1] * batch, samples)) for i in range(shards)]


def run_shard(job: ShardJob) -> dict[str, Any]:
    """Generate one shard (in a worker process or Ray task); returns a small summary dict."""
    import torch

    from edge_sdk.server.datagen.generate import generate_dataset, resolve_device
    from edge_sdk.server.datagen.presets import parse_preset

    torch.set_num_threads(job.threads)
    device = resolve_device(job.device)
    path = Path(job.path)
    extra = {"shard_index": job.index, "shard_count": job.count, "row_offset": job.start, "run_samples": job.samples}
    t0 = time.perf_counter()
    if path.exists() and job.resume:
        _check_complete_shard(path, job, extra)
        return {"index": job.index, "path": str(path), "n": job.stop - job.start, "n_new": 0, "seconds": 0.0}
    res = generate_dataset(parse_preset(job.preset, "<shard job>"), samples=job.samples, seed=job.seed, out=path,
                           device=device, batch=job.batch, resume=job.resume, progress=False,
                           overwrite=job.overwrite, rows=(job.start, job.stop), extra_attrs=extra)
    return {"index": job.index, "path": str(res.path), "n": res.n, "n_new": res.n_new,
            "seconds": time.perf_counter() - t0}


def _check_complete_shard(path: Path, job: ShardJob, extra: dict[str, Any]) -> None:
    """A shard kept on resume must be this run's shard (same preset, seed, chunking, rows)."""
    import json

    from edge_sdk.beam.h5reader import BeamH5File

    with BeamH5File(path, allow_virtual=False) as f:
        a = f.attrs
        same = (json.loads(a["preset"]) == job.preset and a["seed"] == job.seed and a.get("chunk_size") == job.batch
                and f.n == job.stop - job.start and all(a.get(k) == v for k, v in extra.items()))
    if not same:
        raise DatasetError(f"cannot resume: {path} is not shard {job.index} of this run; delete it or use "
                           "--overwrite without --resume")


def _local_worker_init() -> None:
    """Start-up of a local pool worker: one torch thread, the generator's imports (torch, Sionna: ~3 s on one
    core, paid once per worker, in parallel with the other workers), and a fast exit.

    The fast exit: when the pool shuts the worker down, ``os._exit`` ends it right after Python's other exit
    handlers would have started, skipping the interpreter's teardown of torch and Sionna (~1.1 s measured on the
    2-core reference machine, on the critical path of every sharded run). Nothing is lost: each shard file is
    complete, closed and renamed before :func:`run_shard` returns, and results travel on a queue written
    synchronously.
    """
    import atexit
    import sys

    import torch

    import edge_sdk.server.datagen.generate  # noqa: F401  (imports Sionna)

    torch.set_num_threads(1)

    def _exit_now() -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)

    atexit.register(_exit_now)  # registered last = runs first


def _run_local(jobs: list[ShardJob], workers: int, progress: bool) -> list[dict[str, Any]]:
    """Shards on a ``spawn`` pool of ``workers`` processes (each takes shards until none is left)."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from tqdm import tqdm

    out = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                             initializer=_local_worker_init) as pool:
        futs = [pool.submit(run_shard, j) for j in jobs]
        with tqdm(total=sum(j.stop - j.start for j in jobs), unit="row", disable=not progress, desc="shards") as bar:
            for fut in as_completed(futs):
                r = fut.result()
                out.append(r)
                bar.update(r["n"])
    return out


def _run_ray(jobs: list[ShardJob], workers: int, address: str | None, device: str, gpus_per_shard: float,
             progress: bool) -> tuple[list[dict[str, Any]], int]:
    """One Ray task per shard. ``device`` "auto" uses CUDA when the cluster has GPUs; CUDA shards reserve
    ``gpus_per_shard`` GPUs each. Returns the results and the cluster's CPU count."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--backend ray needs Ray: pip install -e '.[fleet]' in a checkout, docs/install.md (or use --backend local)") from None
    from tqdm import tqdm

    owns, tmp = False, None
    if not ray.is_initialized():
        if address:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        else:
            tmp = tempfile.mkdtemp(prefix="ray-datagen-")
            ray.init(num_cpus=workers, include_dashboard=False, _temp_dir=tmp, log_to_driver=False,
                     object_store_memory=128 * 2**20)
        owns = True
    try:
        res = ray.cluster_resources()
        n_cpu = int(res.get("CPU", workers))
        use_gpu = device.startswith("cuda") or (device == "auto" and float(res.get("GPU", 0)) > 0)
        dev = "cuda" if use_gpu else "cpu"
        jobs = [ShardJob(**{**j.__dict__, "device": dev}) for j in jobs]
        task = ray.remote(num_cpus=1, num_gpus=gpus_per_shard if use_gpu else 0, max_retries=0)(run_shard)
        pending = {task.remote(j): j for j in jobs}
        out = []
        with tqdm(total=sum(j.stop - j.start for j in jobs), unit="row", disable=not progress, desc="shards") as bar:
            try:
                while pending:
                    done, _ = ray.wait(list(pending), num_returns=1)
                    for ref in done:
                        pending.pop(ref)
                        r = ray.get(ref)
                        out.append(r)
                        bar.update(r["n"])
            finally:
                for ref in pending:
                    ray.cancel(ref, force=True)
        return out, n_cpu
    finally:
        if owns:
            ray.shutdown()
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def generate_sharded(preset: str | Path | Preset, samples: int, seed: int, out: str | Path, *, shards: int,
                     backend: str = "local", workers: int | None = None, device: str = "auto", batch: int = 1000,
                     resume: bool = False, overwrite: bool = False, progress: bool = True,
                     ray_address: str | None = None, gpus_per_shard: float = 1.0) -> ShardedResult:
    """Generate ``samples`` rows in ``shards`` shard files and stitch them into ``out`` (module docstring).

    :param workers: local processes / local Ray CPUs (default: min(shards, CPUs)); ignored with ``ray_address``
    :param gpus_per_shard: ``num_gpus`` of each Ray task when the run uses CUDA (``device`` auto with GPUs in
        the cluster, or cuda); 0 for CPU runs
    """
    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {BACKENDS}, got {backend!r}")
    p = preset if isinstance(preset, Preset) else load_preset(preset)
    batch = normalise_args(p, samples, seed, batch)
    if isinstance(shards, bool) or not isinstance(shards, int):
        raise ConfigError(f"shards must be an integer, got {shards!r}")
    ranges = plan_shards(samples, batch, shards)
    n_workers = int(workers or min(shards, os.cpu_count() or 1))
    if n_workers < 1:
        raise ConfigError("workers must be >= 1")
    if not 0 <= gpus_per_shard <= 64:
        raise ConfigError("gpus_per_shard must be in [0, 64]")
    out = Path(out)
    if out.exists() and not overwrite:
        raise DatasetError(f"{out} exists; use --overwrite to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    # resolved where the rows are made (run_shard): the parent never imports torch or Sionna, so the workers'
    # start-up is the only one on the critical path; ray: "auto" = CUDA when the cluster has GPUs (_run_ray)
    dev = check_device_name(device)
    jobs = [ShardJob(index=i, count=shards, start=a, stop=b, path=str(shard_path(out, i, shards)),
                     preset=p.to_dict(), samples=samples, seed=seed, batch=batch, device=dev, resume=resume,
                     overwrite=overwrite) for i, (a, b) in enumerate(ranges)]
    t0 = time.perf_counter()
    if backend == "local":
        results = _run_local(jobs, n_workers, progress)
    else:
        results, n_workers = _run_ray(jobs, n_workers, ray_address, device, gpus_per_shard, progress)
    paths = [Path(j.path) for j in jobs]
    from edge_sdk.beam.h5writer import stitch_shards

    stitch_shards(out, paths, overwrite=overwrite)
    secs = time.perf_counter() - t0
    return ShardedResult(path=out, shards=paths, n=samples, n_new=sum(int(r["n_new"]) for r in results),
                         seconds=secs, backend=backend, workers=n_workers)

"""``edge-sdk data``: generate (server, Sionna), inspect and export 3GPP beam datasets (HDF5 schema v1).

``info``, ``verify`` and ``export`` need only numpy + h5py (+ pyarrow for Parquet); ``generate`` imports
``edge_sdk.server.datagen`` (torch, Sionna) inside the command. Typed errors become one line + exit code in
:func:`edge_sdk.cli.main.main`.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from edge_sdk.beam.h5reader import H5ReadOptions
from edge_sdk.cli.options import h5_read_options
from edge_sdk.errors import ConfigError

#: the shipped reference data of a source checkout (``data verify``'s default)
REFERENCE_DIR = Path(__file__).resolve().parents[2] / "datasets" / "3gpp" / "reference"


@click.group("data")
def cli() -> None:
    """3GPP beam-management datasets (HDF5 schema v1, see docs/dataset-hdf5.md)."""


@cli.command("generate")
@click.option(
    "--preset", "preset", default="uma-fr2-case1", show_default=True, help="Preset name or TOML file."
)
@click.option("--samples", type=int, default=1000, show_default=True, help="Rows to generate.")
@click.option("--seed", type=int, default=0, show_default=True, help="Run seed.")
@click.option("--out", "out", type=click.Path(dir_okay=False), required=True, help="Output FILE.h5.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option(
    "--batch", type=int, default=1000, show_default=True, help="Rows per chunk (part of determinism)."
)
@click.option("--resume/--no-resume", default=False, show_default=True,
              help="Continue FILE.h5.partial (sharded: keep finished shards, continue unfinished ones).")
@click.option("--overwrite", is_flag=True, help="Replace an existing FILE.h5 (and its shard files).")
@click.option("--shards", type=int, default=1, show_default=True,
              help="Split the run into K shard files (FILE.shardIofK.h5) stitched into FILE.h5 (HDF5 virtual "
                   "dataset); the rows equal those of the unsharded run.")
@click.option("--backend", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Where shards run: a local process pool, or Ray (needs the fleet extra).")
@click.option("--workers", type=int, default=None, help="Local processes / local Ray CPUs [default: min(K, CPUs)].")
@click.option("--ray-address", default=None, help="Join this Ray cluster (e.g. auto) instead of starting one.")
def generate(preset: str, samples: int, seed: int, out: str, device: str, batch: int, resume: bool,
             overwrite: bool, shards: int, backend: str, workers: int | None, ray_address: str | None) -> None:
    """Generate a beam dataset with the Sionna TR 38.901 generator (needs the server extra)."""
    import importlib.util

    missing = [m for m in ("torch", "sionna") if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(
            f"'data generate' needs the server extra (pip install -e '.[server]' in a checkout (docs/install.md)): "
            f"{', '.join(missing)} not installed"
        )
    if shards > 1 or backend == "ray":
        # the parent of a sharded run never imports torch/Sionna: only its workers pay that start-up
        from edge_sdk.server.datagen.shards import generate_sharded

        sh = generate_sharded(preset, samples, seed, out, shards=shards, backend=backend, workers=workers,
                              device=device, batch=batch, resume=resume, overwrite=overwrite,
                              ray_address=ray_address)
        click.echo(f"wrote {sh.path}: {sh.n} rows ({sh.n_new} new) in {len(sh.shards)} shards, "
                   f"{sh.seconds:.1f} s on {sh.backend} with {sh.workers} workers ({sh.samples_per_s:.0f} rows/s)")
        return
    from edge_sdk.server.datagen.generate import generate_dataset

    res = generate_dataset(
        preset=preset, samples=samples, seed=seed, out=out, device=device, batch=batch, resume=resume,
        progress=True, overwrite=overwrite,
    )  # fmt: skip
    click.echo(f"wrote {res.path}: {res.n} rows ({res.n_new} new) in {res.seconds:.1f} s on {res.device}")


@cli.command("verify")
@click.argument("folder", type=click.Path(exists=True, file_okay=False), default=None, required=False)
def verify(folder: str | None) -> None:
    """Check the beam files of FOLDER against its SHA256SUMS (digests of the decoded arrays). Default: the
    shipped reference data, datasets/3gpp/reference. Exit 0 when every file matches, else a DatasetError."""
    from edge_sdk.beam.reference import verify_dir
    from edge_sdk.errors import DatasetError

    d = Path(folder) if folder is not None else REFERENCE_DIR
    results = verify_dir(d)
    for name, ok in results.items():
        click.echo(f"{d / name}: {'OK' if ok else 'MISMATCH'}")
    bad = sorted(n for n, ok in results.items() if not ok)
    if bad:
        raise DatasetError(f"{bad} in {d} differ from {d / 'SHA256SUMS'} (regenerate them, or fetch the shipped files)")


@cli.command("faithfulness")
@click.option("--out", "out", type=click.Path(file_okay=False), default="runs/faithfulness", show_default=True,
              help="folder for the generated files, faithfulness.json and faithfulness.md (reused when rerun)")
@click.option("--train", type=click.IntRange(1), default=100_000, show_default=True, help="BM-Case1 training drops")
@click.option("--test", type=click.IntRange(1), default=20_000, show_default=True, help="BM-Case1 test drops")
@click.option("--epochs", type=click.IntRange(1), default=20, show_default=True, help="reference MLP epochs")
@click.option("--threads", type=click.IntRange(1), default=1, show_default=True, help="torch threads")
@click.option("--stats", "stats_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="only print the statistics (JSON) of this BM-Case1 file (numpy + h5py only)")
def faithfulness(out: str, train: int, test: int, epochs: int, threads: int, stats_file: str | None) -> None:
    """Generate BM-Case1 data, train the reference MLP and compare its KPIs with the TR 38.843 headline numbers
    (the dataset card's faithfulness table; needs the server extra), or print a file's statistics."""
    import sys

    if stats_file is not None:
        from edge_sdk.beam.h5reader import read_beam_h5
        from edge_sdk.beam.stats import card_stats

        click.echo(json.dumps(card_stats(read_beam_h5(stats_file, **H5ReadOptions().kwargs()))))
        return
    try:
        from edge_sdk.server.datagen.faithfulness import FaithfulnessConfig, run
    except ImportError as exc:
        raise ConfigError(
            f"'data faithfulness' needs the server extra (pip install -e '.[server]' in a checkout (docs/install.md)): {exc}"
        ) from None
    run(FaithfulnessConfig(Path(out), train, test, epochs, threads),
        command="edge-sdk " + " ".join(sys.argv[1:]))


@cli.command("info")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of text.")
@click.option("--incomplete", is_flag=True, help="Also inspect an unfinished .partial file.")
@h5_read_options
def info(file: str, as_json: bool, incomplete: bool, h5: H5ReadOptions) -> None:
    """Schema, sizes and statistics of a beam dataset (validates the whole file)."""
    from edge_sdk.beam.stats import dataset_info, format_info

    d = dataset_info(Path(file), allow_incomplete=incomplete, h5=h5)
    click.echo(json.dumps(d, indent=2, sort_keys=True) if as_json else format_info(d))


@cli.command("export")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--parquet", "parquet", type=click.Path(dir_okay=False), required=True, help="Output OUT.parquet."
)
@click.option("--layout", type=click.Choice(["columns", "list"]), default="columns", show_default=True,
              help="Best-Rx RSRP per Tx beam as columns rsrp_best_txNN, or one list column rsrp_best.")  # fmt: skip
@click.option(
    "--full", is_flag=True, help="Also add the full Tx x Rx matrix as list column rsrp (row-major)."
)
@h5_read_options
def export(file: str, parquet: str, layout: str, full: bool, h5: H5ReadOptions) -> None:
    """Export the per-sample table to Parquet (one row per sample; see docs/dataset-hdf5.md)."""
    from edge_sdk.beam.export import export_parquet

    n = export_parquet(Path(file), Path(parquet), layout=layout, full=full, h5=h5)
    click.echo(f"wrote {parquet}: {n} rows")

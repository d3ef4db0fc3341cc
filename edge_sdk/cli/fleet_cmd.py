"""``edge-sdk fleet``: simulate a release pushed to a fleet of devices (torch-free). See docs/fleet.md."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.group("fleet")
def cli() -> None:
    """Fleet simulation: devices on modelled links, real on-device training, a local pool or Ray."""


@cli.command("simulate")
@click.option("--scenario", "scenario", required=True, help="preset name (see `edge-sdk fleet presets`) or TOML file")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--devices", type=click.IntRange(1), default=None, help="override the scenario's device count")
@click.option("--backend", type=click.Choice(["inline", "process", "ray"]), default="process", show_default=True)
@click.option("--workers", type=click.IntRange(1), default=None, help="worker processes (default: one per core)")
@click.option("--seed", type=click.IntRange(0), default=None, help="override the scenario's seed")
@click.option("--no-memo", is_flag=True, help="every device trains its own model (no reuse of identical trainings)")
@click.option("--memo-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="keep trained models here and reuse them across runs")
@click.option("--batch-size", type=click.IntRange(1), default=None, help="devices per backend task")
@click.option("--ray-address", default=None, help="join this Ray cluster (default: start a private local one)")
@click.option("--trace", is_flag=True, help="also write every device event to events.parquet")
@click.option("--live", is_flag=True,
              help="check the model against reality: at most 50 devices fetch the release's head for real from "
                   "`edge-sdk serve` on loopback, each link shaped on the client; reports simulated vs measured "
                   "fetch time (needs the serve extra)")
@click.option("--quiet", is_flag=True, help="no progress bars and no report on stdout")
def simulate_cmd(scenario: str, out_dir: Path, devices: int | None, backend: str, workers: int | None,
                 seed: int | None, no_memo: bool, memo_dir: Path | None, batch_size: int | None,
                 ray_address: str | None, trace: bool, live: bool, quiet: bool) -> None:
    """Run SCENARIO and write OUT/devices.parquet, OUT/summary.json, OUT/report.txt and plots."""
    from edge_sdk.fleet.outputs import report_text
    from edge_sdk.fleet.scenario import load_scenario
    from edge_sdk.fleet.simulate import RunOptions, run_live, simulate

    sc = load_scenario(scenario)
    if devices is not None:
        sc = sc.with_devices(devices)
    if seed is not None:
        sc = sc.with_seed(seed)
    opts = RunOptions(backend=backend, workers=workers, memo=not no_memo, memo_dir=memo_dir,
                      batch_size=batch_size, progress=not quiet, trace=trace, ray_address=ray_address)
    res = run_live(sc, out_dir, opts) if live else simulate(sc, out_dir, opts)
    if not quiet:
        click.echo(report_text(res.summary))
        click.echo(f"\nwrote {out_dir}/devices.parquet, summary.json, report.txt"
                   + (", " + ", ".join(res.summary.get("plots", [])) if res.summary.get("plots") else ""))


@cli.command("report")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--no-plots", is_flag=True, help="print the tables only")
def report_cmd(run_dir: Path, no_plots: bool) -> None:
    """Tables (and plots, rewritten) from a finished run in RUN_DIR."""
    from edge_sdk.errors import ConfigError
    from edge_sdk.fleet.outputs import fleet_stats, read_parquet, report_text, write_plots

    try:
        summary = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{run_dir}/summary.json is missing or not JSON ({exc}); is this a fleet run folder?") from None
    table = read_parquet(run_dir / "devices.parquet")
    summary["stats"] = fleet_stats(table)  # recomputed from the table itself
    click.echo(report_text(summary))
    if not no_plots:
        paths = write_plots(table, run_dir, summary.get("scenario", {}).get("name", ""))
        click.echo("\nplots: " + ", ".join(str(p) for p in paths))


@cli.command("presets")
def presets_cmd() -> None:
    """List the scenario presets and link presets."""
    from edge_sdk.fleet.scenario import link_presets, load_scenario, preset_names

    click.echo("scenario presets:")
    for name in preset_names():
        click.echo(f"  {name:16s} {load_scenario(name).description}")
    click.echo("link presets:")
    for name, link in link_presets().items():
        click.echo(f"  {name:18s} {link.source}")


@cli.command("links")
@click.option("--seconds", type=click.IntRange(1000, 10_000_000), default=200_000, show_default=True,
              help="seconds of each link's rate process to draw")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True)
def links_cmd(seconds: int, seed: int) -> None:
    """Each link preset's simulated per-second rate statistics next to the trace it was fitted to."""
    from edge_sdk.fleet.links import link_stats
    from edge_sdk.fleet.scenario import link_presets

    click.echo(f"{'link':18s} {'':6s} {'mean':>6s} {'p10':>6s} {'p50':>6s} {'p90':>6s} {'<1Mbit/s':>9s}   (Mbit/s)")
    for name, link in link_presets().items():
        sim = link_stats(link, seconds, seed)
        for label, st in (("trace", link.target), ("model", sim)):
            if st is None:
                continue
            click.echo(f"{name if label == 'trace' else '':18s} {label:6s} {st.mean * 8e-6:6.2f} {st.p10 * 8e-6:6.2f} "
                       f"{st.p50 * 8e-6:6.2f} {st.p90 * 8e-6:6.2f} {100 * st.below_1mbps:8.1f}%")

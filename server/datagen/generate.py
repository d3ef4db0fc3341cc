"""``generate_dataset``: TR 38.901 beam-management data (BM-Case1 drops / BM-Case2 trajectories) into HDF5.

The run is cut into chunks of ``batch`` rows. Chunk ``k`` is generated from its own seed
``chunk_seed(seed, k)`` (numpy ``SeedSequence([seed, k])``) that re-seeds Sionna's RNGs and our own
``torch.Generator``; each finished chunk is appended and flushed by :class:`edge_sdk.beam.h5writer.BeamH5Writer`.
A resumed run therefore continues at chunk ``n_done // batch`` and produces exactly the rows an uninterrupted run
would have produced (same seed, batch, preset and device type). Results are bit-identical for a seed on one
device type; CPU and CUDA give different (equally valid) samples. Side effect: seeding a chunk sets
``sionna.phy.config.seed``, which also re-seeds torch's default generator.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edge_sdk.beam.dataset import top1_label
from edge_sdk.errors import ConfigError, DatasetError
from edge_sdk.server.datagen.channel import BeamChannel, LinkState
from edge_sdk.server.datagen.codebook import gnb_codebook, ue_codebook
from edge_sdk.server.datagen.presets import Preset, check_device_name, load_preset, normalise_args
from edge_sdk.server.datagen.rsrp import rsrp_dbm
from edge_sdk.server.datagen.trajectory import sample_trajectories

#: version 2: BM-Case2 trajectories with TR 38.901 spatial consistency (version 1: 50 m blocks); Case1 unchanged
GENERATOR_VERSION = "edge-sdk-datagen/2"


def chunk_seed(seed: int, chunk: int) -> int:
    """Seed of chunk ``chunk`` of a run with ``seed`` (uint32 from ``SeedSequence([seed, chunk])``)."""
    return int(np.random.SeedSequence([int(seed), int(chunk)]).generate_state(1, np.uint32)[0])


def resolve_device(device: str) -> str:
    """``"auto"`` -> CUDA when available else ``"cpu"``; validates explicit choices.

    CUDA is returned with its index (``"cuda:0"``): Sionna's blocks accept only the names in
    ``sionna.phy.config.available_devices`` (``"cpu"``, ``"cuda:0"``, ...) and refuse a bare ``"cuda"``
    (found on a GPU run: ``ValueError: Invalid device: cuda``).
    """
    check_device_name(device)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} requested but CUDA is not available; use --device cpu or auto")
        index_text = device[len("cuda"):]
        if index_text == "":
            return f"cuda:{torch.cuda.current_device()}"
        if index_text.startswith(":") and index_text[1:].isdigit():
            index = int(index_text[1:])
            if index >= torch.cuda.device_count():
                raise ConfigError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
            return f"cuda:{index}"
    raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")


class BeamGenerator:
    """Generates chunks of beam-management rows for one preset on one device."""

    def __init__(self, preset: Preset, device: str = "cpu") -> None:
        self.preset = preset
        self.device = device
        self.channel = BeamChannel(preset, device)
        lam = self.channel.wavelength_m
        gb, ub = preset.gnb_beams, preset.ue_beams
        self.w_tx, self.tx_dirs = gnb_codebook(self.channel.bs_array.ant_pos.cpu(), gb.n_az, gb.sin_az_max,
                                               gb.zenith_deg, lam)
        self.w_rx, self.rx_dirs = ue_codebook(self.channel.ut_array.ant_pos.cpu(), ub.n_beams_per_panel,
                                              ub.sin_az_max, ub.zenith_deg, lam)
        link = preset.link
        self._noise = link.re_noise_dbm if link.include_noise else None

    def _seed(self, s: int) -> torch.Generator:
        import sionna.phy

        sionna.phy.config.seed = s
        return torch.Generator().manual_seed(s)

    def _rsrp(self, st: LinkState) -> np.ndarray:
        p = self.channel.beam_power(st, self.w_tx, self.w_rx)
        return rsrp_dbm(p, self.preset.link.re_power_dbm, self._noise).cpu().numpy()

    def case1_chunk(self, n: int, seed: int) -> dict[str, np.ndarray]:
        """``n`` independent drops -> batch dict for :meth:`BeamH5Writer.append` (label added by the writer)."""
        gen = self._seed(seed)
        drops = self.channel.sample_drops(n, gen)
        return self._rows(self.channel.snapshot(drops))

    def _rows(self, st: LinkState) -> dict[str, np.ndarray]:
        rsrp = self._rsrp(st).astype(np.float16)
        pos = st.ut_loc.detach().cpu().numpy().astype(np.float32)
        return {
            "rsrp": rsrp,
            "label": top1_label(rsrp),
            "los": st.los.cpu().numpy().astype(bool),
            "indoor": st.indoor.cpu().numpy().astype(bool),
            "d2d": np.hypot(pos[:, 0], pos[:, 1]).astype(np.float32),
            "ue_pos": pos,
            "cell": np.zeros(len(rsrp), np.int16),
        }

    def case2_chunk(self, n_traj: int, seed: int, traj_offset: int) -> dict[str, np.ndarray]:
        """``n_traj`` trajectories of ``steps_per_trajectory`` steps -> rows (trajectory-major).

        Each trajectory is one spatially consistent Sionna snapshot (:meth:`BeamChannel.track`)."""
        cfg = self.preset.trajectory
        assert cfg is not None
        gen = self._seed(seed)
        t_steps = cfg.steps_per_trajectory
        start = self.channel.sample_drops(n_traj, gen)
        xy, yaw = sample_trajectories(start.ut_loc[:, :2].cpu(), start.yaw.cpu(), cfg, gen)
        z = self.preset.scenario.ut_height_m
        pos = torch.cat([xy, torch.full((*xy.shape[:2], 1), z)], dim=-1).to(self.device)  # [n, T, 3]
        vel = torch.zeros_like(pos)
        vel[:, :-1] = (pos[:, 1:] - pos[:, :-1]) / cfg.time_step_s
        vel[:, -1] = vel[:, -2]
        rows = self._rows(self.channel.track(pos, yaw.to(self.device), vel))
        rows["traj_id"] = np.repeat(np.arange(traj_offset, traj_offset + n_traj, dtype=np.int32), t_steps)
        rows["t_index"] = np.tile(np.arange(t_steps, dtype=np.int32), n_traj)
        return rows


_GENERATORS: dict[tuple[str, str], BeamGenerator] = {}


def cached_generator(p: Preset, device: str) -> BeamGenerator:
    """A :class:`BeamGenerator` per (preset, device), reused within a process (a worker running several shards
    builds the Sionna models once). Safe because every chunk re-seeds all randomness (chunk outputs do not depend
    on earlier chunks; the resume tests check it)."""
    key = (json.dumps(p.to_dict(), sort_keys=True), device)
    gen = _GENERATORS.get(key)
    if gen is None:
        if len(_GENERATORS) >= 4:
            _GENERATORS.clear()
        gen = _GENERATORS[key] = BeamGenerator(p, device)
    return gen


@dataclass
class GenerateResult:
    """Outcome of :func:`generate_dataset`."""

    path: Path
    n: int
    n_new: int
    seconds: float
    device: str

    @property
    def samples_per_s(self) -> float:
        """Rows generated per second in this call (excluding resumed rows)."""
        return self.n_new / self.seconds if self.seconds > 0 else float("nan")


def _attrs(preset: Preset, seed: int, batch: int, device: str) -> dict:
    import sionna

    a = {
        "preset": json.dumps(preset.to_dict(), sort_keys=True),
        "preset_name": preset.name,
        "seed": int(seed),
        "generator_version": GENERATOR_VERSION,
        "sionna_version": str(sionna.__version__),
        "torch_version": str(torch.__version__),
        "chunk_size": int(batch),
        "device_type": "cuda" if device.startswith("cuda") else "cpu",
        "re_power_dbm": float(preset.link.re_power_dbm),
        "re_noise_dbm": float(preset.link.re_noise_dbm),
        "include_noise": bool(preset.link.include_noise),
    }
    if preset.case == "case2":
        assert preset.trajectory is not None
        a["time_step_s"] = float(preset.trajectory.time_step_s)
        a["steps_per_trajectory"] = int(preset.trajectory.steps_per_trajectory)
    return a


def generate_dataset(preset: str | Path | Preset = "uma-fr2-case1", samples: int = 1000, seed: int = 0,
                     out: str | Path = "beam.h5", device: str = "auto", batch: int = 1000, resume: bool = False,
                     progress: bool = True, overwrite: bool = False,
                     rows: tuple[int, int] | None = None, extra_attrs: dict | None = None) -> GenerateResult:
    """Generate ``samples`` rows of preset ``preset`` into the HDF5 file ``out`` (schema v1).

    :param preset: preset name (``uma-fr2-case1``), path to a TOML file, or a :class:`Preset`
    :param samples: rows of the run; BM-Case2: a multiple of ``trajectory.steps_per_trajectory`` (rows =
        trajectories x steps)
    :param seed: run seed; chunk k uses :func:`chunk_seed` (seed, k)
    :param batch: rows per chunk (Case2: rounded down to whole trajectories); part of the determinism contract
    :param resume: continue ``<out>.partial`` of an interrupted run with the same preset/seed/batch/device type
    :param device: ``"auto"`` (CUDA if available), ``"cpu"`` or ``"cuda"``
    :param rows: write only the run's rows ``[start, stop)`` (a shard; both on chunk boundaries, see
        :mod:`.shards`): chunk k is still seeded by ``chunk_seed(seed, k)`` with the run-global k, so the shards of
        a run hold exactly the rows of the unsharded run
    :param extra_attrs: more root attributes (the shard's index and row offset)
    """
    p = preset if isinstance(preset, Preset) else load_preset(preset)
    batch = normalise_args(p, samples, seed, batch)
    steps = p.trajectory.steps_per_trajectory if p.case == "case2" and p.trajectory is not None else 1
    r0, r1 = (0, samples) if rows is None else (int(rows[0]), int(rows[1]))
    if not (0 <= r0 < r1 <= samples) or r0 % batch or (r1 % batch and r1 != samples):
        raise ConfigError(f"rows [{r0}, {r1}) must lie in [0, {samples}] on chunk boundaries of {batch}")
    n_rows = r1 - r0
    dev = resolve_device(device)
    from edge_sdk.beam.h5writer import BeamH5Writer

    out = Path(out)
    attrs = {**_attrs(p, seed, batch, dev), **(extra_attrs or {})}
    if resume and BeamH5Writer.can_resume(out):
        w = BeamH5Writer.open_resume(out)
        old = w.attrs
        for key in ("preset", "seed", "chunk_size", "device_type", "generator_version", *sorted(extra_attrs or {})):
            if old.get(key) != attrs[key]:
                w.close()
                raise ConfigError(
                    f"cannot resume {out}: its {key} ({old.get(key)!r}) differs from this run's ({attrs[key]!r}); "
                    "rerun with the same preset/seed/batch/device or without --resume"
                )
        if old.get("n_target") not in (-1, n_rows):
            w.close()
            raise ConfigError(f"cannot resume {out}: it was started for {old.get('n_target')} samples, not {n_rows}")
    else:
        if resume and out.exists():
            raise DatasetError(f"{out} is already complete; nothing to resume")
        w = BeamH5Writer.create(out, attrs, n_tx=p.n_tx, n_rx=p.n_rx, case=p.case, n_target=n_rows,
                                overwrite=overwrite)
    start = time.perf_counter()
    n0 = w.n_done
    if n0 % batch and n0 != n_rows:
        w.close()
        raise DatasetError(f"cannot resume {out}: {n0} rows is not a whole number of chunks of {batch}")
    from edge_sdk.progress import progress_bar

    try:
        gen = cached_generator(p, dev)
        with progress_bar(total=n_rows, initial=n0, unit="row", disable=not progress, desc=p.name) as bar:
            while w.n_done < n_rows:
                g0 = r0 + w.n_done  # run-global row of this chunk
                k = g0 // batch
                n = min(batch, r1 - g0)
                cs = chunk_seed(seed, k)
                if p.case == "case1":
                    chunk = gen.case1_chunk(n, cs)
                else:
                    chunk = gen.case2_chunk(n // steps, cs, traj_offset=g0 // steps)
                w.append(chunk)
                bar.update(n)
        path = w.finalize()
    except BaseException:
        if not w.closed:
            w.close()
        raise
    secs = time.perf_counter() - start
    return GenerateResult(path=Path(path), n=n_rows, n_new=n_rows - n0, seconds=secs, device=dev)

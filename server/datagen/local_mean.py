"""The fading-free local mean of the drops in an existing BM-Case1 HDF5 file, regenerated chunk by chunk.

A stored L1-RSRP is *instantaneous*: the rays of a (sub-)cluster add coherently (TR 38.901 eq. 7.5-22), so each
drop carries one draw of the small-scale fading, which decorrelates within about 1.5 wavelengths (15 mm at
30 GHz; dataset card, "Physical validation"). Its **local mean** adds the ray powers instead
(:meth:`BeamChannel.beam_power` with ``coherent=False``): the beam pattern of the same clusters without the
fading, i.e. what the instantaneous RSRP averages to over the UE's small displacements. BM-Case2 uses it as the
training target of the spatial model: a beam held for 160 ms meets an independent fading draw (the UE has moved
1.3 m = 133 wavelengths at 30 km/h), so the beam to hold is the best of the local mean, not of the current draw.

:func:`drops_fading_redraws` gives independent small-scale fading draws of the same drops instead (new ray phases,
the same clusters): the channel one measurement period later without any drift (``tools/case2_static.py``).

The file stores only the instantaneous RSRP, so the drops are regenerated with the file's own preset, seed and
chunk size (chunk ``k`` is seeded by ``chunk_seed(seed, k)``, the generator's determinism contract) and every
chunk's instantaneous RSRP is checked to equal the stored rows bit for bit before its local mean is used: a file
made by another generator version, device type or preset is refused, never silently relabelled.

    from edge_sdk.server.datagen.local_mean import drops_local_mean
    lm = drops_local_mean("runs/c2/drops-train.h5")        # float32 [N, n_tx] dBm, best Rx beam per Tx beam
    label = lm.argmax(axis=1)                               # the local-mean Top-1 Tx beam of each drop
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import h5py
import numpy as np
import torch

from edge_sdk.errors import ConfigError, DatasetError
from edge_sdk.server.datagen.generate import BeamGenerator, chunk_seed
from edge_sdk.server.datagen.presets import parse_preset
from edge_sdk.server.datagen.rsrp import rsrp_dbm


def _regenerated_chunks(path: str | Path, rows: int | None, progress: bool, desc: str):
    """Regenerate the first ``rows`` drops of the BM-Case1 file ``path`` chunk by chunk, each chunk checked bit for
    bit against the stored instantaneous RSRP. Yields ``(k, start, stop, n, gen, state, inst)``: chunk ``k``'s
    drops ``start .. stop - 1`` of the file, the number ``n`` of drops regenerated in all, the generator, the
    regenerated :class:`LinkState` and its instantaneous RSRP ``inst`` (float32 [B, n_tx, n_rx] dBm, the checked
    one; ``state`` and ``inst`` may hold more drops than ``stop - start`` when ``rows`` ends inside the chunk).
    Refusals: see :func:`drops_local_mean`."""
    from edge_sdk.progress import progress_bar

    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DatasetError(f"cannot open {path} as HDF5: {exc}") from None
    with f:
        a = f.attrs
        if str(a.get("case", "")) != "case1" or "rsrp" not in f:
            raise DatasetError(f"{path}: drops are regenerated for BM-Case1 drops files only")
        if not bool(a.get("complete", False)):
            raise DatasetError(f"{path} is incomplete; finish it with `edge-sdk data generate ... --resume` first")
        if str(a.get("device_type", "cpu")) != "cpu":
            raise DatasetError(f"{path} was generated on {a.get('device_type')}; drops are regenerated on "
                               "the CPU, which reproduces CPU-generated files only")
        try:
            raw = a.get("preset", "")
            preset = parse_preset(json.loads(raw.decode() if isinstance(raw, bytes) else str(raw)), f"{path} preset")
            seed, batch = int(a["seed"]), int(a["chunk_size"])
        except (KeyError, ValueError, TypeError, ConfigError) as exc:
            raise DatasetError(f"{path}: no usable generator record (preset, seed, chunk_size): {exc}") from None
        if batch < 1:
            raise DatasetError(f"{path}: chunk_size must be >= 1, got {batch}")
        stored = f["rsrp"]
        n = stored.shape[0] if rows is None else int(rows)
        if not 1 <= n <= stored.shape[0]:
            raise DatasetError(f"rows must be in [1, {stored.shape[0]}], got {rows}")
        gen = BeamGenerator(preset, "cpu")
        ch = gen.channel
        with progress_bar(total=n, unit="drop", disable=not progress, desc=desc) as bar:
            for k, start in enumerate(range(0, n, batch)):
                g = gen._seed(chunk_seed(seed, k))
                # the generator's chunk k holds min(batch, N - start) drops of the whole file (the draws depend on it)
                st = ch.snapshot(ch.sample_drops(min(batch, stored.shape[0] - start), g))
                with torch.no_grad():
                    inst = rsrp_dbm(ch.beam_power(st, gen.w_tx, gen.w_rx), preset.link.re_power_dbm,
                                    gen._noise).numpy()
                stop = min(start + batch, n)
                if not np.array_equal(inst[: stop - start].astype(stored.dtype), stored[start:stop]):
                    raise DatasetError(
                        f"{path}: regenerated drops {start}-{stop - 1} differ from the stored ones (generator "
                        f"{a.get('generator_version')}, sionna {a.get('sionna_version')}, torch "
                        f"{a.get('torch_version')}); regenerate the file with this edge-sdk")
                yield k, start, stop, n, gen, st, inst
                bar.update(stop - start)


def drops_local_mean(path: str | Path, rows: int | None = None, progress: bool = False) -> np.ndarray:
    """Local-mean L1-RSRP of the first ``rows`` drops of ``path`` (all when None), best Rx beam per Tx beam.

    :returns: float32 [rows, n_tx], dBm (the preset's noise added when the file was generated with noise)
    :raises DatasetError: not a complete BM-Case1 file of this generator, ``rows`` not in [1, N], or a regenerated
        chunk whose instantaneous RSRP differs from the stored one (another generator version, device or preset)
    """
    out: np.ndarray | None = None
    for _k, start, stop, n, gen, st, _inst in _regenerated_chunks(path, rows, progress, "local mean"):
        with torch.no_grad():
            p = gen.channel.beam_power(st, gen.w_tx, gen.w_rx, coherent=False)
            mean = rsrp_dbm(p, gen.preset.link.re_power_dbm, gen._noise).numpy()
        if out is None:
            out = np.empty((n, gen.preset.n_tx), np.float32)
        out[start:stop] = mean[: stop - start].max(axis=2)
    assert out is not None
    return out


def drops_fading_redraws(path: str | Path, draws: int, rows: int | None = None, seed: int = 0,
                         progress: bool = False) -> np.ndarray:
    """Independent small-scale fading draws of the first ``rows`` drops of ``path``: the same clusters, rays, powers,
    angles, XPRs and LOS ray, with new uniform ray phases (TR 38.901 Sec. 7.5 step 10 redrawn). Each draw is the
    L1-RSRP the UE would measure after moving a few wavelengths without any drift of the clusters: at 30 GHz the
    fading decorrelates within about 1.5 wavelengths (dataset card, "Physical validation"), so a draw stands for
    the same static channel one measurement period later. Draw 0 is the stored instantaneous RSRP; draws
    1 .. ``draws`` - 1 are new, seeded per chunk by ``(seed, chunk)`` (deterministic, a prefix equals the whole
    file's rows). Their mean linear power tends to the local mean (:func:`drops_local_mean`).

    :returns: float32 [rows, draws, n_tx], dBm, best Rx beam per Tx beam
    :raises DatasetError: as :func:`drops_local_mean`; ``ConfigError`` when ``draws`` < 1
    """
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
        raise ConfigError(f"draws must be an integer >= 1, got {draws!r}")
    out: np.ndarray | None = None
    for k, start, stop, n, gen, st, inst in _regenerated_chunks(path, rows, progress, "fading redraws"):
        if out is None:
            out = np.empty((n, draws, gen.preset.n_tx), np.float32)
        out[start:stop, 0] = inst[: stop - start].max(axis=2)  # draw 0: the stored (checked) RSRP
        phases = st.rays.phases
        rng = torch.Generator().manual_seed(chunk_seed(int(seed), k))
        for d in range(1, draws):
            st.rays.phases = (torch.rand(phases.shape, generator=rng, dtype=phases.dtype) * 2.0 - 1.0) * math.pi
            with torch.no_grad():
                p = rsrp_dbm(gen.channel.beam_power(st, gen.w_tx, gen.w_rx), gen.preset.link.re_power_dbm,
                             gen._noise).numpy()
            out[start:stop, d] = p[: stop - start].max(axis=2)
        st.rays.phases = phases
    assert out is not None
    return out

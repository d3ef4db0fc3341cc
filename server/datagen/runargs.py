"""Run arguments of a generation, validated without torch: chunk size, samples, seed, device name.

Kept apart from :mod:`.generate` (torch + Sionna, ~3 s of imports on one core) so that the parent of a sharded
run (:mod:`.shards`) plans, validates and stitches without importing them: only its workers pay that start-up,
in parallel.
"""

from __future__ import annotations

from edge_sdk.errors import ConfigError
from edge_sdk.server.datagen.presets import Preset


def check_device_name(device: str) -> str:
    """``device`` must be ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (whether it exists is checked by
    :func:`.generate.resolve_device` where the rows are made); returns it unchanged."""
    if isinstance(device, str) and (device in ("auto", "cpu", "cuda")
                                    or (device.startswith("cuda:") and device[5:].isdigit())):
        return device
    raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")


def normalise_args(p: Preset, samples: int, seed: int, batch: int) -> int:
    """Validate the run arguments; returns the effective chunk size (BM-Case2: whole trajectories)."""
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ConfigError(f"samples must be a positive integer, got {samples!r}")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ConfigError(f"batch must be a positive integer, got {batch!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    if p.case == "case2":
        assert p.trajectory is not None
        steps = p.trajectory.steps_per_trajectory
        if samples % steps:
            raise ConfigError(
                f"BM-Case2 samples must be a multiple of steps_per_trajectory={steps} (rows = trajectories x "
                f"steps); e.g. --samples {max(1, samples // steps) * steps}"
            )
        batch = max(steps, batch - batch % steps)
    return batch

"""Random streams of the simulation, each derived from (run seed, purpose, device, round).

Every random draw in a fleet run comes from a generator made here, never from a global one, so a device's link,
availability, placement and data do not depend on which backend ran it, on how devices were batched, or on how
many devices the fleet has (device ``i`` of a 100-device run is device ``i`` of a 10,000-device run, up to the
class it is given). numpy ``SeedSequence`` mixes the integers; PCG64 draws.
"""

from __future__ import annotations

import numpy as np

#: purpose -> stream id (append only: changing a number changes every result)
PURPOSES = {
    "class": 1,  # which device class a device belongs to
    "link": 2,  # which link model of its class
    "rate": 3,  # per-second rate process
    "availability": 4,  # on/off periods
    "drops": 5,  # transfer drops
    "poll": 6,  # when a device notices a release
    "place": 7,  # device position (local data)
    "backoff": 8,  # retry back-off jitter
    "tier": 9,  # tier draw under a 'shares' policy
}


def rng(seed: int, purpose: str, device: int = 0, round_: int = 0) -> np.random.Generator:
    """Generator for ``purpose`` of ``device`` in ``round_`` of the run seeded ``seed``."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), PURPOSES[purpose],
                                                                       int(device), int(round_)])))

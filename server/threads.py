"""How many CPU threads torch uses on the server side (issue #11: default runs must stay fast on a 2-core
machine even while another process competes for the cores).

The models here are small (MLP 8-128-128-32, batches of 128-2048 rows): one intra-op thread is about as fast as
two on a quiet 2-core machine, and beside another busy process two threads are 8-12x slower than one (they
spin-wait on each other). Measured with ``tools/experiments/exp_e_threads.py`` under ``cpujob -n 2``
(results/e_threads.json): 2,000 training steps take 1.48 s with 1 thread and 1.33 s with 2 on a quiet machine,
but 2.3-2.6 s with 1 thread and 18-20 s with 2 threads beside a competing process. Default: 1 thread,
overridable with ``--threads N`` or ``EDGE_SDK_TORCH_THREADS`` (0 = torch's own default, all cores).
"""

from __future__ import annotations

import os

from edge_sdk.errors import ConfigError

ENV = "EDGE_SDK_TORCH_THREADS"
DEFAULT_THREADS = 1


def resolve_threads(threads: int | None = None) -> int:
    """``threads`` if given, else ``$EDGE_SDK_TORCH_THREADS``, else :data:`DEFAULT_THREADS` (0 = all cores)."""
    if threads is None:
        raw = os.environ.get(ENV, "").strip()
        if not raw:
            return DEFAULT_THREADS
        try:
            threads = int(raw)
        except ValueError:
            raise ConfigError(f"{ENV}={raw!r} is not an integer; use e.g. {ENV}=1 (0 = all cores)") from None
    if threads < 0:
        raise ConfigError(f"torch threads must be >= 0 (0 = all cores), got {threads}")
    return int(threads)


def configure_torch_threads(threads: int | None = None) -> int:
    """Set torch's intra-op thread count (and one inter-op thread when it can still be set); returns the count
    in effect. Call once at the start of a server command."""
    import torch

    n = resolve_threads(threads)
    if n == 0:
        n = os.cpu_count() or 1
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set (or parallel work started): keep what is there
        pass
    return int(torch.get_num_threads())

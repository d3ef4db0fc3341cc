"""Coverage-guided fuzz target for the payload reader (atheris / libFuzzer).

    pip install atheris   # optional, not a dependency of edge-sdk
    python tools/fuzz_payload_atheris.py -atheris_runs=100000 [corpus_dir]

The target only calls ``read_payload(bytes)`` and decodes everything; any exception other than a
``PayloadError`` is a finding. Seeds: tests/data/payload_v1_sample.epl. Without atheris installed the script
says so and exits 0. The default test run does the deterministic equivalent (tests/core/test_payload_fuzz.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

SEED = Path(__file__).resolve().parents[1] / "tests" / "data" / "payload_v1_sample.epl"


def test_one_input(data: bytes) -> None:
    from edge_sdk.payload import PayloadError, read_payload

    try:
        with read_payload(data) as p:
            p.decode_all()
    except PayloadError:
        pass


def main(argv: list[str]) -> int:
    try:
        import atheris
    except ImportError:
        print("atheris is not installed: skipping (pip install atheris to fuzz the payload reader)")
        return 0
    with atheris.instrument_imports():
        import edge_sdk.bitpack  # noqa: F401
        import edge_sdk.payload  # noqa: F401
    test_one_input(SEED.read_bytes())  # the seed must parse
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

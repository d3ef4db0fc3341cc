"""Sharded generation: K shard files on a local process pool or a real local Ray cluster, stitched by a VDS, hold
exactly the rows of the unsharded run; shards resume independently; the CLI runs it."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from edge_sdk.beam.h5reader import read_beam_h5  # noqa: E402
from edge_sdk.errors import ConfigError, DatasetError  # noqa: E402
from edge_sdk.server.datagen.generate import generate_dataset  # noqa: E402
from edge_sdk.server.datagen.shards import generate_sharded, plan_shards, shard_path  # noqa: E402


def _same(a, b) -> None:
    for name, arr in a.arrays().items():
        np.testing.assert_array_equal(arr, getattr(b, name), err_msg=name)


def test_plan_shards() -> None:
    assert plan_shards(100, 20, 2) == [(0, 40), (40, 100)]
    assert plan_shards(95, 20, 5) == [(0, 20), (20, 40), (40, 60), (60, 80), (80, 95)]
    with pytest.raises(ConfigError, match="shards"):
        plan_shards(40, 20, 3)


@pytest.fixture(scope="module")
def unsharded(tmp_path_factory):
    d = tmp_path_factory.mktemp("full")
    c1 = read_beam_h5(generate_dataset("uma-fr2-case1", samples=60, seed=9, out=d / "c1.h5", device="cpu",
                                       batch=20, progress=False).path)
    c2 = read_beam_h5(generate_dataset("uma-fr2-case2", samples=300, seed=9, out=d / "c2.h5", device="cpu",
                                       batch=100, progress=False).path)
    return c1, c2


def test_local_shards_equal_unsharded_and_resume(tmp_path, unsharded) -> None:
    c1, c2 = unsharded
    out = tmp_path / "c1.h5"
    r = generate_sharded("uma-fr2-case1", 60, 9, out, shards=3, backend="local", workers=2, device="cpu",
                         batch=20, progress=False)
    assert r.n_new == 60 and [p.name for p in r.shards] == [shard_path(out, i, 3).name for i in range(3)]
    _same(c1, read_beam_h5(out, allow_virtual=True))
    # resumable per shard: lose one shard and the stitched file; only that shard is generated again
    r.shards[1].unlink()
    out.unlink()
    r2 = generate_sharded("uma-fr2-case1", 60, 9, out, shards=3, backend="local", workers=2, device="cpu",
                          batch=20, progress=False, resume=True)
    assert r2.n_new == 20
    _same(c1, read_beam_h5(out, allow_virtual=True))
    # a kept shard must belong to this run
    out.unlink()
    with pytest.raises(DatasetError, match="not shard"):
        generate_sharded("uma-fr2-case1", 60, 10, out, shards=3, backend="local", workers=1, device="cpu",
                         batch=20, progress=False, resume=True)
    # Case2: trajectories keep their run-global ids across shards
    out2 = tmp_path / "c2.h5"
    generate_sharded("uma-fr2-case2", 300, 9, out2, shards=2, backend="local", workers=2, device="cpu",
                     batch=100, progress=False)
    got = read_beam_h5(out2, allow_virtual=True)
    _same(c2, got)
    np.testing.assert_array_equal(np.unique(got.traj_id), [0, 1, 2])


def test_ray_shards_equal_unsharded(tmp_path, unsharded) -> None:
    """A real local Ray cluster (num_cpus=2, own temp dir, no dashboard), shut down afterwards."""
    ray = pytest.importorskip("ray")
    c1, _ = unsharded
    out = tmp_path / "c1.h5"
    try:
        r = generate_sharded("uma-fr2-case1", 60, 9, out, shards=3, backend="ray", workers=2, device="cpu",
                             batch=20, progress=False)
    finally:
        if ray.is_initialized():  # only if the call failed before its own shutdown
            ray.shutdown()
    assert r.backend == "ray" and r.workers == 2 and r.n_new == 60
    _same(c1, read_beam_h5(out, allow_virtual=True))
    assert not ray.is_initialized()


def test_cli_sharded(tmp_path, unsharded) -> None:
    from click.testing import CliRunner

    from edge_sdk.cli.main import cli

    c1, _ = unsharded
    out = tmp_path / "cli.h5"
    res = CliRunner().invoke(cli, ["data", "generate", "--samples", "60", "--seed", "9", "--batch", "20",
                                   "--device", "cpu", "--shards", "2", "--workers", "2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "2 shards" in res.output
    _same(c1, read_beam_h5(out, allow_virtual=True))
    res = CliRunner().invoke(cli, ["data", "info", str(out)])  # a stitched file is read only when asked for
    assert res.exit_code != 0 and "--allow-virtual" in str(res.exception)
    res = CliRunner().invoke(cli, ["data", "info", str(out), "--allow-virtual"])
    assert res.exit_code == 0 and "60" in res.output


def test_sharded_parent_never_imports_torch_or_sionna(tmp_path) -> None:
    """The parent of a sharded run only plans, validates and stitches: importing the sharding module and the CLI
    command loads neither torch nor Sionna (each costs seconds of start-up on the critical path; only the workers
    pay it, in parallel), and a bad device name fails there before any worker starts."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from edge_sdk.server.datagen import shards\n"
            "import edge_sdk.cli.data_cmd\n"
            "from edge_sdk.errors import ConfigError\n"
            "try:\n"
            f"    shards.generate_sharded('uma-fr2-case1', 60, 9, {str(tmp_path / 'x.h5')!r}, shards=2, batch=20, device='tpu')\n"
            "except ConfigError as e:\n"
            "    print('refused:', e)\n"
            "print(sorted(m for m in ('torch', 'sionna') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "refused: device must be 'auto', 'cpu' or 'cuda[:N]'" in out
    assert out.strip().endswith("[]"), out
    assert not list(tmp_path.iterdir())

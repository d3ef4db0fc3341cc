"""generate_dataset: determinism, resume == uninterrupted, labels, read-back via the core reader, BM-Case2, and
the beam-domain fast path against Sionna's full per-element coefficients."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edge_sdk.beam.h5reader import read_beam_h5  # noqa: E402
from edge_sdk.errors import ConfigError  # noqa: E402
from edge_sdk.server.datagen import generate as G  # noqa: E402
from edge_sdk.server.datagen.presets import load_preset  # noqa: E402
from edge_sdk.server.datagen.rsrp import beam_pair_power  # noqa: E402


def _gen(tmp_path, name="a.h5", **kw):
    args = dict(preset="uma-fr2-case1", samples=40, seed=7, device="cpu", batch=20, progress=False)
    args.update(kw)
    return G.generate_dataset(out=tmp_path / name, **args)


def test_deterministic_by_seed_and_readback(tmp_path) -> None:
    r1 = _gen(tmp_path, "a.h5")
    r2 = _gen(tmp_path, "b.h5")
    r3 = _gen(tmp_path, "c.h5", seed=8)
    a, b, c = (read_beam_h5(r.path) for r in (r1, r2, r3))
    assert a.rsrp.tobytes() == b.rsrp.tobytes()
    assert a.ue_pos.tobytes() == b.ue_pos.tobytes()
    assert a.rsrp.tobytes() != c.rsrp.tobytes()
    assert a.n == 40 and a.rsrp.shape == (40, 32, 8) and a.rsrp.dtype == np.float16
    # label = argmax over Tx of max over Rx (on the stored float16 values)
    np.testing.assert_array_equal(a.label, a.rsrp.max(axis=2).argmax(axis=1))
    assert json.loads(a.attrs["preset"]) == load_preset("uma-fr2-case1").to_dict()
    assert a.attrs["seed"] == 7 and a.attrs["chunk_size"] == 20
    np.testing.assert_allclose(a.d2d, np.hypot(a.ue_pos[:, 0], a.ue_pos[:, 1]), rtol=1e-6)
    assert (a.d2d >= 35.0).all() and (a.ue_pos[:, 2] == 1.5).all() and (a.cell == 0).all()
    # plausible link budget: best-beam RSRP between -160 and -30 dBm
    best = a.rsrp.astype(np.float32).max(axis=(1, 2))
    assert (best > -160).all() and (best < -30).all()


def test_resume_equals_uninterrupted(tmp_path, monkeypatch) -> None:
    full = read_beam_h5(_gen(tmp_path, "full.h5", samples=60).path)
    calls = {"n": 0}
    orig = G.BeamGenerator.case1_chunk

    def flaky(self, n, seed):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # killed while generating the second chunk
        return orig(self, n, seed)

    monkeypatch.setattr(G.BeamGenerator, "case1_chunk", flaky)
    with pytest.raises(KeyboardInterrupt):
        _gen(tmp_path, "part.h5", samples=60)
    monkeypatch.setattr(G.BeamGenerator, "case1_chunk", orig)
    assert (tmp_path / "part.h5.partial").exists() and not (tmp_path / "part.h5").exists()
    with pytest.raises(ConfigError, match="seed"):
        _gen(tmp_path, "part.h5", samples=60, seed=8, resume=True)
    r = _gen(tmp_path, "part.h5", samples=60, resume=True)
    assert r.n_new == 40  # the first chunk of 20 was kept
    got = read_beam_h5(r.path)
    for name in ("rsrp", "label", "los", "indoor", "d2d", "ue_pos"):
        assert getattr(got, name).tobytes() == getattr(full, name).tobytes(), name


def test_bad_arguments(tmp_path) -> None:
    with pytest.raises(ConfigError, match="multiple of steps_per_trajectory"):
        _gen(tmp_path, preset="uma-fr2-case2", samples=150)
    with pytest.raises(ConfigError, match="samples"):
        _gen(tmp_path, samples=0)
    with pytest.raises(ConfigError, match="device"):
        _gen(tmp_path, device="tpu")
    assert G.chunk_seed(1, 0) != G.chunk_seed(1, 1) != G.chunk_seed(2, 1)


def test_case2_trajectories(tmp_path) -> None:
    r = G.generate_dataset("uma-fr2-case2", samples=200, seed=3, out=tmp_path / "c2.h5", device="cpu",
                           batch=100, progress=False)
    ds = read_beam_h5(r.path)
    p = load_preset("uma-fr2-case2")
    assert ds.case == "case2" and ds.time_step_s == pytest.approx(0.02)
    np.testing.assert_array_equal(ds.traj_id, np.repeat([0, 1], 100))
    np.testing.assert_array_equal(ds.t_index, np.tile(np.arange(100), 2))
    assert not ds.indoor.any()
    step = np.linalg.norm(np.diff(ds.ue_pos.reshape(2, 100, 3), axis=1), axis=-1)
    np.testing.assert_allclose(step, p.trajectory.speed_kmh / 3.6 * 0.02, rtol=1e-3)
    assert ds.attrs["generator_version"] == G.GENERATOR_VERSION
    # the channel evolves smoothly: RSRP of the best beam changes less step to step than between trajectories
    best = ds.rsrp.astype(np.float32).max(axis=(1, 2)).reshape(2, 100)
    assert np.median(np.abs(np.diff(best, axis=1))) < 3.0
    assert np.median(np.abs(np.diff(best, axis=1))) < np.abs(best[0].mean() - best[1].mean()) + 3.0


def test_case2_same_seed_same_tracks_and_resume(tmp_path) -> None:
    """Case2 chunks are deterministic by seed; a resumed Case2 run equals the uninterrupted one."""
    kw = dict(samples=300, seed=4, device="cpu", batch=100, progress=False)
    a = read_beam_h5(G.generate_dataset("uma-fr2-case2", out=tmp_path / "a.h5", **kw).path)
    b = read_beam_h5(G.generate_dataset("uma-fr2-case2", out=tmp_path / "b.h5", **kw).path)
    assert a.rsrp.tobytes() == b.rsrp.tobytes() and a.los.tobytes() == b.los.tobytes()
    np.testing.assert_array_equal(a.traj_id, np.repeat([0, 1, 2], 100))


@pytest.mark.parametrize("name", ["uma-fr2-case1", "umi-fr2-case1"])
def test_beam_domain_matches_sionna_coefficients(name: str) -> None:
    """The fast beam-domain RSRP equals beamforming Sionna's full per-element channel (Case1 and Case2)."""
    import sionna.phy

    gen = G.BeamGenerator(load_preset(name), "cpu")
    sionna.phy.config.seed = 11
    drops = gen.channel.sample_drops(20, torch.Generator().manual_seed(1))
    drops.indoor[:10] = False  # make sure LOS links (K-factor + LOS ray) are exercised
    states = [(gen.channel, gen.channel.snapshot(drops))]
    assert states[0][1].los.any() and not states[0][1].los.all()
    tc = _track_channel(name)
    pos = drops.ut_loc[:4, None, :] + torch.tensor([0.0, 0.3, 0.0]) * torch.arange(5.0)[None, :, None]
    tb = _track_channel(name, blockage="A-portrait")  # blockage model A: cluster and LOS-ray losses
    for ch in (tc, tc, tc, tb, tb):  # spatially consistent tracks (LOS state drawn along each track)
        states.append((ch, ch.track(pos, drops.yaw[:4, None].expand(4, 5).contiguous(), torch.zeros(4, 5, 3))))
    # the self-blocking region of model A attenuates some clusters by 30 dB (TR 38.901 Table 7.6.4.1-1)
    assert float(states[-1][1].rays.blockage_loss_db.max()) >= 30.0
    assert states[-1][1].rays.los_blockage_loss_db.shape == (20, 1, 1)
    assert any(bool(st.los.any()) for _, st in states[1:]) and any(not bool(st.los.all()) for _, st in states[1:])
    for ch, st in states:
        fast = ch.beam_power(st, gen.w_tx, gen.w_rx)
        ref = beam_pair_power(ch.coefficients(st), gen.w_tx, gen.w_rx)
        scale = ref.amax(dim=(1, 2), keepdim=True)
        assert float(((fast - ref).abs() / scale).max()) < 1e-4


def _track_channel(name: str, blockage: str = "none"):
    """A Case2 channel (spatial consistency on) with the Case1 preset's scenario."""
    import dataclasses

    from edge_sdk.server.datagen.channel import BeamChannel

    p1 = load_preset(name)
    traj = dataclasses.replace(load_preset("uma-fr2-case2").trajectory, blockage=blockage)
    return BeamChannel(dataclasses.replace(p1, case="case2", trajectory=traj), "cpu")


def test_doppler_phase_follows_rays_through_delay_sorting() -> None:
    """Each ray accumulates 2 pi / lambda * r . dp along the path, whatever slot delay sorting gives it."""
    from types import SimpleNamespace

    from edge_sdk.server.datagen.channel import doppler_phase

    n, t, c, r = 1, 4, 3, 2
    lam = 0.01
    g = torch.Generator().manual_seed(0)
    aoa_phys = torch.rand(n, 1, 1, c, r, generator=g).expand(n, 1, t, c, r) * 6.0
    zoa_phys = torch.full((n, 1, t, c, r), torch.pi / 2)
    perm = torch.stack([torch.randperm(c, generator=g) for _ in range(t)])[None, None]  # [n, 1, t, c]
    idx_r = perm[..., None].expand(n, 1, t, c, r)
    rays = SimpleNamespace(aoa=torch.gather(aoa_phys, 3, idx_r), zoa=torch.gather(zoa_phys, 3, idx_r),
                           cluster_sort_indices=perm)
    pos = torch.zeros(n, t, 3)
    pos[0, :, 0] = torch.tensor([0.0, 0.004, 0.007, 0.0123])
    got = doppler_phase(rays, pos, lam)
    disp = pos[0, :, 0]  # straight track along x
    want_phys = torch.remainder(2 * torch.pi / lam * torch.cos(aoa_phys[0, 0]) * disp[:, None, None], 2 * torch.pi)
    want = torch.gather(want_phys[None, None], 3, idx_r)
    diff = torch.remainder(got - want + torch.pi, 2 * torch.pi) - torch.pi
    assert float(diff.abs().max()) < 1e-4


def test_resolve_device_names_cuda_with_its_index(monkeypatch) -> None:
    """Sionna's blocks accept 'cuda:0' but refuse a bare 'cuda' (seen on a GPU run), so CUDA gets its index."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert G.resolve_device("auto") == "cuda:0"
    assert G.resolve_device("cuda") == "cuda:0"
    assert G.resolve_device("cuda:1") == "cuda:1"
    with pytest.raises(ConfigError, match="2 CUDA device"):
        G.resolve_device("cuda:2")
    with pytest.raises(ConfigError, match="cuda\\[:N\\]"):
        G.resolve_device("cuda:x")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert G.resolve_device("auto") == "cpu"
    with pytest.raises(ConfigError, match="not available"):
        G.resolve_device("cuda")

"""TR 38.901 Procedure A (server/datagen/mobility.py) against exact single-bounce geometry, and the physical
behaviour of Procedure A trajectories (drift scales with speed, fading decorrelates within about a wavelength)."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edge_sdk.server.datagen.mobility import frame, procedure_a  # noqa: E402


def _angles(v: np.ndarray) -> tuple[float, float]:
    """(zenith, azimuth) of a direction vector."""
    v = v / np.linalg.norm(v)
    return math.acos(v[2]), math.atan2(v[1], v[0])


def test_arrival_angles_delay_and_phase_follow_the_geometry() -> None:
    """A scatterer at S seen from the moving UE: the arrival direction and the plane-wave phase follow the exact
    geometry. Procedure A takes the total path length c tau' as the scatterer distance; the test puts the gNB at
    the scatterer (a zero-length first leg) so that the two coincide and the update must be exact to first order."""
    s = np.array([60.0, 40.0, 12.0])
    bs = s + np.array([0.0, 0.0, 1e-3])
    p0 = np.array([80.0, 10.0, 1.5])
    v = np.array([5.0, 6.0, 0.0])  # m/s, 28 km/h
    t = np.arange(40) * 0.02
    pos = p0[None] + t[:, None] * v[None]  # [T, 3]
    za, aa = _angles(s - p0)
    zd, ad = _angles(s - bs + np.array([1.0, 0.0, 0.0]))  # any departure direction
    length = np.linalg.norm(s - bs) + np.linalg.norm(s - p0)
    lam = 0.01
    ev = procedure_a(*(torch.tensor([[[x]]], dtype=torch.float32) for x in (aa, ad, za, zd)),
                     torch.tensor([[length]]), torch.tensor(pos[None], dtype=torch.float32), lam)
    for k in (10, 39):
        zk, ak = _angles(s - pos[k])
        # 1.6 m / 7.8 m of travel at 36-41 m from the scatterer: the angles move by 0.06 / 0.25 rad
        assert abs(float(ev.aoa[0, k, 0, 0]) - ak) < 0.01 * abs(ak - aa) + 1e-4
        assert abs(float(ev.zoa[0, k, 0, 0]) - zk) < 0.01 * abs(zk - za) + 1e-4
    # phase: 2 pi / lambda * sum r . dp = 2 pi / lambda * (decrease of the distance to the scatterer): within
    # 0.05 rad after 1.6 m (156 wavelengths) and 0.5 rad after 7.8 m (the 1 % angle error of the linearised
    # update then shows in the phase)
    for k, tol in ((10, 0.05), (39, 0.5)):
        dlen = np.linalg.norm(s - p0) - np.linalg.norm(s - pos[k])
        err = float(ev.phase[0, k, 0, 0]) - 2 * math.pi / lam * dlen
        assert abs((err + math.pi) % (2 * math.pi) - math.pi) < tol, k


def test_frame_is_orthonormal_and_right_handed() -> None:
    th = torch.rand(100) * math.pi
    ph = torch.rand(100) * 2 * math.pi
    r, t, p = frame(th, ph)
    m = torch.stack([r, t, p], -1)
    eye = torch.eye(3).expand(100, 3, 3)
    assert torch.allclose(m.transpose(-1, -2) @ m, eye, atol=1e-5)
    assert torch.allclose(torch.cross(r, t, dim=-1), p, atol=1e-5)


@pytest.mark.parametrize("kmh", [30.0, 90.0])
def test_drift_scales_with_speed(kmh: float) -> None:
    """The angular drift of Procedure A is proportional to the speed (dp per step)."""
    g = torch.Generator().manual_seed(0)
    n, c, r, t = 3, 4, 5, 20
    ang = [torch.rand(n, c, r, generator=g) * 2 for _ in range(2)] + [
        0.5 + torch.rand(n, c, r, generator=g) * 2 for _ in range(2)]
    path = 50 + torch.rand(n, c, generator=g) * 100
    step = kmh / 3.6 * 0.02
    pos = torch.zeros(n, t, 3)
    pos[:, :, 0] = torch.arange(t) * step
    ev = procedure_a(*ang, path, pos, 0.01)
    drift = float((ev.aoa[:, -1] - ev.aoa[:, 0]).abs().mean())
    pos2 = pos.clone()
    pos2[:, :, 0] *= 2
    drift2 = float((procedure_a(*ang, path, pos2, 0.01).aoa[:, -1] - ev.aoa[:, 0]).abs().mean())
    assert drift > 0 and abs(drift2 / drift - 2.0) < 0.15  # linear to first order in the displacement

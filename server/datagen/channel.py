"""TR 38.901 channel snapshots on Sionna (PyTorch), for two back-to-back UE panels.

What Sionna does here (not re-implemented): UE drop in one sector (``gen_single_sector_topology``), LOS
probability (TR 38.901 Table 7.4.2-1), path loss (Table 7.4.1-1), O2I loss (Sec. 7.4.3), shadow fading and the
other large-scale parameters (Table 7.5-6), clusters, rays and initial phases (Sec. 7.5 steps 5-10), the element
fields, XPR/phase matrices and LOS ray of step 11 (eq. 7.5-22/28/29), and, as the reference path
(:meth:`BeamChannel.coefficients`), the full per-element channel coefficients.

What this module adds:

* **Beam-domain evaluation** (:meth:`BeamChannel.beam_power`): the beamformed power of every (Tx, Rx) beam
  pair without building the per-element channel (exact for single-polarized identical elements; the tests
  compare it with beamforming Sionna's coefficients).

* **Second UE panel.** Sionna's UT array is one panel. The two back-to-back panels are modelled by evaluating
  Sionna's coefficient generator twice on the *same* rays, the same initial phases (step 10 drawn once and
  passed in ``Rays.phases``) and the same LSPs: once with the UE orientation (panel 1) and once with the yaw
  turned by 180 deg (panel 2). Both panels therefore see one propagation channel; only the array orientation
  differs. (The small physical offset between the panels is neglected.)
* **UE element pattern.** TR 38.802 Table A.2.1-8 (90 deg HPBW, 5 dBi) is not a Sionna pattern; it is the same
  parametric form as TR 38.901 Table 7.3-1, so the UE element's pattern function is replaced by
  ``_radiation_pattern_38901_table`` with the preset's HPBW/gain/SLA/A_max.
* **Spatially consistent trajectories (BM-Case2)**, see :meth:`BeamChannel.track`: one trajectory per
  snapshot with Sionna's TR 38.901 Sec. 7.6.3.1 spatial consistency, plus the Doppler phase of eq. 7.5-22
  integrated along the track.

Shapes: ``B`` drops (one UE and one gNB sector per drop), ``P`` paths (clusters incl. sub-clusters), ``C``
clusters, ``R`` rays per cluster; beam powers float32 [B, n_tx, n_rx]; reference coefficients complex64
[B, n_panels, n_ue_ant, n_bs_ant, P]; both include path loss, O2I loss and shadow fading.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import torch

from edge_sdk.errors import ConfigError
from edge_sdk.server.datagen.presets import Preset

SPEED_OF_LIGHT = 299_792_458.0  # m/s


@dataclass
class Drops:
    """UE drops: positions [B, 3] m, indoor [B] bool, yaw [B] rad, velocity [B, 3] m/s."""

    ut_loc: torch.Tensor
    indoor: torch.Tensor
    yaw: torch.Tensor
    velocity: torch.Tensor


@dataclass
class LinkState:
    """Everything step 11 of TR 38.901 Sec. 7.5 needs for B links (drawn by Sionna), plus link metadata.

    ``rays``: Sionna ``Rays`` [B, 1, 1, C, R] with initial phases set; ``k_factor``, ``c_ds`` [B, 1, 1];
    ``los_angles`` dict of LOS AoA/AoD/ZoA/ZoD in rad [B, 1, 1]; ``los`` bool [B]; ``distance_3d`` [B, 1, 1] m;
    ``bs_orientations`` [B, 1, 3]; ``yaw`` UE yaw [B] rad; ``gain`` amplitude gain [B] (path loss, O2I, SF);
    ``indoor`` bool [B]; ``ut_loc`` [B, 3] m.
    """

    rays: Any  # sionna Rays
    k_factor: torch.Tensor
    c_ds: torch.Tensor
    los_angles: dict
    los: torch.Tensor
    distance_3d: torch.Tensor
    bs_orientations: torch.Tensor
    yaw: torch.Tensor
    gain: torch.Tensor
    indoor: torch.Tensor
    ut_loc: torch.Tensor


def _sionna():
    """Import Sionna lazily (it is heavy) and return the modules we use."""
    try:
        import sionna.phy
        from sionna.phy.channel import gen_single_sector_topology
        from sionna.phy.channel.tr38901 import UMa, UMi
        from sionna.phy.channel.tr38901 import antenna as s_antenna
        from sionna.phy.channel.tr38901.antenna import PanelArray
        from sionna.phy.channel.tr38901.channel_coefficients import Topology
    except ImportError as exc:  # pragma: no cover - server extra missing
        raise ConfigError(
            f"the data generator needs the server extra (sionna-no-rt>=2.1): {exc}; run pip install -e '.[server]' in a checkout (docs/install.md)"
        ) from None
    import sionna

    ver = tuple(int(x) for x in str(sionna.__version__).split(".")[:2] if x.isdigit())
    if ver < (2, 1):  # pragma: no cover - depends on the installed version
        raise ConfigError(
            f"sionna {sionna.__version__} has known TR 38.901 table bugs; install sionna-no-rt>=2.1 (tested: 2.2)"
        )
    return sionna.phy, gen_single_sector_topology, UMa, UMi, s_antenna, PanelArray, Topology


class BeamChannel:
    """Sionna TR 38.901 UMa/UMi downlink channel for one preset on one torch device."""

    def __init__(self, preset: Preset, device: str = "cpu") -> None:
        _phy, self._gen_topology, UMa, UMi, s_antenna, PanelArray, self._Topology = _sionna()
        self.preset = preset
        self.device = device
        s = preset.scenario
        fc = s.carrier_frequency_hz
        self.wavelength_m = SPEED_OF_LIGHT / fc
        ga, ua = preset.gnb_array, preset.ue_array
        self.bs_array = PanelArray(
            num_rows_per_panel=ga.rows, num_cols_per_panel=ga.cols, polarization="single",
            polarization_type="V", antenna_pattern=ga.element_pattern, carrier_frequency=fc,
            element_vertical_spacing=ga.spacing_wavelengths, element_horizontal_spacing=ga.spacing_wavelengths, device=device,
        )
        self.ut_array = PanelArray(
            num_rows_per_panel=ua.rows, num_cols_per_panel=ua.cols, polarization="single",
            polarization_type="V", antenna_pattern="omni" if ua.element_pattern == "omni" else "38.901",
            carrier_frequency=fc, element_vertical_spacing=ua.spacing_wavelengths,
            element_horizontal_spacing=ua.spacing_wavelengths, device=device,
        )
        # 1-element arrays with the same element patterns: Sionna's field/phase matrices per ray (beam_power)
        from sionna.phy.channel.tr38901.channel_coefficients import ChannelCoefficientsGenerator

        bs1 = PanelArray(num_rows_per_panel=1, num_cols_per_panel=1, polarization="single", polarization_type="V",
                         antenna_pattern=ga.element_pattern, carrier_frequency=fc, device=device)
        ut1 = PanelArray(num_rows_per_panel=1, num_cols_per_panel=1, polarization="single", polarization_type="V",
                         antenna_pattern="omni" if ua.element_pattern == "omni" else "38.901",
                         carrier_frequency=fc, device=device)
        for arr in (self.ut_array, ut1):
            if ua.element_pattern == "38.802":
                # TR 38.802 Table A.2.1-8: same parametric form as TR 38.901 Table 7.3-1, other constants.
                arr.ant_pol1._radiation_pattern = functools.partial(
                    s_antenna._radiation_pattern_38901_table,
                    theta_3db_deg=ua.element_hpbw_deg, phi_3db_deg=ua.element_hpbw_deg,
                    sla_v_db=ua.element_sla_db, a_max_db=ua.element_max_att_db, g_e_max_db=ua.element_gain_dbi,
                )
        self._cir1 = ChannelCoefficientsGenerator(fc, bs1, ut1, subclustering=True, device=device)
        cls = UMa if s.model == "uma" else UMi
        kw = dict(carrier_frequency=fc, o2i_model=s.o2i_model, ut_array=self.ut_array, bs_array=self.bs_array,
                  direction="downlink", enable_pathloss=True, enable_shadow_fading=s.enable_shadow_fading,
                  device=device, spec_version=s.spec_version)
        self.channel = cls(**kw)
        traj = preset.trajectory
        self._track_fields = None
        if traj is not None:
            # BM-Case2: a second model with TR 38.901 Sec. 7.6.3.1 spatial consistency for whole trajectories
            # (LOS state, LSPs; route "spatial_consistency" also the clusters) and blockage model A (Sec. 7.6.4.1)
            kw["enable_spatial_consistency"] = True
            if traj.blockage != "none":
                kw.update(enable_blockage=True, blockage_model="A",
                          blockage_self_blocking=traj.blockage.split("-", 1)[1])
            self._track_fields = cls(**kw)

    # ------------------------------------------------------------------ drops
    def sample_drops(self, n: int, gen: torch.Generator) -> Drops:
        """``n`` independent UE drops in the sector (Sionna's sector drop; UE height and speed from the preset).

        The UE yaw is U[0, 2 pi) (``ue_orientation = "random"``) or points panel 1 at the gNB
        (``"facing_bs"``); UE tilt and slant are 0. The velocity has the preset speed and a random heading.
        Randomness: Sionna's global RNG (seeded by the caller) for the drop, ``gen`` for yaw/heading.
        """
        s = self.preset.scenario
        v = s.ue_speed_kmh / 3.6
        ut_loc, _bs_loc, _ut_o, _bs_o, _vel, in_state = self._gen_topology(
            batch_size=n, num_ut=1, scenario=s.model, min_bs_ut_dist=s.min_bs_ut_dist_m, isd=s.isd_m,
            bs_height=s.bs_height_m, min_ut_height=s.ut_height_m, max_ut_height=s.ut_height_m,
            indoor_probability=s.indoor_probability, min_ut_velocity=v, max_ut_velocity=v, device=self.device,
        )
        ut_loc = ut_loc[:, 0, :]
        if s.ue_orientation == "random":
            yaw = torch.rand(n, generator=gen, dtype=torch.float64).to(self.device, torch.float32) * 2 * math.pi
        else:  # facing_bs: panel 1 boresight towards the gNB at the origin
            yaw = torch.atan2(-ut_loc[:, 1], -ut_loc[:, 0])
        heading = torch.rand(n, generator=gen, dtype=torch.float64).to(self.device, torch.float32) * 2 * math.pi
        vel = torch.stack([v * torch.cos(heading), v * torch.sin(heading), torch.zeros_like(heading)], dim=-1)
        return Drops(ut_loc=ut_loc, indoor=in_state[:, 0], yaw=yaw, velocity=vel)

    def _bs(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """gNB location [n, 1, 3] (origin, preset height) and orientation [n, 1, 3] (Sionna's sector yaw of
        60 deg, the preset's mechanical downtilt)."""
        s = self.preset.scenario
        loc = torch.zeros(n, 1, 3, device=self.device)
        loc[..., 2] = s.bs_height_m
        ori = torch.zeros(n, 1, 3, device=self.device)
        ori[..., 0] = math.pi / 3.0  # sector boresight used by gen_single_sector_topology
        ori[..., 1] = math.radians(s.bs_downtilt_deg)
        return loc, ori

    @staticmethod
    def _ut_orient(yaw: torch.Tensor, panel: int) -> torch.Tensor:
        """UE panel orientation [B, 1, 3] (yaw, tilt 0, slant 0); panel 2 is yawed by 180 deg."""
        o = torch.zeros(yaw.shape[0], 1, 3, device=yaw.device, dtype=yaw.dtype)
        o[:, 0, 0] = yaw + math.pi * panel
        return o

    def _set(self, model, drops: Drops, los=None) -> None:
        n = drops.ut_loc.shape[0]
        bs_loc, bs_ori = self._bs(n)
        model.reset_topology()
        model.set_topology(
            ut_loc=drops.ut_loc[:, None, :], bs_loc=bs_loc, ut_orientations=self._ut_orient(drops.yaw, 0),
            bs_orientations=bs_ori, ut_velocities=drops.velocity[:, None, :], in_state=drops.indoor[:, None],
            los="random" if los is None else los[:, None, None],
        )

    # ------------------------------------------------------------------ coefficients
    def _topology(self, st: LinkState, panel: int):
        """Sionna ``Topology`` of the links for UE panel ``panel`` (0 or 1 = yawed by 180 deg)."""
        a = st.los_angles
        v = torch.zeros(st.yaw.shape[0], 1, 3, device=st.yaw.device)
        return self._Topology(
            velocities=v, moving_end="rx", los_aoa=a["los_aoa"], los_aod=a["los_aod"], los_zoa=a["los_zoa"],
            los_zod=a["los_zod"], los=st.los[:, None, None], distance_3d=st.distance_3d,
            tx_orientations=st.bs_orientations, rx_orientations=self._ut_orient(st.yaw, panel),
        )

    def coefficients(self, st: LinkState) -> torch.Tensor:
        """Reference path: Sionna's full per-element coefficients, complex64 [B, n_panels, n_ue_ant, n_bs_ant, P]
        at t = 0 (TR 38.901 eq. 7.5-22/27/28/29/30 and step 12). Used by the tests to validate
        :meth:`beam_power`; too slow for bulk generation."""
        out = []
        for panel in range(self.preset.ue_array.n_panels):
            h, _tau = self.channel._cir_sampler(1, 1.0, st.k_factor, st.rays, self._topology(st, panel), st.c_ds)
            out.append(h[:, 0, 0, :, :, :, 0].permute(0, 2, 3, 1))  # [B, n_ue_ant, n_bs_ant, P]
        h = torch.stack(out, dim=1)
        return h * st.gain[:, None, None, None, None].to(h.dtype)

    def beam_power(self, st: LinkState, w_tx: torch.Tensor, w_rx: torch.Tensor, coherent: bool = True) -> torch.Tensor:
        """Beamformed power summed over paths, float32 [B, n_tx, n_panels * n_rx_beams] (linear gain).

        ``coherent=False`` gives the local mean instead (ray powers added, i.e. the power averaged over the
        random ray phases: the beam pattern without small-scale fading; used by the physical validation).

        Equals ``rsrp.beam_pair_power(self.coefficients(st), w_tx, w_rx)`` (checked in the tests) but works in
        the beam domain: for identical single-polarized elements every ray's channel is rank one,
        ``H_ray = c_ray a_rx(ray) a_tx(ray)^T`` with ``c_ray`` the element fields, XPR and random phases
        (computed by Sionna's own ``_step_11_phase_matrix`` / ``_step_11_field_matrix`` on 1-element arrays)
        and ``a`` the array responses of eq. 7.5-22. So ``w_r^H H_ray conj(w_t) = c_ray AF_r(ray) AF_t(ray)``
        with array factors AF, and a path (cluster or sub-cluster, Sec. 7.5 step 11 / Table 7.5-5) is the sum
        of its rays. The LOS ray (eq. 7.5-29/30, K-factor split) is added coherently to the first path in
        delay, as Sionna does. Cost O(B C R n_tx n_rx) instead of O(B C R n_ue_ant n_bs_ant) per beam pair.
        """
        cir = self.channel._cir_sampler
        c1 = self._cir1
        rays = st.rays
        n_b = st.yaw.shape[0]
        k = 2.0 * math.pi / self.wavelength_m
        one = torch.ones((), device=self.device)
        wt = w_tx.to(self.device, torch.complex64).conj()  # [T, n_bs_ant]
        wr = w_rx.to(self.device, torch.complex64).conj()  # [Q, n_ue_ant]
        h_phase = c1._step_11_phase_matrix(rays.phases, rays)
        sqrt_p = torch.sqrt(rays.powers / rays.aoa.shape[-1])[:, 0, 0]  # [B, C]
        kf = st.k_factor[:, 0, 0]
        los = st.los
        nlos_scale = torch.where(los, torch.sqrt(1.0 / (kf + 1.0)), torch.ones_like(kf))
        los_scale = torch.where(los, torch.sqrt(kf / (kf + 1.0)), torch.zeros_like(kf))
        los_block = getattr(rays, "los_blockage_loss_db", None)  # TR 38.901 Sec. 7.6.4.1 (blockage model A)
        if los_block is not None:
            los_scale = los_scale * torch.pow(10.0, -los_block.reshape(n_b) / 20.0)
        block = getattr(rays, "blockage_loss_db", None)
        if block is not None and not getattr(rays, "blockage_loss_applied_to_powers", False):
            raise ConfigError("per-ray blockage losses are not supported by the beam-domain RSRP")
        # sub-clusters of the two strongest clusters (rays 1-8,19,20 / 9-12,17,18 / 13-16)
        n_c, n_r = rays.aoa.shape[-2:]
        groups = torch.zeros(3, n_r, device=self.device)
        for g, idx in enumerate((cir._sub_cl_1_ind, cir._sub_cl_2_ind, cir._sub_cl_3_ind)):
            groups[g, idx.to(self.device)] = 1.0
        strongest = rays.strongest_cluster_indices
        if strongest is None:
            strongest = torch.argsort(rays.powers, dim=-1, descending=True)[..., :2]
        strong = torch.zeros(n_b, n_c, dtype=torch.bool, device=self.device)
        strong.scatter_(1, strongest[:, 0, 0, :], True)
        first = rays.delays[:, 0, 0].argmin(dim=-1)  # [B] first path in delay
        d_tx = cir._step_11_get_tx_antenna_positions(self._topology(st, 0))[:, 0]  # [B, n_bs_ant, 3]
        r_tx = torch.stack([torch.sin(rays.zod) * torch.cos(rays.aod), torch.sin(rays.zod) * torch.sin(rays.aod),
                            torch.cos(rays.zod)], -1)[:, 0, 0]  # [B, C, R, 3]
        af_tx = torch.polar(one, k * torch.einsum("bcrx,bnx->bcrn", r_tx, d_tx)) @ wt.T  # [B,C,R,T]
        rl = {n: st.los_angles[n][:, 0, 0] for n in ("los_aoa", "los_aod", "los_zoa", "los_zod")}
        r_tx_los = torch.stack([torch.sin(rl["los_zod"]) * torch.cos(rl["los_aod"]),
                                torch.sin(rl["los_zod"]) * torch.sin(rl["los_aod"]), torch.cos(rl["los_zod"])], -1)
        af_tx_los = torch.polar(one, k * torch.einsum("bx,bnx->bn", r_tx_los, d_tx)) @ wt.T  # [B, T]
        # same float32 expression as Sionna's _step_11_los (the phase 2 pi d / lambda is ~1e4 rad)
        los_delay = torch.polar(one, -2 * math.pi * st.distance_3d[:, 0, 0] / cir._lambda_0)  # [B]
        n_t, n_q = wt.shape[0], wr.shape[0]
        n_pan = self.preset.ue_array.n_panels
        m_parts, los_rx = [], []
        for panel in range(n_pan):
            topo = self._topology(st, panel)
            f = c1._step_11_field_matrix(topo, rays.aoa, rays.aod, rays.zoa, rays.zod, h_phase)
            c_ray = f[:, 0, 0, :, :, 0, 0] * sqrt_p[..., None]  # [B, C, R]
            d_rx = cir._step_11_get_rx_antenna_positions(topo)[:, 0]  # [B, n_ue_ant, 3]
            r_rx = torch.stack([torch.sin(rays.zoa) * torch.cos(rays.aoa),
                                torch.sin(rays.zoa) * torch.sin(rays.aoa), torch.cos(rays.zoa)], -1)[:, 0, 0]
            af_rx = torch.polar(one, k * torch.einsum("bcrx,bnx->bcrn", r_rx, d_rx)) @ wr.T  # [B,C,R,Q]
            # M[b, c, r, g, q] = c_ray * [r in sub-cluster g] * AF_q(ray)
            m_parts.append((c_ray[..., None] * af_rx)[:, :, :, None, :] * groups.T[None, None, :, :, None])
            # LOS ray (eq. 7.5-29) of this panel
            f_los = c1._step_11_field_matrix(
                topo, rl["los_aoa"][:, None, None, None, None], rl["los_aod"][:, None, None, None, None],
                rl["los_zoa"][:, None, None, None, None], rl["los_zod"][:, None, None, None, None],
                c1._h_phase_los_const.reshape(1, 1, 1, 1, 1, 2, 2),
            )[:, 0, 0, 0, 0, 0, 0]  # [B]
            r_rx_los = torch.stack([torch.sin(rl["los_zoa"]) * torch.cos(rl["los_aoa"]),
                                    torch.sin(rl["los_zoa"]) * torch.sin(rl["los_aoa"]), torch.cos(rl["los_zoa"])], -1)
            af_rx_los = torch.polar(one, k * torch.einsum("bx,bnx->bn", r_rx_los, d_rx)) @ wr.T  # [B,Q]
            los_rx.append(f_los[:, None] * af_rx_los)
        m = torch.stack(m_parts, dim=3)  # [B, C, R, panels, 3, Q]
        los_part = (los_delay * los_scale)[:, None, None, None] * af_tx_los[:, :, None, None] \
            * torch.stack(los_rx, dim=1)[:, None, :, :]  # [B, T, panels, Q]
        if not coherent:
            ray_p = (m.real.square() + m.imag.square()).sum(dim=4)  # [B, C, R, panels, Q]
            tx_p = af_tx.real.square() + af_tx.imag.square()  # [B, C, R, T]
            p = torch.einsum("bcrt,bcrpq->btpq", tx_p, ray_p) * nlos_scale[:, None, None, None].square()
            p = p + los_part.real.square() + los_part.imag.square()
            return p.reshape(n_b, n_t, n_pan * n_q) * st.gain[:, None, None].square()
        # y[b, c, t, (panel, g, q)] = sum_r AF_t(ray) M[b, c, r, (panel, g, q)]  (one batched matmul)
        y = torch.matmul(af_tx.transpose(-1, -2), m.reshape(n_b, n_c, n_r, -1))
        y = y.reshape(n_b, n_c, n_t, n_pan, 3, n_q)
        weak_total = y.sum(dim=4, keepdim=True)
        y = torch.where(strong[:, :, None, None, None, None], y,
                        torch.cat([weak_total, torch.zeros_like(y[:, :, :, :, 1:])], dim=4))
        y = y * nlos_scale[:, None, None, None, None, None].to(y.dtype)
        # LOS ray on the first path in delay (sub-cluster 1 of a strong cluster, or the whole weak cluster)
        y_los = los_part
        bidx = torch.arange(n_b, device=self.device)
        y[bidx, first, :, :, 0, :] = y[bidx, first, :, :, 0, :] + y_los
        p = (y.real.square() + y.imag.square()).sum(dim=(1, 4))  # [B, T, panels, Q]
        p = p.reshape(n_b, n_t, n_pan * n_q)  # Rx index = panel * Q + q
        return p * st.gain[:, None, None].square()

    def _state(self, ch, drops: Drops, gain: torch.Tensor, rays, lsp, sc) -> LinkState:
        deg = math.pi / 180.0
        return LinkState(
            rays=rays, k_factor=lsp.k_factor, c_ds=sc.get_param("cDS") * 1e-9,
            los_angles={n: getattr(sc, n) * deg for n in ("los_aoa", "los_aod", "los_zoa", "los_zod")},
            los=sc.los[:, 0, 0].clone(), distance_3d=sc.distance_3d, bs_orientations=sc.bs_orientations,
            yaw=drops.yaw, gain=gain, indoor=sc.indoor[:, 0].clone(), ut_loc=drops.ut_loc,
        )

    def snapshot(self, drops: Drops) -> LinkState:
        """BM-Case1: one channel snapshot per drop at t = 0 (TR 38.901 Sec. 7.5 steps 1-10 by Sionna)."""
        ch = self.channel
        self._set(ch, drops)
        lsp = ch._lsp
        rays = ch._ray_sampler(lsp)
        rays.phases = ch._cir_sampler._step_10(rays.aoa.shape)  # one draw shared by both panels
        sc = ch._scenario
        return self._state(ch, drops, self._gain(lsp.pathloss, lsp.sf), rays, lsp, sc)

    def _gain(self, pathloss_db: torch.Tensor, sf: torch.Tensor) -> torch.Tensor:
        """Amplitude gain [B] = 10^(-PL/20) sqrt(SF) (TR 38.901 Sec. 7.5 step 12); SF linear power."""
        if not self.preset.scenario.enable_shadow_fading:
            sf = torch.ones_like(sf)
        return (torch.pow(10.0, -pathloss_db / 20.0) * torch.sqrt(sf))[:, 0, 0]


    def track(self, pos: torch.Tensor, yaw: torch.Tensor, velocity: torch.Tensor) -> LinkState:
        """BM-Case2: the channel along ``n`` trajectories of ``T`` positions (``trajectory.time_evolution``).

        :param pos: UE positions float32 [n, T, 3], metres (one trajectory per row, ``time_step_s`` apart)
        :param yaw: UE yaw float32 [n, T], rad (panel 1 boresight; turns with the heading)
        :param velocity: UE velocity float32 [n, T, 3], m/s (recorded in the topology; the Doppler phase is
            integrated from the positions)
        :returns: link state of ``n * T`` rows, trajectory-major (row = i * T + t)

        Both routes place the whole trajectory in one Sionna snapshot with TR 38.901 Sec. 7.6.3.1 spatial
        consistency (``enable_spatial_consistency=True``; the T positions of trajectory i are the T UTs of batch
        element i with one ``spatial_consistency_track_id``). From it come, per position: the LOS/NLOS state
        (Gaussian copula, correlation distance 50 m UMa/UMi, Table 7.6.3.1-2), the LOS geometry, the basic path
        loss, the shadow-fading field (Table 7.5-6 correlation distances) and, with ``blockage``, blockage model
        A (Sec. 7.6.4.1, blockers correlated over 10 m). The routes differ in the clusters:

        * ``"procedure_a"`` (default, :meth:`_track_procedure_a`): clusters and rays drawn at t0 (one set
          conditioned on LOS, one on NLOS) and moved by Sec. 7.6.3.2 Procedure A (:mod:`.mobility`); a position
          uses the set of its LOS state.
        * ``"spatial_consistency"`` (:meth:`_track_snapshot`): Sionna's spatially consistent clusters at every
          position, plus the Doppler phase of eq. 7.5-22 integrated along the track (:func:`doppler_phase`).
        """
        traj = self.preset.trajectory
        if traj is None or self._track_fields is None:
            raise ConfigError("track() needs a BM-Case2 preset with a [trajectory] section")
        n, t_steps = pos.shape[:2]
        if t_steps < 2:
            raise ConfigError("a trajectory needs at least 2 positions")
        ch = self._track_fields
        bs_loc, bs_ori = self._bs(n)
        ut_ori = torch.zeros(n, t_steps, 3, device=self.device)
        ut_ori[..., 0] = yaw
        ch.reset_topology()
        ch.set_topology(
            ut_loc=pos, bs_loc=bs_loc, ut_orientations=ut_ori, bs_orientations=bs_ori, ut_velocities=velocity,
            in_state=torch.zeros(n, t_steps, dtype=torch.bool, device=self.device), los="random",
            spatial_consistency_track_ids=torch.zeros(n, t_steps, dtype=torch.int64, device=self.device),
        )
        if traj.time_evolution == "spatial_consistency":
            rays, k_factor, c_ds = self._track_snapshot(pos)
        else:
            rays, k_factor, c_ds = self._track_procedure_a(pos, yaw)
        sc = ch._scenario

        def flat(x: torch.Tensor) -> torch.Tensor:
            """[n, 1, T, ...] -> [n * T, 1, 1, ...] (one link per row)."""
            return x.transpose(1, 2).reshape(n * t_steps, 1, 1, *x.shape[3:])

        for name, val in list(vars(rays).items()):
            if isinstance(val, torch.Tensor) and val.dim() >= 3 and val.shape[:3] == (n, 1, t_steps):
                setattr(rays, name, flat(val))
        deg = math.pi / 180.0
        return LinkState(
            rays=rays, k_factor=flat(k_factor), c_ds=flat(c_ds),
            los_angles={a: flat(getattr(sc, a)) * deg for a in ("los_aoa", "los_aod", "los_zoa", "los_zod")},
            los=flat(sc.los)[:, 0, 0].clone(), distance_3d=flat(sc.distance_3d),
            bs_orientations=bs_ori.repeat_interleave(t_steps, dim=0), yaw=yaw.reshape(-1),
            gain=self._gain(flat(ch._lsp.pathloss), flat(ch._lsp.sf)),
            indoor=torch.zeros(n * t_steps, dtype=torch.bool, device=self.device), ut_loc=pos.reshape(n * t_steps, 3),
        )

    def _track_snapshot(self, pos: torch.Tensor):
        """Route "spatial_consistency": Sionna's spatially consistent rays at every position (cluster and ray
        random variables correlated with exp(-d/D), D = 40/50 m UMa LOS/NLOS, 12/15 m UMi; cluster-angle signs
        and ray couplings shared by the track), plus the integrated Doppler phase. Returns (rays [n, 1, T, ...],
        K-factor [n, 1, T], c_DS [n, 1, T] s)."""
        ch = self._track_fields
        assert ch is not None
        rays = ch._ray_sampler(ch._lsp)  # rays.phases drawn by Sionna (spatially consistent), not step 10
        rays.phases = rays.phases + doppler_phase(rays, pos, self.wavelength_m)[..., None]
        return rays, ch._lsp.k_factor, ch._scenario.get_param("cDS") * 1e-9

    def _track_procedure_a(self, pos: torch.Tensor, yaw: torch.Tensor):
        """Route "procedure_a" (see :meth:`track` and :mod:`.mobility`). Returns like :meth:`_track_snapshot`."""
        from edge_sdk.server.datagen.mobility import cluster_angle_deg, procedure_a

        fields = self._track_fields
        assert fields is not None
        n, t_steps = pos.shape[:2]
        los_t = fields._scenario.los[:, 0, :]  # [n, T] spatially consistent LOS state along each track
        start = Drops(ut_loc=pos[:, 0].contiguous(), indoor=torch.zeros(n, dtype=torch.bool, device=self.device),
                      yaw=yaw[:, 0].contiguous(), velocity=torch.zeros(n, 3, device=self.device))
        sets = {}
        for state in (True, False):  # clusters at t0 for both states (TR 38.901 Sec. 7.5 steps 5-10, by Sionna)
            ch = self.channel
            self._set(ch, start, los=torch.full((n,), state, dtype=torch.bool, device=self.device))
            lsp = ch._lsp
            r0 = ch._ray_sampler(lsp)
            r0.phases = ch._cir_sampler._step_10(r0.aoa.shape)
            d3 = ch._scenario.distance_3d[:, 0, 0]
            path_len = r0.delays[:, 0, 0] * SPEED_OF_LIGHT + d3[:, None]
            ev = procedure_a(r0.aoa[:, 0, 0], r0.aod[:, 0, 0], r0.zoa[:, 0, 0], r0.zod[:, 0, 0], path_len, pos,
                             self.wavelength_m)
            sets[state] = (r0, ev, lsp.k_factor[:, 0, 0], ch._scenario.get_param("cDS")[:, 0, 0] * 1e-9)
        (rl, el, kl, cl), (rn, en, _kn, cn) = sets[True], sets[False]
        pick = los_t[:, :, None, None]  # [n, T, 1, 1]

        def sel(a_los: torch.Tensor, a_nlos: torch.Tensor) -> torch.Tensor:
            """Per position the tensor of the active set, [n, T, ...] -> [n, 1, T, ...]."""
            p = pick.reshape(n, t_steps, *([1] * (a_los.dim() - 2)))
            return torch.where(p, a_los, a_nlos)[:, None]

        def t0(x: torch.Tensor) -> torch.Tensor:
            """Constant t0 tensor [n, 1, 1, ...] -> [n, T, ...]."""
            return x[:, 0, 0][:, None].expand(n, t_steps, *x.shape[3:])

        aoa, aod = sel(el.aoa, en.aoa), sel(el.aod, en.aod)
        zoa, zod = sel(el.zoa, en.zoa), sel(el.zod, en.zod)
        phases = sel(t0(rl.phases), t0(rn.phases)) + sel(el.phase, en.phase)[..., None]
        powers = sel(t0(rl.powers), t0(rn.powers))
        los_block = block = None
        model = getattr(fields._ray_sampler, "_blockage_model", None)
        if model is not None:  # blockage model A on the moving cluster angles (Sec. 7.6.4.1), 10 m correlation
            sc = fields._scenario
            closs, los_block = model(cluster_angle_deg(aoa), cluster_angle_deg(zoa), sc.los_aoa, sc.los_zoa)
            powers = powers * torch.pow(10.0, -closs / 10.0)
            block = closs[..., None].expand_as(aoa)  # informational (already in the powers), as in Sionna
        rays = type(rl)(
            delays=sel(t0(rl.delays), t0(rn.delays)), powers=powers, aoa=aoa, aod=aod, zoa=zoa, zod=zod,
            xpr=sel(t0(rl.xpr), t0(rn.xpr)), phases=phases, los_blockage_loss_db=los_block,
            blockage_loss_db=block, blockage_loss_applied_to_powers=model is not None,
            strongest_cluster_indices=sel(t0(rl.strongest_cluster_indices), t0(rn.strongest_cluster_indices)),
        )
        k_factor = kl[:, None, None].expand(n, 1, t_steps)
        c_ds = torch.where(los_t, cl[:, None], cn[:, None])[:, None]
        return rays, k_factor, c_ds


def doppler_phase(rays, pos: torch.Tensor, wavelength_m: float) -> torch.Tensor:
    """Accumulated Doppler phase of every ray along a track, rad, [n, 1, T, C, R] (same cluster order as ``rays``).

    ``rays`` holds Sionna rays of a track snapshot ([n, 1, T, C, R], clusters sorted by delay at each position,
    ``rays.cluster_sort_indices`` [n, 1, T, C] = physical cluster of each sorted slot); ``pos`` [n, T, 3] m.
    Phase of ray (c, m) at position k: ``2 pi / lambda * sum_{j=1..k} r(c, m, j)^T (p_j - p_{j-1})`` with r the
    unit vector of the ray's arrival direction (ZoA, AoA) at position j (eq. 7.5-22's Doppler term, integrated
    over the travelled path instead of v t, so a curved track and drifting angles are handled).
    """
    idx = rays.cluster_sort_indices  # [n, 1, T, C]
    idx_r = idx[..., None].expand_as(rays.aoa)
    # per physical cluster: phys[..., idx[c], :] = sorted[..., c, :]
    aoa = torch.empty_like(rays.aoa).scatter_(3, idx_r, rays.aoa)
    zoa = torch.empty_like(rays.zoa).scatter_(3, idx_r, rays.zoa)
    r_hat = torch.stack([torch.sin(zoa) * torch.cos(aoa), torch.sin(zoa) * torch.sin(aoa), torch.cos(zoa)], -1)
    step = torch.zeros_like(pos)
    step[:, 1:] = pos[:, 1:] - pos[:, :-1]  # [n, T, 3]
    inc = (r_hat * step[:, None, :, None, None, :].to(r_hat.dtype)).sum(-1)  # [n, 1, T, C, R] m
    acc = torch.cumsum(inc.double(), dim=2)  # float64: the sum reaches ~1e3 wavelengths
    phase = torch.remainder(acc * (2.0 * math.pi / wavelength_m), 2.0 * math.pi).to(rays.aoa.dtype)
    return torch.gather(phase, 3, idx_r)  # back to the sorted cluster slots

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
* **Time evolution (BM-Case2)**, see :meth:`BeamChannel.evolve`.

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

SPEED_OF_LIGHT = 299_792_458.0


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
        # A second model used only for the geometry (LOS angles, 3D distance, basic path loss) of the
        # trajectory steps in BM-Case2; it never draws rays.
        self._geometry = cls(**kw, always_generate_lsp=True)

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

    def beam_power(self, st: LinkState, w_tx: torch.Tensor, w_rx: torch.Tensor) -> torch.Tensor:
        """Beamformed power summed over paths, float32 [B, n_tx, n_panels * n_rx_beams] (linear gain).

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
        # y[b, c, t, (panel, g, q)] = sum_r AF_t(ray) M[b, c, r, (panel, g, q)]  (one batched matmul)
        y = torch.matmul(af_tx.transpose(-1, -2), m.reshape(n_b, n_c, n_r, -1))
        y = y.reshape(n_b, n_c, n_t, n_pan, 3, n_q)
        weak_total = y.sum(dim=4, keepdim=True)
        y = torch.where(strong[:, :, None, None, None, None], y,
                        torch.cat([weak_total, torch.zeros_like(y[:, :, :, :, 1:])], dim=4))
        y = y * nlos_scale[:, None, None, None, None, None].to(y.dtype)
        # LOS ray on the first path in delay (sub-cluster 1 of a strong cluster, or the whole weak cluster)
        y_los = (los_delay * los_scale)[:, None, None, None] * af_tx_los[:, :, None, None] \
            * torch.stack(los_rx, dim=1)[:, None, :, :]  # [B, T, panels, Q]
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

    def evolve(self, start: Drops, steps: torch.Tensor, yaw_steps: torch.Tensor) -> LinkState:
        """BM-Case2: channel along trajectory steps that share one set of LSPs and clusters (one "block").

        ``start`` holds the block-start drops (B blocks); ``steps`` float32 [B, T, 3] the UE positions of the T
        steps of each block and ``yaw_steps`` [B, T] the UE yaw. Simplification of TR 38.901 Sec. 7.6.3
        spatial consistency (documented in the dataset card):

        * LSPs (SF, K, DS, angle spreads), the LOS/NLOS state, the clusters/rays and their initial phases are
          drawn once at the block start and kept for the whole block;
        * at each step the LOS geometry (LOS AoD/AoA/ZoD/ZoA, 3D distance and LOS phase) and the basic path
          loss follow the true UE position (Sionna scenario geometry at that position, same LOS state);
        * every cluster/ray angle is shifted by the change of the LOS angles since the block start (clusters
          keep their offsets relative to the LOS direction, as in steps 7-8 of Sec. 7.5);
        * ray phases advance by 2 pi / lambda * r_hat_rx . (p_t - p_0) (plane-wave phase of each arriving ray:
          TR 38.901 eq. 7.5-22's Doppler term integrated over the displacement), added to the step-10 phases.

        Returns the link state of B*T rows, block-major (row = b*T + t).
        """
        ch = self.channel
        n_b, n_t = steps.shape[:2]
        self._set(ch, start)
        lsp = ch._lsp
        rays = ch._ray_sampler(lsp)
        rays.phases = ch._cir_sampler._step_10(rays.aoa.shape)
        sc = ch._scenario
        deg = math.pi / 180.0
        los0 = sc.los[:, 0, 0].clone()
        ang0 = {k: getattr(sc, k)[:, 0, 0].clone() * deg for k in ("los_aoa", "los_aod", "los_zoa", "los_zod")}
        c_ds = sc.get_param("cDS") * 1e-9

        def rep(x: torch.Tensor) -> torch.Tensor:
            return x.repeat_interleave(n_t, dim=0)

        for name, val in list(vars(rays).items()):
            if isinstance(val, torch.Tensor) and val.dim() > 0 and val.shape[0] == n_b:
                setattr(rays, name, rep(val))
        p0 = rep(start.ut_loc)
        flat = steps.reshape(n_b * n_t, 3)
        step_drops = Drops(ut_loc=flat, indoor=rep(start.indoor), yaw=yaw_steps.reshape(-1),
                           velocity=flat - p0)
        geo = self._geometry
        self._set(geo, step_drops, los=rep(los0))
        gs = geo._scenario
        # shift cluster angles with the LOS direction (radians; zeniths clamped to [0, pi])
        for ray_name, los_name, zen in (("aoa", "los_aoa", False), ("aod", "los_aod", False),
                                        ("zoa", "los_zoa", True), ("zod", "los_zod", True)):
            d = gs.__getattribute__(los_name)[:, 0, 0] * deg - rep(ang0[los_name])
            if not zen:
                d = torch.remainder(d + math.pi, 2 * math.pi) - math.pi
            new = getattr(rays, ray_name) + d[:, None, None, None, None]
            setattr(rays, ray_name, new.clamp(0.0, math.pi) if zen else new)
        r_hat = torch.stack([torch.sin(rays.zoa) * torch.cos(rays.aoa), torch.sin(rays.zoa) * torch.sin(rays.aoa),
                             torch.cos(rays.zoa)], dim=-1)  # [B*T, 1, 1, C, R, 3]
        disp = step_drops.velocity[:, None, None, None, None, :]  # p_t - p_0
        dphi = 2.0 * math.pi / self.wavelength_m * (r_hat * disp).sum(-1)
        rays.phases = rays.phases + dphi[..., None]
        gain = self._gain(gs.basic_pathloss, rep(lsp.sf))
        st = self._state(geo, step_drops, gain, rays, lsp, gs)
        st.k_factor = rep(lsp.k_factor)
        st.c_ds = rep(c_ds)
        return st

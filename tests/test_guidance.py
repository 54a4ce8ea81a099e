"""Measured guidance strength (samplers/guidance.py): the identities of every sampler, on exact denoisers.

On a linear denoiser with a shared Jacobian, u(x) = A x + p and c(x) = A x + q, the guidance difference D = q - p is
the same everywhere, and each sampler's m_eff has a closed form (h_i = b_i / a_i, A_i = c_in,i A):

    standard                      m_eff = u(x_i) + g1 D
    implicit zigzag, zigzag step  m_eff = u(x_i) + (2 g1 - g2) D + h_i (g1 - g2) A_i D
    zigzag (zag evaluated at y)   m_eff = u(x_i) + (2 g1 - g2) D + A_i (x~_i - y_i)
    zeta, window step             m_eff = u(x_i) + (g1 + s (g1 - g2)) D + h_i s (g1 - g2) A_i D   (its cache is exact)

so gamma_par and rho follow by projecting the extra term on D. The zigzag's form is u + (2 g1 - g2) D alone only when
its zag is solved exactly (a x~ + b m_g2(x~) = y): evaluated at y, as Z-Sampling does, it adds A (x~ - y).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from diffusers import DDIMScheduler, EulerDiscreteScheduler, FlowMatchEulerDiscreteScheduler

from analytic import GaussianMixtureDenoiser, flow_levels, vp_levels
from samplers import (SEG, CFGPlusPlus, ImplicitZigzag, Network, Sampler, SamplerOutput, Standard, Zeta, Zigzag, guide,
                      sample_measured, setting, solver_from_scheduler)

SD = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
DDIM_SDXL = dict(SD, clip_sample=False, set_alpha_to_one=False, steps_offset=1, timestep_spacing="leading")
MEANS = torch.tensor([[2.0, 0.0, 0.0, 1.0], [-2.0, 0.0, 1.0, 0.0], [0.0, 2.0, -1.0, 0.0], [0.0, -2.0, 0.0, -1.0]])
PROMPTS = [0, 1, 2, 3, 1, 0]
KINDS = ["ddim_eps", "ddim_v", "euler_eps", "flow"]
#: tolerance on the mixture, in float64: a step counts once D exceeds sqrt(eps) |u|, so values hold to ~sqrt(eps) |γ|
MIX = 1e-6


def scheduler(kind):
    if kind == "ddim_eps":
        return DDIMScheduler(**DDIM_SDXL, prediction_type="epsilon")
    if kind == "ddim_v":
        return DDIMScheduler(**DDIM_SDXL, prediction_type="v_prediction")
    if kind == "euler_eps":
        return EulerDiscreteScheduler(**SD, prediction_type="epsilon")
    return FlowMatchEulerDiscreteScheduler(shift=1.0)


def mixture(kind, steps=10, dtype=torch.float64):
    """(denoiser, solver, x_T): the exact Gaussian-mixture denoiser of tests/analytic.py."""
    sched = scheduler(kind)
    solver = solver_from_scheduler(sched, steps)
    levels = flow_levels() if kind == "flow" else vp_levels(sched.alphas_cumprod.tolist())
    pred = {"ddim_eps": "epsilon", "ddim_v": "v_prediction", "euler_eps": "epsilon", "flow": "flow"}[kind]
    den = GaussianMixtureDenoiser(MEANS, [0.3, 0.5, 0.4, 0.3], PROMPTS, levels, pred)
    x = torch.randn(len(PROMPTS), 4, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    return den, solver, (x * solver.init_noise_sigma).to(dtype)


class SharedLinear:
    """u(x) = A x + p, c(x) = A x + q for every timestep (and the perturbed branch c(x) + r)."""

    def __init__(self, dim=5, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.A = torch.randn(dim, dim, generator=g, dtype=torch.float64) * 0.4
        self.p, self.q = (torch.randn(dim, generator=g, dtype=torch.float64) for _ in range(2))
        self.D = self.q - self.p

    def u(self, x):
        return x @ self.A.T + self.p

    def __call__(self, x, t, branches):
        return tuple(self.u(x) + (self.D if b == "cond" else 0.0) for b in branches)


def linear(kind, steps=8):
    den = SharedLinear()
    solver = solver_from_scheduler(scheduler(kind), steps)
    x = torch.randn(3, 5, generator=torch.Generator().manual_seed(11), dtype=torch.float64) * solver.init_noise_sigma
    return den, solver, x


def projected(den, extra):
    """(gamma offset, rho) of m_eff = u + gamma D + extra per sample: <extra, D>/|D|^2 and |extra_perp| / |D|."""
    dd = den.D @ den.D
    par = (extra @ den.D) / dd
    perp = extra - par[:, None] * den.D
    return par, perp.norm(dim=-1) / dd.sqrt()


def anchors(sampler, den, x, solver):
    """The measured run, and x_0..x_{T-1} (the state each step started from) from the callback."""
    states = [x]
    out = sample_measured(sampler, den, x, solver, callback=lambda i, s: states.append(s["x"]))
    return out, states[:-1]


def close(actual, expected, tol=1e-10):
    """Equal within ``tol``; a NaN (a step where D is not resolved above rounding: on the mixture, the posterior has
    collapsed onto the prompted component in the last steps) is skipped, but most values must be defined."""
    expected = torch.as_tensor(expected, dtype=torch.float64).expand_as(actual)
    defined = ~torch.isnan(actual)
    if actual.dim() == 2:
        assert defined.double().mean() >= 0.6, f"only {int(defined.sum())} of {actual.numel()} values defined"
    torch.testing.assert_close(actual[defined], expected[defined], rtol=0, atol=tol)


# ------------------------------------------------------------------------------------------- CFG, any model
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("gamma", [1.0, 3.0, 7.5])
def test_standard_cfg_measures_its_own_scale_and_no_orthogonal_part(kind, gamma):
    den, solver, x = mixture(kind)
    g = sample_measured(Standard(gamma1=gamma), den, x, solver).guidance
    close(g.gamma_par, gamma, MIX)
    close(g.rho, 0.0, MIX)
    assert g.source_labels() == ["exact"] * len(PROMPTS)
    close(g.mean_gamma(), gamma, MIX)


def test_standard_cfg_in_float32_is_exact_to_rounding():
    den, solver, x = mixture("ddim_eps", dtype=torch.float32)
    g = sample_measured(Standard(gamma1=5.5), den, x, solver).guidance
    finite = ~torch.isnan(g.gamma_par)
    assert finite[:, :5].all()  # late steps: D is below float32 rounding of u (the posterior has collapsed): NaN
    assert (g.gamma_par[finite] - 5.5).abs().max() < 5e-3 and g.rho[finite].max() < 5e-3


def test_a_per_step_schedule_is_measured_step_by_step():
    den, solver, x = mixture("flow", steps=6)
    schedule = [1.0, 2.0, 7.0, 4.5, 3.0, 1.5]
    g = sample_measured(Standard(gamma_schedule=schedule), den, x, solver).guidance
    close(g.gamma_par, torch.tensor(schedule, dtype=torch.float64).expand(len(PROMPTS), 6), MIX)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("make", [
    lambda: Standard(gamma1=4.0), lambda: Zigzag(gamma1=4.0, gamma2=0.5), lambda: Zigzag(gamma1=4.0, rounds=2),
    lambda: Zigzag(gamma1=4.0, zag_timestep="next"), lambda: ImplicitZigzag(gamma1=4.0),
    lambda: Zeta(gamma1=4.0, warmup_steps=2), lambda: Zeta(gamma1=4.0, warmup_steps=2, probe=True),
    lambda: Zeta(gamma1=4.0, adaptive_warmup=True, warmup_steps=1), lambda: CFGPlusPlus(gamma1=0.6),
    lambda: SEG(gamma1=4.0, seg_scale=2.0)])
def test_measuring_changes_no_output(kind, make):
    den, solver, x = mixture(kind, dtype=torch.float32)
    plain = make().sample(den, x, solver)
    measured = sample_measured(make(), den, x, solver)
    assert torch.equal(plain.latents, measured.latents) and plain.nfe == measured.nfe
    assert plain.diagnostics.keys() == measured.diagnostics.keys()
    for name, values in plain.diagnostics.items():
        assert torch.equal(values.nan_to_num(-7.0), measured.diagnostics[name].nan_to_num(-7.0)), name
    assert plain.guidance is None and measured.guidance.gamma_par.shape == (len(PROMPTS), solver.num_steps)


# ------------------------------------------------------------------------------------------- zigzag family, exact
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("g1,g2", [(5.5, 0.0), (3.0, 1.5)])
def test_implicit_zigzag_on_a_linear_denoiser_adds_h_a_delta(kind, g1, g2):
    den, solver, x = linear(kind)
    lam = solver.num_steps - 1
    out, states = anchors(ImplicitZigzag(gamma1=g1, gamma2=g2), den, x, solver)
    for i in range(solver.num_steps):
        if i < lam:
            h = solver.shift_coefficient(i)
            par, rho = projected(den, (h * (g1 - g2) * solver.c_in[i] * (den.D @ den.A.T)).expand(3, -1))
            close(out.guidance.gamma_par[:, i], 2 * g1 - g2 + par)
            close(out.guidance.rho[:, i], rho)
        else:
            close(out.guidance.gamma_par[:, i], g1)
            close(out.guidance.rho[:, i], 0.0)
    assert out.guidance.source_labels() == ["exact"] * 3
    # the anchor form of the explicit zigzag is the implicit zigzag: the same values
    anchor = sample_measured(Zigzag(gamma1=g1, gamma2=g2, zag_evaluation="anchor"), den, x, solver).guidance
    close(anchor.gamma_par, out.guidance.gamma_par)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("zag_timestep", ["current", "next"])
def test_zigzag_on_a_linear_denoiser_adds_a_times_the_zag(kind, zag_timestep):
    """m_eff = u(x) + (2 g1 - g2) D + A_i (x~ - y); with the zag at the next label, the evaluation at y (which looks
    like the next step's anchor until the second zig moves the result) must not be taken for the anchor's."""
    den, solver, x = linear(kind)
    g1, g2 = 4.0, 1.0
    out, states = anchors(Zigzag(gamma1=g1, gamma2=g2, zag_timestep=zag_timestep), den, x, solver)
    for i, xi in enumerate(states[:-1]):
        a, b = solver.coefficients(i)
        j = i if zag_timestep == "current" else i + 1
        A_i, A_j = solver.c_in[i] * den.A, solver.c_in[j] * den.A
        y = a * xi + b * (xi @ A_i.T + den.p + g1 * den.D)
        x_tilde = (y - b * (y @ A_j.T + den.p + g2 * den.D)) / a
        m_eff = xi @ A_i.T + den.p + (2 * g1 - g2) * den.D + (x_tilde - y) @ A_i.T
        if j != i:  # the zag's network sees another input scaling: u_j(y) - u_i(y) enters the zag
            m_eff = m_eff + y @ (A_i - A_j).T
        par, rho = projected(den, m_eff - (xi @ A_i.T + den.p) - (2 * g1 - g2) * den.D)
        close(out.guidance.gamma_par[:, i], 2 * g1 - g2 + par, 1e-9)
        close(out.guidance.rho[:, i], rho, 1e-9)
    close(out.guidance.gamma_par[:, -1], g1)


def test_a_zag_solved_exactly_is_cfg_at_gamma_eff_for_any_jacobian():
    """The issue's identity m_eff = u(x) + (2 g1 - g2) D holds for a zag that inverts the step exactly
    (a x~ + b m_g2(x~) = y), whatever A: measured by the meter on a plugin-style sampler that solves it."""
    den, solver, x = linear("ddim_eps")
    g1, g2 = 4.0, 1.5

    class ExactZag(IntervalCFG):
        name = "exact_zag"

        def sample(self, denoiser, x, solver, callback=None):
            net = Network(denoiser, solver)
            for i in range(solver.num_steps):
                a, b = solver.coefficients(i)
                y = solver.step(x, guide(*net(x, i), g1), i)
                system = a * torch.eye(5, dtype=torch.float64) + b * solver.c_in[i] * den.A
                x_tilde = torch.linalg.solve(system, (y - b * (den.p + g2 * den.D)).T).T
                x = solver.step(x_tilde, guide(*net(x_tilde, i), g1), i)
            return SamplerOutput(x, net.nfe)

    g = sample_measured(ExactZag(), den, x, solver).guidance
    close(g.gamma_par, 2 * g1 - g2, 1e-9)
    close(g.rho, 0.0, 1e-9)


def test_zigzag_without_jacobian_is_cfg_at_gamma_eff():
    """A = 0 (u, c constant): every zigzag variant is CFG at 2 g1 - g2 on its zigzag steps, exactly."""
    den, solver, x = linear("ddim_v")
    den.A.zero_()
    for sampler in (Zigzag(gamma1=3.0, gamma2=0.5), ImplicitZigzag(gamma1=3.0, gamma2=0.5),
                    Zeta(gamma1=3.0, gamma2=0.5, warmup_steps=1, probe=True)):
        g = sample_measured(sampler, den, x, solver).guidance
        first = 1 if isinstance(sampler, Zeta) else 0
        close(g.gamma_par[:, first:-1], 5.5, 1e-9)
        close(g.rho, 0.0, 1e-9)


# ------------------------------------------------------------------------------------------- zeta: probe and free
@pytest.mark.parametrize("kind", KINDS)
def test_zeta_with_an_exact_cache_probe_and_free_estimate(kind):
    """The shared Jacobian makes zeta's cache exact (C = D). The probe sees the implicit zigzag's h A D term; the
    free estimate (u, c at the shifted point) absorbs it into u and reads g1 + s (g1 - g2) exactly."""
    den, solver, x = linear(kind)
    g1, g2, s, tau = 4.0, 1.0, 0.5, 2
    end = solver.num_steps - 1
    probed = sample_measured(Zeta(gamma1=g1, gamma2=g2, surrogate_scale=s, warmup_steps=tau, probe=True),
                             den, x, solver).guidance
    free = sample_measured(Zeta(gamma1=g1, gamma2=g2, surrogate_scale=s, warmup_steps=tau), den, x, solver).guidance
    for i in range(solver.num_steps):
        if tau <= i < end:
            h = solver.shift_coefficient(i)
            par, rho = projected(den, (h * s * (g1 - g2) * solver.c_in[i] * (den.D @ den.A.T)).expand(3, -1))
            close(probed.gamma_par[:, i], g1 + s * (g1 - g2) + par)
            close(probed.rho[:, i], rho)
            close(free.gamma_par[:, i], g1 + s * (g1 - g2))
            close(free.rho[:, i], 0.0)
            assert probed.source[:, i].tolist() == [2] * 3 and free.source[:, i].tolist() == [1] * 3
        else:
            for g in (probed, free):
                close(g.gamma_par[:, i], g1)
                assert g.source[:, i].tolist() == [3] * 3
    assert probed.source_labels() == ["probe"] * 3 and free.source_labels() == ["evaluated"] * 3


def test_zeta_probe_equals_the_implicit_zigzag_measurement_where_the_cache_is_exact():
    den, solver, x = linear("flow")
    zeta = sample_measured(Zeta(gamma1=3.0, warmup_steps=1, probe=True), den, x, solver).guidance
    implicit = sample_measured(ImplicitZigzag(gamma1=3.0), den, x, solver).guidance
    # the states differ (zeta's first step is plain CFG), the measured values do not: they depend on A, D, h only
    close(zeta.gamma_par[:, 1:], implicit.gamma_par[:, 1:])
    close(zeta.rho[:, 1:], implicit.rho[:, 1:])


def test_zeta_adaptive_warmup_labels_each_sample_by_its_own_window():
    den, solver, x = mixture("ddim_eps", steps=12)
    out = sample_measured(Zeta(gamma1=5.5, warmup_steps=1, adaptive_warmup=True, adaptive_threshold=0.999),
                          den, x, solver)
    zig = out.diagnostics["zigzag"].bool()
    codes = out.guidance.source
    assert ((codes == 1) == zig).all()  # shifted steps: the free estimate; the others: exact
    assert ((codes == 3) == ~zig).all()
    assert len({tuple(row) for row in codes.tolist()}) > 1  # the samples enter the window on different steps


# ------------------------------------------------------------------------------------------- CFG++, SEG, plugins
@pytest.mark.parametrize("kind", KINDS)
def test_cfgpp_measures_lambda_times_the_data_share_of_the_step(kind):
    """x_{i+1} = a x + alpha Q (u + lam D) + sigma S u = a x + b (u + lam (alpha Q / b) D)."""
    den, solver, x = mixture(kind)
    lam = 0.6
    g = sample_measured(CFGPlusPlus(gamma1=lam), den, x, solver).guidance
    for i in range(solver.num_steps):
        w = solver.alpha_next[i] * solver.Q[i] / solver.coefficients(i)[1]
        close(g.gamma_par[:, i], lam * w, MIX)
    close(g.rho, 0.0, MIX)


@pytest.mark.parametrize("kind", ["ddim_eps", "flow"])
def test_seg_perturbed_branch_appears_as_orthogonal_part(kind):
    den, solver, x = mixture(kind, steps=8)
    g1, s = 3.0, 2.0
    out, states = anchors(SEG(gamma1=g1, seg_scale=s), den, x, solver)
    for i, xi in enumerate(states):
        u, c, p = den(xi * solver.c_in[i], solver.timesteps[i], ("uncond", "cond", "perturbed"))
        D, E = c - u, c - p
        dd = (D * D).sum(1)
        par = (E * D).sum(1) / dd
        rho = s * (E - par[:, None] * D).norm(dim=1) / dd.sqrt()
        close(out.guidance.gamma_par[:, i], g1 + s * par, MIX)
        close(out.guidance.rho[:, i], rho, MIX)
    assert float(out.guidance.rho.nan_to_num(0).max()) > 1e-3


@dataclass(kw_only=True, eq=False)
class IntervalCFG(Sampler):
    """The README's plugin example, as a user writes it: nothing about measuring."""

    name = "interval_cfg"
    start: float = setting(0.0)
    end: float = setting(1.0)

    def expected_nfe(self, num_steps: int) -> int:
        return 2 * num_steps

    def sample(self, denoiser, x, solver, callback=None) -> SamplerOutput:
        net = Network(denoiser, solver)
        for i in range(solver.num_steps):
            u, c = net(x, i)
            guided = self.start <= i / solver.num_steps < self.end
            x = solver.step(x, guide(u, c, self.gamma1) if guided else c, i)
        return SamplerOutput(x, net.nfe)


def test_a_plugin_sampler_is_measured_without_writing_anything():
    den, solver, x = mixture("ddim_v", steps=10)
    g = sample_measured(IntervalCFG(gamma1=6.0, start=0.2, end=0.6), den, x, solver).guidance
    expected = torch.tensor([1.0, 1.0, 6.0, 6.0, 6.0, 6.0, 1.0, 1.0, 1.0, 1.0], dtype=torch.float64)
    close(g.gamma_par, expected.expand(len(PROMPTS), -1), MIX)
    close(g.rho, 0.0, MIX)
    assert g.source_labels() == ["exact"] * len(PROMPTS)
    # the mean runs over the steps where gamma_par is defined
    close(g.mean_gamma(), torch.stack([expected[~torch.isnan(row)].mean() for row in g.gamma_par]), MIX)


def test_a_sampler_that_bypasses_the_network_wrapper_is_unmeasured_not_wrong():
    class Direct(IntervalCFG):
        name = "direct"

        def sample(self, denoiser, x, solver, callback=None):
            for i in range(solver.num_steps):
                u, c = denoiser(x * solver.c_in[i], solver.timesteps[i], ("uncond", "cond"))
                x = solver.step(x, guide(u, c, self.gamma1), i)
            return SamplerOutput(x, 2 * solver.num_steps)

    den, solver, x = mixture("flow", steps=4)
    g = sample_measured(Direct(), den, x, solver).guidance
    assert torch.isnan(g.gamma_par).all() and g.source_labels() == [None] * len(PROMPTS)
    assert torch.isnan(g.mean_gamma()).all()


def test_a_step_out_of_order_leaves_the_rest_unmeasured():
    class Backwards(IntervalCFG):
        name = "backwards"

        def sample(self, denoiser, x, solver, callback=None):
            net = Network(denoiser, solver)
            for i in (0, 2, 1):
                x = solver.step(x, guide(*net(x, i), self.gamma1), i)
            return SamplerOutput(x, net.nfe)

    den, solver, x = mixture("flow", steps=3)
    g = sample_measured(Backwards(gamma1=2.0), den, x, solver).guidance
    close(g.gamma_par[:, 0], 2.0, MIX)
    assert torch.isnan(g.gamma_par[:, 1:]).all()

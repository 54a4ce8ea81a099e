"""Samplers: the identities of ALGORITHMS.md section 4, NFE accounting, memory, diagnostics, bad input."""

import gc
import math
import warnings

import pytest
import torch
from diffusers import DDIMInverseScheduler, DDIMScheduler, EulerDiscreteScheduler, FlowMatchEulerDiscreteScheduler

from analytic import GaussianMixtureDenoiser, LinearFieldDenoiser, flow_levels, vp_levels
from samplers import (SAMPLERS, SEG, CFGPlusPlus, ImplicitZigzag, Standard, Zeta, Zigzag, build_sampler, flow_solver,
                      guide, solver_from_scheduler)

SD = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
DDIM_SDXL = dict(SD, clip_sample=False, set_alpha_to_one=False, steps_offset=1, timestep_spacing="leading")
MEANS = torch.tensor([[2.0, 0.0, 0.0, 1.0], [-2.0, 0.0, 1.0, 0.0], [0.0, 2.0, -1.0, 0.0], [0.0, -2.0, 0.0, -1.0]])
PROMPTS = [0, 1, 2, 3, 1, 0]


def setup(kind="ddim_eps", steps=12, prompts=PROMPTS):
    """(denoiser, solver, x_T) for one of the scheduler families, float64."""
    if kind.startswith("ddim"):
        pred = {"ddim_eps": "epsilon", "ddim_v": "v_prediction"}[kind]
        sched = DDIMScheduler(**DDIM_SDXL, prediction_type=pred)
        levels = vp_levels(sched.alphas_cumprod.tolist())
    elif kind == "euler_eps":
        sched = EulerDiscreteScheduler(**SD, prediction_type="epsilon")
        levels, pred = vp_levels(sched.alphas_cumprod.tolist()), "epsilon"
    elif kind == "flow":
        sched, levels, pred = FlowMatchEulerDiscreteScheduler(shift=1.0), flow_levels(), "flow"
    else:
        raise ValueError(kind)
    solver = solver_from_scheduler(sched, steps)
    den = GaussianMixtureDenoiser(MEANS, [0.3, 0.5, 0.4, 0.3], prompts, levels, pred)
    x = torch.randn(len(prompts), 4, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    return den, solver, x * solver.init_noise_sigma


KINDS = ["ddim_eps", "ddim_v", "euler_eps", "flow"]


# ------------------------------------------------------------------------------------------- zeta == standard
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("variant", [dict(warmup_steps=12), dict(warmup_steps=40), dict(gamma2=5.5),
                                     dict(surrogate_scale=0.0), dict(gamma2=5.5, rescale_surrogate=True)])
def test_zeta_equals_standard_bit_for_bit(kind, variant):
    den, solver, x = setup(kind)
    ref = Standard(gamma1=5.5).sample(den, x, solver).latents
    out = Zeta(gamma1=5.5, **variant).sample(den, x, solver).latents
    assert torch.equal(out, ref)


def test_zeta_differs_from_standard_when_active():
    den, solver, x = setup("ddim_eps")
    ref = Standard(gamma1=5.5).sample(den, x, solver).latents
    out = Zeta(gamma1=5.5, warmup_steps=2).sample(den, x, solver).latents
    assert (out - ref).abs().max() > 1e-3


def test_zeta_window_and_warmup_are_where_the_shift_happens():
    den, solver, x = setup("ddim_eps", steps=12)
    diag = Zeta(warmup_steps=3).sample(den, x, solver).diagnostics
    active = diag["zigzag"][0].tolist()
    assert active == [0, 0, 0] + [1] * 8 + [0]  # [tau, T-1)
    diag = Zeta(warmup_steps=2, window_start=4, window_end=7).sample(den, x, solver).diagnostics
    assert diag["zigzag"][0].tolist() == [0] * 4 + [1] * 3 + [0] * 5
    # the free diagnostics exist from the first refresh on (NaN only where a guidance difference is exactly 0,
    # which happens late in sampling when the mixture's posterior collapses onto the prompted component)
    cos = diag["cache_cos"]
    assert torch.isnan(cos[:, 0]).all()
    assert torch.isfinite(cos[:, 1:9]).all() and (cos[:, 1:].nan_to_num(0).abs() <= 1 + 1e-12).all()


def test_zeta_surrogate_is_the_previous_calls_raw_difference():
    """Replay zeta by hand with the definitions of ALGORITHMS.md and compare."""
    den, solver, x = setup("ddim_v", steps=10)
    g1, g2, tau = 4.0, 0.5, 2
    out = Zeta(gamma1=g1, gamma2=g2, warmup_steps=tau).sample(den, x, solver).latents
    cache, xi = None, x
    for i in range(10):
        a, b = solver.coefficients(i)
        xh = xi + (b / a) * (g1 - g2) * cache if (cache is not None and tau <= i < 9) else xi
        u, c = den(xh * solver.c_in[i], solver.timesteps[i], ("uncond", "cond"))
        xi = a * xh + b * (u + g1 * (c - u))
        cache = c - u
    torch.testing.assert_close(out, xi, rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------------------- Theorem 1
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("gamma2", [0.0, 1.5])
def test_implicit_zigzag_equals_zigzag_with_anchor_outputs(kind, gamma2):
    den, solver, x = setup(kind)
    implicit = ImplicitZigzag(gamma1=5.5, gamma2=gamma2).sample(den, x, solver).latents
    explicit = Zigzag(gamma1=5.5, gamma2=gamma2, zag_evaluation="anchor").sample(den, x, solver).latents
    torch.testing.assert_close(implicit, explicit, rtol=0, atol=1e-10)
    # evaluating the zag at y (the real Z-Sampling) is a different, nearby trajectory
    real = Zigzag(gamma1=5.5, gamma2=gamma2).sample(den, x, solver).latents
    assert (real - implicit).abs().max() > 1e-8


def test_backward_error_identity_on_a_linear_field():
    """a = 1, b = h: the implicit step is x + h[v_u + (2g1-g2) dv] + h^2 (g1-g2) J_g1 dv, exactly."""
    field = LinearFieldDenoiser(dim=5)
    g1, g2 = 3.0, 0.7
    for h in (0.1, 0.013):
        solver = flow_solver([0.9, 0.9 - h], [900.0])  # one step, b = sigma_next - sigma = -h
        b = solver.coefficients(0)[1]
        x = torch.randn(4, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
        out = ImplicitZigzag(gamma1=g1, gamma2=g2, lambda_steps=1).sample(field, x, solver).latents
        vu, vc = field.field(x, "uncond"), field.field(x, "cond")
        dv = vc - vu
        J = field.A_u + g1 * (field.A_c - field.A_u)
        expected = x + b * (vu + (2 * g1 - g2) * dv) + b * b * (g1 - g2) * dv @ J.T
        torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)


def test_explicit_and_implicit_zigzag_differ_at_second_order():
    """Explicit Z differs from implicit Z by O(h^2) per step: halving h quarters the difference."""
    den, _, x = setup("flow", steps=2)
    diffs = []
    for h in (0.02, 0.01, 0.005):
        solver = flow_solver([0.5, 0.5 - h], [500.0])
        implicit = ImplicitZigzag(gamma1=3.0, lambda_steps=1).sample(den, x, solver).latents
        explicit = Zigzag(gamma1=3.0, lambda_steps=1).sample(den, x, solver).latents
        diffs.append((implicit - explicit).abs().max().item())
    assert 3.0 < diffs[0] / diffs[1] < 5.0 and 3.0 < diffs[1] / diffs[2] < 5.0


# ------------------------------------------------------------------------------------------- NFE
class CountingDenoiser:
    """Counts network evaluations per sample independently of the samplers' own counter."""

    def __init__(self, inner):
        self.inner, self.rows, self.batch = inner, 0, None

    def __call__(self, x, t, branches):
        self.batch = x.shape[0]
        self.rows += x.shape[0] * len(branches)
        return self.inner(x, t, branches)


@pytest.mark.parametrize("T,lam", [(12, None), (12, 5), (50, None), (50, 49)])
def test_nfe_formulas(T, lam):
    den, solver, x = setup("ddim_eps", steps=T)
    lam_eff = T - 1 if lam is None else lam
    cases = [
        (Standard(), 2 * T),
        (Zigzag(lambda_steps=lam), 2 * T + 3 * lam_eff),  # gamma2 = 0: uncond-only zag
        (Zigzag(gamma2=1.0, lambda_steps=lam), 2 * T + 3 * lam_eff),  # gamma2 = 1: cond-only zag
        (Zigzag(gamma2=0.5, lambda_steps=lam), 2 * T + 4 * lam_eff),
        (Zigzag(lambda_steps=lam, official_compat=True), 2 * T + 4 * lam_eff),
        (Zigzag(lambda_steps=lam, rounds=2), 2 * T + 6 * lam_eff),
        (ImplicitZigzag(lambda_steps=lam), 2 * T + 2 * lam_eff),
        (Zeta(), 2 * T),
        (Zeta(adaptive_warmup=True), 2 * T),
        (CFGPlusPlus(), 2 * T),
        (SEG(), 3 * T),
    ]
    for sampler, expected in cases:
        counter = CountingDenoiser(den)
        out = sampler.sample(counter, x, solver)
        per_sample = counter.rows // counter.batch
        assert per_sample == expected == out.nfe == sampler.expected_nfe(T), sampler
    if T == 50 and lam is None:
        assert Zigzag(official_compat=True).expected_nfe(50) == 296  # the official code's cost


def test_zeta_probe_costs_two_nfe_per_window_step_and_changes_nothing():
    den, solver, x = setup("ddim_eps", steps=12)
    plain = Zeta(warmup_steps=3).sample(den, x, solver)
    probed = Zeta(warmup_steps=3, probe=True).sample(den, x, solver)
    assert torch.equal(plain.latents, probed.latents)
    assert probed.nfe == 2 * 12 + 2 * 8 == Zeta(warmup_steps=3, probe=True).expected_nfe(12)
    err = probed.diagnostics["probe_rel_err"]
    assert torch.isnan(err[:, :3]).all() and torch.isnan(err[:, 11]).all()
    assert torch.isfinite(err[:, 3:8]).all() and (err[:, 3:8] > 0).all()


# ------------------------------------------------------------------------------------------- memory
def _live_latents(shape, exclude):
    with warnings.catch_warnings():  # isinstance() on some torch module objects warns about deprecations
        warnings.simplefilter("ignore")
        return sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor) and o.shape == shape
                   and not any(o is e for e in exclude))


def test_zeta_holds_exactly_one_latent_sized_buffer_more_than_standard():
    den, solver, x = setup("ddim_eps", steps=10)
    x = x.reshape(6, 2, 2)  # a shape no test helper uses
    counts = {}

    class Probe:
        def __init__(self):
            self.seen = []

        def __call__(self, x_in, t, branches):
            if t == solver.timesteps[6]:  # inside the zeta window
                gc.collect()
                self.seen.append(_live_latents(x.shape, [x, x_in]))
            flat = den(x_in.reshape(6, 4), t, branches)
            return tuple(f.reshape(x_in.shape) for f in flat)

    for sampler in (Standard(), Zeta(warmup_steps=2)):
        probe = Probe()
        sampler.sample(probe, x, solver)
        counts[sampler.name] = probe.seen[-1]
    assert counts["zeta"] - counts["standard"] == 1, counts


# ------------------------------------------------------------------------------------------- other samplers
@pytest.mark.parametrize("kind", ["ddim_eps", "ddim_v", "flow"])
def test_cfgpp_against_its_definition(kind):
    den, solver, x = setup(kind, steps=8)
    lam = 0.6
    out = CFGPlusPlus(gamma1=lam).sample(den, x, solver).latents
    xi = x
    labels = list(solver.timesteps)
    for i in range(8):
        t = labels[i]
        u, c = den(xi, t, ("uncond", "cond"))
        m = u + lam * (c - u)
        if kind == "flow":  # x = (1 - s) x0 + s eps, v = eps - x0, labels are 1000 s
            s, s_next = t / 1000, (labels[i + 1] / 1000 if i < 7 else 0.0)
            x0, eps = xi - s * m, xi + (1 - s) * u
            xi = (1 - s_next) * x0 + s_next * eps
        else:  # the levels of the labels; the last step lands on abar[0] (set_alpha_to_one=False)
            abar_t = den.levels(t)[0] ** 2
            abar_s = den.levels(labels[i + 1] if i < 7 else 0)[0] ** 2
            if kind == "ddim_eps":
                x0, eps = (xi - math.sqrt(1 - abar_t) * m) / math.sqrt(abar_t), u
            else:
                x0 = math.sqrt(abar_t) * xi - math.sqrt(1 - abar_t) * m
                eps = math.sqrt(abar_t) * u + math.sqrt(1 - abar_t) * xi
            xi = math.sqrt(abar_s) * x0 + math.sqrt(1 - abar_s) * eps
    torch.testing.assert_close(out, xi, rtol=0, atol=1e-6)  # the scheduler's sigmas are float32


def test_cfgpp_at_full_strength_is_not_cfg_at_one():
    den, solver, x = setup("ddim_eps", steps=8)
    assert not torch.allclose(CFGPlusPlus(gamma1=1.0).sample(den, x, solver).latents,
                              Standard(gamma1=1.0).sample(den, x, solver).latents, atol=1e-6)


def test_seg_reduces_to_standard_when_the_perturbation_does_nothing():
    den, solver, x = setup("ddim_eps", steps=8)
    den.perturb_factor = 1.0  # perturbed == cond
    seg = SEG(gamma1=4.0, seg_scale=3.0).sample(den, x, solver).latents
    torch.testing.assert_close(seg, Standard(gamma1=4.0).sample(den, x, solver).latents, rtol=0, atol=1e-12)
    den.perturb_factor = 2.0
    assert (SEG(gamma1=4.0).sample(den, x, solver).latents - Standard(gamma1=4.0).sample(den, x, solver).latents).abs().max() > 1e-4
    assert SEG(blur_sigma=float("inf")).perturbation == {"kind": "seg", "blur_sigma": float("inf"), "layers": None}


# ------------------------------------------------------------------------------------------- official compat
def test_zigzag_official_compat_reproduces_the_public_loop():
    """The public Z-Sampling loop, written with diffusers' own schedulers, against zigzag(official_compat)."""
    T = 10
    sched = DDIMScheduler(**DDIM_SDXL, prediction_type="epsilon")
    den, solver, x = setup("ddim_eps", steps=T)
    inv = DDIMInverseScheduler(**DDIM_SDXL, prediction_type="epsilon")
    sched.set_timesteps(T)
    inv.set_timesteps(T)
    g1, g2, lam = 5.5, 0.0, T - 1
    latents = x.clone()
    for i, t in enumerate(sched.timesteps):
        u, c = den(latents, t, ("uncond", "cond"))
        nxt = sched.step(guide(u, c, g1), t, latents).prev_sample
        if i < lam:
            u, c = den(nxt, t, ("uncond", "cond"))
            latents = inv.step(guide(u, c, g2), sched.timesteps[i + 1], nxt).prev_sample
            u, c = den(latents, t, ("uncond", "cond"))
            nxt = sched.step(guide(u, c, g1), t, latents).prev_sample
        latents = nxt
    out = Zigzag(gamma1=g1, gamma2=g2, official_compat=True).sample(den, x, solver).latents
    torch.testing.assert_close(out, latents.double(), rtol=0, atol=1e-5)


def test_zag_timestep_next_uses_the_next_label():
    den, solver, x = setup("ddim_eps", steps=6)
    counter = GaussianMixtureDenoiser(MEANS, [0.3] * 4, PROMPTS, den.levels)
    Zigzag(zag_timestep="next").sample(counter, x, solver)
    zag_labels = [t for t, branches, _ in counter.calls if branches == ("uncond",)]
    assert zag_labels == [solver.timesteps[i + 1] for i in range(5)]


# ------------------------------------------------------------------------------------------- adaptive, batch
def test_adaptive_warmup_starts_per_sample_and_is_batch_independent():
    den, solver, x = setup("ddim_eps", steps=16)
    sampler = Zeta(warmup_steps=2, adaptive_warmup=True, adaptive_threshold=0.999, max_warmup_steps=10)
    full = sampler.sample(den, x, solver)
    starts = [int(row.nonzero()[0]) for row in full.diagnostics["zigzag"]]
    assert all(2 <= s <= 10 for s in starts)
    cos = full.diagnostics["cache_cos"]
    for b, s in enumerate(starts):  # the start is the step after the first cosine at/above the threshold
        hits = [i for i in range(1, 16) if cos[b, i] >= 0.999 and i + 1 >= 2]
        assert s == min([hits[0] + 1] if hits else [10], default=10) or s == 10
    for b in range(x.shape[0]):
        single = GaussianMixtureDenoiser(MEANS, [0.3, 0.5, 0.4, 0.3], [PROMPTS[b]], den.levels, "epsilon")
        alone = sampler.sample(single, x[b:b + 1], solver).latents
        torch.testing.assert_close(alone, full.latents[b:b + 1], rtol=0, atol=1e-12)


def test_rescale_surrogate_is_a_no_op_for_epsilon_and_not_for_v():
    for kind, same in (("ddim_eps", True), ("ddim_v", False)):
        den, solver, x = setup(kind)
        a = Zeta(warmup_steps=2).sample(den, x, solver).latents
        b = Zeta(warmup_steps=2, rescale_surrogate=True).sample(den, x, solver).latents
        assert torch.equal(a, b) == same


# ------------------------------------------------------------------------------------------- quality
def test_sampling_quality_on_the_analytic_mixture(capsys):
    """With exact scores: CFG at gamma=1 samples the prompted component; the zigzag family behaves to first order
    like CFG at gamma_eff = 2 g1 - g2 (closer to it than to CFG at g1). The rest is printed."""
    n = 400
    prompts = [k % 4 for k in range(n)]
    _, solver, _ = setup("ddim_eps", steps=50)
    means = 0.4 * MEANS.double()  # overlapping components, so that guidance matters
    den = GaussianMixtureDenoiser(means, [0.3, 0.5, 0.4, 0.3], prompts,
                                  vp_levels(DDIMScheduler(**DDIM_SDXL).alphas_cumprod.tolist()))
    x = torch.randn(n, 4, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    target = means[torch.tensor(prompts)]

    def stats(latents):
        d = torch.cdist(latents, means)
        mass = (d.argmin(1) == torch.tensor(prompts)).double().mean().item()
        return mass, (latents - target).norm(dim=1).mean().item()

    base = Standard(gamma1=1.0).sample(den, x, solver).latents
    comp = base - target
    stds = torch.tensor([0.3, 0.5, 0.4, 0.3], dtype=torch.float64)[torch.tensor(prompts)]
    assert comp.mean(0).abs().max() < 0.06  # unbiased
    ratio = (comp.pow(2).sum(1) / (4 * stds ** 2)).mean().sqrt().item()
    assert 0.85 < ratio < 1.15  # the prompted component's spread
    g1 = 2.0
    samplers = {"standard g=1": Standard(gamma1=1.0), "standard g1": Standard(gamma1=g1), "standard g_eff": Standard(gamma1=2 * g1),
                "zigzag": Zigzag(gamma1=g1), "implicit_zigzag": ImplicitZigzag(gamma1=g1),
                "zeta": Zeta(gamma1=g1, warmup_steps=3), "cfgpp": CFGPlusPlus(gamma1=0.6)}
    outs = {k: s.sample(den, x, solver).latents for k, s in samplers.items()}
    for name in ("zigzag", "implicit_zigzag", "zeta"):
        to_eff = (outs[name] - outs["standard g_eff"]).norm(dim=1).mean()
        to_g1 = (outs[name] - outs["standard g1"]).norm(dim=1).mean()
        assert to_eff < to_g1, name
    with capsys.disabled():
        print("\nsampler            prompted-mass  mean-dist-to-prompted-mean")
        for k, v in outs.items():
            mass, dist = stats(v)
            print(f"{k:18s} {mass:13.3f}  {dist:.3f}")


# ------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("make,match", [
    (lambda: build_sampler("zigzg"), "unknown sampler 'zigzg'; known samplers: cfgpp, implicit_zigzag"),
    (lambda: Standard(gamma1=-1), "gamma1 must be a finite number >= 0"),
    (lambda: Standard(gamma1=float("nan")), "gamma1"),
    (lambda: Zigzag(gamma2=float("nan")), "gamma2"),
    (lambda: Zeta(warmup_steps=0), "warmup_steps must be an integer >= 1, got 0"),
    (lambda: Zigzag(rounds=0), "rounds"),
    (lambda: Zigzag(zag_timestep="t_i"), "zag_timestep"),
    (lambda: Zigzag(official_compat=True, zag_evaluation="anchor"), "official_compat"),
    (lambda: CFGPlusPlus(gamma1=1.5), r"\[0, 1\]"),
    (lambda: SEG(blur_sigma=0), "blur_sigma"),
    (lambda: Zeta(max_warmup_steps=5), "only applies with adaptive_warmup"),
    (lambda: Zeta(adaptive_threshold=2.0), "adaptive_threshold"),
])
def test_bad_parameters_are_refused_at_construction(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("sampler,match", [
    (Zigzag(lambda_steps=10), r"lambda_steps must be in \[0, 9\]"),
    (ImplicitZigzag(lambda_steps=12), "lambda_steps"),
    (Zeta(warmup_steps=10, window_end=10), r"warmup_steps \(10\) >= steps \(10\)"),
    (Zeta(warmup_steps=2, window_start=5, window_end=12), r"0 <= start < end <= 10"),
    (Zeta(warmup_steps=3, window_start=2), r"window_start \(2\) must be >= warmup_steps"),
    (Zeta(warmup_steps=2, window_start=6, window_end=4), "start < end"),
])
def test_bad_windows_are_refused_at_validation(sampler, match):
    with pytest.raises(ValueError, match=match):
        sampler.validate(10)


def test_official_compat_needs_a_ddim_solver():
    _, solver, _ = setup("euler_eps")
    with pytest.raises(ValueError, match="needs a DDIM scheduler"):
        Zigzag(official_compat=True).check_solver(solver)


def test_registry_and_gamma_eff():
    assert set(SAMPLERS) == {"standard", "zigzag", "implicit_zigzag", "zeta", "cfgpp", "seg"}
    assert build_sampler("zeta", gamma1=5.5).gamma_eff == 11.0
    assert build_sampler("zigzag", gamma1=5.5, gamma2=1.0).gamma_eff == 10.0
    assert Standard(gamma1=5.5).gamma_eff == 5.5


# ------------------------------------------------------------------------------------------- what actually ran
@pytest.mark.parametrize("sampler,steps,match", [
    (Zigzag(lambda_steps=0), 10, "lambda_steps 0 leaves no zigzag step"),
    (ImplicitZigzag(lambda_steps=0), 10, "lambda_steps 0 leaves no zigzag step"),
    (Zigzag(), 1, "no zigzag step"),  # the default λ = T - 1 = 0
    (Zeta(warmup_steps=9), 10, r"window \[9, 9\) .* no zigzag step"),  # default window [τ, T-1) is empty
    (Zeta(warmup_steps=12), 10, "no zigzag step"),
    (Zeta(), 4, r"window \[3, 3\) .* no zigzag step"),  # only the default τ = 3 leaves none at 4 steps
    (Zeta(warmup_steps=2, adaptive_warmup=True), 3, "no zigzag step"),
])
def test_settings_that_leave_no_zigzag_step_are_refused(sampler, steps, match):
    """Such a setting is plain CFG at γ1; run as zigzag/zeta its rows would say γ_eff = 2γ1 - γ2."""
    with pytest.raises(ValueError, match=match):
        sampler.validate(steps)


def test_outputs_report_the_zigzag_steps_actually_applied():
    den, solver, x = setup("ddim_eps", steps=10)
    assert Zigzag().sample(den, x, solver).zigzag_steps.tolist() == [9] * len(PROMPTS)
    assert ImplicitZigzag(lambda_steps=4).sample(den, x, solver).zigzag_steps.tolist() == [4] * len(PROMPTS)
    assert Zeta(warmup_steps=3).sample(den, x, solver).zigzag_steps.tolist() == [6] * len(PROMPTS)  # [3, 9)
    assert Zeta(warmup_steps=3, window_end=5).sample(den, x, solver).zigzag_steps.tolist() == [2] * len(PROMPTS)
    # adaptive warm-up whose threshold is never reached and no latest start: nothing zigzagged, per sample
    never = Zeta(warmup_steps=2, adaptive_warmup=True, adaptive_threshold=1.0).sample(den, x, solver)
    assert never.zigzag_steps.tolist() == [0] * len(PROMPTS)
    assert Standard().sample(den, x, solver).zigzag_steps is None


def test_gamma_eff_follows_the_surrogate_scale():
    """ζ's shift is (b/a)(γ1 - γ2)·s·C: to first order CFG at γ1 + s(γ1 - γ2) (s = 0 is plain CFG at γ1)."""
    assert Zeta(gamma1=5.5).gamma_eff == 11.0
    assert Zeta(gamma1=5.5, surrogate_scale=0.0).gamma_eff == 5.5
    assert Zeta(gamma1=4.0, gamma2=1.0, surrogate_scale=0.5).gamma_eff == 5.5


def test_step_settings_scale_to_fewer_steps_and_stay_valid():
    """`model.max_steps` (the smoke overlay) scales each sampler's step-counted settings from T to T'."""
    cases = [
        (Zeta(warmup_steps=10), 50, 10, dict(warmup_steps=2, window_start=None, window_end=None)),
        (Zeta(warmup_steps=20), 50, 10, dict(warmup_steps=4)),
        (Zeta(warmup_steps=3, window_end=8), 50, 10, dict(warmup_steps=1, window_end=2)),
        (Zeta(warmup_steps=3, window_start=5, window_end=13), 50, 10, dict(warmup_steps=1, window_start=1,
                                                                            window_end=3)),
        (Zeta(warmup_steps=3, adaptive_warmup=True, max_warmup_steps=20), 50, 10, dict(warmup_steps=1,
                                                                                        max_warmup_steps=4)),
        (Zigzag(lambda_steps=49), 50, 10, dict(lambda_steps=9)),
        (Zigzag(lambda_steps=5), 50, 10, dict(lambda_steps=1)),
        (ImplicitZigzag(lambda_steps=1), 50, 10, dict(lambda_steps=1)),  # never scaled down to 0
        (Standard(steps=124), 50, 10, dict(steps=25)),
    ]
    for sampler, old, new, expected in cases:
        sampler.scale_steps(old, new)
        for name, value in expected.items():
            assert getattr(sampler, name) == value, (sampler, name)
        sampler.validate(sampler.num_steps(new))


def test_every_sampler_has_plain_json_parameters():
    """Parameters are hashed into sample ids as plain JSON: an infinite SEG blur must not break that."""
    import json

    for sampler in (Standard(), Zigzag(gamma2=0.5, lambda_steps=3), ImplicitZigzag(), CFGPlusPlus(),
                    Zeta(adaptive_warmup=True, surrogate_scale=0.5, rescale_surrogate=True),
                    SEG(blur_sigma=float("inf")), SEG(blur_sigma=10.0, layers=["mid_block"])):
        json.dumps(sampler.params(), allow_nan=False)
    assert SEG(blur_sigma=float("inf")).params()["blur_sigma"] == "inf"

"""Solvers: (a, b) against one diffusers scheduler.step, exact inverses, closed forms, schedules, AYS."""

import copy
import math

import pytest
import torch
from diffusers import (CogVideoXDDIMScheduler, DDIMInverseScheduler, DDIMScheduler, DPMSolverMultistepScheduler,
                       EulerDiscreteScheduler, FlowMatchEulerDiscreteScheduler)

from samplers import ays_sigmas, ddim_solver, loglinear_interpolate, solver_from_scheduler
from samplers.schedules import AYS_PUBLISHED, published_ays

SD = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000)
DDIM_SDXL = dict(SD, clip_sample=False, set_alpha_to_one=False, steps_offset=1, timestep_spacing="leading")


def scheduler_cases():
    cases = []
    for pred in ("epsilon", "v_prediction", "sample"):
        for spacing in ("leading", "trailing", "linspace"):
            cases.append((DDIMScheduler, dict(DDIM_SDXL, prediction_type=pred, timestep_spacing=spacing)))
    for pred in ("epsilon", "v_prediction"):
        for spacing in ("leading", "trailing", "linspace"):
            cases.append((EulerDiscreteScheduler, dict(SD, prediction_type=pred, timestep_spacing=spacing, steps_offset=1)))
    cases.append((EulerDiscreteScheduler, dict(SD, prediction_type="epsilon", use_karras_sigmas=True)))
    cases.append((FlowMatchEulerDiscreteScheduler, dict(shift=1.0)))
    cases.append((FlowMatchEulerDiscreteScheduler, dict(shift=3.0)))
    # CogVideoX-2b: v-prediction, zero terminal SNR, SNR shift, trailing spacing
    cases.append((CogVideoXDDIMScheduler, dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                                               prediction_type="v_prediction", rescale_betas_zero_snr=True,
                                               snr_shift_scale=3.0, timestep_spacing="trailing", set_alpha_to_one=True,
                                               clip_sample=False)))
    return cases


@pytest.mark.parametrize("cls,config", scheduler_cases(), ids=lambda v: v.__name__ if isinstance(v, type) else
                         ",".join(f"{k}={v[k]}" for k in ("prediction_type", "timestep_spacing", "shift", "use_karras_sigmas") if k in v))
@pytest.mark.parametrize("steps", [7, 25])
def test_coefficients_match_one_scheduler_step(cls, config, steps):
    scheduler = cls(**config)
    solver = solver_from_scheduler(scheduler, steps)
    reference = cls(**config)
    reference.set_timesteps(steps)
    assert len(solver.timesteps) == len(reference.timesteps) == steps
    torch.testing.assert_close(torch.tensor(solver.timesteps, dtype=torch.float64), reference.timesteps.double(), rtol=0, atol=1e-4)
    g = torch.Generator().manual_seed(0)
    for i, t in enumerate(reference.timesteps):
        x = torch.randn(3, 4, 5, generator=g, dtype=torch.float64)
        m = torch.randn(3, 4, 5, generator=g, dtype=torch.float64)
        if hasattr(reference, "_step_index"):
            reference._step_index = i  # one call per timestep, on the right index
        expected = reference.step(m, t, x).prev_sample.double()
        got = solver.step(x, m, i)
        assert (got - expected).abs().max().item() < 1e-6, f"step {i} (t={float(t)})"
        # Euler's model input scaling must match scale_model_input
        if cls is EulerDiscreteScheduler:
            ref_in = copy.deepcopy(reference)
            ref_in._step_index = i
            torch.testing.assert_close(x * solver.c_in[i], ref_in.scale_model_input(x, t).double(), rtol=1e-6, atol=1e-7)
    if cls is EulerDiscreteScheduler:
        assert solver.init_noise_sigma == pytest.approx(float(reference.init_noise_sigma), rel=1e-6)


def test_building_a_solver_leaves_the_scheduler_untouched():
    scheduler = EulerDiscreteScheduler(**SD)
    scheduler.set_timesteps(13)
    before = scheduler.timesteps.clone(), scheduler.sigmas.clone(), scheduler.step_index
    solver_from_scheduler(scheduler, 30)
    assert torch.equal(scheduler.timesteps, before[0]) and torch.equal(scheduler.sigmas, before[1])
    assert scheduler.step_index == before[2] and scheduler.num_inference_steps == 13


def test_ddim_closed_forms_match_the_research_notes():
    """Independent numbers from design/research/zsampling.md section 3 (SDXL noise table, t=501 -> s=481)."""
    abar = DDIMScheduler(**DDIM_SDXL).alphas_cumprod.double().tolist()
    eps = ddim_solver(abar, [501, 481], "epsilon", abar[0], prev_timesteps=[481, -1])
    a, b = eps.coefficients(0)
    assert a == pytest.approx(1.04846, abs=5e-5) and b == pytest.approx(-0.05744, abs=5e-5)
    assert eps.shift_coefficient(0) == pytest.approx(-0.05479, abs=5e-5)
    v = ddim_solver(abar, [501, 481], "v_prediction", abar[0], prev_timesteps=[481, -1])
    a, b = v.coefficients(0)
    assert a == pytest.approx(0.99955, abs=5e-5) and b == pytest.approx(-0.03012, abs=5e-5)
    # v-prediction DDIM is a rotation by Delta = arccos sqrt(abar_t) - arccos sqrt(abar_s): a = cos, b = -sin
    delta = math.acos(math.sqrt(abar[501])) - math.acos(math.sqrt(abar[481]))
    assert a == pytest.approx(math.cos(delta), abs=1e-12) and b == pytest.approx(-math.sin(delta), abs=1e-12)


def test_euler_v_prediction_closed_form():
    scheduler = EulerDiscreteScheduler(**SD, prediction_type="v_prediction")
    solver = solver_from_scheduler(scheduler, 10)
    ref = copy.deepcopy(scheduler)
    ref.set_timesteps(10)
    sig = ref.sigmas.double().tolist()
    for i in range(10):
        dt = sig[i + 1] - sig[i]
        a, b = solver.coefficients(i)
        assert a == pytest.approx(1 + dt * sig[i] / (sig[i] ** 2 + 1), rel=1e-12)
        assert b == pytest.approx(dt / math.sqrt(sig[i] ** 2 + 1), rel=1e-12)


@pytest.mark.parametrize("cls,config", scheduler_cases()[::3], ids=lambda v: v.__name__ if isinstance(v, type) else "")
def test_inverse_round_trips(cls, config):
    solver = solver_from_scheduler(cls(**config), 12)
    g = torch.Generator().manual_seed(1)
    for i in range(12):
        x = torch.randn(2, 8, generator=g, dtype=torch.float64)
        m = torch.randn(2, 8, generator=g, dtype=torch.float64)
        torch.testing.assert_close(solver.invert(solver.step(x, m, i), m, i), x, rtol=0, atol=1e-12)


@pytest.mark.parametrize("pred", ["epsilon", "v_prediction"])
def test_official_inverse_matches_diffusers_ddim_inverse_scheduler(pred):
    """Z-Sampling's zag is DDIMInverseScheduler.step(m, timesteps[i+1], y); reproduce it exactly."""
    config = dict(DDIM_SDXL, prediction_type=pred)
    solver = solver_from_scheduler(DDIMScheduler(**config), 50)
    inverse = DDIMInverseScheduler(**config)
    inverse.set_timesteps(50)
    g = torch.Generator().manual_seed(2)
    for i in (0, 10, 47, 48):
        y = torch.randn(2, 4, 3, generator=g, dtype=torch.float64)
        m = torch.randn(2, 4, 3, generator=g, dtype=torch.float64)
        expected = inverse.step(m, int(solver.timesteps[i + 1]), y).prev_sample.double()
        torch.testing.assert_close(solver.official_inverse(y, m, i), expected, rtol=0, atol=1e-6)
    # and it is NOT the exact inverse of interval i (the documented quirk), most visibly at the last steps
    y = torch.randn(2, 4, 3, generator=g, dtype=torch.float64)
    m = torch.randn(2, 4, 3, generator=g, dtype=torch.float64)
    assert (solver.official_inverse(y, m, 48) - solver.invert(y, m, 48)).abs().max() > 1e-2


def test_ays_tables_are_the_ones_diffusers_ships():
    from diffusers.schedulers import AysSchedules

    keys = {"sd": ("StableDiffusionTimesteps", "StableDiffusionSigmas"),
            "sdxl": ("StableDiffusionXLTimesteps", "StableDiffusionXLSigmas"), "svd": (None, "StableDiffusionVideoSigmas")}
    assert set(keys) == set(AYS_PUBLISHED)
    for family, (t_key, s_key) in keys.items():
        timesteps, sigmas = published_ays(family)
        assert timesteps == (None if t_key is None else [int(t) for t in AysSchedules[t_key]])
        assert sigmas == [float(s) for s in AysSchedules[s_key]]


def test_ays_ten_steps_reproduce_the_published_schedules():
    ts, sig = published_ays("sdxl")
    ddim = solver_from_scheduler(DDIMScheduler(**DDIM_SDXL), 10, "ays:sdxl")
    assert [int(t) for t in ddim.timesteps] == ts
    euler = solver_from_scheduler(EulerDiscreteScheduler(**SD), 10, "ays:sdxl")
    # Euler's sigmas are the published ones: b_i = sigma_{i+1} - sigma_i for epsilon
    for i in range(10):
        assert euler.coefficients(i)[1] == pytest.approx(sig[i + 1] - sig[i], rel=1e-5, abs=1e-5)


@pytest.mark.parametrize("steps", [5, 20, 50])
def test_ays_interpolation_is_loglinear_and_keeps_the_endpoints(steps):
    _, published = published_ays("sd")
    sig = ays_sigmas("sd", steps)
    assert len(sig) == steps + 1 and sig[-1] == 0.0
    assert sig[0] == pytest.approx(published[0]) and sig[-2] == pytest.approx(published[-2])
    assert all(a > b for a, b in zip(sig, sig[1:]))
    # midpoint of the log grid: exactly between the two published neighbours in log space
    mid = loglinear_interpolate([8.0, 2.0], 3)[1]
    assert mid == pytest.approx(4.0)


def test_ddim_runs_on_ays_timesteps_with_the_ddim_formula():
    """diffusers' DDIMScheduler refuses custom timesteps; the solver takes them and steps t_i -> t_{i+1}."""
    scheduler = DDIMScheduler(**DDIM_SDXL)
    solver = solver_from_scheduler(scheduler, 20, "ays:sdxl")
    abar = scheduler.alphas_cumprod.double()
    for i in range(19):
        t, s = int(solver.timesteps[i]), int(solver.timesteps[i + 1])
        a, b = solver.coefficients(i)
        assert a == pytest.approx(math.sqrt(abar[s] / abar[t]), rel=1e-12)
        assert b == pytest.approx(math.sqrt(1 - abar[s]) - math.sqrt(abar[s] / abar[t]) * math.sqrt(1 - abar[t]), rel=1e-9)
    assert solver.coefficients(19)[0] == pytest.approx(math.sqrt(float(abar[0]) / float(abar[int(solver.timesteps[19])])))


def test_spacing_override_and_explicit_timesteps():
    scheduler = DDIMScheduler(**DDIM_SDXL)
    assert solver_from_scheduler(scheduler, 10, "trailing").timesteps[0] == 999.0
    assert solver_from_scheduler(scheduler, 10).timesteps[0] == 901.0  # leading + steps_offset
    custom = solver_from_scheduler(scheduler, 3, [900, 500, 100])
    assert custom.timesteps == (900.0, 500.0, 100.0) and custom.schedule_name == "custom"


@pytest.mark.parametrize("bad,match", [
    ([500, 900], "strictly decreasing"),
    ([1500, 10], r"\[0, 1000\)"),
    ("ays", "needs a model family"),
    ("ays:sd3", "unknown AYS family"),
    ("cosine", "unknown schedule"),
])
def test_bad_schedules_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        solver_from_scheduler(DDIMScheduler(**DDIM_SDXL), 2, bad)


def test_unsupported_schedulers_and_settings_are_refused():
    with pytest.raises(ValueError, match="DPMSolverMultistepScheduler is not supported"):
        solver_from_scheduler(DPMSolverMultistepScheduler(**SD), 10)
    with pytest.raises(ValueError, match="clip_sample"):
        solver_from_scheduler(DDIMScheduler(**dict(DDIM_SDXL, clip_sample=True)), 10)
    with pytest.raises(ValueError, match="Euler solver supports"):
        solver_from_scheduler(EulerDiscreteScheduler(**SD, prediction_type="sample"), 10)
    with pytest.raises(ValueError, match="num_steps"):
        solver_from_scheduler(DDIMScheduler(**DDIM_SDXL), 0)
    with pytest.raises(ValueError, match="flow-matching"):
        solver_from_scheduler(FlowMatchEulerDiscreteScheduler(), 10, "ays:sdxl")

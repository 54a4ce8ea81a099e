"""Flow-matching transformer adapters (sd3, flux, wan) on tiny random-weight pipelines: parity with each diffusers
pipeline's own ``__call__`` (batch 2, several steps, guidance > 1; FLUX.1-dev in its true-CFG form, and schnell),
the pipelines' latent draws, the solver's (a, b) against ``scheduler.step`` for the shifted schedules (dynamic
shifting included), every sampler in float32 / bfloat16 / float16, NFE counts, SEG refused, and Wan's MP4 output."""

from __future__ import annotations

import copy
import json

import pytest
import torch

import samplers
from tiny_models import TinyZoo, run_adapter, run_pipeline
from zeta_eval import media
from zeta_eval.adapters import build_adapter
from zeta_eval.adapters.flux import FluxAdapter

FAMILIES = ["sd3", "flux", "flux_schnell", "wan"]
STEPS = 4
GUIDANCE = 4.0
PROMPTS = ["a red cat", "a blue car on the table", "a photo of a tree"]
SEEDS = [11, 22, 33]
#: decoded media shape of one sample
MEDIA = {"sd3": (3, 16, 16), "flux": (3, 16, 16), "flux_schnell": (3, 16, 16), "wan": (5, 3, 32, 32)}
HUB = {"sd3": "stabilityai/stable-diffusion-3.5-medium", "flux": "black-forest-labs/FLUX.1-dev",
       "wan": "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"}


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> TinyZoo:
    return TinyZoo(tmp_path_factory.mktemp("tiny_flow"))


def all_samplers() -> list[samplers.Sampler]:
    return [samplers.Standard(gamma1=GUIDANCE), samplers.Zigzag(gamma1=GUIDANCE),
            samplers.ImplicitZigzag(gamma1=GUIDANCE), samplers.Zeta(gamma1=GUIDANCE, warmup_steps=1),
            samplers.Zeta(gamma1=GUIDANCE, warmup_steps=1, rescale_surrogate=True), samplers.CFGPlusPlus(gamma1=0.6)]


def reference_latents(family, adapter, out):
    """The pipeline's output_type="latent" in the adapter's layout (FLUX returns packed tokens)."""
    if family.startswith("flux"):
        _, h, w = adapter.latent_shape()
        return FluxAdapter.unpack(out, h, w)
    return out


# ---------------------------------------------------------------------------------------------- parity
@pytest.mark.parametrize("family", FAMILIES)
def test_standard_matches_the_diffusers_pipeline(zoo, family):
    adapter = zoo.adapter(family)
    prompts, seeds = PROMPTS[:2], SEEDS[:2]
    latents, media_out, out = run_adapter(adapter, samplers.Standard(gamma1=GUIDANCE), prompts, seeds, STEPS)
    ref_latents = reference_latents(family, adapter, run_pipeline(zoo, family, adapter, prompts, seeds, STEPS,
                                                                  GUIDANCE, output_type="latent"))
    ref_media = run_pipeline(zoo, family, adapter, prompts, seeds, STEPS, GUIDANCE)
    assert out.nfe == 2 * STEPS
    assert media_out.shape == ref_media.shape == (2, *MEDIA[family])
    assert latents.shape == ref_latents.shape
    assert (latents - ref_latents).abs().max().item() <= 1e-4
    assert (media_out - ref_media).abs().max().item() <= 1e-4
    # not vacuous: the output varies over the image, with the seed and with the guidance
    assert media_out.std().item() > 1e-3
    _, other_seed, _ = run_adapter(adapter, samplers.Standard(gamma1=GUIDANCE), prompts, [5, 6], STEPS)
    _, other_gamma, _ = run_adapter(adapter, samplers.Standard(gamma1=1.5), prompts, seeds, STEPS)
    assert (other_seed - media_out).abs().max().item() > 1e-3
    assert (other_gamma - media_out).abs().max().item() > 1e-4


def test_sd3_without_t5_matches_the_pipeline_without_t5(zoo):
    adapter = zoo.adapter("sd3", t5=False)
    assert adapter.pipe.text_encoder_3 is None and adapter.describe()["t5"] is False
    cond = adapter.encode(["a red cat"])
    t5_part = cond.cond["encoder_hidden_states"][:, 77:]  # the pipeline's zero T5 tokens after the 77 CLIP tokens
    assert t5_part.shape[1] == 32 and not t5_part.any()
    _, image, _ = run_adapter(adapter, samplers.Standard(gamma1=GUIDANCE), PROMPTS[:2], SEEDS[:2], STEPS)
    import diffusers

    pipe = diffusers.StableDiffusion3Pipeline.from_pretrained(zoo.folder("sd3"), text_encoder_3=None, tokenizer_3=None)
    pipe.set_progress_bar_config(disable=True)
    ref = pipe(PROMPTS[:2], num_inference_steps=STEPS, guidance_scale=GUIDANCE, output_type="pt",
               generator=[torch.Generator().manual_seed(s) for s in SEEDS[:2]], max_sequence_length=32).images
    assert (image - ref).abs().max().item() <= 1e-4
    _, with_t5, _ = run_adapter(zoo.adapter("sd3"), samplers.Standard(gamma1=GUIDANCE), PROMPTS[:2], SEEDS[:2], STEPS)
    assert (with_t5 - image).abs().max().item() > 1e-4


@pytest.mark.parametrize("family", ["sd3", "flux", "wan"])
def test_parity_with_a_negative_prompt(zoo, family):
    adapter = zoo.adapter(family, negative_prompt="blurry dog")
    _, out, _ = run_adapter(adapter, samplers.Standard(gamma1=GUIDANCE), ["a red cat"], [3], STEPS)
    ref = run_pipeline(zoo, family, adapter, "a red cat", 3, STEPS, GUIDANCE, negative_prompt="blurry dog")
    assert (out - ref).abs().max().item() <= 1e-4
    _, empty, _ = run_adapter(zoo.adapter(family), samplers.Standard(gamma1=GUIDANCE), ["a red cat"], [3], STEPS)
    assert (empty - out).abs().max().item() > 1e-4


def test_flux_distilled_guidance_is_a_model_input_not_cfg(zoo):
    """FLUX.1-dev: the distilled guidance enters both branches of every evaluation; CFG comes only from γ1."""
    default = zoo.adapter("flux")
    assert default.guidance_value == 3.5 and default.describe()["distilled_guidance"] == 3.5
    one = zoo.adapter("flux", distilled_guidance=1.0)
    _, a, _ = run_adapter(default, samplers.Standard(gamma1=GUIDANCE), ["a red cat"], [3], STEPS)
    _, b, _ = run_adapter(one, samplers.Standard(gamma1=GUIDANCE), ["a red cat"], [3], STEPS)
    assert (a - b).abs().max().item() > 1e-4
    ref = run_pipeline(zoo, "flux", one, "a red cat", 3, STEPS, GUIDANCE)  # guidance_scale=1.0, true_cfg_scale=4
    assert (b - ref).abs().max().item() <= 1e-4
    seen = []
    handle = one.pipe.transformer.register_forward_pre_hook(lambda m, args, kw: seen.append(kw["guidance"]),
                                                           with_kwargs=True)
    try:
        cond = one.encode(["a cat"])
        one.denoiser(cond)(torch.randn(1, *one.latent_shape()), 900.0, ("uncond", "cond"))
    finally:
        handle.remove()
    assert len(seen) == 1 and torch.equal(seen[0], torch.ones(2))  # one batched call, the same input for both rows
    # the uncond branch is the pipeline's encoding of the empty negative prompt (true CFG), not zeros
    assert cond.uncond["encoder_hidden_states"].abs().sum() > 0
    empty = one.encode([""]).cond
    assert torch.allclose(cond.uncond["encoder_hidden_states"], empty["encoder_hidden_states"])
    assert torch.allclose(cond.uncond["pooled_projections"], empty["pooled_projections"])


def test_flux_schnell_has_no_guidance_input(zoo):
    schnell = zoo.adapter("flux_schnell")
    assert schnell.guidance_value is None and schnell.describe()["distilled_guidance"] is None
    bad = build_adapter("flux", model=zoo.folder("flux_schnell"), dtype="float32", distilled_guidance=3.5)
    with pytest.raises(ValueError, match="no guidance embedding"):
        bad.load("cpu")


def test_flux_packing_and_position_ids_are_the_pipelines(zoo):
    adapter = zoo.adapter("flux")
    pipe = adapter.pipe
    x = torch.randn(2, *adapter.latent_shape(), generator=torch.Generator().manual_seed(0))
    c, h, w = x.shape[1:]
    packed = FluxAdapter.pack(x)
    assert torch.equal(packed, pipe._pack_latents(x, 2, c, h, w))
    assert torch.equal(FluxAdapter.unpack(packed, h, w), x)
    assert torch.equal(pipe._unpack_latents(packed, *adapter.resolution, pipe.vae_scale_factor), x)
    assert torch.equal(adapter.image_ids(h, w, torch.float32),
                       pipe._prepare_latent_image_ids(2, h // 2, w // 2, "cpu", torch.float32))
    assert adapter.image_seq_len() == packed.shape[1] == 16


# ---------------------------------------------------------------------------------------------- latents and solvers
@pytest.mark.parametrize("family", FAMILIES)
def test_initial_latents_are_the_pipelines_draw_per_seed(zoo, family):
    adapter = zoo.adapter(family)
    solver = adapter.solver(STEPS)
    x = adapter.initial_latents(SEEDS, solver)
    pipe = zoo.pipeline(family)
    h, w = adapter.resolution
    for row, seed in enumerate(SEEDS):
        g = torch.Generator("cpu").manual_seed(seed)
        if family == "wan":
            ref = pipe.prepare_latents(1, adapter.latent_shape()[0], h, w, adapter.frames, torch.float32, "cpu", g)
        elif family.startswith("flux"):
            c = adapter.latent_shape()[0]
            packed, _ = pipe.prepare_latents(1, c, h, w, torch.float32, "cpu", g)
            ref = FluxAdapter.unpack(packed, *adapter.latent_shape()[1:])
        else:
            ref = pipe.prepare_latents(1, adapter.latent_shape()[0], h, w, torch.float32, "cpu", g)
        assert torch.equal(x[row : row + 1], ref)
    assert torch.equal(adapter.initial_latents(SEEDS[1:2], solver), x[1:2])


def pipeline_schedule(family: str, adapter, steps: int):
    """The scheduler as the pipeline's __call__ sets it up (its own sigmas and mu)."""
    sched = copy.deepcopy(adapter.scheduler)
    if family.startswith("flux"):
        import numpy as np
        from diffusers.pipelines.flux.pipeline_flux import calculate_shift

        cfg = sched.config
        mu = calculate_shift(adapter.image_seq_len(), cfg.get("base_image_seq_len", 256),
                             cfg.get("max_image_seq_len", 4096), cfg.get("base_shift", 0.5), cfg.get("max_shift", 1.15))
        sched.set_timesteps(steps, sigmas=np.linspace(1.0, 1 / steps, steps), mu=mu)
    else:
        sched.set_timesteps(steps)
    return sched


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("steps", [1, 4, 13])
def test_solver_coefficients_equal_scheduler_step(zoo, family, steps):
    """(a, b) of every step reproduce FlowMatchEulerDiscreteScheduler.step on the pipeline's shifted schedule."""
    adapter = zoo.adapter(family)
    solver = adapter.solver(steps)
    sched = pipeline_schedule(family, adapter, steps)
    assert solver.kind == "flow" and solver.num_steps == steps
    assert torch.equal(torch.tensor(solver.timesteps, dtype=torch.float32), sched.timesteps)
    g = torch.Generator().manual_seed(steps)
    x = torch.randn(2, *adapter.latent_shape(), generator=g)
    for i, t in enumerate(sched.timesteps):
        m = torch.randn(x.shape, generator=g)
        ref = sched.step(m, t, x, return_dict=False)[0]
        assert (solver.step(x, m, i) - ref).abs().max().item() <= 1e-6
        assert (solver.invert(solver.step(x, m, i), m, i) - x).abs().max().item() <= 1e-5
        x = ref
    a, b = solver.coefficients(0)
    assert a == pytest.approx(1.0) and b == pytest.approx(float(sched.sigmas[1] - sched.sigmas[0]))


def test_the_schedules_are_shifted_as_shipped(zoo):
    sd3 = zoo.adapter("sd3").solver(10)
    # SD 3.5: shift 3 keeps the first steps at high noise, sigma = 3 s / (1 + 2 s) of a linear ramp s from 1 to the
    # (shifted) smallest training sigma
    shifted = lambda s: 3 * s / (1 + 2 * s)  # noqa: E731
    s = 1 + (shifted(0.001) - 1) / 9
    assert sd3.timesteps[1] / 1000 == pytest.approx(shifted(s), abs=1e-6)
    assert sd3.timesteps[1] / 1000 > 1 - 1 / 9 + 0.02
    wan = zoo.adapter("wan")
    assert wan.scheduler.config.shift == 3.0  # UniPC's flow_shift carried over
    assert "UniPCMultistepScheduler -> FlowMatchEulerDiscreteScheduler with shift 3" in wan.describe()["scheduler_note"]
    # FLUX.1-dev: dynamic shift, mu from the token count; schnell: unshifted linear sigmas
    dev, schnell = zoo.adapter("flux"), zoo.adapter("flux_schnell")
    mu = dev.dynamic_shift()
    assert mu == pytest.approx(0.5 + (1.15 - 0.5) / (4096 - 256) * (16 - 256))
    t = dev.solver(4).timesteps
    import math

    expected = [1000 * math.exp(mu) / (math.exp(mu) + (1 / s - 1)) for s in (1.0, 0.75, 0.5, 0.25)]
    assert list(t) == pytest.approx(expected, abs=1e-3)
    assert list(schnell.solver(4).timesteps) == pytest.approx([1000, 750, 500, 250], abs=1e-3)
    big = build_adapter("flux", model=zoo.folder("flux"), dtype="float32", height=64, width=64,
                        max_sequence_length=32)
    big.load("cpu")
    assert big.image_seq_len() == 256 and big.dynamic_shift() == pytest.approx(0.5)
    assert big.describe()["scheduler_mu"] == pytest.approx(0.5)


def test_a_stochastic_flow_scheduler_is_refused(zoo, tmp_path):
    from diffusers import FlowMatchEulerDiscreteScheduler

    adapter = build_adapter("sd3", model=zoo.folder("sd3"), dtype="float32")
    with pytest.raises(ValueError, match="stochastic_sampling"):
        adapter._first_order_scheduler(FlowMatchEulerDiscreteScheduler(stochastic_sampling=True))
    with pytest.raises(ValueError, match="stochastic_sampling"):
        samplers.solver_from_scheduler(FlowMatchEulerDiscreteScheduler(stochastic_sampling=True), 4)


# ---------------------------------------------------------------------------------------------- samplers
@pytest.mark.parametrize("family", FAMILIES)
def test_every_sampler_runs_with_the_right_nfe(zoo, family):
    adapter = zoo.adapter(family)
    results = {}
    for sampler in all_samplers():
        adapter.check_sampler(sampler)
        latents, out_media, out = run_adapter(adapter, sampler, PROMPTS[:2], SEEDS[:2], STEPS)
        assert out.nfe == sampler.expected_nfe(STEPS), sampler.name
        assert latents.shape == (2, *adapter.latent_shape()) and latents.dtype == torch.float32
        assert out_media.shape == (2, *MEDIA[family]) and torch.isfinite(out_media).all(), sampler.name
        assert 0.0 <= out_media.min().item() and out_media.max().item() <= 1.0
        results[sampler.display_name()] = out_media
    standard = results.pop(samplers.Standard(gamma1=GUIDANCE).display_name())
    for name, out_media in results.items():
        assert (out_media - standard).abs().max().item() > 1e-5, name


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_every_sampler_is_finite_in_reduced_precision(zoo, family, dtype):
    """The GPU path's dtypes on CPU: the whole pipeline cast to bf16 / fp16; latents stay float32 in the sampler."""
    adapter = build_adapter(family.split("_")[0], model=zoo.folder(family), dtype="float32",
                            **{k: v for k, v in __import__("tiny_models").ADAPTER_OPTIONS[family].items()})
    adapter.load("cpu")
    adapter.pipe.to(dtype)
    ref = zoo.adapter(family)
    x = torch.randn(1, *adapter.latent_shape(), generator=torch.Generator().manual_seed(0))
    u, c = adapter.denoiser(adapter.encode(["a red cat"]))(x, 700.0, ("uncond", "cond"))
    u_ref, c_ref = ref.denoiser(ref.encode(["a red cat"]))(x, 700.0, ("uncond", "cond"))
    assert u.dtype == c.dtype == torch.float32
    assert (c - c_ref).abs().max().item() < 0.05 * c_ref.abs().max().item()
    for sampler in all_samplers():
        latents, out_media, out = run_adapter(adapter, sampler, PROMPTS[:2], SEEDS[:2], STEPS)
        assert out.nfe == sampler.expected_nfe(STEPS)
        assert latents.dtype == torch.float32 and torch.isfinite(latents).all(), sampler.name
        assert out_media.dtype == torch.float32 and torch.isfinite(out_media).all(), sampler.name


@pytest.mark.parametrize("family", ["sd3", "flux", "wan"])
def test_batch_of_three_equals_three_batches_of_one(zoo, family):
    adapter = zoo.adapter(family)
    sampler = samplers.Zeta(gamma1=GUIDANCE, warmup_steps=1)
    _, batch, _ = run_adapter(adapter, sampler, PROMPTS, SEEDS, STEPS)
    singles = torch.cat([run_adapter(adapter, sampler, [p], [s], STEPS)[1] for p, s in zip(PROMPTS, SEEDS)])
    assert (batch - singles).abs().max().item() <= 1e-5


@pytest.mark.parametrize("family", ["sd3", "flux", "wan"])
def test_seg_and_ays_are_refused_in_one_line(family, zoo):
    adapter = build_adapter(family, model=HUB[family])
    with pytest.raises(ValueError, match="perturbed branch, which the .* adapter does not provide") as err:
        adapter.check_sampler(samplers.SEG())
    assert "\n" not in str(err.value)
    adapter.check_sampler(samplers.Zeta(rescale_surrogate=True))
    with pytest.raises(ValueError, match="AYS"):
        zoo.adapter(family).solver(10, "ays")


# ---------------------------------------------------------------------------------------------- options, provenance
def test_options_are_checked_at_config_time():
    with pytest.raises(ValueError, match="max_sequence_length"):
        build_adapter("sd3", model=HUB["sd3"], max_sequence_length=600)
    with pytest.raises(ValueError, match="t5"):
        build_adapter("sd3", model=HUB["sd3"], t5="no")
    with pytest.raises(ValueError, match="distilled_guidance"):
        build_adapter("flux", model=HUB["flux"], distilled_guidance=-1)
    with pytest.raises(ValueError, match="multiple of 16"):
        build_adapter("flux", model=HUB["flux"], height=1000)
    with pytest.raises(ValueError, match="scheduler"):
        build_adapter("wan", model=HUB["wan"], scheduler="ddim")
    with pytest.raises(ValueError, match="attention_slicing"):
        build_adapter("wan", model=HUB["wan"], attention_slicing=True)
    build_adapter("wan", model=HUB["wan"], scheduler="flow", num_frames=33)


def test_wan_frames_and_describe(zoo):
    adapter = zoo.adapter("wan")
    info = adapter.describe()
    json.dumps(info)
    assert info["scheduler"] == "FlowMatchEulerDiscreteScheduler" and info["scheduler_config"]["shift"] == 3.0
    assert info["num_frames"] == 5 and info["fps"] == 16 and info["max_sequence_length"] == 16
    assert adapter.latent_shape() == (4, 2, 4, 4) and adapter.latent_draw_dtype() == torch.float32
    bad = build_adapter("wan", model=zoo.folder("wan"), dtype="float32", num_frames=6, height=32, width=32)
    with pytest.raises(ValueError, match="4k \\+ 1"):
        bad.load("cpu")


def test_describe_records_the_flow_schedule(zoo):
    for family in ("sd3", "flux", "flux_schnell"):
        info = zoo.adapter(family).describe()
        json.dumps(info)
        assert info["scheduler"] == "FlowMatchEulerDiscreteScheduler" and info["scheduler_note"] is None
        assert "shift" in info["scheduler_config"] and "use_dynamic_shifting" in info["scheduler_config"]
        assert (info["height"], info["width"]) == (16, 16)
    assert zoo.adapter("flux").describe()["scheduler_config"]["use_dynamic_shifting"] is True
    assert "scheduler_mu" not in zoo.adapter("sd3").describe()
    # options that change the outputs change the identity
    assert zoo.adapter("sd3").describe() != zoo.adapter("sd3", t5=False).describe()
    assert zoo.adapter("flux").describe() != zoo.adapter("flux", distilled_guidance=1.0).describe()


def test_prompt_truncation_is_flagged_per_encoder(zoo):
    long = " ".join(["q"] * 25)  # 51 T5 tokens (> 32), 27 CLIP tokens (< 77) with the tiny tokenizers
    for family in ("sd3", "flux", "wan"):
        assert zoo.adapter(family).prompt_truncated(["a cat", long]) == [False, True], family
    assert zoo.adapter("sd3", t5=False).prompt_truncated([long]) == [False]


def test_nan_latents_decode_without_crashing(zoo):
    for family in ("sd3", "flux", "wan"):
        adapter = zoo.adapter(family)
        out = adapter.decode(torch.full((1, *adapter.latent_shape()), float("nan")))
        assert out.shape == (1, *MEDIA[family]) and not torch.isfinite(out).all()


def test_wan_video_writes_a_readable_mp4_and_strip(zoo, tmp_path):
    adapter = zoo.adapter("wan")
    _, video, _ = run_adapter(adapter, samplers.Standard(gamma1=GUIDANCE), ["a cat"], [1], STEPS)
    path = media.save_video(video[0], tmp_path / "wan.mp4", fps=adapter.fps)
    assert media.read_video(path).shape == video[0].shape
    strip = media.read_image(media.save_frame_strip(video[0], tmp_path / "wan.png", max_frames=3, gap=2))
    assert strip.shape == (3, 32, 3 * 32 + 2 * 2)


@pytest.mark.parametrize("schedule", ["leading", "trailing", "linspace", [900, 600, 300, 100]])
def test_schedule_overrides_are_refused_for_flow_models(zoo, schedule):
    """A spacing override means nothing to the flow-matching scheduler (it has no timestep_spacing): it must be
    refused, not silently run the default schedule under another name."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    with pytest.raises(ValueError, match="flow-matching"):
        samplers.solver_from_scheduler(FlowMatchEulerDiscreteScheduler(shift=3.0), 4, schedule)
    with pytest.raises(ValueError, match="flow-matching"):
        zoo.adapter("sd3").solver(4, schedule)

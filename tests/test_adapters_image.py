"""Image adapters (sd, sdxl, hunyuan_dit) on tiny random-weight pipelines: parity with the diffusers pipelines,
initial latents, every sampler, batch independence, SEG, overrides, memory options and provenance."""

from __future__ import annotations

import json

import pytest
import torch

import samplers
from tiny_models import TinyZoo, build_sdxl_unet, build_vae, run_adapter, run_pipeline
from zeta_eval.adapters import build_adapter
from zeta_eval.adapters.base import ModelLoadError
from zeta_eval.identity import folder_digest

IMAGE_FAMILIES = ["sd", "sdxl", "hunyuan_dit"]
SEG_FAMILIES = ["sd", "sdxl"]
STEPS = 4
PROMPTS = ["a red cat", "a blue car on the table", "a photo of a tree"]
SEEDS = [11, 22, 33]
#: output (height, width) of the tiny models
IMAGE_SIZE = {"sd": (16, 16), "sdxl": (16, 16), "hunyuan_dit": (64, 64)}


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> TinyZoo:
    return TinyZoo(tmp_path_factory.mktemp("tiny_image"))


def all_samplers(seg: bool) -> list[samplers.Sampler]:
    out = [samplers.Standard(gamma1=5.0), samplers.Zigzag(gamma1=5.0), samplers.ImplicitZigzag(gamma1=5.0),
           samplers.Zeta(gamma1=5.0, warmup_steps=1), samplers.CFGPlusPlus(gamma1=0.6)]
    if seg:
        out.append(samplers.SEG(gamma1=5.0, seg_scale=3.0, blur_sigma=2.0))
    return out


# ---------------------------------------------------------------------------------------------- parity
@pytest.mark.parametrize("family", IMAGE_FAMILIES)
def test_standard_matches_the_diffusers_pipeline(zoo, family):
    adapter = zoo.adapter(family)
    latents, image, _ = run_adapter(adapter, samplers.Standard(gamma1=5.0), ["a red cat"], [7], STEPS)
    ref_latents = run_pipeline(zoo, family, adapter, "a red cat", 7, STEPS, 5.0, output_type="latent")
    ref_image = run_pipeline(zoo, family, adapter, "a red cat", 7, STEPS, 5.0)
    assert image.shape == ref_image.shape == (1, 3, *IMAGE_SIZE[family])
    assert (latents - ref_latents).abs().max().item() <= 1e-4
    assert (image - ref_image).abs().max().item() <= 1e-4
    # the comparison is not vacuous: the output varies over the image and with the seed and the guidance
    assert image.std().item() > 1e-3
    _, other_seed, _ = run_adapter(adapter, samplers.Standard(gamma1=5.0), ["a red cat"], [8], STEPS)
    _, other_gamma, _ = run_adapter(adapter, samplers.Standard(gamma1=1.5), ["a red cat"], [7], STEPS)
    assert (other_seed - image).abs().max().item() > 1e-3
    assert (other_gamma - image).abs().max().item() > 1e-4


def test_sdxl_parity_with_a_negative_prompt(zoo):
    adapter = zoo.adapter("sdxl", negative_prompt="blurry dog")
    _, image, _ = run_adapter(adapter, samplers.Standard(gamma1=5.0), ["a red cat"], [3], STEPS)
    ref = run_pipeline(zoo, "sdxl", adapter, "a red cat", 3, STEPS, 5.0, negative_prompt="blurry dog")
    assert (image - ref).abs().max().item() <= 1e-4
    _, zeros_uncond, _ = run_adapter(zoo.adapter("sdxl"), samplers.Standard(gamma1=5.0), ["a red cat"], [3], STEPS)
    assert (zeros_uncond - image).abs().max().item() > 1e-4


@pytest.mark.parametrize("family", IMAGE_FAMILIES)
def test_initial_latents_are_the_pipelines_draw_per_seed(zoo, family):
    adapter = zoo.adapter(family)
    solver = adapter.solver(STEPS)
    x = adapter.initial_latents(SEEDS, solver)
    pipe = zoo.pipeline(family)
    pipe.scheduler = type(adapter.scheduler).from_config(adapter.scheduler.config)
    pipe.scheduler.set_timesteps(STEPS)  # Euler's init_noise_sigma depends on the timesteps
    h, w = adapter.resolution
    channels = adapter.latent_shape()[0]
    for row, seed in enumerate(SEEDS):
        ref = pipe.prepare_latents(1, channels, h, w, torch.float32, "cpu", torch.Generator("cpu").manual_seed(seed))
        assert torch.equal(x[row : row + 1], ref)
    # a sample's noise does not depend on the rest of its batch
    assert torch.equal(adapter.initial_latents(SEEDS[1:2], solver), x[1:2])


# ---------------------------------------------------------------------------------------------- samplers
@pytest.mark.parametrize("family", IMAGE_FAMILIES)
def test_every_sampler_runs(zoo, family):
    adapter = zoo.adapter(family)
    results = {}
    for sampler in all_samplers(seg=family in SEG_FAMILIES):
        adapter.check_sampler(sampler)
        latents, image, out = run_adapter(adapter, sampler, PROMPTS[:2], SEEDS[:2], STEPS)
        assert out.nfe == sampler.expected_nfe(STEPS), sampler.name
        assert latents.shape == (2, *adapter.latent_shape()) and latents.dtype == torch.float32
        assert image.shape == (2, 3, *IMAGE_SIZE[family]) and torch.isfinite(image).all(), sampler.name
        assert 0.0 <= image.min().item() and image.max().item() <= 1.0
        results[sampler.name] = image
    # the samplers really differ from plain CFG on these models
    for name, image in results.items():
        if name != "standard":
            assert (image - results["standard"]).abs().max().item() > 1e-5, name


@pytest.mark.parametrize("family", IMAGE_FAMILIES)
def test_batch_of_three_equals_three_batches_of_one(zoo, family):
    adapter = zoo.adapter(family)
    sampler = samplers.Zeta(gamma1=5.0, warmup_steps=1)
    _, batch, _ = run_adapter(adapter, sampler, PROMPTS, SEEDS, STEPS)
    singles = torch.cat([run_adapter(adapter, sampler, [p], [s], STEPS)[1] for p, s in zip(PROMPTS, SEEDS)])
    assert (batch - singles).abs().max().item() <= 1e-5


# ---------------------------------------------------------------------------------------------- the denoiser
def test_denoiser_makes_one_batched_network_call_per_evaluation(zoo):
    adapter = zoo.adapter("sdxl")
    cond = adapter.encode(PROMPTS[:2])
    x = torch.randn(2, *adapter.latent_shape())
    batches = []
    handle = adapter.pipe.unet.register_forward_hook(lambda m, args, out: batches.append(args[0].shape[0]))
    try:
        u, c = adapter.denoiser(cond)(x, 500.0, ("uncond", "cond"))
        (only_u,) = adapter.denoiser(cond)(x, 500.0, ("uncond",))
    finally:
        handle.remove()
    assert batches == [4, 2]
    assert torch.allclose(only_u, u, atol=1e-6)
    assert (u - c).abs().max().item() > 1e-4


def test_denoiser_returns_the_input_dtype_and_rejects_bad_requests(zoo):
    adapter = zoo.adapter("sd")
    cond = adapter.encode(["a cat"])
    den = adapter.denoiser(cond)
    x = torch.randn(1, *adapter.latent_shape(), dtype=torch.float64)
    out = den(x, 801.0, ("cond",))
    assert out[0].dtype == torch.float64 and out[0].shape == x.shape
    with pytest.raises(ValueError, match="unknown branch"):
        den(x, 801.0, ("negative",))
    with pytest.raises(ValueError, match="perturbation"):
        den(x, 801.0, ("cond", "perturbed"))
    with pytest.raises(ValueError, match="batch"):
        den(torch.randn(2, *adapter.latent_shape()), 801.0, ("cond",))
    with pytest.raises(ValueError, match="prompt"):
        adapter.encode("a cat")


def test_sdxl_uncond_branch_is_zeros_without_a_negative_prompt(zoo):
    adapter = zoo.adapter("sdxl")
    cond = adapter.encode(["a red cat"])
    assert not cond.uncond["encoder_hidden_states"].any() and not cond.uncond["text_embeds"].any()
    assert cond.cond["encoder_hidden_states"].abs().sum() > 0
    h, w = adapter.resolution
    expected = torch.tensor([[h, w, 0, 0, h, w]], dtype=torch.float32)
    assert torch.equal(cond.uncond["time_ids"], expected) and torch.equal(cond.cond["time_ids"], expected)
    neg = zoo.adapter("sdxl", negative_prompt="blurry dog").encode(["a red cat"])
    assert neg.uncond["encoder_hidden_states"].abs().sum() > 0 and neg.uncond["text_embeds"].abs().sum() > 0


def test_sd_and_hunyuan_uncond_branch_is_the_empty_prompt(zoo):
    sd = zoo.adapter("sd")
    empty = sd.encode([""]).cond["encoder_hidden_states"]
    assert torch.allclose(sd.encode(["a red cat"]).uncond["encoder_hidden_states"], empty)
    hy = zoo.adapter("hunyuan_dit")
    cond = hy.encode(["a red cat"])
    ref = hy.encode([""]).cond
    for key in ("encoder_hidden_states", "encoder_hidden_states_t5", "text_embedding_mask", "text_embedding_mask_t5"):
        assert torch.allclose(cond.uncond[key].float(), ref[key].float()), key
    assert cond.cond["encoder_hidden_states_t5"].shape[1] == 256 and cond.cond["encoder_hidden_states"].shape[1] == 77


# ---------------------------------------------------------------------------------------------- SEG
@pytest.mark.parametrize("family", SEG_FAMILIES)
def test_seg_perturbed_branch(zoo, family):
    adapter = zoo.adapter(family)
    cond = adapter.encode(PROMPTS[:2])
    x = torch.randn(2, *adapter.latent_shape(), generator=torch.Generator().manual_seed(0))
    t = 601.0
    u0, c0 = adapter.denoiser(cond)(x, t, ("uncond", "cond"))
    # the same batch shape without any perturbation: the reference for bitwise comparisons
    u1, c1, c1b = adapter.denoiser(cond)(x, t, ("uncond", "cond", "cond"))
    # blur off (tiny sigma: a one-tap kernel): perturbed == cond, bit for bit
    u, c, p = adapter.denoiser(cond, {"kind": "seg", "blur_sigma": 1e-3, "layers": None})(x, t, ("uncond", "cond", "perturbed"))
    assert torch.equal(p, c) and torch.equal(p, c1b)
    # blur on: perturbed differs, and the other branches are untouched (bit for bit in the same batch shape;
    # to float tolerance against a 2-branch call, wherever the perturbed block sits)
    for sigma in (2.0, float("inf")):
        den = adapter.denoiser(cond, {"kind": "seg", "blur_sigma": sigma, "layers": None})
        u, c, p = den(x, t, ("uncond", "cond", "perturbed"))
        assert (p - c).abs().max().item() > 1e-4
        assert torch.equal(u, u1) and torch.equal(c, c1)
        assert torch.allclose(u, u0, atol=1e-6) and torch.allclose(c, c0, atol=1e-6)
        p2, u2, c2 = den(x, t, ("perturbed", "uncond", "cond"))
        assert torch.allclose(p2, p, atol=1e-6) and torch.allclose(u2, u0, atol=1e-6) and torch.allclose(c2, c0, atol=1e-6)
    # the hooks live for one call only
    assert all(not m.to_q._forward_hooks for n, m in adapter.pipe.unet.named_modules() if n.endswith("attn1"))
    u3, c3 = adapter.denoiser(cond)(x, t, ("uncond", "cond"))
    assert torch.equal(u3, u0) and torch.equal(c3, c0)


def test_seg_layers(zoo):
    adapter = zoo.adapter("sd")
    cond = adapter.encode(["a cat"])
    x = torch.randn(1, *adapter.latent_shape(), generator=torch.Generator().manual_seed(1))
    branches = ("cond", "perturbed")
    _, mid = adapter.denoiser(cond, {"kind": "seg", "blur_sigma": 3.0, "layers": ["mid"]})(x, 501.0, branches)
    _, default = adapter.denoiser(cond, {"kind": "seg", "blur_sigma": 3.0, "layers": None})(x, 501.0, branches)
    _, up = adapter.denoiser(cond, {"kind": "seg", "blur_sigma": 3.0, "layers": ["up_blocks.0"]})(x, 501.0, branches)
    assert torch.equal(mid, default)
    assert (up - mid).abs().max().item() > 1e-5
    with pytest.raises(ValueError, match="matches no self-attention"):
        adapter.denoiser(cond, {"kind": "seg", "blur_sigma": 3.0, "layers": ["decoder.7"]})


def test_seg_runs_with_attention_slicing(zoo):
    plain = zoo.adapter("sd")
    sliced = zoo.adapter("sd", attention_slicing=True)
    seg = samplers.SEG(gamma1=5.0, blur_sigma=2.0)
    _, a, _ = run_adapter(plain, seg, ["a cat"], [5], STEPS)
    _, b, _ = run_adapter(sliced, seg, ["a cat"], [5], STEPS)
    assert (a - b).abs().max().item() <= 1e-5


def test_hunyuan_refuses_seg_at_config_time():
    adapter = build_adapter("hunyuan_dit", model="Tencent-Hunyuan/HunyuanDiT-v1.2-Diffusers")
    with pytest.raises(ValueError, match="rotary"):
        adapter.check_sampler(samplers.SEG())
    adapter.check_sampler(samplers.Zeta())


# ---------------------------------------------------------------------------------------------- options and overrides
def test_memory_options_do_not_change_outputs(zoo):
    sampler = samplers.Standard(gamma1=5.0)
    _, ref, _ = run_adapter(zoo.adapter("sdxl"), sampler, PROMPTS[:2], SEEDS[:2], STEPS)
    saver = zoo.adapter("sdxl", attention_slicing=True, vae_slicing=True, vae_tiling=True)
    _, out, _ = run_adapter(saver, sampler, PROMPTS[:2], SEEDS[:2], STEPS)
    assert (out - ref).abs().max().item() <= 1e-5
    assert saver.memory_options() == {"offload": "none", "vae_tiling": True, "vae_slicing": True,
                                      "attention_slicing": True}
    # memory options are not part of the outputs' identity
    assert saver.describe() == zoo.adapter("sdxl").describe()


def test_offload_on_cpu_is_an_error_at_load(zoo):
    adapter = build_adapter("sd", model=zoo.folder("sd"), offload="model")
    with pytest.raises(ValueError, match="CUDA"):
        adapter.load("cpu")


def test_gpu_load_offloads_onto_the_adapters_own_device_and_upcasts_the_sdxl_vae(zoo, monkeypatch):
    """The CUDA path without a GPU: model offload is asked for the rank's device (not GPU 0), weights are float16,
    and SDXL's force_upcast VAE is kept in float32 (a fp16-safe VAE override stays float16)."""
    import diffusers

    calls = []
    monkeypatch.setattr(diffusers.StableDiffusionXLPipeline, "enable_model_cpu_offload",
                        lambda self, gpu_id=None, device=None: calls.append(device))
    adapter = build_adapter("sdxl", model=zoo.folder("sdxl"), dtype="float16", offload="model", vae_tiling=True)
    adapter.load("cuda:1")
    assert calls == [torch.device("cuda:1")]
    assert adapter.device == torch.device("cuda:1")
    assert adapter.pipe.unet.dtype == torch.float16 and adapter.pipe.text_encoder_2.dtype == torch.float16
    assert adapter.pipe.vae.dtype == torch.float32
    info = adapter.describe()
    assert info["dtype"] == "float16" and info["vae_upcast"] is True and info["vae_dtype"] == "float32"
    assert adapter.latent_draw_dtype() == torch.float16

    fixed = zoo.extra_folder("vae_fp16_fix", lambda f: build_vae(f, force_upcast=False))
    adapter = build_adapter("sdxl", model=zoo.folder("sdxl"), dtype="float16", offload="model", vae=fixed)
    adapter.load("cuda:1")
    assert adapter.pipe.vae.dtype == torch.float16
    assert adapter.describe()["vae_upcast"] is False and adapter.describe()["vae"] == f"sha256:{folder_digest(fixed)}"


def test_dtype_float16_on_cpu_runs_float32(zoo):
    adapter = build_adapter("sd", model=zoo.folder("sd"), dtype="float16")
    adapter.load("cpu")
    assert adapter.compute_dtype() == torch.float32 and adapter.pipe.unet.dtype == torch.float32
    assert adapter.describe()["dtype"] == "float32"


def test_unet_override(zoo):
    dpo = zoo.extra_folder("dpo_unet", build_sdxl_unet)
    base = zoo.adapter("sdxl")
    tuned = zoo.adapter("sdxl", unet=dpo)
    ref = build_adapter("sdxl", model=zoo.folder("sdxl"), dtype="float32", unet=dpo).describe()
    assert ref["unet"] == f"sha256:{folder_digest(dpo)}"  # a local folder by its content, not its path
    info = tuned.describe()
    assert info["unet"] == ref["unet"] and info["unet_subfolder"] == "unet" and base.describe()["unet"] is None
    w_base = next(base.pipe.unet.parameters())
    w_tuned = next(tuned.pipe.unet.parameters())
    assert not torch.equal(w_base, w_tuned)
    _, a, _ = run_adapter(base, samplers.Standard(gamma1=5.0), ["a cat"], [1], STEPS)
    _, b, _ = run_adapter(tuned, samplers.Standard(gamma1=5.0), ["a cat"], [1], STEPS)
    assert (a - b).abs().max().item() > 1e-3


def test_missing_override_names_its_id(zoo):
    adapter = build_adapter("sdxl", model=zoo.folder("sdxl"), unet="no-such-org/no-such-dpo-unet")
    with pytest.raises(ModelLoadError, match="no-such-org/no-such-dpo-unet"):
        adapter.load("cpu")


def test_nan_latents_decode_without_crashing(zoo):
    for family in IMAGE_FAMILIES:
        adapter = zoo.adapter(family)
        out = adapter.decode(torch.full((2, *adapter.latent_shape()), float("nan")))
        assert out.shape == (2, 3, *IMAGE_SIZE[family]) and out.dtype == torch.float32
        assert not torch.isfinite(out).all()


def test_describe_records_provenance(zoo):
    sd = zoo.adapter("sd").describe()
    assert sd["family"] == "sd" and sd["model"] == f"sha256:{folder_digest(zoo.folder('sd'))}"
    assert sd["model_revision"] is None and zoo.adapter("sd").model_path == zoo.folder("sd")
    assert sd["scheduler"] == "DDIMScheduler" and sd["scheduler_config"]["prediction_type"] == "v_prediction"
    assert sd["scheduler_config"]["timestep_spacing"] == "leading" and sd["scheduler_note"] is None
    assert sd["dtype"] == "float32" and sd["vae"] == sd["model"] and sd["unet"] is None
    assert (sd["height"], sd["width"]) == (16, 16)
    hy = zoo.adapter("hunyuan_dit").describe()
    assert hy["scheduler"] == "DDIMScheduler" and "DDPMScheduler -> DDIMScheduler" in hy["scheduler_note"]
    xl = zoo.adapter("sdxl", scheduler="ddim").describe()
    assert xl["scheduler"] == "DDIMScheduler" and xl["scheduler_config"]["clip_sample"] is False
    assert "EulerDiscreteScheduler -> DDIMScheduler" in xl["scheduler_note"]
    for info in (sd, hy, xl):
        json.dumps(info)


def test_scheduler_override_euler_matches_pipeline(zoo):
    """DreamShaper-XL-turbo's setting: the same SDXL adapter with ``scheduler: euler`` (here from a DDIM sd model)."""
    adapter = zoo.adapter("sd", scheduler="euler")
    assert type(adapter.scheduler).__name__ == "EulerDiscreteScheduler"
    _, image, _ = run_adapter(adapter, samplers.Standard(gamma1=5.0), ["a cat"], [4], STEPS)
    ref = run_pipeline(zoo, "sd", adapter, "a cat", 4, STEPS, 5.0)
    assert (image - ref).abs().max().item() <= 1e-4


def test_ays_schedule(zoo):
    solver = zoo.adapter("sdxl").solver(10, "ays")
    assert solver.schedule_name == "ays:sdxl" and solver.num_steps == 10
    assert zoo.adapter("sd").solver(10, "ays").schedule_name == "ays:sd"
    with pytest.raises(ValueError, match="AYS"):
        zoo.adapter("hunyuan_dit").solver(10, "ays")


def test_reduced_precision_network_casts_inside_the_denoiser_and_decoder(zoo):
    """The GPU path's dtype handling on CPU: a bfloat16 pipeline takes float32 latents and returns float32."""
    ref = zoo.adapter("sdxl")
    low = build_adapter("sdxl", model=zoo.folder("sdxl"), dtype="float32")
    low.load("cpu")
    low.pipe.to(torch.bfloat16)
    x = torch.randn(1, *low.latent_shape(), generator=torch.Generator().manual_seed(0))
    cond = low.encode(["a red cat"])
    assert cond.cond["encoder_hidden_states"].dtype == torch.bfloat16
    u, c = low.denoiser(cond)(x, 601.0, ("uncond", "cond"))
    u_ref, c_ref = ref.denoiser(ref.encode(["a red cat"]))(x, 601.0, ("uncond", "cond"))
    assert u.dtype == c.dtype == torch.float32
    assert (c - c_ref).abs().max().item() < 0.05 * c_ref.abs().max().item()
    image = low.decode(x)
    assert image.dtype == torch.float32 and (image - ref.decode(x)).abs().max().item() < 0.05

"""Video adapters (cogvideox, modelscope) on tiny random-weight pipelines: parity, latent layouts, (B, F, 3, H, W)
output, every sampler, batch independence, SEG on ModelScope, and MP4 output through zeta_eval.media."""

from __future__ import annotations

import pytest
import torch

import samplers
from tiny_models import TinyZoo, run_adapter, run_pipeline
from zeta_eval import media
from zeta_eval.adapters import build_adapter

VIDEO_FAMILIES = ["cogvideox", "modelscope"]
STEPS = 4
PROMPTS = ["a red cat", "a blue car on the table", "a photo of a tree"]
SEEDS = [11, 22, 33]
#: (frames, height, width) of the tiny models' videos
VIDEO_SIZE = {"cogvideox": (9, 32, 32), "modelscope": (4, 16, 16)}


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> TinyZoo:
    return TinyZoo(tmp_path_factory.mktemp("tiny_video"))


@pytest.mark.parametrize("family", VIDEO_FAMILIES)
def test_standard_matches_the_diffusers_pipeline(zoo, family):
    adapter = zoo.adapter(family)
    latents, video, _ = run_adapter(adapter, samplers.Standard(gamma1=6.0), ["a red cat"], [7], STEPS)
    ref_latents = run_pipeline(zoo, family, adapter, "a red cat", 7, STEPS, 6.0, output_type="latent")
    ref_video = run_pipeline(zoo, family, adapter, "a red cat", 7, STEPS, 6.0)
    f, h, w = VIDEO_SIZE[family]
    assert video.shape == ref_video.shape == (1, f, 3, h, w)
    assert (latents - ref_latents).abs().max().item() <= 1e-4
    assert (video - ref_video).abs().max().item() <= 1e-4
    assert video.std().item() > 1e-3
    _, other_seed, _ = run_adapter(adapter, samplers.Standard(gamma1=6.0), ["a red cat"], [8], STEPS)
    assert (other_seed - video).abs().max().item() > 1e-3


@pytest.mark.parametrize("family", VIDEO_FAMILIES)
def test_initial_latents_are_the_pipelines_draw_per_seed(zoo, family):
    adapter = zoo.adapter(family)
    solver = adapter.solver(STEPS)
    x = adapter.initial_latents(SEEDS, solver)
    pipe = zoo.pipeline(family)
    pipe.scheduler.set_timesteps(STEPS)
    f, h, w = VIDEO_SIZE[family]
    if family == "cogvideox":
        assert x.shape[1:] == (3, 4, 4, 4)  # (latent frames, channels, h, w)
        channels = adapter.latent_shape()[1]
    else:
        assert x.shape[1:] == (4, 4, 8, 8)  # (channels, frames, h, w)
        channels = adapter.latent_shape()[0]
    for row, seed in enumerate(SEEDS):
        ref = pipe.prepare_latents(1, channels, f, h, w, torch.float32, "cpu", torch.Generator("cpu").manual_seed(seed))
        assert torch.equal(x[row : row + 1], ref)
    assert torch.equal(adapter.initial_latents(SEEDS[2:], solver), x[2:])


@pytest.mark.parametrize("family", VIDEO_FAMILIES)
def test_every_sampler_runs(zoo, family):
    adapter = zoo.adapter(family)
    f, h, w = VIDEO_SIZE[family]
    chosen = [samplers.Standard(gamma1=6.0), samplers.Zigzag(gamma1=6.0), samplers.ImplicitZigzag(gamma1=6.0),
              samplers.Zeta(gamma1=6.0, warmup_steps=1), samplers.CFGPlusPlus(gamma1=0.6)]
    if family == "modelscope":
        chosen.append(samplers.SEG(gamma1=6.0, blur_sigma=2.0))
    for sampler in chosen:
        adapter.check_sampler(sampler)
        _, video, out = run_adapter(adapter, sampler, PROMPTS[:2], SEEDS[:2], STEPS)
        assert out.nfe == sampler.expected_nfe(STEPS), sampler.name
        assert video.shape == (2, f, 3, h, w) and video.dtype == torch.float32, sampler.name
        assert torch.isfinite(video).all() and 0.0 <= video.min().item() and video.max().item() <= 1.0


@pytest.mark.parametrize("family", VIDEO_FAMILIES)
def test_batch_of_three_equals_three_batches_of_one(zoo, family):
    adapter = zoo.adapter(family)
    sampler = samplers.Zeta(gamma1=6.0, warmup_steps=1)
    _, batch, _ = run_adapter(adapter, sampler, PROMPTS, SEEDS, STEPS)
    singles = torch.cat([run_adapter(adapter, sampler, [p], [s], STEPS)[1] for p, s in zip(PROMPTS, SEEDS)])
    assert (batch - singles).abs().max().item() <= 1e-5


def test_modelscope_seg_perturbs_only_its_branch(zoo):
    adapter = zoo.adapter("modelscope")
    cond = adapter.encode(PROMPTS[:2])
    x = torch.randn(2, *adapter.latent_shape(), generator=torch.Generator().manual_seed(0))
    u0, c0 = adapter.denoiser(cond)(x, 501.0, ("uncond", "cond"))
    u1, c1b, c1 = adapter.denoiser(cond)(x, 501.0, ("uncond", "cond", "cond"))
    _, c, p = adapter.denoiser(cond, {"kind": "seg", "blur_sigma": 1e-3, "layers": None})(x, 501.0, ("uncond", "cond", "perturbed"))
    assert torch.equal(p, c)
    u, p, c = adapter.denoiser(cond, {"kind": "seg", "blur_sigma": 2.0, "layers": None})(x, 501.0, ("uncond", "perturbed", "cond"))
    assert (p - c).abs().max().item() > 1e-4
    assert torch.equal(u, u1) and torch.equal(c, c1)  # frames of the other branches untouched, bit for bit
    assert torch.allclose(u, u0, atol=1e-6) and torch.allclose(c, c0, atol=1e-6)
    # temporal attention is never blurred
    from zeta_eval.adapters.seg import self_attention_layers

    names = list(self_attention_layers(adapter.pipe.unet))
    assert names and not any("temp_" in n or n.startswith("transformer_in") for n in names)


def test_cogvideox_refuses_seg_and_bad_options(zoo):
    adapter = build_adapter("cogvideox", model="THUDM/CogVideoX-2b")
    with pytest.raises(ValueError, match="joint"):
        adapter.check_sampler(samplers.SEG())
    with pytest.raises(ValueError, match="scheduler"):
        build_adapter("cogvideox", model="THUDM/CogVideoX-2b", scheduler="euler")
    with pytest.raises(ValueError, match="attention_slicing"):
        build_adapter("cogvideox", model="THUDM/CogVideoX-2b", attention_slicing=True)
    bad = build_adapter("cogvideox", model=zoo.folder("cogvideox"), dtype="float32", num_frames=6)
    with pytest.raises(ValueError, match="4k \\+ 1"):
        bad.load("cpu")


def test_cogvideox_keeps_its_scheduler(zoo):
    adapter = zoo.adapter("cogvideox", scheduler="ddim")
    info = adapter.describe()
    assert info["scheduler"] == "CogVideoXDDIMScheduler" and info["scheduler_note"] is None
    assert info["scheduler_config"]["prediction_type"] == "v_prediction"
    assert info["scheduler_config"]["snr_shift_scale"] == 3.0
    assert info["num_frames"] == 9 and info["max_sequence_length"] == 16


def test_video_decodes_nan_without_crashing(zoo):
    for family in VIDEO_FAMILIES:
        adapter = zoo.adapter(family)
        out = adapter.decode(torch.full((1, *adapter.latent_shape()), float("nan")))
        f, h, w = VIDEO_SIZE[family]
        assert out.shape == (1, f, 3, h, w) and not torch.isfinite(out).all()


@pytest.mark.parametrize("family", VIDEO_FAMILIES)
def test_decoded_video_writes_a_readable_mp4(zoo, family, tmp_path):
    adapter = zoo.adapter(family)
    _, video, _ = run_adapter(adapter, samplers.Standard(gamma1=6.0), ["a cat"], [1], STEPS)
    path = media.save_video(video[0], tmp_path / f"{family}.mp4", fps=adapter.fps)
    back = media.read_video(path)
    assert back.shape == video[0].shape
    strip = media.read_image(media.save_frame_strip(video[0], tmp_path / f"{family}.png", max_frames=3, gap=2))
    f, h, w = VIDEO_SIZE[family]
    assert strip.shape == (3, h, 3 * w + 2 * 2)

"""Pieces of a diffusers pipeline that the adapters rebuild from public functions, checked against the pipeline's
own (private) method on the same configuration, so a diffusers release that changes either shows here."""

from types import SimpleNamespace

import pytest
import torch

from zeta_eval.adapters.cogvideox import rotary_embeddings
from zeta_eval.adapters.sdxl import size_conditioning


def _transformer(patch_size_t):
    config = SimpleNamespace(patch_size=2, patch_size_t=patch_size_t, sample_width=12, sample_height=8,
                             attention_head_dim=16)
    return SimpleNamespace(config=config)


@pytest.mark.parametrize("patch_size_t", [None, 2], ids=["cogvideox-1.0", "cogvideox-1.5"])
@pytest.mark.parametrize("size,frames", [((64, 96), 5), ((48, 48), 4)])
def test_rotary_embeddings_are_the_pipelines(patch_size_t, size, frames):
    from diffusers import CogVideoXPipeline

    pipe = SimpleNamespace(transformer=_transformer(patch_size_t), vae_scale_factor_spatial=8)
    ours = rotary_embeddings(pipe, size, frames, torch.device("cpu"))
    theirs = CogVideoXPipeline._prepare_rotary_positional_embeddings(pipe, *size, frames, torch.device("cpu"))
    assert len(ours) == 2 and all(torch.equal(a, b) for a, b in zip(ours, theirs))
    assert ours[0].shape[0] > 0


def _unet(time_dim, in_features):
    return SimpleNamespace(config=SimpleNamespace(addition_time_embed_dim=time_dim),
                           add_embedding=SimpleNamespace(linear_1=torch.nn.Linear(in_features, 4)))


def test_size_conditioning_is_the_pipelines():
    from diffusers import StableDiffusionXLPipeline

    unet = _unet(8, 8 * 6 + 16)
    ours = size_conditioning(unet, (64, 96), 16, torch.float16)
    theirs = StableDiffusionXLPipeline._get_add_time_ids(SimpleNamespace(unet=unet), (64, 96), (0, 0), (64, 96),
                                                         dtype=torch.float16, text_encoder_projection_dim=16)
    assert ours.dtype == theirs.dtype and torch.equal(ours, theirs)
    assert ours.tolist() == [[64, 96, 0, 0, 64, 96]]


def test_size_conditioning_refuses_a_unet_that_does_not_fit():
    with pytest.raises(ValueError, match="expects an added embedding of 70 numbers"):
        size_conditioning(_unet(8, 70), (64, 64), 16, torch.float32)

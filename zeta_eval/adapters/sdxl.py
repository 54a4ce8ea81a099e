"""SDXL (``sdxl``): two text encoders, pooled embeddings and ``time_ids``; also Diffusion-DPO UNets and turbo models.

The uncond branch is the pipeline's: with no negative prompt and ``force_zeros_for_empty_prompt`` (SDXL base's
setting), zeros for both the token embeddings and the pooled embedding; otherwise the two encoders' embeddings of the
negative prompt. The ``time_ids`` (original size, crop corner, target size) are the same for both branches, as in
the pipeline. SEG's perturbed branch is provided (default layers: the UNet mid block).
"""

from __future__ import annotations

from typing import Any

import torch

from .sd import UNetImageAdapter


class SDXLAdapter(UNetImageAdapter):
    """SDXL (``StableDiffusionXLPipeline``): two text encoders, pooled embeddings and ``time_ids``.

    Also serves SDXL fine-tunes: a UNet override (``unet: mhdang/dpo-sdxl-text2image-v1``, subfolder ``unet``) and
    distilled checkpoints such as DreamShaper-XL-turbo with ``scheduler: euler``. The VAE is decoded in float32 when
    it runs in float16 and its config asks for it (``force_upcast``, SDXL base's VAE), as the pipeline does, unless
    an fp16-safe VAE is configured (``vae: madebyollin/sdxl-vae-fp16-fix``). No invisible watermark is applied.
    """

    family = "sdxl"
    ays_family = "sdxl"
    pipeline_class = "StableDiffusionXLPipeline"

    def _load_kwargs(self, dtype: torch.dtype) -> dict[str, Any]:
        return {**super()._load_kwargs(dtype), "add_watermarker": False}

    def _after_load(self, pipe: Any, dtype: torch.dtype) -> None:
        super()._after_load(pipe, dtype)
        if pipe.vae.dtype == torch.float16 and pipe.vae.config.get("force_upcast", False):
            # SDXL base's VAE overflows in float16; the pipeline upcasts it for every decode, we keep it in float32
            pipe.vae.to(torch.float32)
            self._vae_note.update(vae_dtype="float32", vae_upcast=True)

    def _text_limits(self) -> list[tuple[Any, int]]:
        toks = (self.pipe.tokenizer, self.pipe.tokenizer_2)  # the refiner has only the second
        return [(tok, int(tok.model_max_length)) for tok in toks if tok is not None]

    def _encode(self, prompts: list[str]):
        pipe = self.pipe
        neg = self._negative()
        cond, uncond, pooled, neg_pooled = pipe.encode_prompt(
            prompt=prompts, device=self.device, num_images_per_prompt=1, do_classifier_free_guidance=True,
            negative_prompt=None if neg is None else [neg] * len(prompts))
        if pipe.text_encoder_2 is None:
            projection_dim = int(pooled.shape[-1])
        else:
            projection_dim = pipe.text_encoder_2.config.projection_dim
        time_ids = size_conditioning(pipe.unet, self.resolution, projection_dim, cond.dtype)
        time_ids = time_ids.to(self.device).repeat(len(prompts), 1)
        return ({"encoder_hidden_states": uncond, "text_embeds": neg_pooled.to(self.device), "time_ids": time_ids},
                {"encoder_hidden_states": cond, "text_embeds": pooled.to(self.device), "time_ids": time_ids})

    def _network(self, x, t, kwargs):
        added = {"text_embeds": kwargs["text_embeds"], "time_ids": kwargs["time_ids"]}
        return self.compute_network(x, self._timestep(t), encoder_hidden_states=kwargs["encoder_hidden_states"],
                                    added_cond_kwargs=added, return_dict=False)[0]

    def _unscale(self, latents: torch.Tensor) -> torch.Tensor:
        cfg = self.pipe.vae.config
        mean, std = cfg.get("latents_mean"), cfg.get("latents_std")
        if mean is not None and std is not None:
            c = latents.shape[1]
            mean = torch.tensor(mean).view(1, c, 1, 1).to(latents.device, latents.dtype)
            std = torch.tensor(std).view(1, c, 1, 1).to(latents.device, latents.dtype)
            return latents * std / cfg.scaling_factor + mean
        return latents / cfg.scaling_factor


def size_conditioning(unet: Any, size: tuple[int, int], projection_dim: int, dtype: torch.dtype) -> torch.Tensor:
    """SDXL's ``time_ids`` (1, 6): original size, crop corner and target size, as the pipeline sets them when none is
    given (original = target = the generated size, no crop). The UNet's added embedding must take exactly these six
    numbers (each embedded in ``addition_time_embed_dim``) plus the pooled text embedding."""
    h, w = size
    ids = [h, w, 0, 0, h, w]
    given = unet.config.addition_time_embed_dim * len(ids) + projection_dim
    expected = unet.add_embedding.linear_1.in_features
    if given != expected:
        raise ValueError(f"the UNet expects an added embedding of {expected} numbers but SDXL's size conditioning and "
                         f"pooled text embedding give {given}: check unet.config.addition_time_embed_dim and "
                         "text_encoder_2.config.projection_dim")
    return torch.tensor([ids], dtype=dtype)

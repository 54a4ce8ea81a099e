"""Hunyuan-DiT (``hunyuan_dit``): a DiT with two text encoders (a CLIP-like BERT, 77 tokens, and mT5, 256 tokens).

The conditioning is the pipeline's: both encoders' embeddings with their attention masks, ``image_meta_size``
(original size 1024 x 1024, target size, crop corner 0, 0), style 0, and 2-D rotary embeddings of the token grid.
The uncond branch is the pipeline's: both encoders' embeddings (and masks) of the negative prompt, "" when none is
configured. The network predicts a learned variance too; only the first half of its channels is the prediction.

The shipped scheduler is DDPM (stochastic); the adapter converts it to DDIM (same config, deterministic) by default
and records that in ``describe()``. Resolution binning (the pipeline maps odd sizes to its trained resolutions) is
not applied: height and width are used as configured (multiples of 16), which for the default 1024 x 1024 is the
same thing.
"""

from __future__ import annotations

from typing import Any

import torch

from .pipeline_adapter import PipelineAdapter

#: the pipeline's default ``original_size`` and ``crops_coords_top_left``
ORIGINAL_SIZE = (1024, 1024)
CROP_TOP_LEFT = (0, 0)
#: tokens the pipeline keeps of each text encoder's input (CLIP-like BERT, mT5)
TEXT_LENGTHS = (77, 256)


class HunyuanDiTAdapter(PipelineAdapter):
    family = "hunyuan_dit"
    pipeline_class = "HunyuanDiTPipeline"
    network_attr = "transformer"
    size_multiple = 16
    supports_attention_slicing = False
    no_perturbation_reason = ("SEG's query blur is implemented for UNet self-attention; this DiT applies QK-norm and "
                              "rotary embeddings after the query projection, and blurring there is not validated")

    def _load_kwargs(self, dtype: torch.dtype) -> dict[str, Any]:
        return {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}

    def _after_load(self, pipe: Any, dtype: torch.dtype) -> None:
        self._rotary_cache: tuple[torch.Tensor, torch.Tensor] | None = None
        self._vae_note = {"vae": self.model_name, "vae_dtype": str(pipe.vae.dtype).replace("torch.", ""),
                          "vae_upcast": False}

    def _default_size(self) -> tuple[int, int]:
        size = self.pipe.default_sample_size * self._vae_scale_factor()
        return size, size

    def latent_shape(self) -> tuple[int, ...]:
        h, w = self.resolution
        f = self._vae_scale_factor()
        return self.pipe.transformer.config.in_channels, h // f, w // f

    def _rotary(self) -> tuple[torch.Tensor, torch.Tensor]:
        from diffusers.models.embeddings import get_2d_rotary_pos_embed
        from diffusers.pipelines.hunyuandit.pipeline_hunyuandit import get_resize_crop_region_for_grid

        tr = self.pipe.transformer
        h, w = self.resolution
        patch = tr.config.patch_size
        grid_h, grid_w = h // 8 // patch, w // 8 // patch  # the pipeline's grid (it assumes an 8x VAE)
        base = 512 // 8 // patch
        crops = get_resize_crop_region_for_grid((grid_h, grid_w), base)
        return get_2d_rotary_pos_embed(tr.inner_dim // tr.num_heads, crops, (grid_h, grid_w), device=self.device,
                                       output_type="pt")

    def _text_limits(self) -> list[tuple[Any, int]]:
        return [(self.pipe.tokenizer, TEXT_LENGTHS[0]), (self.pipe.tokenizer_2, TEXT_LENGTHS[1])]

    def _encode(self, prompts: list[str]):
        pipe = self.pipe
        neg = self._negative()
        negative = None if neg is None else [neg] * len(prompts)
        dtype = pipe.transformer.dtype
        out = {}
        for index, max_len in enumerate(TEXT_LENGTHS):
            out[index] = pipe.encode_prompt(prompt=prompts, device=self.device, dtype=dtype, num_images_per_prompt=1,
                                            do_classifier_free_guidance=True, negative_prompt=negative,
                                            max_sequence_length=max_len, text_encoder_index=index)
        emb, neg_emb, mask, neg_mask = out[0]
        emb2, neg_emb2, mask2, neg_mask2 = out[1]
        h, w = self.resolution
        meta = torch.tensor([list(ORIGINAL_SIZE + (h, w) + CROP_TOP_LEFT)], dtype=emb.dtype, device=self.device)
        meta = meta.repeat(len(prompts), 1)
        style = torch.zeros(len(prompts), dtype=torch.int64, device=self.device)
        common = {"image_meta_size": meta, "style": style}
        uncond = {"encoder_hidden_states": neg_emb, "text_embedding_mask": neg_mask.to(self.device),
                  "encoder_hidden_states_t5": neg_emb2, "text_embedding_mask_t5": neg_mask2.to(self.device), **common}
        cond = {"encoder_hidden_states": emb, "text_embedding_mask": mask.to(self.device),
                "encoder_hidden_states_t5": emb2, "text_embedding_mask_t5": mask2.to(self.device), **common}
        return uncond, cond

    def _network(self, x, t, kwargs):
        if self._rotary_cache is None:
            self._rotary_cache = self._rotary()
        t_in = self._timestep(t, x.shape[0], dtype=x.dtype)  # the pipeline casts t to the latent dtype
        out = self.compute_network(x, t_in, image_rotary_emb=self._rotary_cache, return_dict=False, **kwargs)[0]
        return out[:, : x.shape[1]]  # drop the learned-variance channels

    def _decode(self, latents: torch.Tensor) -> torch.Tensor:
        vae = self.pipe.vae
        image = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor, return_dict=False)[0]
        return (image.float() / 2 + 0.5).clamp(0, 1)

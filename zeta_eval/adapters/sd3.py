"""Stable Diffusion 3 / 3.5 (``sd3``): an MMDiT over 2x2 latent patches with three text encoders, flow matching.

The conditioning is the pipeline's ``encode_prompt``: CLIP-L and OpenCLIP-bigG token embeddings (penultimate layer,
77 tokens each, side by side and zero-padded to T5's width) followed by T5-XXL's ``max_sequence_length`` tokens, and
the two CLIP pooled embeddings side by side. The uncond branch is the pipeline's: all three encoders' embeddings of
the negative prompt ("" when none is configured). ``t5: false`` loads no T5 (as diffusers allows with
``text_encoder_3=None``): its tokens are zeros, as the pipeline then feeds them, and the model needs ~9.5 GB less.

The scheduler is the shipped ``FlowMatchEulerDiscreteScheduler`` with its shift (3.0 for SD 3 and 3.5), or its
dynamic shift when the config asks for one. SD 3.5's skip-layer guidance is not a sampler here; no SEG.
"""

from __future__ import annotations

from typing import Any

import torch

from .flow import FlowTransformerAdapter, decode_shifted_image
from .pipeline_adapter import check_positive_int

#: tokens of each CLIP encoder (the pipeline's tokenizer_max_length)
CLIP_TOKENS = 77
#: the pipeline's largest ``max_sequence_length``
MAX_T5_TOKENS = 512


class SD3Adapter(FlowTransformerAdapter):
    """Args (besides the common ones): ``t5`` (load the T5-XXL encoder; false drops it, as for a 24 GB card),
    ``max_sequence_length`` (T5 tokens, the pipeline's default 256; at most 512)."""

    family = "sd3"
    pipeline_class = "StableDiffusion3Pipeline"
    default_max_shift = 1.16  # the SD3 pipeline's calculate_shift default

    def __init__(self, model: str, *args: Any, t5: bool = True, max_sequence_length: int = 256, **kwargs: Any):
        super().__init__(model, *args, **kwargs)
        if not isinstance(t5, bool):
            raise ValueError(f"adapter option t5 must be true or false, got {t5!r}")
        self.t5 = t5
        self.max_sequence_length = check_positive_int("max_sequence_length", max_sequence_length)
        if self.max_sequence_length > MAX_T5_TOKENS:
            raise ValueError(f"adapter option max_sequence_length must be at most {MAX_T5_TOKENS} (the pipeline's "
                             f"limit), got {max_sequence_length}")

    def _load_kwargs(self, dtype: torch.dtype) -> dict[str, Any]:
        return {} if self.t5 else {"text_encoder_3": None, "tokenizer_3": None}

    def _after_load(self, pipe: Any, dtype: torch.dtype) -> None:
        if self.t5 and pipe.text_encoder_3 is None:
            raise ValueError(f"{self.model}: the pipeline has no T5 text encoder (text_encoder_3); set t5: false")
        self._vae_note = {"vae": self.model_name, "vae_dtype": str(pipe.vae.dtype).replace("torch.", ""),
                          "vae_upcast": False}

    def _default_size(self) -> tuple[int, int]:
        size = int(self.pipe.transformer.config.sample_size) * self._vae_scale_factor()
        return size, size

    def latent_shape(self) -> tuple[int, ...]:
        h, w = self.resolution
        f = self._vae_scale_factor()
        return self.pipe.transformer.config.in_channels, h // f, w // f

    def image_seq_len(self) -> int:
        _, h, w = self.latent_shape()
        p = self.pipe.transformer.config.patch_size
        return (h // p) * (w // p)

    def _text_limits(self) -> list[tuple[Any, int]]:
        pipe = self.pipe
        limits = [(pipe.tokenizer, CLIP_TOKENS), (pipe.tokenizer_2, CLIP_TOKENS)]
        if pipe.tokenizer_3 is not None and pipe.text_encoder_3 is not None:
            limits.append((pipe.tokenizer_3, self.max_sequence_length))
        return limits

    def _encode(self, prompts: list[str]):
        neg = self._negative()
        cond, uncond, pooled, neg_pooled = self.pipe.encode_prompt(
            prompt=prompts, prompt_2=None, prompt_3=None, device=self.device, num_images_per_prompt=1,
            do_classifier_free_guidance=True, negative_prompt=None if neg is None else [neg] * len(prompts),
            max_sequence_length=self.max_sequence_length)
        return ({"encoder_hidden_states": uncond, "pooled_projections": neg_pooled},
                {"encoder_hidden_states": cond, "pooled_projections": pooled})

    def _network(self, x, t, kwargs):
        return self.compute_network(hidden_states=x, timestep=self._flow_timestep(t, x.shape[0]),
                                    encoder_hidden_states=kwargs["encoder_hidden_states"],
                                    pooled_projections=kwargs["pooled_projections"], return_dict=False)[0]

    def _decode(self, latents: torch.Tensor) -> torch.Tensor:
        return decode_shifted_image(self.pipe.vae, latents)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update({"t5": self.t5, "max_sequence_length": self.max_sequence_length})
        return info

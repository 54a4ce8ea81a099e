"""FLUX.1 (``flux``; dev and schnell): a rectified-flow transformer over packed 2x2 latent patches, flow matching.

Guidance. FLUX.1-dev is guidance-distilled: its transformer takes a guidance value as an input (the pipeline's
``guidance_scale``, default 3.5) and produces a guided prediction in one evaluation; that value is not CFG and no
sampler here can act on it. The samplers need two real branches, so this adapter runs the pipeline's "true CFG" form
(``true_cfg_scale`` with a negative prompt): the uncond branch is the negative prompt ("" when none is configured),
the cond branch the prompt, both with the same distilled guidance input, and every sampler combines them with its own
γ1 (and γ2): ``standard`` at γ1 is the pipeline's ``true_cfg_scale = γ1``. ``distilled_guidance`` sets the embedded
value for every branch and every sampler (part of the sample id). FLUX.1-schnell has no guidance input (the option
must stay unset) and is timestep-distilled for about 4 steps.

Latents are drawn as the pipeline draws them, (1, 16, 2h, 2w) per sample with h, w = size / 16, and the samplers work
on that unpacked layout; every network call packs them into (h*w, 64) tokens with the pipeline's image position ids
(0, row, column) and zero text position ids, and unpacks the velocity. The sigmas are the pipeline's (a linear ramp
from 1 to 1/T, shifted by the scheduler: dynamically by ``mu`` of the image's token count for dev, not at all for
schnell). No SEG.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from .flow import FlowTransformerAdapter, decode_shifted_image
from .pipeline_adapter import check_positive_int

#: tokens of the CLIP encoder (pooled output only)
CLIP_TOKENS = 77
#: the pipeline's largest (and default) ``max_sequence_length``
MAX_T5_TOKENS = 512
#: the pipeline's default ``guidance_scale`` (the distilled guidance of FLUX.1-dev)
DEFAULT_DISTILLED_GUIDANCE = 3.5


class FluxAdapter(FlowTransformerAdapter):
    """Args (besides the common ones): ``distilled_guidance`` (the guidance-embedding input of FLUX.1-dev; None: the
    pipeline's 3.5; must be None for a model without a guidance embedding, such as schnell), ``max_sequence_length``
    (T5 tokens; the pipeline's default 512)."""

    family = "flux"
    pipeline_class = "FluxPipeline"
    default_max_shift = 1.15  # the FLUX pipeline's calculate_shift default

    def __init__(self, model: str, *args: Any, distilled_guidance: float | None = None,
                 max_sequence_length: int = MAX_T5_TOKENS, **kwargs: Any):
        super().__init__(model, *args, **kwargs)
        if distilled_guidance is not None and (isinstance(distilled_guidance, bool)
                                               or not isinstance(distilled_guidance, (int, float))
                                               or not math.isfinite(distilled_guidance) or distilled_guidance < 0):
            raise ValueError(f"adapter option distilled_guidance must be null or a number >= 0, got "
                             f"{distilled_guidance!r}")
        self.distilled_guidance = None if distilled_guidance is None else float(distilled_guidance)
        self.max_sequence_length = check_positive_int("max_sequence_length", max_sequence_length)
        if self.max_sequence_length > MAX_T5_TOKENS:
            raise ValueError(f"adapter option max_sequence_length must be at most {MAX_T5_TOKENS} (the pipeline's "
                             f"limit), got {max_sequence_length}")

    def _after_load(self, pipe: Any, dtype: torch.dtype) -> None:
        if not pipe.transformer.config.guidance_embeds and self.distilled_guidance is not None:
            raise ValueError(f"{self.model}: distilled_guidance is set but this transformer has no guidance embedding "
                             "(FLUX.1-schnell); leave distilled_guidance unset")
        self._ids_cache: dict[tuple[int, int], torch.Tensor] = {}
        self._vae_note = {"vae": self.model_name, "vae_dtype": str(pipe.vae.dtype).replace("torch.", ""),
                          "vae_upcast": False}

    @property
    def guidance_value(self) -> float | None:
        """The distilled guidance fed to the transformer (None: the model has no guidance embedding)."""
        self._require_loaded()
        if not self.pipe.transformer.config.guidance_embeds:
            return None
        return DEFAULT_DISTILLED_GUIDANCE if self.distilled_guidance is None else self.distilled_guidance

    # ------------------------------------------------------------------ sizes and layout
    def _default_size(self) -> tuple[int, int]:
        size = int(self.pipe.default_sample_size) * self._vae_scale_factor()
        return size, size

    def latent_shape(self) -> tuple[int, ...]:
        h, w = self.resolution
        grid = 2 * self._vae_scale_factor()  # latents are packed 2x2: their side must be even
        return self.pipe.transformer.config.in_channels // 4, 2 * (h // grid), 2 * (w // grid)

    def image_seq_len(self) -> int:
        _, h, w = self.latent_shape()
        return (h // 2) * (w // 2)

    def set_timesteps_kwargs(self, num_steps: int) -> dict[str, Any]:
        # the pipeline always passes a linear ramp of sigmas and mu (the scheduler applies mu only when it shifts
        # dynamically); sigmas are float32 there, as here
        sigmas = np.linspace(1.0, 1.0 / num_steps, num_steps).tolist()
        return {"sigmas": sigmas, "mu": self.dynamic_shift()}

    @staticmethod
    def pack(latents: torch.Tensor) -> torch.Tensor:
        """(B, C, 2h, 2w) -> (B, h*w, 4C): each 2x2 patch becomes one token, channels major (the pipeline's layout)."""
        b, c, hh, ww = latents.shape
        x = latents.view(b, c, hh // 2, 2, ww // 2, 2).permute(0, 2, 4, 1, 3, 5)
        return x.reshape(b, (hh // 2) * (ww // 2), c * 4)

    @staticmethod
    def unpack(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """The inverse of :meth:`pack` for latents of (``height``, ``width``)."""
        b, _, channels = tokens.shape
        x = tokens.view(b, height // 2, width // 2, channels // 4, 2, 2).permute(0, 3, 1, 4, 2, 5)
        return x.reshape(b, channels // 4, height, width)

    def image_ids(self, height: int, width: int, dtype: torch.dtype) -> torch.Tensor:
        """(h*w, 3) position ids of the packed tokens: (0, row, column), as the pipeline builds them."""
        key = (height, width)
        if key not in self._ids_cache:
            ids = torch.zeros(height // 2, width // 2, 3)
            ids[..., 1] = torch.arange(height // 2)[:, None]
            ids[..., 2] = torch.arange(width // 2)[None, :]
            self._ids_cache[key] = ids.reshape(-1, 3)
        return self._ids_cache[key].to(self.device, dtype)

    # ------------------------------------------------------------------ per batch
    def _text_limits(self) -> list[tuple[Any, int]]:
        return [(self.pipe.tokenizer, CLIP_TOKENS), (self.pipe.tokenizer_2, self.max_sequence_length)]

    def _encode(self, prompts: list[str]):
        neg = self.negative_prompt  # true CFG: "" is a real (empty) negative prompt, as the pipeline encodes it
        out = {}
        for branch, texts in (("uncond", [neg] * len(prompts)), ("cond", prompts)):
            embeds, pooled, _ = self.pipe.encode_prompt(prompt=texts, prompt_2=None, device=self.device,
                                                        num_images_per_prompt=1,
                                                        max_sequence_length=self.max_sequence_length)
            out[branch] = {"encoder_hidden_states": embeds, "pooled_projections": pooled}
        return out["uncond"], out["cond"]

    def _network(self, x, t, kwargs):
        _, _, height, width = x.shape
        dtype = x.dtype
        text_dtype = self.pipe.text_encoder.dtype if self.pipe.text_encoder is not None else dtype
        text_ids = torch.zeros(kwargs["encoder_hidden_states"].shape[1], 3, device=self.device, dtype=text_dtype)
        guidance = self.guidance_value
        if guidance is not None:
            guidance = torch.full((x.shape[0],), guidance, dtype=torch.float32, device=self.device)
        # the pipeline casts the timestep to the latent dtype before dividing by 1000
        timestep = self._flow_timestep(t, x.shape[0], dtype) / 1000
        velocity = self.compute_network(hidden_states=self.pack(x), timestep=timestep, guidance=guidance,
                                        pooled_projections=kwargs["pooled_projections"],
                                        encoder_hidden_states=kwargs["encoder_hidden_states"], txt_ids=text_ids,
                                        img_ids=self.image_ids(height, width, kwargs["encoder_hidden_states"].dtype),
                                        return_dict=False)[0]
        return self.unpack(velocity, height, width)

    def _decode(self, latents: torch.Tensor) -> torch.Tensor:
        return decode_shifted_image(self.pipe.vae, latents)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update({"distilled_guidance": self.distilled_guidance, "max_sequence_length": self.max_sequence_length,
                     "guidance_form": "true_cfg"})
        if self._loaded:
            info["distilled_guidance"] = self.guidance_value
        return info

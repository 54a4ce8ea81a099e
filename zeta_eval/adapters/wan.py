"""Wan 2.1 text-to-video (``wan``; T2V 1.3B and 14B): a 3-D transformer over (channels, frames, h, w) latents with a
UMT5 text encoder, flow matching, classifier-free guidance.

The conditioning is the pipeline's: UMT5 embeddings of the cleaned prompt, cut at its last token and zero-padded to
``max_sequence_length`` (512); the uncond branch is the same encoding of the negative prompt ("" when none is
configured; the Wan authors' long default negative prompt can be set with ``negative_prompt``). Latents are drawn as
the pipeline draws them: float32, (1, 16, (F - 1) / 4 + 1, H / 8, W / 8) per sample. The timestep is the scheduler's
float32 timestep for every row.

Wan ships a multistep ``UniPCMultistepScheduler`` over flow sigmas (``flow_shift`` 3.0 for 480p); the samplers need a
first-order step, so the adapter converts it to ``FlowMatchEulerDiscreteScheduler`` with the same shift and records
that in ``describe()`` (as Hunyuan-DiT's DDPM becomes DDIM). Wan 2.2's two-expert and expanded-timestep pipelines are
refused. ``decode`` returns (B, F, 3, H, W) in [0, 1] for the video metrics and the MP4 + strip media. No SEG.
"""

from __future__ import annotations

from typing import Any

import torch

from .flow import FlowTransformerAdapter, latent_stats
from .pipeline_adapter import check_positive_int

#: the pipeline's default output (480p, 81 frames)
DEFAULT_SIZE = (480, 832)
DEFAULT_FRAMES = 81
DEFAULT_TEXT_TOKENS = 512


class WanAdapter(FlowTransformerAdapter):
    """Args (besides the common ones): ``num_frames`` (None: the pipeline's 81; 4k + 1), ``max_sequence_length``
    (UMT5 tokens; the pipeline's 512), ``fps`` (for saved MP4s; Wan 2.1: 16)."""

    family = "wan"
    is_video = True
    pipeline_class = "WanPipeline"
    no_perturbation_reason = ("SEG's query blur is implemented for UNet self-attention over a 2-D token grid; Wan "
                              "attends over 3-D video tokens with rotary embeddings and QK-norm")

    def __init__(self, model: str, *args: Any, num_frames: int | None = None,
                 max_sequence_length: int = DEFAULT_TEXT_TOKENS, fps: int = 16, **kwargs: Any):
        super().__init__(model, *args, **kwargs)
        self.num_frames = check_positive_int("num_frames", num_frames, optional=True)
        self.max_sequence_length = check_positive_int("max_sequence_length", max_sequence_length)
        self.fps = check_positive_int("fps", fps)

    def _after_load(self, pipe: Any, dtype: torch.dtype) -> None:
        if pipe.config.get("boundary_ratio") is not None or getattr(pipe, "transformer_2", None) is not None:
            raise ValueError(f"{self.model}: a two-expert Wan 2.2 pipeline (transformer_2, boundary_ratio) is not "
                             "supported; use a Wan 2.1 text-to-video model")
        if pipe.config.get("expand_timesteps", False):
            raise ValueError(f"{self.model}: per-token timesteps (Wan 2.2 TI2V, expand_timesteps) are not supported")
        ratio = pipe.vae_scale_factor_temporal
        if (self.frames - 1) % ratio:
            raise ValueError(f"{self.model}: num_frames must be {ratio}k + 1 (the VAE compresses time by {ratio}), "
                             f"got {self.frames}")
        self._vae_note = {"vae": self.model_name, "vae_dtype": str(pipe.vae.dtype).replace("torch.", ""),
                          "vae_upcast": False}

    @property
    def frames(self) -> int:
        """Output frames."""
        return self.num_frames or DEFAULT_FRAMES

    def _vae_scale_factor(self) -> int:
        return int(self.pipe.vae_scale_factor_spatial)

    def _default_size(self) -> tuple[int, int]:
        return DEFAULT_SIZE

    @property
    def resolution(self) -> tuple[int, int]:
        h, w = super().resolution
        patch = self.pipe.transformer.config.patch_size
        f = self._vae_scale_factor()
        if h % (f * patch[1]) or w % (f * patch[2]):
            raise ValueError(f"{self.model}: height and width must be multiples of {f * patch[1]} x {f * patch[2]} "
                             f"(VAE x patch), got {h} x {w}")
        return h, w

    def latent_shape(self) -> tuple[int, ...]:
        h, w = self.resolution
        f = self._vae_scale_factor()
        latent_frames = (self.frames - 1) // self.pipe.vae_scale_factor_temporal + 1
        return self.pipe.transformer.config.in_channels, latent_frames, h // f, w // f

    def latent_draw_dtype(self) -> torch.dtype:
        return torch.float32  # the pipeline draws float32 latents whatever the weights' dtype

    def _text_limits(self) -> list[tuple[Any, int]]:
        return [(self.pipe.tokenizer, self.max_sequence_length)]

    def _encode(self, prompts: list[str]):
        neg = self._negative()
        cond, uncond = self.pipe.encode_prompt(
            prompt=prompts, negative_prompt=None if neg is None else [neg] * len(prompts),
            do_classifier_free_guidance=True, num_videos_per_prompt=1, max_sequence_length=self.max_sequence_length,
            device=self.device)
        dtype = self.pipe.transformer.dtype
        return {"encoder_hidden_states": uncond.to(dtype)}, {"encoder_hidden_states": cond.to(dtype)}

    def _network(self, x, t, kwargs):
        return self.compute_network(hidden_states=x, timestep=self._flow_timestep(t, x.shape[0]),
                                    encoder_hidden_states=kwargs["encoder_hidden_states"], return_dict=False)[0]

    def _decode(self, latents: torch.Tensor) -> torch.Tensor:
        vae = self.pipe.vae
        z = latents.to(vae.dtype)
        mean, std = latent_stats(vae, tuple(z.shape), z.device, z.dtype)
        video = vae.decode(z / (1.0 / std) + mean, return_dict=False)[0]  # (B, 3, F, H, W), the pipeline's arithmetic
        return (video.float() / 2 + 0.5).clamp(0, 1).permute(0, 2, 1, 3, 4)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update({"num_frames": self.num_frames, "fps": self.fps, "max_sequence_length": self.max_sequence_length})
        if self._loaded:
            info.update(num_frames=self.frames)
        return info

"""ModelScope text-to-video 1.7B (``modelscope``; ``TextToVideoSDPipeline``): a UNet3D over (C, F, h, w) latents.

Built on the pipeline's own components: the CLIP text encoder (the uncond branch is the embedding of the negative
prompt, "" when none is configured, as in the pipeline), the UNet3D, the frame-wise 2-D VAE
(``decode_latents``). The shipped DDIM scheduler is used as is. SEG is provided: the query blur acts on the UNet's
spatial self-attention (default: the mid block), frame by frame; temporal attention is left alone.

``decode`` returns (B, F, 3, H, W) in [0, 1]. The pipeline is deprecated in diffusers (still importable in 0.42).
"""

from __future__ import annotations

from typing import Any

import torch

from .pipeline_adapter import PipelineAdapter, check_positive_int
from .sd import OneTextEncoderUNet


class ModelScopeAdapter(OneTextEncoderUNet, PipelineAdapter):
    """Args (besides the common ones): ``num_frames`` (default 16, the pipeline's), ``fps`` (for saved MP4s: 8)."""

    family = "modelscope"
    is_video = True
    pipeline_class = "TextToVideoSDPipeline"
    network_attr = "unet"
    perturbations = frozenset({"seg"})

    def __init__(self, model: str, *args: Any, num_frames: int = 16, fps: int = 8, **kwargs: Any):
        super().__init__(model, *args, **kwargs)
        self.num_frames = check_positive_int("num_frames", num_frames)
        self.fps = check_positive_int("fps", fps)

    def _after_load(self, pipe: Any, dtype: torch.dtype) -> None:
        self._vae_note = {"vae": self.model_name, "vae_dtype": str(pipe.vae.dtype).replace("torch.", ""),
                          "vae_upcast": False}

    def _default_size(self) -> tuple[int, int]:
        size = self.pipe.unet.config.sample_size * self._vae_scale_factor()
        return size, size

    def latent_shape(self) -> tuple[int, ...]:
        h, w = self.resolution
        f = self._vae_scale_factor()
        return self.pipe.unet.config.in_channels, self.num_frames, h // f, w // f

    def _decode(self, latents: torch.Tensor) -> torch.Tensor:
        video = self.pipe.decode_latents(latents.to(self.pipe.vae.dtype))  # (B, 3, F, H, W), float32
        return (video / 2 + 0.5).clamp(0, 1).permute(0, 2, 1, 3, 4)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "num_frames": self.num_frames, "fps": self.fps}

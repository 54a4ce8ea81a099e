"""CogVideoX (``cogvideox``; CogVideoX-2B): a 3-D transformer over (frames, channels, h, w) latents with a T5 encoder.

The conditioning is the pipeline's: T5 embeddings padded to ``max_sequence_length`` tokens (226, the transformer's
``max_text_seq_length``), plus 3-D rotary embeddings where the transformer uses them (CogVideoX-5B). The uncond
branch is the pipeline's: the T5 embedding of the negative prompt, "" when none is configured. The scheduler is the
shipped v-prediction ``CogVideoXDDIMScheduler`` (its own SNR-shifted, zero-terminal-SNR noise table); a
``CogVideoXDPMScheduler`` is converted to it. Latents are drawn as the pipeline draws them, (1, F_latent, C, h, w)
per sample, with the frames CogVideoX-1.5 pads in front for its temporal patches dropped before decoding.

``decode`` returns (B, F, 3, H, W) in [0, 1]. No SEG: its attention is joint text-video attention over 3-D tokens.
"""

from __future__ import annotations

from typing import Any

import torch

from .pipeline_adapter import PipelineAdapter, check_positive_int


class CogVideoXAdapter(PipelineAdapter):
    """Args (besides the common ones): ``num_frames`` (None: the model's 49), ``max_sequence_length`` (None: the
    transformer's ``max_text_seq_length``), ``fps`` (for saved MP4s; CogVideoX: 8)."""

    family = "cogvideox"
    is_video = True
    pipeline_class = "CogVideoXPipeline"
    network_attr = "transformer"
    size_multiple = 16
    supports_attention_slicing = False
    scheduler_classes = {"ddim": "CogVideoXDDIMScheduler"}
    no_perturbation_reason = ("SEG's query blur is implemented for UNet self-attention; CogVideoX attends jointly over "
                              "text and 3-D video tokens")

    def __init__(self, model: str, *args: Any, num_frames: int | None = None, max_sequence_length: int | None = None,
                 fps: int = 8, **kwargs: Any):
        super().__init__(model, *args, **kwargs)
        self.num_frames = check_positive_int("num_frames", num_frames, optional=True)
        self.max_sequence_length = check_positive_int("max_sequence_length", max_sequence_length, optional=True)
        self.fps = check_positive_int("fps", fps)

    def _after_load(self, pipe: Any, dtype: torch.dtype) -> None:
        ratio = pipe.vae_scale_factor_temporal
        if (self.frames - 1) % ratio:
            raise ValueError(f"{self.model}: num_frames must be {ratio}k + 1 (the VAE compresses time by {ratio}), "
                             f"got {self.frames}")
        self._rotary_cache: tuple[torch.Tensor, torch.Tensor] | None = None
        self._vae_note = {"vae": self.model_name, "vae_dtype": str(pipe.vae.dtype).replace("torch.", ""),
                          "vae_upcast": False}

    @property
    def frames(self) -> int:
        """Output frames."""
        return self.num_frames or int(self.pipe.transformer.config.sample_frames)

    @property
    def text_length(self) -> int:
        return self.max_sequence_length or int(self.pipe.transformer.config.max_text_seq_length)

    def _frame_layout(self) -> tuple[int, int]:
        """(latent frames incl. padding, padding frames in front), as the pipeline lays them out."""
        pipe = self.pipe
        latent_frames = (self.frames - 1) // pipe.vae_scale_factor_temporal + 1
        p_t = pipe.transformer.config.patch_size_t
        extra = 0 if p_t is None or latent_frames % p_t == 0 else p_t - latent_frames % p_t
        return latent_frames + extra, extra

    def _vae_scale_factor(self) -> int:
        return int(self.pipe.vae_scale_factor_spatial)

    def _default_size(self) -> tuple[int, int]:
        cfg = self.pipe.transformer.config
        f = self._vae_scale_factor()
        return cfg.sample_height * f, cfg.sample_width * f

    def latent_shape(self) -> tuple[int, ...]:
        h, w = self.resolution
        f = self._vae_scale_factor()
        frames, _ = self._frame_layout()
        return frames, self.pipe.transformer.config.in_channels, h // f, w // f

    def _text_limits(self) -> list[tuple[Any, int]]:
        return [(self.pipe.tokenizer, self.text_length)]

    def _encode(self, prompts: list[str]):
        neg = self._negative()
        cond, uncond = self.pipe.encode_prompt(
            prompts, negative_prompt=None if neg is None else [neg] * len(prompts), do_classifier_free_guidance=True,
            num_videos_per_prompt=1, max_sequence_length=self.text_length, device=self.device)
        return {"encoder_hidden_states": uncond}, {"encoder_hidden_states": cond}

    def _network(self, x, t, kwargs):
        if self.pipe.transformer.config.use_rotary_positional_embeddings and self._rotary_cache is None:
            h, w = self.resolution
            self._rotary_cache = rotary_embeddings(self.pipe, (h, w), x.shape[1], self.device)
        return self.compute_network(hidden_states=x, encoder_hidden_states=kwargs["encoder_hidden_states"],
                                    timestep=self._timestep(t, x.shape[0]), image_rotary_emb=self._rotary_cache,
                                    return_dict=False)[0]

    def _decode(self, latents: torch.Tensor) -> torch.Tensor:
        _, extra = self._frame_layout()
        video = self.pipe.decode_latents(latents[:, extra:].to(self.pipe.vae.dtype))  # (B, 3, F, H, W)
        return (video.float() / 2 + 0.5).clamp(0, 1).permute(0, 2, 1, 3, 4)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update({"num_frames": self.num_frames, "fps": self.fps, "max_sequence_length": self.max_sequence_length})
        if self._loaded:
            info.update(num_frames=self.frames, max_sequence_length=self.text_length)
        return info


def rotary_embeddings(pipe: Any, size: tuple[int, int], latent_frames: int, device: torch.device) -> tuple[Any, Any]:
    """The 3-D rotary embeddings (cos, sin) of a transformer that uses them, as the pipeline builds them: over the
    patch grid of the latent video. CogVideoX 1.0 crops the grid's positions out of the transformer's base grid;
    CogVideoX 1.5 (temporal patches) slices them from the base grid instead."""
    from diffusers.models.embeddings import get_3d_rotary_pos_embed
    from diffusers.pipelines.cogvideo.pipeline_cogvideox import get_resize_crop_region_for_grid

    config = pipe.transformer.config
    patch, temporal_patch = config.patch_size, config.patch_size_t
    stride = pipe.vae_scale_factor_spatial * patch
    grid = (size[0] // stride, size[1] // stride)
    base_height, base_width = config.sample_height // patch, config.sample_width // patch
    if temporal_patch is None:
        crops = get_resize_crop_region_for_grid(grid, base_width, base_height)
        return get_3d_rotary_pos_embed(embed_dim=config.attention_head_dim, crops_coords=crops, grid_size=grid,
                                       temporal_size=latent_frames, device=device)
    return get_3d_rotary_pos_embed(embed_dim=config.attention_head_dim, crops_coords=None, grid_size=grid,
                                   temporal_size=-(-latent_frames // temporal_patch), grid_type="slice",
                                   max_size=(base_height, base_width), device=device)

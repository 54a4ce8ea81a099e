"""Stable Diffusion 1.x / 2.x (``sd``), and what it shares with SDXL (``sdxl.py``): UNet image models.

Built on the diffusers pipeline's own components and methods (``encode_prompt``, the VAE), so the uncond branch is
exactly what the pipeline feeds its negative half: the text encoder's embedding of the negative prompt ("" when
none is configured). SEG's perturbed branch is provided (blurred self-attention queries; default layers: the UNet
mid block). A UNet or VAE from another repository or folder can replace the pipeline's own.
"""

from __future__ import annotations

from typing import Any

import torch

from .base import weight_file_digests, weights_reference
from .pipeline_adapter import PipelineAdapter, from_pretrained


class UNetImageAdapter(PipelineAdapter):
    """Shared by SD and SDXL: UNet / VAE overrides, latent layout, decoding."""

    network_attr = "unet"
    perturbations = frozenset({"seg"})
    conv_unet = True

    def __init__(self, model: str, *args: Any, unet: str | None = None, unet_subfolder: str | None = "unet",
                 unet_revision: str | None = None, vae: str | None = None, vae_subfolder: str | None = None,
                 vae_revision: str | None = None, **kwargs: Any):
        super().__init__(model, *args, **kwargs)
        for name, value in (("unet", unet), ("unet_subfolder", unet_subfolder), ("unet_revision", unet_revision),
                            ("vae", vae), ("vae_subfolder", vae_subfolder), ("vae_revision", vae_revision)):
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ValueError(f"adapter option {name} must be null or a non-empty string, got {value!r}")
        self.unet_override = unet
        self.unet_subfolder = unet_subfolder
        self.unet_revision = unet_revision
        self.vae_override = vae
        self.vae_subfolder = vae_subfolder
        self.vae_revision = vae_revision

    def _load_kwargs(self, dtype: torch.dtype) -> dict[str, Any]:
        from diffusers import AutoencoderKL, UNet2DConditionModel

        kwargs: dict[str, Any] = {}
        if self.unet_override:
            kwargs["unet"] = from_pretrained(UNet2DConditionModel, self.unet_override, "UNet",
                                             subfolder=self.unet_subfolder, revision=self.unet_revision, dtype=dtype)
        if self.vae_override:
            kwargs["vae"] = from_pretrained(AutoencoderKL, self.vae_override, "VAE", subfolder=self.vae_subfolder,
                                            revision=self.vae_revision, dtype=dtype)
        return kwargs

    def _after_load(self, pipe: Any, dtype: torch.dtype) -> None:
        if pipe.unet.config.get("time_cond_proj_dim") is not None:
            raise ValueError(f"{self.model}: the UNet is guidance-distilled (time_cond_proj_dim is set); its "
                             "pipeline runs no classifier-free guidance, which every sampler here needs")
        self._vae_note = {"vae": self._vae_name(), "vae_revision": self.vae_revision,
                          "vae_dtype": str(pipe.vae.dtype).replace("torch.", ""), "vae_upcast": False}

    def _default_size(self) -> tuple[int, int]:
        size = self.pipe.unet.config.sample_size
        h, w = (size, size) if isinstance(size, int) else (size[0], size[1])
        f = self._vae_scale_factor()
        return h * f, w * f

    def latent_shape(self) -> tuple[int, ...]:
        h, w = self.resolution
        f = self._vae_scale_factor()
        return self.pipe.unet.config.in_channels, h // f, w // f

    def _unscale(self, latents: torch.Tensor) -> torch.Tensor:
        return latents / self.pipe.vae.config.scaling_factor

    def _decode(self, latents: torch.Tensor) -> torch.Tensor:
        vae = self.pipe.vae
        z = self._unscale(latents.to(vae.dtype))
        image = vae.decode(z, return_dict=False)[0]
        return (image.float() / 2 + 0.5).clamp(0, 1)

    def _vae_name(self) -> str:
        return weights_reference(self.vae_override) or self.model_name

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update({"unet": weights_reference(self.unet_override),
                     "unet_subfolder": self.unet_subfolder if self.unet_override else None,
                     "unet_revision": self.unet_revision})
        info.setdefault("vae", self._vae_name())
        if self.vae_override:
            info["vae_subfolder"] = self.vae_subfolder
        return info

    def weight_digests(self) -> dict[str, str]:
        digests = super().weight_digests()
        for role, ref, revision in (("unet", self.unet_override, self.unet_revision),
                                    ("vae", self.vae_override, self.vae_revision)):
            if ref:
                digests.update({f"{role}/{k}": v for k, v in weight_file_digests(ref, revision).items()})
        return digests


class OneTextEncoderUNet:
    """``_encode`` / ``_network`` of pipelines whose single CLIP text encoder feeds the UNet's cross-attention
    (SD 1.x/2.x, ModelScope); mixed in before :class:`PipelineAdapter`."""

    def _encode(self, prompts: list[str]):
        neg = self._negative()
        cond, uncond = self.pipe.encode_prompt(
            prompts, self.device, 1, True, negative_prompt=None if neg is None else [neg] * len(prompts))
        return {"encoder_hidden_states": uncond}, {"encoder_hidden_states": cond}

    def _network(self, x, t, kwargs):
        return self.compute_network(x, self._timestep(t), encoder_hidden_states=kwargs["encoder_hidden_states"],
                                    return_dict=False)[0]


class SDAdapter(OneTextEncoderUNet, UNetImageAdapter):
    """Stable Diffusion 1.x / 2.x (``StableDiffusionPipeline``; SD-2.1: v-prediction DDIM at 768 x 768).

    The safety checker is not loaded: it blanks images, which would corrupt the metrics.
    """

    family = "sd"
    ays_family = "sd"
    pipeline_class = "StableDiffusionPipeline"

    def _load_kwargs(self, dtype: torch.dtype) -> dict[str, Any]:
        return {**super()._load_kwargs(dtype), "safety_checker": None, "feature_extractor": None,
                "requires_safety_checker": False}
